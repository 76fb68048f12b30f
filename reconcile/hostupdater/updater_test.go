package hostupdater

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/report/leasetest"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/sources/versionclient"
)

// memInstaller is a package manager in memory: the updater's own logic is
// under test here, the real apt, dnf and zypper run in their own suites and
// in e2e.
type memInstaller struct {
	mu        sync.Mutex
	installed string
	installs  []string
}

func (m *memInstaller) Name() string { return "mem" }
func (m *memInstaller) Installed(context.Context, string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.installed, m.installed != "", nil
}
func (m *memInstaller) Available(context.Context, string) ([]string, error) { return nil, nil }
func (m *memInstaller) Resolve(_ context.Context, _, v string) (string, error) {
	return v, nil
}
func (m *memInstaller) Refresh(context.Context) error { return nil }
func (m *memInstaller) Install(_ context.Context, _, v string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.installed = v
	m.installs = append(m.installs, v)
	return nil
}
func (m *memInstaller) Commands(pkg, v string) [][]string {
	return [][]string{{"mem-install", pkg + "=" + v}}
}

var _ installers.Installer = (*memInstaller)(nil)

// fleet is a real HTTP server playing the upkeep server: the channel's
// version (with an optional rollout hold), the group's schedule (a window
// open now), the leases, and the identity each version request carried.
type fleet struct {
	*httptest.Server
	leases *leasetest.Leases
	target string
	hold   string
	mu     sync.Mutex
	idents []string
}

func newFleet(t *testing.T, token string, max map[string]int, leasesOn bool) *fleet {
	f := &fleet{target: "17.4.0", leases: leasetest.New(max)}
	f.leases.Token = token
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/webapi/automaticupgrades/channel/stable/cloud/version", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.idents = append(f.idents, r.Header.Get("Upkeep-Agent-Id")+"/"+r.Header.Get("Upkeep-Group"))
		f.mu.Unlock()
		if f.hold != "" {
			w.Header().Set("Upkeep-Rollout", f.hold)
		}
		fmt.Fprintln(w, "v"+f.target)
	})
	mux.HandleFunc("GET /v1/webapi/automaticupgrades/channel/stable/cloud/critical", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "no")
	})
	mux.HandleFunc("GET /v1/groups/eu-prod/schedule", func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UTC()
		b, _ := schedule.FormatJSON([]calendar.Interval{{Start: now.Add(-time.Hour), End: now.Add(3 * time.Hour)}})
		w.Write(b)
	})
	if leasesOn {
		f.leases.Register(mux)
	}
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// agentHealth is the agent's readiness endpoint, over real HTTP: unhealthy
// while the installed version is bad.
func agentHealth(t *testing.T, inst *memInstaller, bad string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _, _ := inst.Installed(r.Context(), "")
		if v == bad {
			http.Error(w, "auth server unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/readyz"
}

func okSystemctl(_ context.Context, argv []string) ([]byte, []byte, error) {
	if len(argv) > 1 && argv[1] == "show" {
		return []byte("loaded\n"), nil, nil
	}
	return nil, nil, nil
}

// stateFiles maps every file under dir to its content.
func stateFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

type setup struct {
	fleet *fleet
	inst  *memInstaller
	u     *Updater
	cfg   *Config
}

func newSetup(t *testing.T, leasesOn bool, max map[string]int, bad string) *setup {
	t.Helper()
	const token = "lease-token-123"
	f := newFleet(t, token, max, leasesOn)
	inst := &memInstaller{installed: "17.3.0"}
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`server: %s
channel: stable/cloud
group: eu-prod
agentID: web-01
package: teleport
tokenFile: %s
stateDir: %s
health:
  systemd: false
  http:
    url: %s
  settle: 300ms
  interval: 50ms
`, f.URL, tf, t.TempDir(), agentHealth(t, inst, bad))
	u, cfg := newWiredUpdater(t, yaml, inst, false)
	return &setup{fleet: f, inst: inst, u: u, cfg: cfg}
}

// newWiredUpdater is an updater of the config yaml with its real version
// and report clients (leases from the report client; reports sent after
// each pass when sendReports) and inst as its installer.
func newWiredUpdater(t *testing.T, yaml string, inst installers.Installer, sendReports bool) (*Updater, *Config) {
	t.Helper()
	cfg, err := ParseConfig("agent.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	vc, err := versionclient.New(cfg.Server, versionclient.Options{AgentID: cfg.AgentID, Group: cfg.Group})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := report.NewClient(cfg.Server, report.ClientOptions{TokenFile: cfg.TokenFile})
	if err != nil {
		t.Fatal(err)
	}
	parts := Parts{Server: vc, Installer: inst, Systemctl: okSystemctl, Leases: rc,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if sendReports {
		parts.Report = func(ctx context.Context, p *Pass) error { return rc.Send(ctx, Report(cfg, p, "devel")) }
	}
	u, err := New(cfg, parts)
	if err != nil {
		t.Fatal(err)
	}
	return u, cfg
}

// TestPassLeases runs whole passes against a real HTTP server that speaks
// the version, schedule and lease wire.
func TestPassLeases(t *testing.T) {
	tests := []struct {
		scenario  string
		leasesOn  bool
		max       map[string]int
		held      bool   // another agent of the group holds the only place
		bad       string // a version whose agent is unhealthy
		dryRun    bool
		hold      string
		rule      string
		installed string // after the pass
		outcome   string // the report's
		events    string // the lease log for web-01
	}{
		{scenario: "a granted lease lets the update run, and it is given back after the update",
			leasesOn: true, max: map[string]int{"eu-prod": 1},
			rule: reconcile.RuleInWindow, installed: "17.4.0", outcome: report.OutcomeUpdated, events: "acquired released"},
		{scenario: "a refused lease holds the update back by ConcurrencyLimit and installs nothing",
			leasesOn: true, max: map[string]int{"eu-prod": 1}, held: true,
			rule: reconcile.RuleConcurrencyLimit, installed: "17.3.0", outcome: "", events: "refused"},
		{scenario: "a server without leases (404) lets the update run without one",
			leasesOn: false,
			rule:     reconcile.RuleInWindow, installed: "17.4.0", outcome: report.OutcomeUpdated, events: ""},
		{scenario: "a rolled-back update gives its lease back and reports rolledBack",
			leasesOn: true, max: map[string]int{"eu-prod": 1}, bad: "17.4.0",
			rule: reconcile.RuleInWindow, installed: "17.3.0", outcome: report.OutcomeRolledBack, events: "acquired released"},
		{scenario: "a dry run takes no lease",
			leasesOn: true, max: map[string]int{"eu-prod": 1}, dryRun: true,
			rule: reconcile.RuleInWindow, installed: "17.3.0", outcome: "", events: ""},
		{scenario: "a held agent on a version older than the answered one updates to it, under a lease",
			leasesOn: true, max: map[string]int{"eu-prod": 1}, hold: "version=17.5.0; state=Canary; stage=0; reason=NotCanary",
			rule: reconcile.RuleInWindow, installed: "17.4.0", outcome: report.OutcomeUpdated, events: "acquired released"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			s := newSetup(t, tc.leasesOn, tc.max, tc.bad)
			s.fleet.hold = tc.hold
			if tc.held {
				s.fleet.leases.Hold("eu-prod", "web-02", time.Now().Add(10*time.Minute))
			}
			before := stateFiles(t, s.cfg.StateDir)
			p := s.u.Once(context.Background(), tc.dryRun)
			if p.Err != nil {
				t.Fatalf("pass: %v", p.Err)
			}
			if after := stateFiles(t, s.cfg.StateDir); tc.dryRun && !maps.Equal(before, after) {
				t.Errorf("a dry run changed the state directory: %v before, %v after", before, after)
			} else if !tc.dryRun && maps.Equal(before, after) {
				t.Errorf("a pass left the state directory as it was (%v): the dry-run check above proves nothing", after)
			}
			if p.Decision.Rule != tc.rule {
				t.Fatalf("decided %s by %s (%s): %s; want rule %s", p.Decision.Action, p.Decision.Rule, p.Decision.Reason, p.Decision.Message, tc.rule)
			}
			if got, _, _ := s.inst.Installed(context.Background(), ""); got != tc.installed {
				t.Errorf("installed %q after the pass, want %q (installs %v)", got, tc.installed, s.inst.installs)
			}
			r := Report(s.cfg, p, "devel")
			if err := r.Validate(); err != nil {
				t.Fatalf("the pass's report would be refused: %v", err)
			}
			if r.Outcome != tc.outcome {
				t.Errorf("report outcome %q, want %q", r.Outcome, tc.outcome)
			}
			if got := s.fleet.leases.Events("web-01"); got != tc.events {
				t.Errorf("lease log for web-01: %q, want %q", got, tc.events)
			}
			if held := s.fleet.leases.Holders("eu-prod"); tc.events != "" && contains(held, "web-01") {
				t.Errorf("web-01 still holds a lease after the pass: %v", held)
			}
			if s.fleet.leases.MaxSeen("eu-prod") > 1 {
				t.Errorf("eu-prod had %d leases at once, maxConcurrent is 1", s.fleet.leases.MaxSeen("eu-prod"))
			}
			if got := s.fleet.idents[0]; got != "web-01/eu-prod" {
				t.Errorf("the version request carried identity %q, want web-01/eu-prod", got)
			}
			if tc.rule == reconcile.RuleConcurrencyLimit {
				if p.Decision.RecheckAt.IsZero() || !strings.Contains(p.Decision.Message, `group "eu-prod" has 1 of 1 agents updating`) {
					t.Errorf("ConcurrencyLimit decision %+v: want the holders and a recheck time", p.Decision)
				}
				st, _ := apply.ReadState(s.cfg.StateDir)
				if st.LastDecision == nil || st.LastDecision.Rule != reconcile.RuleConcurrencyLimit {
					t.Errorf("the state does not record the ConcurrencyLimit decision: %+v", st.LastDecision)
				}
			}
		})
	}
}

// TestPassRolloutHeld: an agent on the answered version, held back by a
// canary step, waits by RolloutHeld and asks for no lease.
func TestPassRolloutHeld(t *testing.T) {
	s := newSetup(t, true, map[string]int{"eu-prod": 1}, "")
	s.fleet.target = "17.3.0"
	s.fleet.hold = "version=17.4.0; state=Canary; stage=1; reason=NotCanary"
	p := s.u.Once(context.Background(), false)
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	d := p.Decision
	if d.Rule != reconcile.RuleRolloutHeld || d.Action != reconcile.ActionWait || d.Reason != "NotCanary" ||
		!strings.Contains(d.Message, "17.4.0 is rolling out (state Canary, stage 1)") {
		t.Fatalf("decision %+v, want a RolloutHeld wait naming 17.4.0, Canary and stage 1", d)
	}
	if got := s.fleet.leases.Events("web-01"); got != "" {
		t.Errorf("a held agent asked for a lease: %q", got)
	}
	if r := Report(s.cfg, p, "devel"); r.Validate() != nil || r.Rule != reconcile.RuleRolloutHeld {
		t.Errorf("report %+v: %v", r, r.Validate())
	}
}

// TestRecoveryReleasesTheLease: an update interrupted after its lease was
// granted keeps the lease (the agent is mid-update); the next pass finishes
// the update and gives the lease back.
func TestRecoveryReleasesTheLease(t *testing.T) {
	s := newSetup(t, true, map[string]int{"eu-prod": 1}, "")
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel while the install runs, as SIGTERM would.
	s.u.installer = cancelOnInstall{s.inst, cancel}
	p := s.u.Once(ctx, false)
	if p.Result == nil || p.Result.Outcome != apply.Interrupted {
		t.Fatalf("the first pass: %+v, %v; want an interrupted apply", p.Result, p.Err)
	}
	if got := s.fleet.leases.Events("web-01"); got != "acquired" {
		t.Fatalf("after the interruption the lease log is %q, want it still held", got)
	}
	s.u.installer = s.inst
	p = s.u.Once(context.Background(), false)
	if p.Recovered == nil {
		t.Fatalf("the second pass recovered nothing: %+v", p)
	}
	if got := s.fleet.leases.Events("web-01"); !strings.HasPrefix(got, "acquired released") {
		t.Errorf("after recovery the lease log is %q, want the lease given back", got)
	}
	if r := Report(s.cfg, p, "devel"); r.Outcome == "" {
		t.Errorf("the recovering pass reports no outcome: %+v", p.Recovered)
	}
}

// cancelOnInstall cancels the pass's context when the install starts and
// returns its error, as a package manager stopped by SIGTERM would.
type cancelOnInstall struct {
	*memInstaller
	cancel context.CancelFunc
}

func (c cancelOnInstall) Install(ctx context.Context, pkg, v string) error {
	c.cancel()
	<-ctx.Done()
	return ctx.Err()
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
