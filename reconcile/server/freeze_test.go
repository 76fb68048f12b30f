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

// Upkeep's own updaters ask the plain channel route and name their group
// (Upkeep-Group, or ?group=): the answer is the group's, as on the
// group-scoped route, on both Teleport forms; a request without a group
// keeps the channel's answer.
func TestCriticalHeldByFreezeOnThePlainChannelForANamedGroup(t *testing.T) {
	freezeStart, freezeEnd := time.Date(2026, 12, 19, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC)
	during, after := time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC), freezeEnd
	const webapi, plain = "/v1/webapi/automaticupgrades/channel/stable/cloud/critical", "/v1/stable/cloud/critical"
	tests := []struct {
		scenario      string
		now           time.Time
		allowCritical bool
		path          string
		header        []string
		want          string
		held          bool
	}{
		{"the group named by header is told no during a freeze without critical updates", during, false, webapi, []string{server.HeaderGroup, "eu-prod"}, "no", true},
		{"the group named by the query is told no during a freeze without critical updates", during, false, webapi + "?group=eu-prod", nil, "no", true},
		{"the plain /v1 form holds the named group too", during, false, plain, []string{server.HeaderGroup, "eu-prod", server.HeaderAgentID, "host-1"}, "no", true},
		{"a request naming no group keeps the channel's yes (Teleport's updaters)", during, false, webapi, nil, "yes", false},
		{"an agent id without a group keeps the channel's yes", during, false, webapi, []string{server.HeaderAgentID, "host-1"}, "yes", false},
		{"an unknown group holds nothing", during, false, webapi, []string{server.HeaderGroup, "nowhere"}, "yes", false},
		{"a freeze that allows critical updates is told yes", during, true, webapi, []string{server.HeaderGroup, "eu-prod"}, "yes", false},
		{"after the freeze the named group is told yes", after, false, webapi, []string{server.HeaderGroup, "eu-prod"}, "yes", false},
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
			first := srv.do(t, http.MethodGet, tt.path, tt.header...)
			if first.code != http.StatusOK || first.body != tt.want {
				t.Fatalf("critical = %d %q, want 200 %s", first.code, first.body, tt.want)
			}
			if v := first.header.Get("Vary"); v != server.HeaderGroup {
				t.Errorf("Vary %q, want %s: the answer depends on the group", v, server.HeaderGroup)
			}
			h := first.header.Get(server.HeaderFreeze)
			if tt.held != (h != "") || (tt.held && h != "rule=CriticalHeldByFreeze; freeze=year-end; until=2027-01-05T00:00:00Z") {
				t.Errorf("%s header %q, held %v", server.HeaderFreeze, h, tt.held)
			}
			if tt.held && first.header.Get("Etag") != "" {
				t.Errorf("a held answer carries ETag %q; it changes when the freeze ends, not with the revision", first.header.Get("Etag"))
			}
			// A cached "yes" revalidated during the freeze gets the "no", not a 304.
			if tt.held {
				unnamed := srv.do(t, http.MethodGet, webapi)
				again := srv.do(t, http.MethodGet, tt.path, append(append([]string(nil), tt.header...), "If-None-Match", unnamed.header.Get("Etag"))...)
				if again.code != http.StatusOK || again.body != "no" {
					t.Errorf("revalidating the channel's ETag = %d %q, want 200 no", again.code, again.body)
				}
			}
		})
	}
}

// The plain critical route stays allocation-free when it reads a group:
// without one (Teleport's updaters), and with one outside a freeze.
func TestCriticalRouteDoesNotAllocate(t *testing.T) {
	h := server.New(serving(t, "rev1"), server.Options{})
	tests := []struct {
		scenario, path string
		header         []string
		want           string
	}{
		{"a critical channel asked without a group", "/v1/webapi/automaticupgrades/channel/hotfix/critical", nil, "yes"},
		{"a critical channel asked by a group outside any freeze", "/v1/webapi/automaticupgrades/channel/hotfix/critical", []string{server.HeaderGroup, "eu-prod"}, "yes"},
		{"a critical channel asked by group in the query", "/v1/hotfix/critical?group=eu-prod", nil, "yes"},
		{"a channel that is not critical", "/v1/webapi/automaticupgrades/channel/stable/cloud/critical", []string{server.HeaderGroup, "eu-prod"}, "no"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, req) // the first request builds the tables
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || rec.Body.String() != tt.want {
				t.Fatalf("answered %d %q, want %s", rec.Code, rec.Body, tt.want)
			}
			if n := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, req) }); n != 0 {
				t.Errorf("%v allocations per request, want 0", n)
			}
		})
	}
}
