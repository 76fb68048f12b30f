package versionclient

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
)

func TestParseFreeze(t *testing.T) {
	until := time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		scenario string
		values   []string
		want     *reconcile.FreezeHold
		err      string
	}{
		{scenario: "no header is no hold", values: nil},
		{scenario: "the server's header reads", values: []string{"rule=CriticalHeldByFreeze; freeze=year-end; until=2027-01-05T00:00:00Z"},
			want: &reconcile.FreezeHold{Rule: "CriticalHeldByFreeze", Freeze: "year-end", Until: until}},
		{scenario: "an offset time is read in UTC", values: []string{"rule=CriticalHeldByFreeze;freeze=year-end ; until=2027-01-05T01:00:00+01:00"},
			want: &reconcile.FreezeHold{Rule: "CriticalHeldByFreeze", Freeze: "year-end", Until: until}},
		{scenario: "an unknown lower-case key from a newer server is ignored", values: []string{"rule=CriticalHeldByFreeze; freeze=year-end; until=2027-01-05T00:00:00Z; since=2026-12-19T00:00:00Z"},
			want: &reconcile.FreezeHold{Rule: "CriticalHeldByFreeze", Freeze: "year-end", Until: until}},
		{scenario: "two headers are refused", values: []string{"rule=A; freeze=a; until=2027-01-05T00:00:00Z", "rule=A; freeze=b; until=2027-01-05T00:00:00Z"}, err: "sent 2 times"},
		{scenario: "a missing end is refused", values: []string{"rule=CriticalHeldByFreeze; freeze=year-end"}, err: "until is required"},
		{scenario: "a missing freeze name is refused", values: []string{"rule=CriticalHeldByFreeze; until=2027-01-05T00:00:00Z"}, err: "freeze is required"},
		{scenario: "a missing rule is refused", values: []string{"freeze=year-end; until=2027-01-05T00:00:00Z"}, err: "rule is required"},
		{scenario: "a date without a time is refused", values: []string{"rule=CriticalHeldByFreeze; freeze=year-end; until=2027-01-05"}, err: "RFC 3339"},
		{scenario: "a freeze name outside the fleet's name rule is refused", values: []string{"rule=CriticalHeldByFreeze; freeze=Year_End; until=2027-01-05T00:00:00Z"}, err: `freeze "Year_End"`},
		{scenario: "a lower-case rule is refused", values: []string{"rule=criticalheld; freeze=year-end; until=2027-01-05T00:00:00Z"}, err: "CamelCase"},
		{scenario: "a duplicate key is refused", values: []string{"rule=A; freeze=a; freeze=b; until=2027-01-05T00:00:00Z"}, err: "twice"},
		{scenario: "a quoted value is refused", values: []string{`rule=A; freeze="a"; until=2027-01-05T00:00:00Z`}, err: "key=value"},
		{scenario: "an odd key is refused", values: []string{"rule=A; freeze=a; until=2027-01-05T00:00:00Z; X-Y=1"}, err: "lower-case"},
		{scenario: "an overlong header is refused", values: []string{"rule=A; freeze=a; until=2027-01-05T00:00:00Z; x=" + strings.Repeat("a", 600)}, err: "at most 512"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			got, err := ParseFreeze(tc.values)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || got != nil && (got.Rule != tc.want.Rule || got.Freeze != tc.want.Freeze || !got.Until.Equal(tc.want.Until)) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestCriticalAnswer: the critical answer carries the server's freeze hold
// with its "no"; a garbled hold, or one beside a "yes", is an error, not a
// plain answer.
func TestCriticalAnswer(t *testing.T) {
	body, freeze := "no", ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if freeze != "" {
			w.Header().Set(HeaderFreeze, freeze)
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, Options{AgentID: "web-01", Group: "eu-prod"})
	tests := []struct {
		scenario, body, freeze string
		crit                   bool
		held                   bool
		err                    string
	}{
		{scenario: "a plain no is no hold", body: "no"},
		{scenario: "a plain yes is critical", body: "yes", crit: true},
		{scenario: "a no with the freeze header is a hold", body: "no", freeze: "rule=CriticalHeldByFreeze; freeze=year-end; until=2027-01-05T00:00:00Z", held: true},
		{scenario: "a garbled freeze header is an error naming the header", body: "no", freeze: "rule=CriticalHeldByFreeze; freeze=year-end", err: HeaderFreeze},
		{scenario: "a freeze header beside a yes is an error", body: "yes", freeze: "rule=CriticalHeldByFreeze; freeze=year-end; until=2027-01-05T00:00:00Z", err: "body says yes"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			body, freeze = tc.body, tc.freeze
			a, err := c.CriticalAnswer(t.Context(), "stable/cloud")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want an error containing %q", a, err, tc.err)
				}
				if _, err := c.Critical(t.Context(), "stable/cloud"); err == nil {
					t.Error("Critical ignored the bad header")
				}
				return
			}
			if err != nil || a.Critical != tc.crit || (a.Held != nil) != tc.held {
				t.Fatalf("got %+v, %v; want critical %v, held %v", a, err, tc.crit, tc.held)
			}
			if tc.held && (a.Held.Freeze != "year-end" || a.Held.Rule != "CriticalHeldByFreeze") {
				t.Errorf("hold %+v", a.Held)
			}
		})
	}
}
