package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/pgtest"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// sqliteURL is a fresh SQLite store file.
func sqliteURL(t *testing.T) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "fleet.db")
}

// backends are the engines every contract test runs on; each gives a
// fresh, empty database's URL.
var backends = []struct {
	name   string
	newURL func(t *testing.T) string
}{
	{"sqlite", sqliteURL},
	{"postgres", func(t *testing.T) string { return pgtest.Shared(t) }},
}

func TestContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { runContract(t, b.newURL) })
	}
}

var ctx = context.Background()

// t0 is the fake clock's start; a whole second, so µs truncation is moot
// except where a test asks for it.
var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func open(t *testing.T, url string, o fleet.Options) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(ctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func rep(id, group string) report.Report {
	return report.Report{
		AgentID: id, Group: group, Channel: "stable/cloud", Kind: report.KindHost, Hostname: id,
		CurrentVersion: "17.2.3", TargetVersion: "17.2.3", Health: report.HealthHealthy,
		Action: "Nothing", Rule: reconcile.RuleUpToDate, Reason: "UpToDate", Message: "17.2.3 is installed",
		UpdaterVersion: "1.4.0", Time: t0,
	}
}

func put(t *testing.T, s fleet.Store, r report.Report, at time.Time) bool {
	t.Helper()
	isNew, err := s.PutReport(ctx, r, at)
	if err != nil {
		t.Fatalf("put %s: %v", r.AgentID, err)
	}
	return isNew
}

func runContract(t *testing.T, newURL func(t *testing.T) string) {
	fresh := func(t *testing.T, o fleet.Options) *sqlstore.Store { return open(t, newURL(t), o) }

	t.Run("a first report is new and the next of the same agent is known", func(t *testing.T) {
		s := fresh(t, fleet.Options{})
		if !put(t, s, rep("a1", "eu"), t0) {
			t.Error("first report not new")
		}
		if put(t, s, rep("a1", "eu"), t0.Add(time.Minute)) {
			t.Error("second report new")
		}
		a, ok, err := s.Agent(ctx, "a1", t0.Add(time.Minute))
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if !a.ReceivedAt.Equal(t0.Add(time.Minute)) || a.Stale {
			t.Errorf("received %s stale %v, want the second report's time, fresh", a.ReceivedAt, a.Stale)
		}
		if _, ok, _ := s.Agent(ctx, "nobody", t0); ok {
			t.Error("unknown agent found")
		}
	})

	t.Run("an invalid report is refused naming the field and nothing is stored", func(t *testing.T) {
		s := fresh(t, fleet.Options{})
		r := rep("a1", "eu")
		r.Health = "fine"
		_, err := s.PutReport(ctx, r, t0)
		var ve report.ValidationError
		if !errors.As(err, &ve) || ve[0].Field != "health" {
			t.Fatalf("error %v, want a validation error naming health", err)
		}
		if _, ok, _ := s.Agent(ctx, "a1", t0); ok {
			t.Error("invalid report stored")
		}
	})

	t.Run("versions are stored in report.Store's canonical form", func(t *testing.T) {
		s := fresh(t, fleet.Options{})
		r := rep("a1", "eu")
		r.CurrentVersion, r.TargetVersion = "v17.2.3", "v17.3.0-rc.1"
		put(t, s, r, t0)
		mem := report.NewStore(report.StoreOptions{Now: func() time.Time { return t0 }})
		if _, err := mem.Put(r); err != nil {
			t.Fatal(err)
		}
		want, _ := mem.Get("a1")
		got, _, _ := s.Agent(ctx, "a1", t0)
		if got.CurrentVersion != "17.2.3" || got.TargetVersion != "17.3.0-rc.1" || !reflect.DeepEqual(got, want) {
			t.Errorf("stored %+v\nreport.Store has %+v", got, want)
		}
	})

	t.Run("times round-trip to the microsecond in UTC", func(t *testing.T) {
		s := fresh(t, fleet.Options{})
		at := time.Date(2026, 12, 3, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
		r := rep("a1", "eu")
		r.Time = at // in the report's JSON: kept exactly
		put(t, s, r, at)
		a, _, _ := s.Agent(ctx, "a1", at)
		if want := at.UTC().Truncate(time.Microsecond); a.ReceivedAt != want {
			t.Errorf("received at %v, want %v", a.ReceivedAt, want)
		}
		if !a.Time.Equal(at) {
			t.Errorf("report time %v, want %v", a.Time, at)
		}
	})

	t.Run("history keeps the last HistoryPerAgent reports newest first", func(t *testing.T) {
		s := fresh(t, fleet.Options{HistoryPerAgent: 3})
		for i := range 5 {
			r := rep("a1", "eu")
			r.Message = fmt.Sprintf("pass %d", i)
			put(t, s, r, t0.Add(time.Duration(i)*time.Minute))
		}
		put(t, s, rep("b1", "eu"), t0)
		h, err := s.History(ctx, "a1", 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range h {
			got = append(got, a.Message+"@"+a.ReceivedAt.Format("15:04"))
		}
		if want := []string{"pass 4@10:04", "pass 3@10:03", "pass 2@10:02"}; !slices.Equal(got, want) {
			t.Errorf("history %v, want %v", got, want)
		}
		if h, _ := s.History(ctx, "a1", 2); len(h) != 2 {
			t.Errorf("limit 2 gave %d", len(h))
		}
		// Pruned, not merely hidden.
		var rows int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM agent_history WHERE agent_id = 'a1'`).Scan(&rows); err != nil || rows != 3 {
			t.Errorf("agent_history holds %d rows of a1 (%v), want 3", rows, err)
		}
		if h, _ := s.History(ctx, "nobody", 0); len(h) != 0 {
			t.Errorf("unknown agent has history %v", h)
		}
	})

	t.Run("an agent silent past StaleAfter is stale and counted so, never deleted", func(t *testing.T) {
		s := fresh(t, fleet.Options{StaleAfter: 10 * time.Minute})
		put(t, s, rep("a1", "eu"), t0)
		put(t, s, rep("a2", "eu"), t0.Add(5*time.Minute))
		for _, tc := range []struct {
			now   time.Time
			stale int
		}{{t0.Add(10 * time.Minute), 0}, {t0.Add(10*time.Minute + time.Microsecond), 1}, {t0.Add(24 * time.Hour), 2}} {
			p, err := s.Fleet(ctx, fleet.Page{}, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if p.Counts.Agents != 2 || p.Counts.Stale != tc.stale || p.Counts.ByHealth[report.HealthStale] != tc.stale {
				t.Errorf("at %s: counts %+v, want 2 agents, %d stale", tc.now.Format(time.TimeOnly), p.Counts, tc.stale)
			}
			a, _, _ := s.Agent(ctx, "a1", tc.now)
			if a.Stale != (tc.stale > 0) {
				t.Errorf("at %s: a1 stale %v", tc.now.Format(time.TimeOnly), a.Stale)
			}
		}
	})

	t.Run("a new agent beyond MaxAgents is refused with ErrFull while known ones update", func(t *testing.T) {
		s := fresh(t, fleet.Options{MaxAgents: 2})
		put(t, s, rep("a1", "eu"), t0)
		put(t, s, rep("a2", "eu"), t0)
		_, err := s.PutReport(ctx, rep("a3", "eu"), t0)
		if !errors.Is(err, fleet.ErrFull) || !strings.Contains(err.Error(), "a3") {
			t.Fatalf("error %v, want ErrFull naming a3", err)
		}
		// Stale agents are kept: even a day later the store stays full.
		if _, err := s.PutReport(ctx, rep("a3", "eu"), t0.Add(24*time.Hour)); !errors.Is(err, fleet.ErrFull) {
			t.Errorf("a day later: %v, want ErrFull", err)
		}
		if put(t, s, rep("a1", "eu"), t0.Add(time.Minute)) {
			t.Error("known agent counted new")
		}
	})

	// A fleet of 25 agents in three groups and none, some stale, fed to
	// report.Store too: its order and counts are the reference.
	seed := func(t *testing.T, s fleet.Store) (*report.Store, time.Time) {
		now := t0
		mem := report.NewStore(report.StoreOptions{StaleAfter: 10 * time.Minute, Now: func() time.Time { return now }})
		groups := []string{"us", "", "eu", "ap"}
		for i := range 25 {
			r := rep(fmt.Sprintf("host-%02d", (i*7)%25), groups[i%4])
			r.CurrentVersion = []string{"17.2.3", "17.3.0", ""}[i%3]
			r.Health = []string{report.HealthHealthy, report.HealthUnhealthy, report.HealthHealthy, report.HealthUnknown, report.HealthHealthy}[i%5]
			if i%6 == 0 {
				r.Action, r.Rule, r.Reason, r.Message, r.LastError = "", "", "", "", "fetch failed"
			}
			now = t0.Add(time.Duration(i) * time.Minute)
			put(t, s, r, now)
			if _, err := mem.Put(r); err != nil {
				t.Fatal(err)
			}
		}
		return mem, now
	}

	t.Run("pages follow report.Store's order by cursor and every page counts the whole filter", func(t *testing.T) {
		s := fresh(t, fleet.Options{StaleAfter: 10 * time.Minute})
		mem, now := seed(t, s)
		for _, tc := range []struct {
			scenario string
			filter   report.Filter
			limit    int
		}{
			{"every agent, pages of 7", report.Filter{}, 7},
			{"every agent, pages that divide the fleet", report.Filter{}, 5},
			{"one page of all", report.Filter{}, 0},
			{"one group", report.Filter{Group: "eu"}, 2},
			{"agents without a group", report.Filter{Group: report.NoGroup}, 3},
			{"the stale ones", report.Filter{Health: report.HealthStale}, 4},
			{"the healthy ones, stale excluded", report.Filter{Health: report.HealthHealthy}, 4},
			{"a group and a health", report.Filter{Group: "us", Health: report.HealthHealthy}, 1},
			{"nothing matches", report.Filter{Group: "nowhere"}, 3},
		} {
			t.Run(tc.scenario, func(t *testing.T) {
				want := mem.Fleet(tc.filter)
				var got []report.Agent
				p := fleet.Page{Filter: tc.filter, Limit: tc.limit}
				for pages := 0; ; pages++ {
					fp, err := s.Fleet(ctx, p, now)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(fp.Counts, want.Counts) {
						t.Fatalf("page %d counts %+v\nwant %+v", pages, fp.Counts, want.Counts)
					}
					if tc.limit > 0 && len(fp.Agents) > tc.limit {
						t.Fatalf("page of %d over the limit %d", len(fp.Agents), tc.limit)
					}
					got = append(got, fp.Agents...)
					if fp.Next == nil {
						break
					}
					if len(fp.Agents) == 0 || pages > 30 {
						t.Fatalf("page %d: %d agents and a next cursor %+v", pages, len(fp.Agents), fp.Next)
					}
					p.After = *fp.Next
				}
				if len(got) != len(want.Agents) {
					t.Fatalf("%d agents over the pages, want %d", len(got), len(want.Agents))
				}
				for i := range got {
					if !reflect.DeepEqual(got[i], want.Agents[i]) {
						t.Fatalf("agent %d: %s/%s, want %s/%s\n%+v\n%+v", i, got[i].Group, got[i].AgentID,
							want.Agents[i].Group, want.Agents[i].AgentID, got[i], want.Agents[i])
					}
				}
			})
		}
		if _, err := s.Fleet(ctx, fleet.Page{Limit: fleet.MaxPage + 1}, now); err == nil || !strings.Contains(err.Error(), "limit") {
			t.Errorf("a limit over MaxPage: %v, want an error naming the limit", err)
		}
	})

	t.Run("a search selects ids containing the text, ignoring case, wildcards literal, counts included", func(t *testing.T) {
		s := fresh(t, fleet.Options{StaleAfter: 10 * time.Minute})
		for _, id := range []string{"WEB-A1", "web-a2", "web_b1", "webxb1", "db-a1", "web-a3.eu"} {
			group := "us"
			if strings.HasSuffix(id, ".eu") || strings.HasPrefix(id, "db") {
				group = "eu"
			}
			put(t, s, rep(id, group), t0)
		}
		for _, tc := range []struct {
			scenario string
			page     fleet.Page
			want     []string
		}{
			{"a substring in any case matches both cases", fleet.Page{Search: "Web-A"}, []string{"web-a3.eu", "WEB-A1", "web-a2"}},
			{"an underscore is itself, not any character", fleet.Page{Search: "web_"}, []string{"web_b1"}},
			{"a percent sign is itself", fleet.Page{Search: "%"}, nil},
			{"the search narrows a group", fleet.Page{Search: "a", Filter: report.Filter{Group: "eu"}}, []string{"db-a1", "web-a3.eu"}},
			{"a page of one still counts the whole search", fleet.Page{Search: "b1", Limit: 1}, []string{"web_b1"}},
		} {
			t.Run(tc.scenario, func(t *testing.T) {
				fp, err := s.Fleet(ctx, tc.page, t0)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, a := range fp.Agents {
					got = append(got, a.AgentID)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("agents %q, want %q", got, tc.want)
				}
				wantCount := len(tc.want)
				if tc.page.Limit == 1 {
					wantCount = 2 // web_b1 and webxb1
					if fp.Next == nil {
						t.Error("no next cursor after a page of 1 of 2")
					}
				}
				if fp.Counts.Agents != wantCount {
					t.Errorf("counts.agents %d, want %d", fp.Counts.Agents, wantCount)
				}
			})
		}
	})

	t.Run("series match report.Store's, folded beyond max", func(t *testing.T) {
		s := fresh(t, fleet.Options{StaleAfter: 10 * time.Minute})
		mem, now := seed(t, s)
		for _, max := range []int{0, 3, 1000} {
			got, err := s.Series(ctx, max, now)
			if err != nil {
				t.Fatal(err)
			}
			if want := mem.Series(max); !reflect.DeepEqual(got, want) {
				t.Errorf("max %d: series %v\nwant %v", max, got, want)
			}
			if max == 3 && len(got) > 3+4 {
				t.Errorf("max 3 gave %d series", len(got))
			}
		}
	})

	t.Run("agent states select by channel or group and keep the last failed version", func(t *testing.T) {
		s := fresh(t, fleet.Options{StaleAfter: 10 * time.Minute})
		steps := []struct {
			outcome, target string
			wantFailed      string
		}{
			{"", "17.3.0", ""},
			{report.OutcomeRolledBack, "v17.3.0", "17.3.0"},
			{"", "17.3.0", "17.3.0"},
			{report.OutcomeUpdated, "17.3.1", "17.3.0"},
			{report.OutcomeFailed, "17.4.0", "17.4.0"},
		}
		for i, st := range steps {
			r := rep("a1", "eu")
			r.Outcome, r.TargetVersion = st.outcome, st.target
			put(t, s, r, t0.Add(time.Duration(i)*time.Minute))
			as, err := s.AgentStates(ctx, "stable/cloud", nil, t0.Add(time.Duration(i)*time.Minute))
			if err != nil || len(as) != 1 {
				t.Fatal(as, err)
			}
			if as[0].FailedVersion != st.wantFailed || as[0].Outcome != st.outcome {
				t.Errorf("after %q of %s: failed version %q outcome %q, want %q", st.outcome, st.target, as[0].FailedVersion, as[0].Outcome, st.wantFailed)
			}
		}
		other := rep("b1", "")
		other.Channel = "edge"
		put(t, s, other, t0)
		third := rep("c1", "us")
		third.Channel = "edge"
		put(t, s, third, t0.Add(10*time.Minute))
		for _, tc := range []struct {
			scenario string
			channel  string
			groups   []string
			want     []string
		}{
			{"by channel", "edge", nil, []string{"b1", "c1"}},
			{"by group", "", []string{"eu"}, []string{"a1"}},
			{"agents without a group by NoGroup", "", []string{report.NoGroup}, []string{"b1"}},
			{"channel or group", "stable/cloud", []string{"us"}, []string{"a1", "c1"}},
			{"nothing asked, nothing given", "", nil, nil},
		} {
			as, err := s.AgentStates(ctx, tc.channel, tc.groups, t0.Add(14*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, a := range as {
				ids = append(ids, a.AgentID)
				if a.AgentID == "b1" && a.Health != report.HealthStale {
					t.Errorf("%s: b1 silent 14m shows %q, want stale", tc.scenario, a.Health)
				}
				if a.AgentID == "c1" && (a.Health != report.HealthHealthy || a.CurrentVersion != "17.2.3" || a.Group != "us" || !a.ReceivedAt.Equal(t0.Add(10*time.Minute))) {
					t.Errorf("%s: c1 is %+v", tc.scenario, a)
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("%s: %v, want %v", tc.scenario, ids, tc.want)
			}
		}
	})

	rollout := func(channel string) fleet.Rollout {
		return fleet.Rollout{Channel: channel, Version: "17.4.0", FromVersion: "17.3.0", State: fleet.StateCanary,
			Stage: 0, Step: fleet.StepCanary, Canaries: []string{"a1", "a2"}, Revision: "abc123",
			StartedAt: t0, Since: t0.Add(time.Second), Rule: "CanariesChosen", Reason: "CanariesChosen", Message: "2 canaries"}
	}
	trans := func(from, to string, at time.Time) fleet.Transition {
		return fleet.Transition{From: from, To: to, Rule: "R" + to, Reason: "R" + to, Message: from + " to " + to, Actor: "replica-1", At: at}
	}

	t.Run("a rollout is written compare-and-swap on its generation", func(t *testing.T) {
		s := fresh(t, fleet.Options{})
		r1, err := s.SaveRollout(ctx, rollout("stable"), trans("", fleet.StateCanary, t0))
		if err != nil || r1.Generation != 1 {
			t.Fatalf("first save: generation %d, %v", r1.Generation, err)
		}
		if _, err := s.SaveRollout(ctx, rollout("stable"), trans("", fleet.StateCanary, t0)); !errors.Is(err, fleet.ErrConflict) {
			t.Errorf("a second generation-0 save: %v, want ErrConflict", err)
		}
		r1.State, r1.Step, r1.BakeUntil = fleet.StateBaking, fleet.StepCanary, t0.Add(30*time.Minute+time.Nanosecond)
		r2, err := s.SaveRollout(ctx, r1, trans(fleet.StateCanary, fleet.StateBaking, t0.Add(time.Minute)))
		if err != nil || r2.Generation != 2 {
			t.Fatalf("save at 1: generation %d, %v", r2.Generation, err)
		}
		stale := r1 // generation 1 again: another replica's view
		stale.State = fleet.StateHalted
		if _, err := s.SaveRollout(ctx, stale, trans(fleet.StateCanary, fleet.StateHalted, t0.Add(time.Minute))); !errors.Is(err, fleet.ErrConflict) {
			t.Errorf("a stale generation: %v, want ErrConflict", err)
		}
		got, ok, err := s.Rollout(ctx, "stable")
		if err != nil || !ok || !reflect.DeepEqual(got, r2) {
			t.Errorf("read back %+v (%v %v)\nsaved %+v", got, ok, err, r2)
		}
		if got.BakeUntil != t0.Add(30*time.Minute) {
			t.Errorf("bake until %v, want truncated to the µs", got.BakeUntil)
		}
		ts, _ := s.Transitions(ctx, "stable", 0)
		if len(ts) != 2 {
			t.Errorf("the conflicting saves appended transitions: %+v", ts)
		}
		if _, ok, _ := s.Rollout(ctx, "other"); ok {
			t.Error("a channel without a rollout has one")
		}
	})

	t.Run("rollouts list every channel and transitions come newest first per channel", func(t *testing.T) {
		s := fresh(t, fleet.Options{})
		b, _ := s.SaveRollout(ctx, rollout("beta"), trans("", fleet.StatePending, t0))
		a, _ := s.SaveRollout(ctx, rollout("alpha"), trans("", fleet.StatePending, t0))
		for i, to := range []string{fleet.StateCanary, fleet.StateBaking, fleet.StateActive} {
			b.State = to
			var err error
			if b, err = s.SaveRollout(ctx, b, trans(b.State, to, t0.Add(time.Duration(i+1)*time.Minute))); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.Rollouts(ctx)
		if err != nil || len(all) != 2 || all[0].Channel != "alpha" || all[1].Channel != "beta" || !reflect.DeepEqual(all[0], a) || all[1].Generation != 4 {
			t.Fatalf("rollouts %+v %v", all, err)
		}
		ts, _ := s.Transitions(ctx, "beta", 0)
		var got []string
		for _, tr := range ts {
			got = append(got, tr.To+"@"+tr.At.Format("15:04"))
			if tr.Channel != "beta" || tr.Version != "17.4.0" || tr.Actor != "replica-1" {
				t.Errorf("transition %+v", tr)
			}
		}
		if want := []string{"Active@10:03", "Baking@10:02", "Canary@10:01", "Pending@10:00"}; !slices.Equal(got, want) {
			t.Errorf("transitions %v, want %v", got, want)
		}
		if ts, _ := s.Transitions(ctx, "beta", 2); len(ts) != 2 || ts[0].To != fleet.StateActive {
			t.Errorf("limit 2: %+v", ts)
		}
		if ts, _ := s.Transitions(ctx, "", 0); len(ts) != 5 {
			t.Errorf("every channel: %d transitions, want 5", len(ts))
		}
	})

	lease := func(agent string, max int) fleet.LeaseRequest {
		return fleet.LeaseRequest{Group: "eu", AgentID: agent, Channel: "stable", Version: "17.4.0", Max: max, TTL: 30 * time.Minute}
	}
	acquire := func(t *testing.T, s fleet.Store, req fleet.LeaseRequest, now time.Time) fleet.LeaseGrant {
		t.Helper()
		g, err := s.AcquireLease(ctx, req, now)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	events := func(t *testing.T, s fleet.Store, group string) []string {
		t.Helper()
		log, err := s.LeaseLog(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range log {
			out = append(out, fmt.Sprintf("%s %s %s", e.AgentID, e.Event, e.At.Sub(t0)))
		}
		return out
	}

	t.Run("leases: max bounds the holders, renewal keeps the place, release frees it, expiry is logged", func(t *testing.T) {
		s := fresh(t, fleet.Options{})
		if g := acquire(t, s, lease("a1", 2), t0); !g.Granted || g.Holders != 1 || g.Lease.ExpiresAt != t0.Add(30*time.Minute) {
			t.Fatalf("a1: %+v", g)
		}
		if g := acquire(t, s, lease("a2", 2), t0.Add(time.Minute)); !g.Granted || g.Holders != 2 {
			t.Fatalf("a2: %+v", g)
		}
		g := acquire(t, s, lease("a3", 2), t0.Add(2*time.Minute))
		if g.Granted || g.Holders != 2 || g.RetryAfter != t0.Add(30*time.Minute) {
			t.Fatalf("a3 over max: %+v, want refused, 2 holders, retry when a1's expires", g)
		}
		g = acquire(t, s, lease("a1", 2), t0.Add(5*time.Minute))
		if !g.Granted || g.Holders != 2 || g.Lease.AcquiredAt != t0 || g.Lease.ExpiresAt != t0.Add(35*time.Minute) {
			t.Fatalf("a1 renews: %+v, want the same place, acquired at t0, expiring later", g)
		}
		if ok, err := s.ReleaseLease(ctx, "eu", "a2", t0.Add(6*time.Minute)); !ok || err != nil {
			t.Fatalf("release a2: %v %v", ok, err)
		}
		if ok, _ := s.ReleaseLease(ctx, "eu", "a2", t0.Add(6*time.Minute)); ok {
			t.Error("a2 released twice")
		}
		if g := acquire(t, s, lease("a3", 2), t0.Add(7*time.Minute)); !g.Granted || g.Holders != 2 {
			t.Fatalf("a3 after a release: %+v", g)
		}
		ls, _ := s.Leases(ctx, "eu", t0.Add(8*time.Minute))
		if len(ls) != 2 || ls[0].AgentID != "a1" || ls[1].AgentID != "a3" || ls[1].Version != "17.4.0" || ls[1].Group != "eu" {
			t.Errorf("leases %+v", ls)
		}
		// Both expire unseen; the next request finds them.
		if ls, _ := s.Leases(ctx, "eu", t0.Add(40*time.Minute)); len(ls) != 0 {
			t.Errorf("expired leases listed: %+v", ls)
		}
		if g := acquire(t, s, lease("a4", 1), t0.Add(2*time.Hour)); !g.Granted || g.Holders != 1 {
			t.Fatalf("a4 after expiry: %+v", g)
		}
		want := []string{"a1 acquired 0s", "a2 acquired 1m0s", "a1 renewed 5m0s", "a2 released 6m0s", "a3 acquired 7m0s",
			"a1 expired 35m0s", "a3 expired 37m0s", "a4 acquired 2h0m0s"}
		if got := events(t, s, "eu"); !slices.Equal(got, want) {
			t.Errorf("lease log\n%v\nwant\n%v", got, want)
		}
		if ok, _ := s.ReleaseLease(ctx, "eu", "a4", t0.Add(3*time.Hour)); ok {
			t.Error("an expired lease released")
		}
		if got := events(t, s, "eu"); got[len(got)-1] != "a4 expired 2h30m0s" {
			t.Errorf("releasing an expired lease logged %q, want its expiry", got[len(got)-1])
		}
	})

	t.Run("leases: max 0 is unlimited and no group is NoGroup", func(t *testing.T) {
		s := fresh(t, fleet.Options{})
		for i := range 5 {
			req := lease(fmt.Sprintf("a%d", i), 0)
			req.Group = ""
			if g := acquire(t, s, req, t0); !g.Granted || g.Holders != i+1 || g.Lease.Group != report.NoGroup {
				t.Fatalf("a%d: %+v", i, g)
			}
		}
		if ls, _ := s.Leases(ctx, report.NoGroup, t0); len(ls) != 5 {
			t.Errorf("%d leases under NoGroup", len(ls))
		}
		acquire(t, s, lease("e1", 0), t0)
		if ls, _ := s.Leases(ctx, "", t0); len(ls) != 6 {
			t.Errorf("%d leases in every group, want 6", len(ls))
		}
		if _, err := s.AcquireLease(ctx, fleet.LeaseRequest{AgentID: "x", Max: 1}, t0); err == nil || !strings.Contains(err.Error(), "TTL") {
			t.Errorf("no TTL: %v", err)
		}
	})

	t.Run("concurrent acquirers through two stores never exceed max, by the lease log", func(t *testing.T) {
		url := newURL(t)
		stores := []*sqlstore.Store{open(t, url, fleet.Options{}), open(t, url, fleet.Options{})}
		const maxHolders, agents, rounds = 3, 24, 4
		var wg sync.WaitGroup
		var mu sync.Mutex
		var granted int
		errs := make(chan error, agents)
		for i := range agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := stores[i%2]
				id := fmt.Sprintf("agent-%02d", i)
				for range rounds {
					g, err := s.AcquireLease(ctx, lease(id, maxHolders), time.Now())
					if err != nil {
						errs <- err
						return
					}
					if g.Holders > maxHolders {
						errs <- fmt.Errorf("%s saw %d holders", id, g.Holders)
					}
					if g.Granted {
						mu.Lock()
						granted++
						mu.Unlock()
						time.Sleep(3 * time.Millisecond) // hold it while others ask
						if _, err := s.ReleaseLease(ctx, "eu", id, time.Now()); err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		log, err := stores[1].LeaseLog(ctx, "eu")
		if err != nil {
			t.Fatal(err)
		}
		holders, peak, acquired := map[string]bool{}, 0, 0
		for _, e := range log {
			switch e.Event {
			case fleet.LeaseAcquired:
				if holders[e.AgentID] {
					t.Errorf("%s acquired twice", e.AgentID)
				}
				holders[e.AgentID] = true
				acquired++
			case fleet.LeaseReleased, fleet.LeaseExpired:
				delete(holders, e.AgentID)
			}
			if len(holders) > maxHolders {
				t.Fatalf("%d holders after %+v, max %d", len(holders), e, maxHolders)
			}
			peak = max(peak, len(holders))
		}
		if acquired != granted || granted == 0 || len(holders) != 0 {
			t.Errorf("log has %d acquisitions, callers were granted %d; %d still held", acquired, granted, len(holders))
		}
		if peak != maxHolders {
			t.Errorf("at most %d holders at once: the agents never contended for all %d places", peak, maxHolders)
		}
		t.Logf("%d grants, at most %d holders at once", granted, peak)
	})

	t.Run("one holder leads until its lease expires or it resigns", func(t *testing.T) {
		url := newURL(t)
		a, b := open(t, url, fleet.Options{}), open(t, url, fleet.Options{})
		lead := func(s fleet.Store, holder string, at time.Duration) bool {
			t.Helper()
			ok, err := s.Lead(ctx, "rollouts", holder, 10*time.Second, t0.Add(at))
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		for _, step := range []struct {
			scenario string
			s        fleet.Store
			holder   string
			at       time.Duration
			want     bool
		}{
			{"the first takes it", a, "r1", 0, true},
			{"another is refused while it holds", b, "r2", 5 * time.Second, false},
			{"the holder renews", a, "r1", 8 * time.Second, true},
			{"the renewal counts from its own time", b, "r2", 17 * time.Second, false},
			{"an expired lease is taken over", b, "r2", 18 * time.Second, true},
			{"the old holder is refused", a, "r1", 19 * time.Second, false},
		} {
			if got := lead(step.s, step.holder, step.at); got != step.want {
				t.Fatalf("%s: %s leads %v, want %v", step.scenario, step.holder, got, step.want)
			}
		}
		if err := a.Resign(ctx, "rollouts", "r1"); err != nil {
			t.Fatal(err)
		}
		if lead(a, "r1", 20*time.Second) {
			t.Fatal("a resign by a non-holder freed the lease")
		}
		if err := b.Resign(ctx, "rollouts", "r2"); err != nil {
			t.Fatal(err)
		}
		if !lead(a, "r1", 20*time.Second) {
			t.Fatal("after the holder resigned, another could not take it")
		}
		if lead(b, "r2", 21*time.Second) {
			t.Fatal("another took the lease its holder just took")
		}
		if ok, _ := b.Lead(ctx, "other", "r2", time.Second, t0); !ok {
			t.Error("another lease name is not independent")
		}
	})

	t.Run("concurrent leaders through two stores: exactly one wins each time", func(t *testing.T) {
		url := newURL(t)
		stores := []*sqlstore.Store{open(t, url, fleet.Options{}), open(t, url, fleet.Options{})}
		for round := range 5 {
			now := t0.Add(time.Duration(round) * time.Minute) // each round after the last expired
			var wg sync.WaitGroup
			var mu sync.Mutex
			var winners []string
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					holder := fmt.Sprintf("r%d", i)
					ok, err := stores[i%2].Lead(ctx, "rollouts", holder, 10*time.Second, now)
					if err != nil {
						t.Error(err)
					}
					if ok {
						mu.Lock()
						winners = append(winners, holder)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("round %d: winners %v", round, winners)
			}
		}
	})

	t.Run("two stores on one database see each other's writes", func(t *testing.T) {
		url := newURL(t)
		a, b := open(t, url, fleet.Options{}), open(t, url, fleet.Options{})
		put(t, a, rep("a1", "eu"), t0)
		if got, ok, err := b.Agent(ctx, "a1", t0); !ok || err != nil || got.AgentID != "a1" {
			t.Errorf("b does not see a's report: %v %v", ok, err)
		}
		if put(t, b, rep("a1", "eu"), t0) {
			t.Error("b counts a's agent new")
		}
		r, err := b.SaveRollout(ctx, rollout("stable"), trans("", fleet.StateCanary, t0))
		if err != nil {
			t.Fatal(err)
		}
		if got, ok, _ := a.Rollout(ctx, "stable"); !ok || got.Generation != r.Generation {
			t.Errorf("a sees rollout %+v", got)
		}
		acquire(t, a, lease("x", 1), t0)
		if g := acquire(t, b, lease("y", 1), t0); g.Granted {
			t.Error("b granted a place a holds")
		}
	})

	t.Run("reopening migrates nothing and keeps the data; a newer schema is refused", func(t *testing.T) {
		url := newURL(t)
		s := open(t, url, fleet.Options{})
		put(t, s, rep("a1", "eu"), t0)
		s.Close()
		s = open(t, url, fleet.Options{})
		v, err := s.SchemaVersion(ctx)
		if err != nil || v != sqlstore.LatestSchema {
			t.Errorf("schema version %d (%v), want %d", v, err, sqlstore.LatestSchema)
		}
		var rows int
		s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows)
		if rows != sqlstore.LatestSchema {
			t.Errorf("%d migrations recorded, want %d", rows, sqlstore.LatestSchema)
		}
		if _, ok, _ := s.Agent(ctx, "a1", t0); !ok {
			t.Error("the report is gone after reopening")
		}
		if _, err := s.DB().ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) SELECT 999, applied_at FROM schema_migrations WHERE version = 1`); err != nil {
			t.Fatal(err)
		}
		if _, err := sqlstore.Open(ctx, url, fleet.Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
			t.Errorf("a newer schema: %v, want refused", err)
		}
	})

	t.Run("replicas opening a fresh database at once all succeed and migrate once", func(t *testing.T) {
		url := newURL(t)
		const n = 4
		var wg sync.WaitGroup
		stores := make([]*sqlstore.Store, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stores[i], errs[i] = sqlstore.Open(ctx, url, fleet.Options{})
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Errorf("open %d: %v", i, errs[i])
				continue
			}
			defer stores[i].Close()
		}
		if t.Failed() {
			return
		}
		var rows int
		stores[0].DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows)
		if rows != sqlstore.LatestSchema {
			t.Errorf("%d migrations recorded, want %d", rows, sqlstore.LatestSchema)
		}
		if stores[0].Engine() == "sqlite" {
			var mode string
			stores[n-1].DB().QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode)
			if mode != "wal" {
				t.Errorf("journal mode %q, want wal", mode)
			}
		}
		put(t, stores[n-1], rep("a1", "eu"), t0)
	})
}
