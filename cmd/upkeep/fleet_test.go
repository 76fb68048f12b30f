package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/fleet/sqlstore"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/sources"
	"upkeep.dev/upkeep/sources/fleetclient"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fleetNow is the fixed clock of the fleet tests: Monday 23 November 2026,
// 22:00 UTC, as diffNow.
var fleetNow = diffNow

// fleetToken is the test's bearer token, one of the server's.
const fleetToken = "0123456789abcdef0123456789abcdef"

// fleetRepoFiles is the served fleet: stable/cloud rolls 17.3.0 → 17.4.0
// through a canary stage (us-east-canary), then eu-prod, then the implicit
// stage (apac); edge serves 17.4.2 to edge-hosts at once.
var fleetRepoFiles = map[string]string{
	"control-planes.yaml": controlPlanesYAML,
	"channels/stable.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata: {name: stable/cloud}
spec:
  controlPlane: cloud
  version: 17.4.0
  rollout:
    stages:
      - {groups: [us-east-canary], canaries: 1, bakeTime: 2h}
      - {groups: [eu-prod], canaries: "10%", bakeTime: 4h}
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata: {name: edge}
spec:
  controlPlane: cloud
  version: 17.4.2
`,
	"groups/us-east-canary.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata: {name: us-east-canary}
spec:
  channel: stable/cloud
  timezone: America/New_York
  windows:
    - {days: [Mon, Tue, Wed, Thu, Fri], start: "01:00", duration: 3h}
`,
	"groups/eu-prod.yaml": groupYAML("02:00"),
	"groups/apac.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata: {name: apac}
spec:
  channel: stable/cloud
  timezone: Asia/Tokyo
  updateDuration: 1h
  windows:
    - {days: [Sat], start: "03:00", duration: 2h}
`,
	"groups/edge-hosts.yaml": `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata: {name: edge-hosts}
spec:
  channel: edge
  timezone: UTC
  windows:
    - {start: "00:00", duration: 24h}
`,
}

// testServer is a real version server (reconcile.Reconciler over a folder,
// reconcile/server over a SQLite fleet store) on loopback, with a fixed clock.
type testServer struct {
	URL       string
	Store     *sqlstore.Store
	TokenFile string
	Revision  string
}

func startFleetServer(t testing.TB, files map[string]string) *testServer {
	t.Helper()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	for name, content := range files {
		writeFile(t, repo, name, content)
	}
	now := func() time.Time { return fleetNow }
	rec := reconcile.New(sources.NewFolder(repo), reconcile.Options{Now: now})
	ctx := context.Background()
	if err := rec.Sync(ctx); err != nil {
		t.Fatalf("syncing the test fleet: %v", err)
	}
	store, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(dir, "fleet.db"), fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tokens, err := report.ParseTokens("tokens", []byte("# test\n"+fleetToken+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(rec, server.Options{ReportTokens: tokens, Store: store, Now: now}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(fleetToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testServer{URL: srv.URL, Store: store, TokenFile: tokenFile, Revision: rec.Status().Revision}
}

// agent is one seeded report.
type agent struct {
	id, group, channel, version, health string
	age                                 time.Duration // how long before fleetNow it was received
}

// seed sends each report through the real POST /v1/reports, or, for an
// agent heard from long ago, writes it to the store with that time (the
// server's clock is fixed).
func (s *testServer) seed(t *testing.T, agents []agent) {
	t.Helper()
	c, err := report.NewClient(s.URL, report.ClientOptions{TokenFile: s.TokenFile})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		r := report.Report{AgentID: a.id, Group: a.group, Channel: a.channel, Kind: report.KindHost, Hostname: a.id + ".example.com",
			CurrentVersion: a.version, TargetVersion: a.version, Health: a.health, Action: "Nothing", Rule: "UpToDate", Reason: "UpToDate",
			Message: "runs the target", UpdaterVersion: "test", Time: fleetNow.Add(-a.age)}
		if a.age == 0 {
			if err := c.Send(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := s.Store.PutReport(context.Background(), r, fleetNow.Add(-a.age)); err != nil {
			t.Fatal(err)
		}
	}
}

var fleetAgents = []agent{
	{"c-1", "us-east-canary", "stable/cloud", "17.4.0", "healthy", 0},
	{"c-2", "us-east-canary", "stable/cloud", "17.2.0", "healthy", 0},
	{"e-1", "eu-prod", "stable/cloud", "17.3.0", "healthy", 0},
	{"e-2", "eu-prod", "stable/cloud", "17.3.0", "unhealthy", 0},
	{"e-3", "eu-prod", "stable/cloud", "17.3.0", "healthy", 0},
	{"a-1", "apac", "stable/cloud", "17.3.0", "healthy", time.Hour},
	{"x-1", "edge-hosts", "edge", "17.4.2", "healthy", 0},
	{"x-2", "edge-hosts", "edge", "17.4.1", "healthy", 0},
}

// seedRollout records stable/cloud's rollout as the engine would: baking
// its canary c-1 in stage 0.
func (s *testServer) seedRollout(t *testing.T) {
	t.Helper()
	started := fleetNow.Add(-30 * time.Minute)
	r := fleet.Rollout{Channel: "stable/cloud", Version: "17.4.0", FromVersion: "17.3.0", State: fleet.StateBaking,
		Stage: 0, Step: fleet.StepCanary, Canaries: []string{"c-1"}, Revision: s.Revision, StartedAt: started,
		Since: fleetNow.Add(-10 * time.Minute), BakeUntil: fleetNow.Add(110 * time.Minute),
		Rule: "SuccessThreshold", Reason: "CanariesHealthy", Message: "1 of 1 canaries run 17.4.0 healthy; baking for 2h"}
	tr := fleet.Transition{Channel: r.Channel, Version: r.Version, From: fleet.StateCanary, To: fleet.StateBaking, Stage: 0,
		Step: fleet.StepCanary, Rule: r.Rule, Reason: r.Reason, Message: r.Message, Actor: "leader-test", At: r.Since}
	if _, err := s.Store.SaveRollout(context.Background(), r, tr); err != nil {
		t.Fatal(err)
	}
}

// runCmd runs the command args against the clock and returns its output
// and the exit code main would return.
func runCmd(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	root := newRootCmd()
	if c, _, err := root.Find([]string{"rollout"}); err == nil {
		root.RemoveCommand(c)
	}
	root.AddCommand(newRolloutCmdAt(func() time.Time { return fleetNow }))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	code := 0
	if err != nil {
		var coded *exitCodeError
		switch {
		case errors.As(err, &coded):
			code = coded.Code
		case isUsageError(err):
			code = 2
		default:
			code = 1
		}
		t.Logf("upkeep %s: exit %d: %v", strings.Join(args, " "), code, err)
	}
	return out.String(), code, err
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// stable replaces the parts of an output that differ between runs: the
// test server's port.
func (s *testServer) stable(out string) string {
	return strings.ReplaceAll(out, s.URL, "http://127.0.0.1:PORT")
}

func TestFleetCommand(t *testing.T) {
	s := startFleetServer(t, fleetRepoFiles)
	s.seed(t, fleetAgents)
	s.seedRollout(t)
	auth := []string{"--server", s.URL, "--token-file", s.TokenFile}

	for _, tc := range []struct {
		scenario, golden string
		args             []string
	}{
		{"the table counts behind, unhealthy and stale agents against the rollout's per-agent answer", "fleet.txt", nil},
		{"json carries the same view for tools", "fleet.json", []string{"-o", "json"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			out, code, _ := runCmd(t, append(append([]string{"fleet"}, auth...), tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			golden(t, tc.golden, s.stable(out))
		})
	}

	t.Run("the table's key figures", func(t *testing.T) {
		out, _, _ := runCmd(t, append([]string{"fleet"}, auth...)...)
		for _, want := range []string{
			"8 agents: 6 on target, 2 behind, 1 unhealthy, 1 stale",
			// c-2 is no canary: the rollout holds it at 17.3.0, which it is below.
			"c-2    us-east-canary  17.2.0   17.3.0 (held: NotCanary)",
			"x-2    edge-hosts      17.4.1   17.4.2",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, fleetToken) {
			t.Error("the output shows the token")
		}
	})
}

func TestOperatorCommandErrors(t *testing.T) {
	s := startFleetServer(t, fleetRepoFiles)
	wrong := filepath.Join(t.TempDir(), "wrong-token")
	if err := os.WriteFile(wrong, []byte("ffffffffffffffffffffffffffffffff\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scenario string
		args     []string
		code     int
		want     []string
	}{
		{scenario: "a token the server does not hold is a 401 that names the token file and the server's flag",
			args: []string{"fleet", "--server", s.URL, "--token-file", wrong}, code: 1,
			want: []string{"401 Unauthorized", "does not accept the token in " + wrong, "--report-token-file"}},
		{scenario: "plain http beyond loopback is refused before any request",
			args: []string{"fleet", "--server", "http://upkeep.example.com", "--token-file", s.TokenFile}, code: 2,
			want: []string{"plain http:// to \"upkeep.example.com\" is refused: use https://"}},
		{scenario: "no token file says which flag to pass",
			args: []string{"rollout", "status", "stable/cloud", "--server", s.URL, "--token-file", ""}, code: 2,
			want: []string{"pass --token-file"}},
		{scenario: "a channel without a rollout is a 404 that says where to look",
			args: []string{"rollout", "status", "edge", "--server", s.URL, "--token-file", s.TokenFile}, code: 1,
			want: []string{"404 Not Found", "has no rollout", "upkeep rollout status"}},
		{scenario: "an unknown output format is a usage error",
			args: []string{"fleet", "--server", s.URL, "--token-file", s.TokenFile, "-o", "yaml"}, code: 2,
			want: []string{"use table or json"}},
		{scenario: "a wrong token never shows in the error",
			args: []string{"rollout", "halt", "stable/cloud", "--server", s.URL, "--token-file", wrong}, code: 1,
			want: []string{"401"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, code, err := runCmd(t, tc.args...)
			if code != tc.code || err == nil {
				t.Fatalf("exit %d (%v), want %d", code, err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "ffffffffffffffff") || strings.Contains(err.Error(), fleetToken) {
				t.Errorf("the error shows a token: %v", err)
			}
		})
	}

	t.Run("a server without the fleet routes is a 404 that says to start it with --report-token-file and --store", func(t *testing.T) {
		dir := t.TempDir()
		for name, content := range fleetRepoFiles {
			writeFile(t, dir, name, content)
		}
		rec := reconcile.New(sources.NewFolder(dir), reconcile.Options{})
		if err := rec.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		bare := httptest.NewServer(server.New(rec, server.Options{}))
		defer bare.Close()
		_, code, err := runCmd(t, "fleet", "--server", bare.URL, "--token-file", s.TokenFile)
		if code != 1 || err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "--report-token-file (and a fleet store, --store)") {
			t.Errorf("exit %d: %v", code, err)
		}
	})
}

// BenchmarkFleetCommand10k is `upkeep fleet` over loopback HTTP against a
// SQLite store of 10,000 agents: the paged GET /v1/fleet, the channels,
// groups and rollouts, judging every agent and the table.
func BenchmarkFleetCommand10k(b *testing.B) {
	s := startFleetServer(b, fleetRepoFiles)
	groups := []string{"us-east-canary", "eu-prod", "apac", "edge-hosts"}
	for i := range 10_000 {
		g := groups[i%len(groups)]
		ch := "stable/cloud"
		if g == "edge-hosts" {
			ch = "edge"
		}
		r := report.Report{AgentID: fmt.Sprintf("h-%05d", i), Group: g, Channel: ch, Kind: report.KindHost, Hostname: fmt.Sprintf("h-%05d", i),
			CurrentVersion: []string{"17.3.0", "17.4.0"}[i%2], TargetVersion: "17.4.0", Health: report.HealthHealthy, Action: "Nothing",
			Rule: "UpToDate", Reason: "UpToDate", UpdaterVersion: "test", Time: fleetNow}
		if _, err := s.Store.PutReport(context.Background(), r, fleetNow); err != nil {
			b.Fatal(err)
		}
	}
	c, err := fleetclient.New(s.URL, fleetclient.Options{TokenFile: s.TokenFile})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		var out bytes.Buffer
		if err := runFleet(context.Background(), &out, c, "table"); err != nil {
			b.Fatal(err)
		}
	}
}
