package report_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/report"
)

// fakeClock is the store's injected clock.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.t.Store(&t)
	return c
}
func (c *fakeClock) Now() time.Time          { return *c.t.Load() }
func (c *fakeClock) Set(t time.Time)         { c.t.Store(&t) }
func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

func agentReport(id, group, version, health, action string) report.Report {
	r := hostReport()
	r.AgentID, r.Hostname, r.Group, r.CurrentVersion, r.Health = id, id, group, version, health
	r.Action = action
	return r
}

func mustPut(t testing.TB, s *report.Store, r report.Report) {
	t.Helper()
	if _, err := s.Put(r); err != nil {
		t.Fatal(err)
	}
}

func TestStoreKeepsTheLatestReportPerAgent(t *testing.T) {
	clock := newClock(passTime)
	s := report.NewStore(report.StoreOptions{Now: clock.Now})
	first := agentReport("a1", "eu-prod", "17.2.3", report.HealthHealthy, "Wait")
	if isNew, err := s.Put(first); err != nil || !isNew {
		t.Fatalf("first Put: new=%v err=%v", isNew, err)
	}
	clock.Advance(time.Minute)
	second := agentReport("a1", "eu-prod", "v17.3.0", report.HealthUnhealthy, "Update")
	if isNew, err := s.Put(second); err != nil || isNew {
		t.Fatalf("second Put: new=%v err=%v", isNew, err)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
	a, ok := s.Get("a1")
	if !ok {
		t.Fatal("a1 missing")
	}
	if a.CurrentVersion != "17.3.0" || a.Health != report.HealthUnhealthy || a.Action != "Update" {
		t.Errorf("Get = %+v, want the second report with its version canonical", a.Report)
	}
	if a.TargetVersion != "17.3.0" {
		t.Errorf("target %q, want the canonical 17.3.0", a.TargetVersion)
	}
	if !a.ReceivedAt.Equal(passTime.Add(time.Minute)) || a.Stale {
		t.Errorf("ReceivedAt %s stale %v", a.ReceivedAt, a.Stale)
	}
	// The caller's NextWindow pointer is not shared with the store.
	*second.NextWindow = time.Time{}
	if a, _ := s.Get("a1"); a.NextWindow.IsZero() {
		t.Error("the store shares the caller's NextWindow")
	}
}

func TestStoreRefusesInvalidReports(t *testing.T) {
	s := report.NewStore(report.StoreOptions{})
	r := hostReport()
	r.CurrentVersion = "latest"
	var ve report.ValidationError
	if _, err := s.Put(r); !errors.As(err, &ve) {
		t.Fatalf("Put = %v, want a ValidationError", err)
	}
	if s.Len() != 0 {
		t.Error("an invalid report was stored")
	}
}

func TestStaleness(t *testing.T) {
	clock := newClock(passTime)
	s := report.NewStore(report.StoreOptions{Now: clock.Now, StaleAfter: 10 * time.Minute})
	mustPut(t, s, agentReport("quiet", "eu-prod", "17.2.3", report.HealthHealthy, "Wait"))
	clock.Advance(6 * time.Minute)
	mustPut(t, s, agentReport("chatty", "eu-prod", "17.2.3", report.HealthHealthy, "Wait"))

	for _, tc := range []struct {
		scenario      string
		after         time.Duration // since the chatty agent's report
		quiet, chatty bool
	}{
		{scenario: "both agents heard within the stale period are fresh", after: 0},
		{scenario: "exactly the stale period is still fresh", after: 4 * time.Minute},
		{scenario: "past the stale period the quiet agent is stale", after: 4*time.Minute + time.Second, quiet: true},
		{scenario: "later both are stale", after: 11 * time.Minute, quiet: true, chatty: true},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			clock.Set(passTime.Add(6*time.Minute + tc.after))
			f := s.Fleet(report.Filter{})
			got := map[string]bool{}
			for _, a := range f.Agents {
				got[a.AgentID] = a.Stale
			}
			if got["quiet"] != tc.quiet || got["chatty"] != tc.chatty {
				t.Errorf("stale = %v, want quiet=%v chatty=%v", got, tc.quiet, tc.chatty)
			}
			stale := 0
			if tc.quiet {
				stale++
			}
			if tc.chatty {
				stale++
			}
			if f.Counts.Stale != stale || f.Counts.ByHealth[report.HealthStale] != stale {
				t.Errorf("counts %+v, want %d stale", f.Counts, stale)
			}
			if f.StaleAfter != "10m0s" {
				t.Errorf("StaleAfter %q", f.StaleAfter)
			}
		})
	}
	// A new report makes a stale agent fresh again.
	mustPut(t, s, agentReport("quiet", "eu-prod", "17.2.3", report.HealthHealthy, "Wait"))
	if a, _ := s.Get("quiet"); a.Stale {
		t.Error("a reporting agent stays stale")
	}
}

func TestFleetSortsAndCounts(t *testing.T) {
	s := report.NewStore(report.StoreOptions{})
	failed := agentReport("c", "us-prod", "", report.HealthUnknown, "")
	failed.Rule, failed.Reason, failed.Message, failed.LastError = "", "", "", "no package manager"
	for _, r := range []report.Report{
		agentReport("b", "eu-prod", "17.2.3", report.HealthHealthy, "Wait"),
		agentReport("a", "us-prod", "17.3.0", report.HealthUnhealthy, "Update"),
		agentReport("z", "eu-prod", "v17.3.0", report.HealthHealthy, "Nothing"),
		agentReport("a2", "eu-prod", "17.2.3", report.HealthHealthy, "Wait"),
		failed,
	} {
		mustPut(t, s, r)
	}
	f := s.Fleet(report.Filter{})
	var order []string
	for _, a := range f.Agents {
		order = append(order, a.Group+"/"+a.AgentID)
	}
	if want := []string{"eu-prod/a2", "eu-prod/b", "eu-prod/z", "us-prod/a", "us-prod/c"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	want := report.Counts{
		Agents:    5,
		ByGroup:   map[string]int{"eu-prod": 3, "us-prod": 2},
		ByVersion: map[string]int{"17.2.3": 2, "17.3.0": 2, report.UnknownVersion: 1},
		ByHealth:  map[string]int{"healthy": 3, "unhealthy": 1, "unknown": 1},
		ByAction:  map[string]int{"Wait": 2, "Update": 1, "Nothing": 1, report.NoDecision: 1},
	}
	if !reflect.DeepEqual(f.Counts, want) {
		t.Errorf("counts\n%+v\nwant\n%+v", f.Counts, want)
	}

	for _, tc := range []struct {
		scenario string
		filter   report.Filter
		ids      []string
	}{
		{scenario: "a group filter selects its agents", filter: report.Filter{Group: "us-prod"}, ids: []string{"a", "c"}},
		{scenario: "a health filter selects by health", filter: report.Filter{Health: "healthy"}, ids: []string{"a2", "b", "z"}},
		{scenario: "both filters combine", filter: report.Filter{Group: "eu-prod", Health: "unhealthy"}, ids: nil},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			f := s.Fleet(tc.filter)
			var ids []string
			for _, a := range f.Agents {
				ids = append(ids, a.AgentID)
			}
			if !reflect.DeepEqual(ids, tc.ids) || f.Counts.Agents != len(tc.ids) {
				t.Errorf("agents %v (counted %d), want %v", ids, f.Counts.Agents, tc.ids)
			}
		})
	}
}

func TestStoreCapsAgents(t *testing.T) {
	clock := newClock(passTime)
	s := report.NewStore(report.StoreOptions{Now: clock.Now, MaxAgents: 3, ForgetAfter: time.Hour})
	for i := range 3 {
		mustPut(t, s, agentReport(fmt.Sprintf("a%d", i), "eu-prod", "17.2.3", report.HealthHealthy, "Wait"))
	}
	_, err := s.Put(agentReport("new", "eu-prod", "17.2.3", report.HealthHealthy, "Wait"))
	if !errors.Is(err, report.ErrFull) {
		t.Fatalf("Put past the cap = %v, want ErrFull", err)
	}
	t.Log(err)
	// A known agent is always updated.
	mustPut(t, s, agentReport("a1", "eu-prod", "17.3.0", report.HealthHealthy, "Nothing"))

	// Agents silent past ForgetAfter make room; a1 reported recently and stays.
	clock.Advance(50 * time.Minute)
	mustPut(t, s, agentReport("a1", "eu-prod", "17.3.0", report.HealthHealthy, "Nothing"))
	clock.Advance(11 * time.Minute)
	if _, err := s.Put(agentReport("new", "eu-prod", "17.2.3", report.HealthHealthy, "Wait")); err != nil {
		t.Fatalf("Put after others went silent: %v", err)
	}
	if _, ok := s.Get("a1"); !ok || s.Len() != 2 {
		t.Errorf("after forgetting: len %d, a1 kept %v; want a1 and new", s.Len(), ok)
	}
}

func TestStoreIsConcurrencySafe(t *testing.T) {
	s := report.NewStore(report.StoreOptions{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				mustPut(t, s, agentReport(fmt.Sprintf("w%d-%d", w, i%50), "eu-prod", "17.2.3", report.HealthHealthy, "Wait"))
				if i%20 == 0 {
					s.Fleet(report.Filter{})
					s.Series(10)
				}
			}
		})
	}
	wg.Wait()
	if s.Len() != 200 {
		t.Errorf("Len = %d, want 200", s.Len())
	}
}

func TestAgentsWithoutAGroupCountUnderNoGroup(t *testing.T) {
	s := report.NewStore(report.StoreOptions{})
	mustPut(t, s, agentReport("a", "eu-prod", "17.2.3", report.HealthHealthy, "Wait"))
	mustPut(t, s, agentReport("b", "", "17.2.3", report.HealthHealthy, "Wait"))
	mustPut(t, s, agentReport("c", "", "17.2.3", report.HealthHealthy, "Wait"))
	f := s.Fleet(report.Filter{})
	if want := map[string]int{"eu-prod": 1, report.NoGroup: 2}; !reflect.DeepEqual(f.Counts.ByGroup, want) {
		t.Errorf("ByGroup %v, want %v", f.Counts.ByGroup, want)
	}
	if only := s.Fleet(report.Filter{Group: report.NoGroup}); len(only.Agents) != 2 || only.Agents[0].Group != "" {
		t.Errorf("filter %q selected %+v, want the two agents without a group", report.NoGroup, only.Agents)
	}
	want := []report.Series{
		{Group: report.NoGroup, Version: "17.2.3", Health: "healthy", Agents: 2},
		{Group: "eu-prod", Version: "17.2.3", Health: "healthy", Agents: 1},
	}
	if got := s.Series(report.DefaultMaxSeries); !reflect.DeepEqual(got, want) {
		t.Errorf("Series\n%+v\nwant\n%+v", got, want)
	}
}

func TestSeries(t *testing.T) {
	clock := newClock(passTime)
	s := report.NewStore(report.StoreOptions{Now: clock.Now})
	mustPut(t, s, agentReport("old", "us-prod", "17.1.0", report.HealthHealthy, "Wait"))
	clock.Advance(time.Hour) // "old" is stale now
	put := func(n int, group, version, health string) {
		for i := range n {
			mustPut(t, s, agentReport(fmt.Sprintf("%s-%s-%s-%d", group, version, health, i), group, version, health, "Wait"))
		}
	}
	put(3, "eu-prod", "17.2.3", report.HealthHealthy)
	put(1, "eu-prod", "17.2.3", report.HealthUnhealthy)
	put(2, "us-prod", "17.3.0", report.HealthHealthy)
	put(1, "lab", "", report.HealthUnknown)

	want := []report.Series{
		{Group: "eu-prod", Version: "17.2.3", Health: "healthy", Agents: 3},
		{Group: "eu-prod", Version: "17.2.3", Health: "unhealthy", Agents: 1},
		{Group: "lab", Version: report.UnknownVersion, Health: "unknown", Agents: 1},
		{Group: "us-prod", Version: "17.1.0", Health: report.HealthStale, Agents: 1},
		{Group: "us-prod", Version: "17.3.0", Health: "healthy", Agents: 2},
	}
	if got := s.Series(report.DefaultMaxSeries); !reflect.DeepEqual(got, want) {
		t.Errorf("Series\n%+v\nwant\n%+v", got, want)
	}

	// Beyond the limit the smallest combinations fold per health.
	folded := []report.Series{
		{Group: report.OtherLabel, Version: report.OtherLabel, Health: "stale", Agents: 1},
		{Group: report.OtherLabel, Version: report.OtherLabel, Health: "unhealthy", Agents: 1},
		{Group: report.OtherLabel, Version: report.OtherLabel, Health: "unknown", Agents: 1},
		{Group: "eu-prod", Version: "17.2.3", Health: "healthy", Agents: 3},
		{Group: "us-prod", Version: "17.3.0", Health: "healthy", Agents: 2},
	}
	if got := s.Series(2); !reflect.DeepEqual(got, folded) {
		t.Errorf("Series(2)\n%+v\nwant\n%+v", got, folded)
	}
}

func BenchmarkStorePut(b *testing.B) {
	s := report.NewStore(report.StoreOptions{})
	reports := make([]report.Report, 10_000)
	for i := range reports {
		reports[i] = agentReport(fmt.Sprintf("agent-%05d", i), "eu-prod", "17.2.3", report.HealthHealthy, "Wait")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Put(reports[i%len(reports)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkFleet100k(b *testing.B) {
	s := report.NewStore(report.StoreOptions{})
	for i := range report.DefaultMaxAgents {
		r := agentReport(fmt.Sprintf("agent-%06d", i), fmt.Sprintf("group-%d", i%20), fmt.Sprintf("17.%d.0", i%5), report.HealthHealthy, "Wait")
		if _, err := s.Put(r); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Fleet", func(b *testing.B) {
		for b.Loop() {
			s.Fleet(report.Filter{})
		}
	})
	b.Run("Series", func(b *testing.B) {
		for b.Loop() {
			s.Series(report.DefaultMaxSeries)
		}
	})
}
