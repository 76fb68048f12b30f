package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/pgtest"
)

// maxTakeover bounds how long the fleet goes without a leader after the
// leader dies: one leader lease TTL (10s) and a renewal period.
const maxTakeover = 15 * time.Second

// leaderOf is the replica whose holder id is actor, or -1: the holder id
// names the replica's process or appears in its log.
func (e *rolloutEnv) leaderOf(actor string) int {
	for i, s := range e.srvs {
		if strings.Contains(actor, strconv.Itoa(s.cmd.Process.Pid)) || strings.Contains(s.logs.String(), actor) {
			return i
		}
	}
	return -1
}

// kill9 kills a replica at once, as a crashed node would.
func kill9(t *testing.T, s *server) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-s.done
	s.done <- err
}

// stop ends a replica with SIGTERM, as a rolling restart does.
func stop(t *testing.T, s *server) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Errorf("a replica's exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a replica still runs 15s after SIGTERM")
	}
}

func transitionKey(tr fleet.Transition) string {
	return fmt.Sprintf("%s %s→%s stage %d %s", tr.Version, tr.From, tr.To, tr.Stage, tr.Step)
}

// TestReplicasShareOnePostgreSQL: two `upkeep serve` replicas on one real
// PostgreSQL see the same fleet, hand the rollout over when the leader is
// killed, never take a step twice, and keep everything across a restart.
func TestReplicasShareOnePostgreSQL(t *testing.T) {
	pg := pgtest.Start(t)
	stages := []stageYAML{
		{groups: []string{"canary"}, canaries: "2", bakeTime: 3 * time.Second},
		{groups: []string{"eu"}},
		{groups: []string{"us"}},
	}
	e := newRolloutEnv(t, pg, stages, mainGroups)
	e.write("1.0.0")
	a, b := e.start(), e.start()
	agents := simAgents(mainCounts, mainOrder...)
	// Agent i reports to replica i%2 first: half the reports reach each.
	sim := e.startSim(agents, "1.0.0")

	t.Run("reports sent to either replica are seen by both", func(t *testing.T) {
		waitFor(t, 5*time.Second, "both replicas see every agent", func() bool {
			return e.fleet(a.URL).Counts.Agents == len(agents) && e.fleet(b.URL).Counts.Agents == len(agents)
		})
		ids := func(f fleetView) []string {
			var out []string
			for _, ag := range f.Agents {
				out = append(out, ag.AgentID)
			}
			return out
		}
		if fa, fb := ids(e.fleet(a.URL)), ids(e.fleet(b.URL)); !slices.Equal(fa, fb) {
			t.Errorf("the replicas list different agents: %d and %d", len(fa), len(fb))
		}
	})
	e.settle("1.0.0")

	e.write("1.1.0")
	baking := e.waitState(a.URL, "1.1.0", 30*time.Second, fleet.StateBaking)
	ts := ofVersion(baking.Transitions, "1.1.0")
	actor := ts[len(ts)-1].Actor
	li := e.leaderOf(actor)
	if li < 0 {
		t.Fatalf("no replica is the leader %q that recorded:%s", actor, describe(ts))
	}
	leader, other := e.srvs[li], e.srvs[1-li]
	before := len(ts)

	kill9(t, leader)
	killed := time.Now()
	var takeover fleet.Transition
	waitFor(t, maxTakeover+5*time.Second, "the other replica takes the next step", func() bool {
		v, _ := e.rollout(other.URL)
		ts := ofVersion(v.Transitions, "1.1.0")
		if len(ts) > before {
			takeover = ts[before]
			return true
		}
		return false
	})
	took := takeover.At.Sub(killed)
	t.Logf("leader killed during Baking; %s took the next step (%s, rule %s) %s later", takeover.Actor, transitionKey(takeover), takeover.Rule, took.Round(time.Millisecond))
	if takeover.Actor == actor {
		t.Errorf("the step after the kill was recorded by the dead leader %q", actor)
	}
	if took > maxTakeover {
		t.Errorf("the other replica took over %s after the kill, want < %s", took, maxTakeover)
	}

	done := e.waitState(other.URL, "1.1.0", 90*time.Second, fleet.StateDone)
	ts = ofVersion(done.Transitions, "1.1.0")
	seen := map[string]bool{}
	for _, tr := range ts {
		k := transitionKey(tr)
		if seen[k] {
			t.Errorf("transition %s recorded twice:%s", k, describe(ts))
		}
		seen[k] = true
	}
	waitFor(t, 10*time.Second, "every agent reports 1.1.0", func() bool {
		return e.fleet(other.URL).Counts.ByVersion["1.1.0"] == len(agents)
	})
	sim.Stop()

	t.Run("restarting both replicas keeps the rollout and the fleet", func(t *testing.T) {
		wantFleet := e.fleet(other.URL)
		stop(t, other)
		e.srvs = nil
		a2, b2 := e.start(), e.start()
		for _, s := range []*server{a2, b2} {
			v, ok := e.rollout(s.URL)
			if !ok || v.Version != "1.1.0" || v.State != fleet.StateDone {
				t.Errorf("after the restart the rollout is %+v", v.Rollout)
			}
			if got := ofVersion(v.Transitions, "1.1.0"); len(got) != len(ts) {
				t.Errorf("after the restart %d transitions of 1.1.0, before %d:%s", len(got), len(ts), describe(got))
			}
			f := e.fleet(s.URL)
			if f.Counts.Agents != wantFleet.Counts.Agents || f.Counts.ByVersion["1.1.0"] != len(agents) {
				t.Errorf("after the restart the fleet counts %+v, before %+v", f.Counts, wantFleet.Counts)
			}
			for i := range min(len(f.Agents), len(wantFleet.Agents)) {
				if g, w := f.Agents[i], wantFleet.Agents[i]; g.AgentID != w.AgentID || g.CurrentVersion != w.CurrentVersion || !g.ReceivedAt.Equal(w.ReceivedAt) {
					t.Errorf("after the restart agent %d is %+v, before %+v", i, g, w)
					break
				}
			}
		}
	})
}
