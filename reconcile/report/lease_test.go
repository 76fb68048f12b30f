package report_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/report/leasetest"
)

// TestLeases runs the client against the lease wire over real HTTP: a
// grant, a refusal with its holders and retry time, a release, and an agent
// without a group released under _none.
func TestLeases(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	leases := leasetest.New(map[string]int{"eu-prod": 1, "_none": 1})
	leases.Token, leases.Now = tokenA, func() time.Time { return now }
	mux := http.NewServeMux()
	leases.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// The client is given the updater's version server URL, as updaters do.
	c, err := report.NewClient(srv.URL+"/v1/webapi/automaticupgrades/channel", report.ClientOptions{TokenFile: tokenFile(t, tokenA)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := func(agent, group string) report.LeaseRequest {
		return report.LeaseRequest{AgentID: agent, Group: group, Channel: "stable/cloud", Version: "17.4.0"}
	}

	a, err := c.Acquire(ctx, req("web-1", "eu-prod"))
	if err != nil || !a.Granted || !a.ExpiresAt.Equal(now.Add(30*time.Minute)) {
		t.Fatalf("first lease: %+v, %v; want granted until %s", a, err, now.Add(30*time.Minute))
	}
	a, err = c.Acquire(ctx, req("web-2", "eu-prod"))
	if err != nil || a.Granted || a.Holders != 1 || a.Max != 1 || !a.RetryAfter.Equal(now.Add(30*time.Minute)) {
		t.Fatalf("second lease: %+v, %v; want refused, 1 of 1, retry when web-1's expires", a, err)
	}
	l := report.LeaseInput("eu-prod", a, err)
	if l.State != reconcile.LeaseRefused || l.Holders != 1 || l.Max != 1 || !l.RetryAt.Equal(a.RetryAfter) {
		t.Errorf("LeaseInput of a refusal = %+v", l)
	}
	if err := c.Release(ctx, "eu-prod", "web-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, "eu-prod", "web-1"); err != nil {
		t.Errorf("releasing a lease no longer held: %v, want nil", err)
	}
	if a, err = c.Acquire(ctx, req("web-2", "eu-prod")); err != nil || !a.Granted {
		t.Fatalf("after the release: %+v, %v; want granted", a, err)
	}
	if a, err = c.Acquire(ctx, req("lone", "")); err != nil || !a.Granted {
		t.Fatalf("an agent without a group: %+v, %v", a, err)
	}
	if err := c.Release(ctx, "", "lone"); err != nil {
		t.Fatal(err)
	}
	if got := leases.Events("lone"); got != "acquired released" {
		t.Errorf("the agent without a group: %q, want it acquired and released under _none", got)
	}
	if got := leases.Events("web-2"); got != "refused acquired" {
		t.Errorf("web-2: %q", got)
	}
}

func TestLeaseAnswers(t *testing.T) {
	now := time.Now()
	tests := []struct {
		scenario string
		status   int
		body     string
		header   map[string]string
		state    reconcile.LeaseState
		err      string // in the error, for LeaseFailed
		retryIn  time.Duration
	}{
		{scenario: "a 404 means the server keeps no leases", status: 404, body: "404 page not found", state: reconcile.LeaseUnsupported},
		{scenario: "a refusal may give its retry time in seconds", status: 409, body: `{"granted":false,"holders":2,"max":2,"retryAfter":90}`,
			state: reconcile.LeaseRefused, retryIn: 90 * time.Second},
		{scenario: "a refusal may give its retry time only in the Retry-After header", status: 409, body: `{"granted":false,"holders":2,"max":2}`,
			header: map[string]string{"Retry-After": "120"}, state: reconcile.LeaseRefused, retryIn: 2 * time.Minute},
		{scenario: "a refusal's retry time is bounded to a day", status: 409, body: `{"granted":false,"holders":1,"max":1,"retryAfter":"2999-01-01T00:00:00Z"}`,
			state: reconcile.LeaseRefused, retryIn: 24 * time.Hour},
		{scenario: "a 200 that does not grant is not an answer", status: 200, body: `{"granted":false}`, state: reconcile.LeaseFailed, err: `want "granted": true`},
		{scenario: "a 409 without granted is not an answer", status: 409, body: `<html>busy</html>`, state: reconcile.LeaseFailed, err: "not a lease answer"},
		{scenario: "a bad retry time is named", status: 409, body: `{"granted":false,"retryAfter":"soon"}`, state: reconcile.LeaseFailed, err: `retryAfter "soon"`},
		{scenario: "a redirect is not followed and says what to configure", status: 307, header: map[string]string{"Location": "https://elsewhere/v1/leases"},
			state: reconcile.LeaseFailed, err: "redirects are not followed"},
		{scenario: "a wrong token is named", status: 401, body: "unauthorized", state: reconcile.LeaseFailed, err: "check the token file"},
		{scenario: "a server error is an error, so the update waits", status: 503, body: "store down", state: reconcile.LeaseFailed, err: "503"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			c, err := report.NewClient(rec.URL, report.ClientOptions{TokenFile: tokenFile(t, tokenA)})
			if err != nil {
				t.Fatal(err)
			}
			a, err := c.Acquire(context.Background(), report.LeaseRequest{AgentID: "a", Channel: "c", Version: "1.0.0"})
			l := report.LeaseInput("", a, err)
			if l.State != tc.state {
				t.Fatalf("state %v (answer %+v, error %v), want %v", l.State, a, err, tc.state)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want it to contain %q", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), tokenA) {
				t.Errorf("the error shows the token: %v", err)
			}
			if tc.state == reconcile.LeaseUnsupported && !errors.Is(err, report.ErrNoLeases) {
				t.Errorf("error %v is not ErrNoLeases", err)
			}
			if tc.retryIn != 0 {
				if d := a.RetryAfter.Sub(now); d < tc.retryIn-5*time.Second || d > tc.retryIn+5*time.Second {
					t.Errorf("retry in %s, want about %s", d, tc.retryIn)
				}
			}
			if got := rec.paths[0]; got != "/v1/leases" {
				t.Errorf("asked %s", got)
			}
		})
	}
}
