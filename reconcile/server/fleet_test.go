package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/pgtest"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/rollout"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/spec"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// rolloutState is a fleet with channel prod rolling 1.0.0 → 1.1.0 through
// two stages (canary-hosts, then eu-prod; us-prod is in the implicit last
// stage), and channel plain without a rollout.
func rolloutState() *spec.State {
	return &spec.State{
		ControlPlanes: []*spec.ControlPlane{{Name: "cloud", Version: "1.9.0"}},
		Channels: []*spec.Channel{
			{Name: "prod", ControlPlane: "cloud", Version: "1.1.0", Rollout: &spec.Rollout{Stages: []spec.Stage{
				{Groups: []string{"canary-hosts"}, Canaries: spec.Quantity{Count: 1}},
				{Groups: []string{"eu-prod"}},
			}}},
			{Name: "plain", ControlPlane: "cloud", Version: "1.2.0"},
		},
		Groups: []*spec.Group{
			{Name: "canary-hosts", Channel: "prod", Timezone: "UTC", Location: time.UTC, MaxConcurrent: spec.Quantity{Count: 2}},
			{Name: "eu-prod", Channel: "prod", Timezone: "UTC", Location: time.UTC, MaxConcurrent: spec.Quantity{Percent: 50, IsPercent: true}},
			{Name: "us-prod", Channel: "prod", Timezone: "UTC", Location: time.UTC},
			{Name: "plain-hosts", Channel: "plain", Timezone: "UTC", Location: time.UTC},
		},
	}
}

func rolloutBackend() *fakeBackend {
	b := &fakeBackend{}
	b.snap.Store(reconcile.BuildSnapshot(rolloutState(), "rev1", buildTime))
	b.status = reconcile.Status{Source: "test", Revision: "rev1", LastSync: buildTime, LastSuccess: buildTime}
	return b
}

// answerTable is a settable rollout answer table, as the Cache publishes.
type answerTable struct {
	p atomic.Pointer[rollout.Answers]
}

func (a *answerTable) get() *rollout.Answers { return a.p.Load() }

// set publishes prod's answer for r.
func (a *answerTable) set(r fleet.Rollout) {
	r.Channel = "prod"
	a.p.Store(rollout.NewAnswers(rollout.NewAnswer(r, rolloutState().RolloutStages("prod"), nil)))
}

var canaryStep = fleet.Rollout{Version: "1.1.0", FromVersion: "1.0.0", State: fleet.StateCanary, Stage: 0, Step: fleet.StepCanary, Canaries: []string{"c-1"}}

func TestPerAgentVersionAnswer(t *testing.T) {
	answers := &answerTable{}
	s := start(t, rolloutBackend(), nil)
	s.Close()
	store, _ := openStore(t, fleet.Options{})
	rs := startOn(t, store, rolloutBackend(), answers.get)

	const webapi = "/v1/webapi/automaticupgrades/channel/"
	for _, tc := range []struct {
		scenario string
		rollout  *fleet.Rollout // nil: no answer table yet
		path     string
		header   []string
		code     int
		body     string
		held     string // the reason in Upkeep-Rollout; "" for none
	}{
		{scenario: "before the rollouts are read, a channel under rollout answers 503 rather than the new version to all",
			path: "/v1/prod/version", header: []string{"Upkeep-Agent-Id", "c-1", "Upkeep-Group", "canary-hosts"}, code: 503},
		{scenario: "a channel without a rollout answers its version even before the rollouts are read",
			path: "/v1/plain/version", code: 200, body: "v1.2.0"},
		{scenario: "a canary named by the headers gets the new version", rollout: &canaryStep,
			path: "/v1/prod/version", header: []string{"Upkeep-Agent-Id", "c-1", "Upkeep-Group", "canary-hosts"}, code: 200, body: "v1.1.0"},
		{scenario: "another agent of the canary stage is held back", rollout: &canaryStep,
			path: "/v1/prod/version", header: []string{"Upkeep-Agent-Id", "c-2", "Upkeep-Group", "canary-hosts"}, code: 200, body: "v1.0.0", held: "NotCanary"},
		{scenario: "an agent of a later stage is held back", rollout: &canaryStep,
			path: webapi + "prod/version", header: []string{"Upkeep-Agent-Id", "e-1", "Upkeep-Group", "eu-prod"}, code: 200, body: "v1.0.0", held: "StageNotReached"},
		{scenario: "the identity may come in the query", rollout: &canaryStep,
			path: "/v1/prod/version?agent=c-1&group=canary-hosts", code: 200, body: "v1.1.0"},
		{scenario: "an escaped query value is read unescaped", rollout: &canaryStep,
			path: "/v1/prod/version?group=canary%2Dhosts&agent=c%2D1", code: 200, body: "v1.1.0"},
		{scenario: "the headers win over the query", rollout: &canaryStep,
			path: "/v1/prod/version?agent=c-1&group=canary-hosts", header: []string{"Upkeep-Agent-Id", "c-2"}, code: 200, body: "v1.0.0", held: "NotCanary"},
		{scenario: "a request without an agent id is never taken for a canary", rollout: &canaryStep,
			path: "/v1/prod/version", header: []string{"Upkeep-Group", "canary-hosts"}, code: 200, body: "v1.0.0", held: "NotCanary"},
		{scenario: "the group-scoped Teleport channel answers the group's all step, not a canary's", rollout: &canaryStep,
			path: webapi + "group/canary-hosts/version", code: 200, body: "v1.0.0", held: "NotCanary"},
		{scenario: "the group-scoped channel gives the version once the group's all step runs",
			rollout: &fleet.Rollout{Version: "1.1.0", FromVersion: "1.0.0", State: fleet.StateActive, Stage: 0, Step: fleet.StepAll},
			path:    webapi + "group/canary-hosts/version", code: 200, body: "v1.1.0"},
		{scenario: "the group-scoped channel works under /v1/ too",
			rollout: &fleet.Rollout{Version: "1.1.0", FromVersion: "1.0.0", State: fleet.StateActive, Stage: 1, Step: fleet.StepAll},
			path:    "/v1/group/eu-prod/version", code: 200, body: "v1.1.0"},
		{scenario: "the group-scoped critical flag is the group's channel's", rollout: &canaryStep,
			path: webapi + "group/eu-prod/critical", code: 200, body: "no"},
		{scenario: "a group in no stage waits for the implicit last stage",
			rollout: &fleet.Rollout{Version: "1.1.0", FromVersion: "1.0.0", State: fleet.StateActive, Stage: 1, Step: fleet.StepAll},
			path:    webapi + "group/us-prod/version", code: 200, body: "v1.0.0", held: "StageNotReached"},
		{scenario: "a group-scoped channel of a group without a rollout answers its channel's version", rollout: &canaryStep,
			path: webapi + "group/plain-hosts/version", code: 200, body: "v1.2.0"},
		{scenario: "a group-scoped channel of an unknown group is 404", rollout: &canaryStep,
			path: webapi + "group/nowhere/version", code: 404},
		{scenario: "a group-scoped channel of a name that is no group is 400", rollout: &canaryStep,
			path: webapi + "group/No_Group/version", code: 400},
		{scenario: "halted: nobody new gets the version",
			rollout: &fleet.Rollout{Version: "1.1.0", FromVersion: "1.0.0", State: fleet.StateHalted, Stage: 0, Step: fleet.StepCanary, Canaries: []string{"c-1"}},
			path:    "/v1/prod/version", header: []string{"Upkeep-Agent-Id", "c-2", "Upkeep-Group", "canary-hosts"}, code: 200, body: "v1.0.0", held: "Halted"},
		{scenario: "done: everybody gets the version",
			rollout: &fleet.Rollout{Version: "1.1.0", FromVersion: "1.0.0", State: fleet.StateDone, Stage: 1},
			path:    "/v1/prod/version", header: []string{"Upkeep-Agent-Id", "u-1", "Upkeep-Group", "us-prod"}, code: 200, body: "v1.1.0"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			if tc.rollout != nil {
				answers.set(*tc.rollout)
			} else {
				answers.p.Store(nil)
			}
			got := rs.do(t, "GET", tc.path, tc.header...)
			if got.code != tc.code {
				t.Fatalf("%d %q, want %d", got.code, got.body, tc.code)
			}
			if tc.body != "" && got.body != tc.body {
				t.Errorf("body %q, want %q", got.body, tc.body)
			}
			hv := got.header.Get(server.HeaderRollout)
			switch {
			case tc.held == "" && hv != "":
				t.Errorf("Upkeep-Rollout %q on an answer not held", hv)
			case tc.held != "" && !strings.HasSuffix(hv, "; reason="+tc.held):
				t.Errorf("Upkeep-Rollout %q, want reason %s", hv, tc.held)
			case tc.held != "" && !strings.HasPrefix(hv, "version=1.1.0; state="+tc.rollout.State+"; stage="):
				t.Errorf("Upkeep-Rollout %q does not name the rollout", hv)
			}
			if tc.rollout != nil && tc.code == 200 && tc.held == "" && strings.Contains(tc.path, "prod/version") && got.header.Get("Etag") != "" {
				t.Errorf("a per-agent answer carries ETag %q", got.header.Get("Etag"))
			}
		})
	}
}

// TestTwoReplicasShareOneStore: two handlers over one store file (two
// store handles, as two processes would have) see each other's reports.
func TestTwoReplicasShareOneStore(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var url string
			if engine == "sqlite" {
				url = "sqlite://" + filepath.Join(t.TempDir(), "fleet.db")
			} else {
				url = pgtest.Shared(t)
			}
			open := func() fleet.Store {
				st, err := sqlstore.Open(context.Background(), url, fleet.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			}
			a := startOn(t, open(), serving(t, "rev1"), nil)
			b := startOn(t, open(), serving(t, "rev1"), nil)
			a.post(t, agentReport("web-01", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait))
			b.post(t, agentReport("web-02", "eu-prod", "17.3.0", "healthy", reconcile.ActionNothing))
			b.clock.Advance(time.Minute)
			b.post(t, agentReport("web-01", "eu-prod", "17.3.0", "healthy", reconcile.ActionNothing))
			for name, s := range map[string]*reportServer{"a": a, "b": b} {
				f := s.fleet(t, "")
				if f.Counts.Agents != 2 || f.Counts.ByVersion["17.3.0"] != 2 {
					t.Errorf("replica %s counts %+v, want both agents on 17.3.0", name, f.Counts)
				}
				got := s.send(t, "GET", "/v1/agents/web-01", "", bearer(reportToken)...)
				var ag struct {
					Agent   report.Agent   `json:"agent"`
					History []report.Agent `json:"history"`
				}
				if err := json.Unmarshal([]byte(got.body), &ag); err != nil || got.code != 200 {
					t.Fatalf("replica %s: GET /v1/agents/web-01: %d %s %v", name, got.code, got.body, err)
				}
				if ag.Agent.CurrentVersion != "17.3.0" || len(ag.History) != 2 || ag.History[1].CurrentVersion != "17.2.3" {
					t.Errorf("replica %s: agent %+v history %+v, want 17.3.0 after 17.2.3", name, ag.Agent.Report, ag.History)
				}
				if m := s.do(t, "GET", "/metrics").body; !strings.Contains(m, `upkeep_agents{group="eu-prod",health="healthy",version="17.3.0"} 2`+"\n") {
					t.Errorf("replica %s metrics:\n%s", name, grep(m, "upkeep_agents"))
				}
			}
		})
	}
}

func TestAgentRoute(t *testing.T) {
	s := startReports(t, fleet.Options{HistoryPerAgent: 3})
	for i := range 5 {
		r := agentReport("web-01", "eu-prod", fmt.Sprintf("17.2.%d", i), "healthy", reconcile.ActionWait)
		s.post(t, r)
		s.clock.Advance(time.Minute)
	}
	for _, tc := range []struct {
		scenario, path string
		token          string
		code           int
		history        int
	}{
		{scenario: "an agent with its bounded history, newest first", path: "/v1/agents/web-01", token: reportToken, code: 200, history: 3},
		{scenario: "history=1 is the latest only", path: "/v1/agents/web-01?history=1", token: reportToken, code: 200, history: 1},
		{scenario: "history=0 leaves it out", path: "/v1/agents/web-01?history=0", token: reportToken, code: 200, history: 0},
		{scenario: "an unknown agent is 404", path: "/v1/agents/web-99", token: reportToken, code: 404},
		{scenario: "an id that cannot be an agent's is 400", path: "/v1/agents/-web", token: reportToken, code: 400},
		{scenario: "an unknown parameter is 400", path: "/v1/agents/web-01?colour=blue", token: reportToken, code: 400},
		{scenario: "no token, no agent", path: "/v1/agents/web-01", code: 401},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			var h []string
			if tc.token != "" {
				h = bearer(tc.token)
			}
			got := s.send(t, "GET", tc.path, "", h...)
			if got.code != tc.code {
				t.Fatalf("%d %s, want %d", got.code, got.body, tc.code)
			}
			if tc.code != 200 {
				return
			}
			var ag struct {
				Agent   report.Agent   `json:"agent"`
				History []report.Agent `json:"history"`
			}
			if err := json.Unmarshal([]byte(got.body), &ag); err != nil {
				t.Fatal(err)
			}
			if ag.Agent.CurrentVersion != "17.2.4" || len(ag.History) != tc.history {
				t.Fatalf("agent %s, %d reports of history, want 17.2.4 and %d", ag.Agent.CurrentVersion, len(ag.History), tc.history)
			}
			if tc.history > 1 && ag.History[1].CurrentVersion != "17.2.3" {
				t.Errorf("history %+v is not newest first", ag.History)
			}
		})
	}
}

func TestFleetPages(t *testing.T) {
	s := startReports(t, fleet.Options{})
	var want []string
	for _, g := range []string{"", "eu-prod", "us-prod"} {
		for i := range 3 {
			id := fmt.Sprintf("%s-host-%d", strings.TrimSuffix(g, "-prod"), i)
			if g == "" {
				id = fmt.Sprintf("nogroup-%d", i)
			}
			s.post(t, agentReport(strings.TrimPrefix(id, "-"), g, "17.2.3", "healthy", reconcile.ActionWait))
			want = append(want, strings.TrimPrefix(id, "-"))
		}
	}
	walk := func(t *testing.T, next func(fleetPage) string) []string {
		var ids []string
		q := "?limit=2"
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("the pages do not end")
			}
			f := s.fleet(t, q)
			if f.Counts.Agents != 9 {
				t.Errorf("a page counts %d agents, want all 9", f.Counts.Agents)
			}
			for _, a := range f.Agents {
				ids = append(ids, a.AgentID)
			}
			if f.Next == nil {
				if f.After != "" {
					t.Errorf("the last page has after %q", f.After)
				}
				return ids
			}
			if len(f.Agents) != 2 {
				t.Errorf("a page before the last holds %d agents", len(f.Agents))
			}
			q = "?limit=2&" + next(f)
		}
	}
	for _, tc := range []struct {
		scenario string
		next     func(fleetPage) string
	}{
		{"after, the opaque cursor, walks every agent once in order", func(f fleetPage) string { return "after=" + f.After }},
		{"afterGroup and afterAgent, the fields of next, do the same", func(f fleetPage) string {
			return "afterGroup=" + f.Next.Group + "&afterAgent=" + f.Next.AgentID
		}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			if ids := walk(t, tc.next); !slices.Equal(ids, want) {
				t.Errorf("pages hold %v, want %v", ids, want)
			}
		})
	}
	for _, q := range []string{"?limit=0", "?limit=10001", "?limit=x", "?after=%%%", "?after=bm9uZXdsaW5l", "?afterGroup=eu-prod", "?after=ZXUtcHJvZAp3ZWI&afterAgent=x"} {
		if got := s.send(t, "GET", "/v1/fleet"+q, "", bearer(reportToken)...); got.code != 400 {
			t.Errorf("GET /v1/fleet%s: %d %q, want 400", q, got.code, got.body)
		}
	}
}

// leaseReply is POST /v1/leases's answer.
type leaseReply struct {
	code       int
	Granted    bool      `json:"granted"`
	ExpiresAt  time.Time `json:"expiresAt"`
	Holders    int       `json:"holders"`
	Max        int       `json:"max"`
	RetryAfter time.Time `json:"retryAfter"`
	retryHdr   string
}

func (s *reportServer) lease(t testing.TB, agent, group, ttl string) leaseReply {
	t.Helper()
	body := fmt.Sprintf(`{"agentId":%q,"group":%q,"channel":"prod","version":"1.1.0"`, agent, group)
	if ttl != "" {
		body += fmt.Sprintf(`,"ttl":%q`, ttl)
	}
	got := s.send(t, "POST", "/v1/leases", body+"}", bearer(reportToken)...)
	r := leaseReply{code: got.code, retryHdr: got.header.Get("Retry-After")}
	if got.code == 200 || got.code == 409 {
		if err := json.Unmarshal([]byte(got.body), &r); err != nil {
			t.Fatalf("lease answer %q: %v", got.body, err)
		}
	}
	return r
}

// TestLeasesNeverExceedMaxConcurrent: many agents ask at once through two
// replicas on one store; no more than the group's maxConcurrent is granted.
func TestLeasesNeverExceedMaxConcurrent(t *testing.T) {
	store, url := openStore(t, fleet.Options{})
	other, err := sqlstore.Open(context.Background(), url, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	replicas := []*reportServer{startOn(t, store, rolloutBackend(), nil), startOn(t, other, rolloutBackend(), nil)}
	var granted atomic.Int32
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			r := replicas[i%2].lease(t, fmt.Sprintf("c-%02d", i), "canary-hosts", "")
			switch {
			case r.code == 200 && r.Granted:
				granted.Add(1)
			case r.code == 409 && !r.Granted:
				if r.Max != 2 || r.Holders != 2 {
					t.Errorf("refused with holders %d max %d, want 2 and 2", r.Holders, r.Max)
				}
			default:
				t.Errorf("lease answer %+v", r)
			}
		})
	}
	wg.Wait()
	if n := granted.Load(); n != 2 {
		t.Errorf("%d leases granted, maxConcurrent 2", n)
	}
	log, err := store.LeaseLog(context.Background(), "canary-hosts")
	if err != nil {
		t.Fatal(err)
	}
	held, peak := 0, 0
	for _, ev := range log {
		switch ev.Event {
		case fleet.LeaseAcquired:
			held++
		case fleet.LeaseReleased, fleet.LeaseExpired:
			held--
		}
		peak = max(peak, held)
	}
	if peak != 2 {
		t.Errorf("the store's lease log peaks at %d holders, want 2", peak)
	}
	if m := replicas[0].do(t, "GET", "/metrics").body; !strings.Contains(m, `upkeep_leases_total{result="granted"}`) {
		t.Errorf("no lease metric:\n%s", grep(m, "upkeep_leases"))
	}
}

func TestLeaseRoutes(t *testing.T) {
	store, _ := openStore(t, fleet.Options{})
	s := startOn(t, store, rolloutBackend(), nil)
	for i := range 4 {
		r := agentReport(fmt.Sprintf("e-%d", i), "eu-prod", "17.2.3", "healthy", reconcile.ActionWait)
		r.Channel = "prod"
		s.post(t, r)
	}
	now := s.clock.Now()

	t.Run("a percent maxConcurrent is taken of the group's agents in the store", func(t *testing.T) {
		first := s.lease(t, "e-0", "eu-prod", "10m")
		if first.code != 200 || first.Max != 2 || !first.ExpiresAt.Equal(now.Add(10*time.Minute)) {
			t.Fatalf("first lease %+v, want granted, max 2 (50%% of 4), expiring in the 10m asked", first)
		}
		s.clock.Advance(time.Minute)
		if r := s.lease(t, "e-1", "eu-prod", ""); r.code != 200 || !r.ExpiresAt.Equal(s.clock.Now().Add(server.DefaultLeaseTTL)) {
			t.Fatalf("second lease %+v, want granted for the default TTL", r)
		}
		r := s.lease(t, "e-2", "eu-prod", "")
		if r.code != 409 || r.Granted || r.Holders != 2 || r.Max != 2 || !r.RetryAfter.Equal(first.ExpiresAt) || r.retryHdr != "540" {
			t.Errorf("third lease %+v, want 409 with holders 2, max 2, retryAfter the first's expiry (in 540s)", r)
		}
		if r := s.lease(t, "e-0", "eu-prod", "20m"); r.code != 200 {
			t.Errorf("a holder renewing: %+v", r)
		}
	})
	t.Run("a group without maxConcurrent, or no group, is unlimited", func(t *testing.T) {
		for i := range 5 {
			if r := s.lease(t, fmt.Sprintf("u-%d", i), "us-prod", ""); r.code != 200 || r.Max != 0 {
				t.Fatalf("lease %d in us-prod: %+v", i, r)
			}
			if r := s.lease(t, fmt.Sprintf("n-%d", i), "", ""); r.code != 200 {
				t.Fatalf("lease %d without a group: %+v", i, r)
			}
		}
	})
	t.Run("leases are listed, by group", func(t *testing.T) {
		got := s.send(t, "GET", "/v1/leases?group=eu-prod", "", bearer(reportToken)...)
		var l struct{ Leases []fleet.Lease }
		if err := json.Unmarshal([]byte(got.body), &l); err != nil || len(l.Leases) != 2 {
			t.Errorf("GET /v1/leases?group=eu-prod: %d %s", got.code, got.body)
		}
	})
	t.Run("a lease is given back once", func(t *testing.T) {
		if got := s.send(t, "DELETE", "/v1/leases/eu-prod/e-1", "", bearer(reportToken)...); got.code != 200 {
			t.Errorf("first DELETE: %d %s", got.code, got.body)
		}
		if got := s.send(t, "DELETE", "/v1/leases/eu-prod/e-1", "", bearer(reportToken)...); got.code != 404 {
			t.Errorf("second DELETE: %d %s, want 404", got.code, got.body)
		}
		if got := s.send(t, "DELETE", "/v1/leases/_none/n-1", "", bearer(reportToken)...); got.code != 200 {
			t.Errorf("DELETE of an agent without a group: %d %s", got.code, got.body)
		}
		if r := s.lease(t, "e-2", "eu-prod", ""); r.code != 200 {
			t.Errorf("a lease after a place was freed: %+v", r)
		}
	})
	t.Run("the updaters' client speaks the same wire", func(t *testing.T) {
		tok := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tok, []byte(reportToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := report.NewClient(s.URL, report.ClientOptions{TokenFile: tok})
		if err != nil {
			t.Fatal(err)
		}
		a, err := c.Acquire(context.Background(), report.LeaseRequest{AgentID: "e-3", Group: "eu-prod", Channel: "prod", Version: "1.1.0"})
		if err != nil || a.Granted || a.Max != 2 || a.Holders != 2 || a.RetryAfter.IsZero() {
			t.Errorf("Acquire in a full group: %+v %v", a, err)
		}
		if err := c.Release(context.Background(), "eu-prod", "e-2"); err != nil {
			t.Errorf("Release: %v", err)
		}
		if a, err := c.Acquire(context.Background(), report.LeaseRequest{AgentID: "e-3", Group: "eu-prod", Channel: "prod", Version: "1.1.0"}); err != nil || !a.Granted || a.ExpiresAt.IsZero() {
			t.Errorf("Acquire after a release: %+v %v", a, err)
		}
	})
	for _, tc := range []struct {
		scenario, method, path, body string
		token                        string
		code                         int
	}{
		{"no token, no lease", "POST", "/v1/leases", `{"agentId":"x-1","group":"eu-prod"}`, "", 401},
		{"a wrong token, no lease", "POST", "/v1/leases", `{"agentId":"x-1","group":"eu-prod"}`, wrongToken, 401},
		{"no token, no release", "DELETE", "/v1/leases/eu-prod/e-0", "", "", 401},
		{"no token, no list", "GET", "/v1/leases", "", "", 401},
		{"a TTL over 2h is refused", "POST", "/v1/leases", `{"agentId":"x-1","group":"eu-prod","ttl":"2h1m"}`, reportToken, 400},
		{"a TTL that is no duration is refused", "POST", "/v1/leases", `{"agentId":"x-1","group":"eu-prod","ttl":"soon"}`, reportToken, 400},
		{"an unknown field is refused", "POST", "/v1/leases", `{"agentId":"x-1","colour":"blue"}`, reportToken, 400},
		{"a bad agent id is refused", "POST", "/v1/leases", `{"agentId":"-x","group":"eu-prod"}`, reportToken, 400},
		{"a release without an agent is refused", "DELETE", "/v1/leases/eu-prod", "", reportToken, 400},
		{"PUT is no lease method", "PUT", "/v1/leases", "", reportToken, 405},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			var h []string
			if tc.token != "" {
				h = bearer(tc.token)
			}
			if got := s.send(t, tc.method, tc.path, tc.body, h...); got.code != tc.code {
				t.Errorf("%d %s, want %d", got.code, got.body, tc.code)
			}
		})
	}
}

func TestRolloutRoutes(t *testing.T) {
	store, _ := openStore(t, fleet.Options{})
	s := startOn(t, store, rolloutBackend(), nil)
	ctx := context.Background()
	for _, a := range []struct{ id, group, version, outcome string }{
		{"c-1", "canary-hosts", "1.1.0", report.OutcomeUpdated},
		{"c-2", "canary-hosts", "1.0.0", ""},
		{"e-1", "eu-prod", "1.0.0", ""},
		{"u-1", "us-prod", "1.0.0", ""},
	} {
		r := agentReport(a.id, a.group, a.version, "healthy", reconcile.ActionWait)
		r.Channel, r.TargetVersion, r.Outcome = "prod", "1.1.0", a.outcome
		s.post(t, r)
	}
	r := canaryStep
	r.Channel, r.Since, r.StartedAt, r.Rule, r.Reason = "prod", buildTime, buildTime, rollout.RuleCanariesChosen, "CanaryStep"
	if _, err := store.SaveRollout(ctx, r, fleet.Transition{Channel: "prod", Version: "1.1.0", From: fleet.StatePending, To: fleet.StateCanary,
		Rule: rollout.RuleCanariesChosen, Reason: "CanaryStep", Message: "c-1 is the canary", Actor: "test", At: buildTime}); err != nil {
		t.Fatal(err)
	}

	t.Run("the list and the detail need a token", func(t *testing.T) {
		for _, p := range []string{"/v1/rollouts", "/v1/rollouts/prod"} {
			if got := s.send(t, "GET", p, ""); got.code != 401 {
				t.Errorf("GET %s without a token: %d", p, got.code)
			}
		}
	})
	t.Run("the detail shows state, stage progress and transitions", func(t *testing.T) {
		got := s.send(t, "GET", "/v1/rollouts/prod", "", bearer(reportToken)...)
		var d struct {
			fleet.Rollout
			Stages []struct {
				Groups                             []string
				Status                             string
				Agents, OnVersion, Healthy, Failed int
				Implicit                           bool
			} `json:"stages"`
			Transitions []fleet.Transition `json:"transitions"`
		}
		if err := json.Unmarshal([]byte(got.body), &d); err != nil || got.code != 200 {
			t.Fatalf("%d %s %v", got.code, got.body, err)
		}
		if d.State != fleet.StateCanary || len(d.Transitions) != 1 || len(d.Stages) != 3 {
			t.Fatalf("detail %+v", d)
		}
		if st := d.Stages[0]; st.Status != "current" || st.Agents != 2 || st.OnVersion != 1 || st.Healthy != 1 {
			t.Errorf("stage 0 %+v, want current with 2 agents, 1 on the version", st)
		}
		if st := d.Stages[2]; !st.Implicit || st.Agents != 1 || st.Status != "waiting" {
			t.Errorf("the implicit stage %+v, want us-prod's one agent, waiting", st)
		}
	})
	t.Run("an unknown channel has no rollout", func(t *testing.T) {
		if got := s.send(t, "GET", "/v1/rollouts/nowhere", "", bearer(reportToken)...); got.code != 404 {
			t.Errorf("%d %s", got.code, got.body)
		}
		if got := s.send(t, "POST", "/v1/rollouts/nowhere/halt", "", bearer(reportToken)...); got.code != 404 {
			t.Errorf("halt: %d %s", got.code, got.body)
		}
	})

	sum := sha256.Sum256([]byte(labToken))
	actor := "operator:token-" + hex.EncodeToString(sum[:4])
	for _, tc := range []struct {
		scenario, path, body string
		token                string
		code                 int
		state, rule          string
	}{
		{scenario: "a halt without a token is refused", path: "/v1/rollouts/prod/halt", code: 401},
		{scenario: "a halt with a wrong token is refused", path: "/v1/rollouts/prod/halt", token: wrongToken, code: 401},
		{scenario: "a halt with a token halts, recorded with the token's name", path: "/v1/rollouts/prod/halt", body: `{"note":"pager says no"}`,
			token: labToken, code: 200, state: fleet.StateHalted, rule: rollout.RuleHaltedByOperator},
		{scenario: "a halted rollout cannot halt again", path: "/v1/rollouts/prod/halt", token: labToken, code: 409},
		{scenario: "a resume without a token is refused", path: "/v1/rollouts/prod/resume", code: 401},
		{scenario: "a body that is not a note is refused", path: "/v1/rollouts/prod/resume", body: `{"force":true}`, token: labToken, code: 400},
		{scenario: "a resume resumes, recorded", path: "/v1/rollouts/prod/resume", token: labToken, code: 200, rule: rollout.RuleResumedByOperator},
		{scenario: "a running rollout cannot resume", path: "/v1/rollouts/prod/resume", token: labToken, code: 409},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			var h []string
			if tc.token != "" {
				h = bearer(tc.token)
			}
			before, _, _ := store.Rollout(ctx, "prod")
			got := s.send(t, "POST", tc.path, tc.body, h...)
			if got.code != tc.code {
				t.Fatalf("%d %s, want %d", got.code, got.body, tc.code)
			}
			after, _, _ := store.Rollout(ctx, "prod")
			if tc.code != 200 {
				if after.Generation != before.Generation {
					t.Errorf("a refused step wrote the rollout: %+v", after)
				}
				return
			}
			var ans struct {
				Rollout    fleet.Rollout
				Transition fleet.Transition
			}
			if err := json.Unmarshal([]byte(got.body), &ans); err != nil {
				t.Fatal(err)
			}
			if tc.state != "" && after.State != tc.state {
				t.Errorf("stored state %s, want %s", after.State, tc.state)
			}
			ts, err := store.Transitions(ctx, "prod", 1)
			if err != nil || len(ts) != 1 || ts[0].Rule != tc.rule || ts[0].Actor != actor {
				t.Fatalf("the last stored transition %+v %v, want rule %s by %s", ts, err, tc.rule, actor)
			}
			if tc.body != "" && !strings.Contains(ts[0].Message, "pager says no") {
				t.Errorf("the note is not in the message %q", ts[0].Message)
			}
			if strings.Contains(s.logs(), labToken) {
				t.Error("the log shows the token")
			}
		})
	}
	t.Run("the list shows the rollout", func(t *testing.T) {
		got := s.send(t, "GET", "/v1/rollouts", "", bearer(reportToken)...)
		var l struct{ Rollouts []fleet.Rollout }
		if err := json.Unmarshal([]byte(got.body), &l); err != nil || len(l.Rollouts) != 1 || l.Rollouts[0].Channel != "prod" {
			t.Errorf("%d %s", got.code, got.body)
		}
	})
}

// TestStoreDownAnswers503: a store that fails makes the fleet routes
// answer 503 with Retry-After, never 200 with a partial answer, and the
// version answers of channels without a rollout do not depend on it.
func TestStoreDownAnswers503(t *testing.T) {
	store, _ := openStore(t, fleet.Options{})
	s := startOn(t, store, rolloutBackend(), nil)
	s.post(t, agentReport("web-01", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait))
	store.Close()
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/reports", reportJSON(t, agentReport("web-02", "eu-prod", "17.2.3", "healthy", reconcile.ActionWait))},
		{"GET", "/v1/fleet", ""},
		{"GET", "/v1/agents/web-01", ""},
		{"POST", "/v1/leases", `{"agentId":"c-1","group":"canary-hosts"}`},
		{"GET", "/v1/rollouts", ""},
		{"POST", "/v1/rollouts/prod/halt", ""},
	} {
		got := s.send(t, tc.method, tc.path, tc.body, bearer(reportToken)...)
		if got.code != 503 || got.header.Get("Retry-After") == "" || !strings.Contains(got.body, "fleet store") {
			t.Errorf("%s %s with the store down: %d %q, want 503 naming the store", tc.method, tc.path, got.code, got.body)
		}
	}
	if got := s.do(t, "GET", "/v1/plain/version"); got.code != 200 || got.body != "v1.2.0" {
		t.Errorf("a plain version answer with the store down: %d %q", got.code, got.body)
	}
	if m := s.do(t, "GET", "/metrics"); !strings.Contains(m.body, "upkeep_http_requests_total") {
		t.Errorf("/metrics with the store down: %d", m.code)
	}
}

func TestReadyOnlyOnceTheRolloutsAreRead(t *testing.T) {
	answers := &answerTable{}
	store, _ := openStore(t, fleet.Options{})
	s := startOn(t, store, rolloutBackend(), answers.get)
	if got := s.do(t, "GET", "/readyz"); got.code != 503 || !strings.Contains(got.body, "rollouts") {
		t.Errorf("/readyz before the rollouts are read: %d %q", got.code, got.body)
	}
	answers.set(canaryStep)
	if got := s.do(t, "GET", "/readyz"); got.code != 200 {
		t.Errorf("/readyz once they are: %d %q", got.code, got.body)
	}
	// Without a channel under rollout there is nothing to wait for.
	plain := startOn(t, store, serving(t, "rev1"), (&answerTable{}).get)
	if got := plain.do(t, "GET", "/readyz"); got.code != 200 {
		t.Errorf("/readyz of a fleet without rollouts: %d %q", got.code, got.body)
	}
}
