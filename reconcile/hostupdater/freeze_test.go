package hostupdater

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	fleetstore "upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/spec"
)

// TestCriticalHeldByFreezeAgainstTheRealServer: a host updater of a group
// in a freeze with allowCritical: false asks the real `upkeep serve`
// handler for its channel's critical flag as its group; the server answers
// "no" with Upkeep-Freeze, and the pass waits by the chain's Frozen rule
// (reason CriticalHeldByFreeze) naming the freeze and its end, installs
// nothing, and reports so to the fleet store. The server and the updater
// share one fake clock.
func TestCriticalHeldByFreezeAgainstTheRealServer(t *testing.T) {
	freezeStart, freezeEnd := time.Date(2026, 12, 19, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC)
	during := time.Date(2026, 12, 24, 12, 0, 0, 0, time.UTC) // outside the 02:00 window
	after := time.Date(2027, 1, 5, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		scenario      string
		now           time.Time
		critical      bool
		allowCritical bool
		action        reconcile.Action
		rule, reason  string
		recheck       time.Time
		message       []string // substrings of the decision's message
		installed     string
	}{
		{"a critical update in a freeze without critical updates waits for the freeze's end, naming it",
			during, true, false, reconcile.ActionWait, reconcile.RuleFrozen, "CriticalHeldByFreeze", freezeEnd,
			[]string{`held by freeze "year-end"`, "until 2027-01-05T00:00:00Z"}, "17.3.0"},
		{"a critical update in a freeze that allows critical updates goes at once",
			during, true, true, reconcile.ActionUpdate, reconcile.RuleCritical, "CriticalUpdate", time.Time{},
			[]string{"applied at once"}, "17.4.0"},
		{"a critical update after the freeze's end goes at once",
			after, true, false, reconcile.ActionUpdate, reconcile.RuleCritical, "CriticalUpdate", time.Time{},
			[]string{"applied at once"}, "17.4.0"},
		{"a non-critical update in the freeze waits for the first window after it",
			during, false, false, reconcile.ActionWait, reconcile.RuleWaitForWindow, "OutsideWindow", time.Date(2027, 1, 5, 2, 0, 0, 0, time.UTC),
			nil, "17.3.0"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			ctx := context.Background()
			clock := func() time.Time { return tt.now }
			st := &spec.State{
				ControlPlanes: []*spec.ControlPlane{{Name: "cloud", Version: "17.5.0"}},
				Channels:      []*spec.Channel{{Name: "stable/cloud", ControlPlane: "cloud", Version: "17.4.0", Critical: tt.critical}},
				Groups: []*spec.Group{{Name: "eu-prod", Channel: "stable/cloud", Timezone: "UTC", Location: time.UTC,
					Windows: []spec.Window{{Start: 2 * time.Hour, Duration: 2 * time.Hour}},
					Freezes: []spec.Freeze{{Name: "year-end", Start: freezeStart, End: freezeEnd, AllowCritical: tt.allowCritical}}}},
			}
			s := startClockedServer(t, st, clock)
			mem := &memInstaller{installed: "17.3.0"}
			u := s.scheduledAgent(t, "web-01", mem)
			u.now = clock
			p := u.Once(ctx, false)
			d := p.Decision
			if p.Err != nil || d.Action != tt.action || d.Rule != tt.rule || d.Reason != tt.reason || !d.RecheckAt.Equal(tt.recheck) {
				t.Fatalf("decision %+v, err %v; want %s by %s/%s, recheck at %s", d, p.Err, tt.action, tt.rule, tt.reason, tt.recheck)
			}
			for _, m := range tt.message {
				if !strings.Contains(d.Message, m) {
					t.Errorf("message %q lacks %q", d.Message, m)
				}
			}
			held := tt.reason == "CriticalHeldByFreeze"
			if held != (p.CriticalHold != nil) || held && (p.CriticalHold.Freeze != "year-end" || !p.CriticalHold.Until.Equal(freezeEnd) || p.Critical != reconcile.CriticalYes) {
				t.Errorf("pass critical %s, hold %+v; held %v", p.Critical, p.CriticalHold, held)
			}
			if v, _, _ := mem.Installed(ctx, ""); v != tt.installed {
				t.Errorf("installed %s, want %s", v, tt.installed)
			}
			a, ok, err := s.store.Agent(ctx, "web-01", tt.now)
			if err != nil || !ok || a.Rule != tt.rule || a.Reason != tt.reason {
				t.Errorf("the store's report: %+v, %v, %v; want %s/%s", a.Report, ok, err, tt.rule, tt.reason)
			}
		})
	}
}

// startClockedServer is startRealServer with the server's clock (and its
// snapshot built) at clock().
func startClockedServer(t *testing.T, st *spec.State, clock func() time.Time) *realServer {
	t.Helper()
	store, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "fleet.db"), fleetstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	const token = "0123456789abcdef-host-updater-test"
	tokens, err := report.ParseTokens("tokens", []byte(token+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := server.New(servedFleet{reconcile.BuildSnapshot(st, "r1", clock())}, server.Options{
		ReportTokens: tokens, Store: store, Now: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return &realServer{url: srv.URL, tokenFile: tf, store: store}
}

// scheduledAgent is agent with the group's schedule from the server.
func (s *realServer) scheduledAgent(t *testing.T, id string, mem *memInstaller) *Updater {
	t.Helper()
	yaml := fmt.Sprintf(`server: %s
channel: stable/cloud
group: eu-prod
agentID: %s
package: teleport
tokenFile: %s
stateDir: %s
schedule:
  source: server
health:
  systemd: false
  http:
    url: %s
  settle: 200ms
  interval: 40ms
`, s.url, id, s.tokenFile, t.TempDir(), agentHealth(t, mem, ""))
	u, _ := newWiredUpdater(t, yaml, mem, true)
	return u
}
