package kube

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/sources/versionclient"
	"upkeep.dev/upkeep/spec"
)

// freezeFleet is the real version server's backend: one snapshot.
type freezeFleet struct{ snap *reconcile.Snapshot }

func (b freezeFleet) Snapshot() *reconcile.Snapshot { return b.snap }
func (b freezeFleet) Status() reconcile.Status      { return reconcile.Status{Source: "test"} }
func (b freezeFleet) Trigger()                      {}

// TestCriticalHeldByFreezeThroughTheCache: against the real `upkeep serve`
// handler, the updater's cache asks a critical channel's flag per group;
// the group in a freeze without critical updates gets the server's hold,
// which the chain turns into a Frozen wait (CriticalHeldByFreeze) naming
// the freeze, while a group of the same channel outside any freeze
// updates at once (Critical). Server and cache share a fake clock.
func TestCriticalHeldByFreezeThroughTheCache(t *testing.T) {
	freezeEnd := time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 12, 24, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st := &spec.State{
		ControlPlanes: []*spec.ControlPlane{{Name: "cloud", Version: "17.5.0"}},
		Channels:      []*spec.Channel{{Name: "stable/cloud", ControlPlane: "cloud", Version: "17.4.0", Critical: true}},
		Groups: []*spec.Group{
			{Name: "eu-prod", Channel: "stable/cloud", Timezone: "UTC", Location: time.UTC,
				Windows: []spec.Window{{Start: 2 * time.Hour, Duration: 2 * time.Hour}},
				Freezes: []spec.Freeze{{Name: "year-end", Start: time.Date(2026, 12, 19, 0, 0, 0, 0, time.UTC), End: freezeEnd}}},
			{Name: "lab", Channel: "stable/cloud", Timezone: "UTC", Location: time.UTC,
				Windows: []spec.Window{{Start: 2 * time.Hour, Duration: 2 * time.Hour}}},
		},
	}
	srv := httptest.NewServer(server.New(freezeFleet{reconcile.BuildSnapshot(st, "r1", now)},
		server.Options{Now: clock, Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	vc, err := versionclient.New(srv.URL, versionclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cache := newServerCache(vc, time.Hour, clock)
	tests := []struct {
		scenario, group string
		held            bool
		action          reconcile.Action
		rule, reason    string
	}{
		{"a workload of the frozen group waits for the freeze's end, naming it", "eu-prod", true, reconcile.ActionWait, reconcile.RuleFrozen, "CriticalHeldByFreeze"},
		{"a workload of another group of the channel updates at once", "lab", false, reconcile.ActionUpdate, reconcile.RuleCritical, "CriticalUpdate"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			ch := cache.Channel(context.Background(), "stable/cloud", versionclient.Identity{AgentID: "uid-" + tt.group, Group: tt.group})
			if ch.Target.Err != nil || ch.Critical != reconcile.CriticalYes || (ch.CriticalHold != nil) != tt.held {
				t.Fatalf("channel info %+v (hold %+v); want critical, held %v", ch, ch.CriticalHold, tt.held)
			}
			// The controller's inputs: the target, the flag and the hold.
			in := reconcile.DecisionInput{Now: now, Current: "17.3.0", Health: reconcile.Healthy,
				Schedule: reconcile.Schedule{State: reconcile.ScheduleLoaded}}
			in.Target, in.Critical, in.CriticalHold = ch.Target, ch.Critical, ch.CriticalHold
			d := reconcile.Decide(in)
			if d.Action != tt.action || d.Rule != tt.rule || d.Reason != tt.reason {
				t.Fatalf("decision %+v; want %s by %s/%s", d, tt.action, tt.rule, tt.reason)
			}
			if tt.held && (!d.RecheckAt.Equal(freezeEnd) || !strings.Contains(d.Message, `freeze "year-end"`) || !strings.Contains(d.Message, "until 2027-01-05T00:00:00Z")) {
				t.Errorf("decision %+v: want the freeze and its end", d)
			}
		})
	}
}
