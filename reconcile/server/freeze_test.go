package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/spec"
)

// Teleport's updaters update at once on a critical "yes", whatever their
// schedule. The group-scoped channel answers "no" while the group is in a
// freeze that does not allow critical updates; the plain channel route,
// shared by every group of the channel, keeps the channel's answer.
func TestCriticalHeldByFreezeOnTheGroupScopedChannel(t *testing.T) {
	freezeStart, freezeEnd := time.Date(2026, 12, 19, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		scenario      string
		now           time.Time
		allowCritical bool
		group, plain  string
		held          bool
	}{
		{"inside a freeze without critical updates the group is told no", time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC), false, "no", "yes", true},
		{"inside a freeze that allows critical updates the group is told yes", time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC), true, "yes", "yes", false},
		{"after the freeze the group is told yes", time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC), false, "yes", "yes", false},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			st := testState(t)
			for _, c := range st.Channels {
				if c.Name == "stable/cloud" {
					c.Critical = true
				}
			}
			st.Groups[0].Freezes = []spec.Freeze{{Name: "year-end", Start: freezeStart, End: freezeEnd, AllowCritical: tt.allowCritical}}
			b := &fakeBackend{}
			b.snap.Store(reconcile.BuildSnapshot(st, "rev1", tt.now))
			srv := startWith(t, b, server.Options{Now: func() time.Time { return tt.now }})
			g := srv.do(t, http.MethodGet, "/v1/webapi/automaticupgrades/channel/group/eu-prod/critical")
			p := srv.do(t, http.MethodGet, "/v1/webapi/automaticupgrades/channel/stable/cloud/critical")
			if got, err := teleportCritical(g.body); g.code != http.StatusOK || err != nil || (got != (tt.group == "yes")) {
				t.Errorf("group-scoped critical = %d %q, want %s", g.code, g.body, tt.group)
			}
			if p.body != tt.plain {
				t.Errorf("channel critical = %q, want %s", p.body, tt.plain)
			}
			h := g.header.Get(server.HeaderFreeze)
			if tt.held != (h != "") || (tt.held && !strings.Contains(h, "rule=CriticalHeldByFreeze; freeze=year-end; until=2027-01-05T00:00:00Z")) {
				t.Errorf("%s header %q, held %v", server.HeaderFreeze, h, tt.held)
			}
		})
	}
}

func startWith(t testing.TB, b *fakeBackend, o server.Options) *testServer {
	t.Helper()
	s := httptest.NewServer(server.New(b, o))
	t.Cleanup(s.Close)
	return &testServer{Server: s, b: b}
}
