package versionclient

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"upkeep.dev/upkeep/reconcile"
)

// TestIdentityAndHold: a client configured with an identity sends it on
// version and critical requests (and TargetAs sends another one), and a
// held-back answer's Upkeep-Rollout header becomes Target.Held. Without the
// header (Teleport's proxies) the target is as before.
func TestIdentityAndHold(t *testing.T) {
	type seen struct{ path, agent, group string }
	var got []seen
	hold := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, seen{r.URL.Path, r.Header.Get(HeaderAgentID), r.Header.Get(HeaderGroup)})
		switch {
		case strings.HasSuffix(r.URL.Path, "/version"):
			if hold != "" {
				w.Header().Set(HeaderRollout, hold)
			}
			w.Write([]byte("v17.3.0\n"))
		case strings.HasSuffix(r.URL.Path, "/critical"):
			w.Write([]byte("no"))
		default:
			w.Write([]byte(`{"windows":[]}`))
		}
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, Options{AgentID: "web-01.eu.example.com", Group: "eu-prod"})

	tg, err := c.Target(t.Context(), "stable/cloud")
	if err != nil || tg.Version != "17.3.0" || tg.Held != nil {
		t.Fatalf("without a rollout header: %+v, %v; want 17.3.0 and no hold", tg, err)
	}
	hold = "version=v17.4.0; state=Canary; stage=1; reason=NotCanary"
	tg, err = c.Target(t.Context(), "stable/cloud")
	want := reconcile.RolloutHold{Version: "17.4.0", State: "Canary", Stage: 1, Reason: "NotCanary"}
	if err != nil || tg.Version != "17.3.0" || tg.Held == nil || *tg.Held != want {
		t.Fatalf("held back: %+v (%+v), %v; want 17.3.0 held from %+v", tg, tg.Held, err, want)
	}
	if _, err := c.Critical(t.Context(), "stable/cloud"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Schedule(t.Context(), "eu-prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TargetAs(t.Context(), "stable/cloud", Identity{AgentID: "0b6c-uid"}); err != nil {
		t.Fatal(err)
	}
	hold = "version=17.4.0; state=Canary"
	if _, err := c.Target(t.Context(), "stable/cloud"); err == nil || !strings.Contains(err.Error(), "stage is required") || !strings.Contains(err.Error(), HeaderRollout) {
		t.Errorf("a hold without its stage: %v, want an error naming the header", err)
	}
	me := seen{agent: "web-01.eu.example.com", group: "eu-prod"}
	for i, w := range []seen{me, me, me, {}, {agent: "0b6c-uid"}} {
		g := got[i]
		g.path = ""
		if g != w {
			t.Errorf("request %d (%s) sent identity %+v, want %+v", i, got[i].path, g, w)
		}
	}
}

func TestIdentityIsChecked(t *testing.T) {
	for _, o := range []Options{
		{AgentID: "ns/pod"}, {AgentID: "-x"}, {AgentID: "a\r\nX-Evil: 1"}, {AgentID: strings.Repeat("a", 254)},
		{Group: "EU"}, {Group: "eu/prod"}, {Group: "eu prod"},
	} {
		if _, err := New("https://upkeep.example.com", o); err == nil || !strings.Contains(err.Error(), "identity") {
			t.Errorf("New with %+v: %v, want an identity error", o, err)
		}
	}
	c := newClient(t, "https://upkeep.example.com", Options{})
	if _, err := c.TargetAs(t.Context(), "stable", Identity{AgentID: "a b"}); err == nil {
		t.Error("TargetAs sent a bad agent id")
	}
}

func TestParseRollout(t *testing.T) {
	tests := []struct {
		scenario string
		values   []string
		want     *reconcile.RolloutHold
		err      string
	}{
		{scenario: "no header is no hold", values: nil},
		{scenario: "the design's example reads", values: []string{"version=17.4.0; state=Canary; stage=1; reason=NotCanary"},
			want: &reconcile.RolloutHold{Version: "17.4.0", State: "Canary", Stage: 1, Reason: "NotCanary"}},
		{scenario: "the reason is optional and spaces around pairs do not matter", values: []string{"version=17.4.0;state=Halted ;  stage=0"},
			want: &reconcile.RolloutHold{Version: "17.4.0", State: "Halted"}},
		{scenario: "an unknown lower-case key from a newer server is ignored", values: []string{"version=17.4.0; state=Baking; stage=2; bakeuntil=2026-12-03T10:00:00Z"},
			want: &reconcile.RolloutHold{Version: "17.4.0", State: "Baking", Stage: 2}},
		{scenario: "two headers are refused", values: []string{"version=1.0.0; state=Canary; stage=0", "version=2.0.0; state=Canary; stage=0"}, err: "sent 2 times"},
		{scenario: "a missing version is refused", values: []string{"state=Canary; stage=1"}, err: "version is required"},
		{scenario: "a version that is not semver is refused", values: []string{"version=17.4; state=Canary; stage=1"}, err: `version "17.4"`},
		{scenario: "a lower-case state is refused", values: []string{"version=17.4.0; state=canary; stage=1"}, err: "state"},
		{scenario: "a negative stage is refused", values: []string{"version=17.4.0; state=Canary; stage=-1"}, err: "stage"},
		{scenario: "a stage with a leading plus is refused", values: []string{"version=17.4.0; state=Canary; stage=+1"}, err: "stage"},
		{scenario: "a duplicate key is refused", values: []string{"version=17.4.0; version=17.5.0; state=Canary; stage=1"}, err: "twice"},
		{scenario: "a quoted value is refused", values: []string{`version="17.4.0"; state=Canary; stage=1`}, err: "key=value"},
		{scenario: "a pair without a value is refused", values: []string{"version=17.4.0; state; stage=1"}, err: "key=value"},
		{scenario: "an odd key is refused", values: []string{"version=17.4.0; state=Canary; stage=1; X-Y=1"}, err: "lower-case"},
		{scenario: "a reason with spaces is refused", values: []string{"version=17.4.0; state=Canary; stage=1; reason=not canary"}, err: "key=value"},
		{scenario: "an overlong header is refused", values: []string{"version=17.4.0; state=Canary; stage=1; x=" + strings.Repeat("a", 600)}, err: "at most 512"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			got, err := ParseRollout(tc.values)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
