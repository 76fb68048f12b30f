package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/apt"
	"upkeep.dev/upkeep/installers/dnf"
	"upkeep.dev/upkeep/installers/rpmdb"
	"upkeep.dev/upkeep/installers/zypper"
	"upkeep.dev/upkeep/reconcile/apply"
)

// The host updater's scenarios, run by the real `upkeep agent` binary against
// the real apt, dnf and zypper, each in an isolated root, with signed
// repositories and an `upkeep serve` on loopback. The agent here is the
// package's program; health is its own `health` command (1.2.0 is broken).
// The same scenarios with a real systemd run in agent_systemd_test.go.

const demoPkg = "upkeep-demo-agent"

// demoPayload is the demo agent: a script that prints its version and whose
// `health` command fails in the broken release 1.2.0.
func demoPayload(version string) []repos.File {
	code := 0
	if version == "1.2.0" {
		code = 1
	}
	return []repos.File{{
		Path: repos.DemoAgentBinary,
		Mode: 0o755,
		Data: fmt.Appendf(nil, "#!/bin/sh\nif [ \"$1\" = health ]; then echo \"%s\"; exit %d; fi\necho \"upkeep-demo-agent %s\"\n", version, code, version),
	}}
}

var (
	agentFixtureOnce sync.Once
	agentFixture     *repos.Fixture
	agentFixtureErr  error
)

func sharedAgentFixture(t testing.TB) *repos.Fixture {
	t.Helper()
	repos.RequireTools(t, "gpg", "gpgconf", "dpkg-deb", "apt-ftparchive", "rpm", "rpmbuild", "rpmsign", "createrepo_c")
	agentFixtureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "upkeep-agent-fixture-")
		if err != nil {
			agentFixtureErr = err
			return
		}
		agentFixture, agentFixtureErr = repos.BuildFixture(context.Background(), dir, repos.FixtureOptions{
			Deb: true, RPM: true, Payload: demoPayload,
		})
	})
	if agentFixtureErr != nil {
		t.Fatal(agentFixtureErr)
	}
	return agentFixture
}

// packageHost is one package manager in an isolated root with its signed
// repository.
type packageHost struct {
	kind string
	root string
	inst installers.Installer
	// publish rebuilds the repository from the given package files, signed
	// by key; breakSignature makes its metadata signature fail to verify.
	publish  func(t testing.TB, key *repos.Key, pkgs ...string)
	breakSig func(t testing.TB)
	// otherKeyPackage is 1.1.0 signed by a key nobody trusts, and whether
	// the repository is signed by that key too (apt signs repositories, not
	// packages).
	publishOtherKey func(t testing.TB)
	pkgs            map[string]string
	workDir         string
}

func newPackageHost(t testing.TB, kind string, f *repos.Fixture) *packageHost {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	h := &packageHost{kind: kind, root: filepath.Join(dir, "root")}
	switch kind {
	case "apt":
		repos.RequireTools(t, "apt-get", "dpkg")
		repo, err := repos.NewAptRepo(filepath.Join(dir, "repo"))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := repos.Serve(repo.Dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		if err := apt.InitRoot(h.root); err != nil {
			t.Fatal(err)
		}
		keyring := filepath.Join(h.root, "etc/apt/keyrings/upkeep-test.gpg")
		if err := f.Good.WritePublicKey(ctx, keyring, false); err != nil {
			t.Fatal(err)
		}
		if err := apt.WriteSource(h.root, "upkeep-test", repo.AptSource(srv.URL, keyring)); err != nil {
			t.Fatal(err)
		}
		h.inst = apt.New(apt.Config{Root: h.root})
		h.pkgs = f.Debs
		h.publish = func(t testing.TB, key *repos.Key, pkgs ...string) {
			clearDir(t, filepath.Join(repo.Dir, "pool"))
			for _, p := range pkgs {
				if _, err := repo.Add(p); err != nil {
					t.Fatal(err)
				}
			}
			if err := repo.Publish(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		h.breakSig = func(t testing.TB) {
			tamperFile(t, filepath.Join(repo.Dir, "dists", repo.Suite, "InRelease"), "Suite: stable", "Suite: stab1e")
			tamperFile(t, filepath.Join(repo.Dir, "dists", repo.Suite, "Release"), "Suite: stable", "Suite: stab1e")
		}
		h.publishOtherKey = func(t testing.TB) { h.publish(t, f.Other, f.Debs["1.0.0"], f.Debs["1.1.0"]) }
	case "dnf", "zypper":
		repos.RequireTools(t, kind, "rpm")
		repo, err := repos.NewRPMRepo(filepath.Join(dir, "repo"))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := repos.Serve(repo.Dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		keyFile := filepath.Join(dir, "upkeep-test.asc")
		if err := f.Good.WritePublicKey(ctx, keyFile, true); err != nil {
			t.Fatal(err)
		}
		var reposDir, gpgKey string
		if kind == "dnf" {
			err, reposDir, gpgKey = dnf.InitRoot(ctx, h.root), dnf.ReposDir(h.root), keyFile
			h.inst = dnf.New(dnf.Config{Root: h.root})
		} else {
			err, reposDir = zypper.InitRoot(ctx, h.root), zypper.ReposDir(h.root)
			h.inst = zypper.New(zypper.Config{Root: h.root})
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := rpmdb.ImportKey(ctx, h.root, keyFile); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(reposDir, "upkeep-test.repo"), repo.RepoFile("upkeep-test", srv.URL, gpgKey), 0o644); err != nil {
			t.Fatal(err)
		}
		h.pkgs = f.RPMs
		h.publish = func(t testing.TB, key *repos.Key, pkgs ...string) {
			matches, _ := filepath.Glob(filepath.Join(repo.Dir, "*.rpm"))
			for _, m := range matches {
				os.Remove(m)
			}
			for _, p := range pkgs {
				if _, err := repo.Add(p); err != nil {
					t.Fatal(err)
				}
			}
			if err := repo.Publish(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		h.breakSig = func(t testing.TB) {
			tamperFile(t, filepath.Join(repo.Dir, "repodata", "repomd.xml"), "<revision>", "<revision>1")
		}
		h.publishOtherKey = func(t testing.TB) { h.publish(t, f.Good, f.RPMs["1.0.0"], f.OtherRPMs["1.1.0"]) }
	}
	h.publishGood(t)
	return h
}

func (h *packageHost) breakSignature(t testing.TB) { h.breakSig(t) }
func (h *packageHost) otherKey(t testing.TB)       { h.publishOtherKey(t) }
func (h *packageHost) tamper(t testing.TB)         { tamperPackage(t, h) }

// settings are the configuration fields of an agent in the isolated root:
// nothing runs the agent, so its health is its own health command.
func (h *packageHost) settings(slowSettle bool) map[string]any {
	settle := "2s"
	if slowSettle {
		settle = "30s"
	}
	return map[string]any{
		"package": demoPkg, "installer": h.kind, "root": h.root, "restart": "none",
		"health": map[string]any{
			"systemd": false, "command": []string{filepath.Join(h.root, repos.DemoAgentBinary), "health"},
			"settle": settle, "interval": "500ms",
		},
	}
}

// breakAgent replaces the agent's program with one that fails its health check.
func (h *packageHost) breakAgent(t testing.TB) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(h.root, repos.DemoAgentBinary), []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (h *packageHost) run(t testing.TB, config string) agentRun { return runAgent(t, config) }

func (h *packageHost) start(t testing.TB, config string) (kill func()) {
	cmd := exec.Command(upkeepBin, "agent", "--config", config, "--once")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
}

func (h *packageHost) publishGood(t testing.TB) {
	t.Helper()
	h.publish(t, agentFixture.Good, h.pkgs["1.0.0"], h.pkgs["1.1.0"], h.pkgs["1.2.0"])
}

func (h *packageHost) installed(t testing.TB) string {
	t.Helper()
	v, ok, err := h.inst.Installed(context.Background(), demoPkg)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return ""
	}
	return installers.ReleaseVersion(v)
}

func clearDir(t testing.TB, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func tamperFile(t testing.TB, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fleetServer is `upkeep serve` over a folder the test rewrites.
type fleetServer struct {
	dir       string
	srv       *server
	tokenFile string // the updaters' report token
	token     string
}

func newFleetServer(t testing.TB) *fleetServer {
	fs := &fleetServer{dir: t.TempDir(), token: "e2e-report-token-0123456789"}
	fs.tokenFile = filepath.Join(t.TempDir(), "report-token")
	if err := os.WriteFile(fs.tokenFile, []byte(fs.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs.set(t, "1.0.0", false, false)
	fs.srv = startServe(t, "--source", fs.dir, "--interval", "1s", "--report-token-file", fs.tokenFile)
	waitFor(t, 20*time.Second, "readyz", func() bool {
		code, _, _ := get(t, fs.srv.URL+"/readyz")
		return code == http.StatusOK
	})
	return fs
}

// set writes a fleet with channel demo at version and group demo whose daily
// window is open now (or opens in six hours), and waits until it is served.
func (fs *fleetServer) set(t testing.TB, version string, critical, windowOpen bool) {
	t.Helper()
	now := time.Now().UTC()
	start, duration := now.Add(-time.Hour), "4h"
	if !windowOpen {
		start, duration = now.Add(6*time.Hour), "1h"
	}
	doc := fmt.Sprintf(`apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: demo
spec:
  version: 1.2.0
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: demo
spec:
  controlPlane: demo
  version: %s
  critical: %t
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: demo
spec:
  channel: demo
  timezone: UTC
  updateDuration: 5m
  windows:
    - start: "%s"
      duration: %s
`, version, critical, start.Format("15:04"), duration)
	if err := os.WriteFile(filepath.Join(fs.dir, "fleet.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if fs.srv == nil {
		return
	}
	wantCritical := map[bool]string{true: "yes", false: "no"}[critical]
	waitFor(t, 10*time.Second, "fleet served", func() bool {
		_, v, _ := get(t, fs.srv.URL+"/v1/demo/version")
		_, c, _ := get(t, fs.srv.URL+"/v1/demo/critical")
		_, s, _ := get(t, fs.srv.URL+"/v1/groups/demo/schedule")
		return v == "v"+version && c == wantCritical && strings.Contains(s, start.Format("T15:04"))
	})
}

// agentRun is one `upkeep agent --once`.
type agentRun struct {
	out  string
	code int
}

func (r agentRun) decision() string {
	for _, l := range strings.Split(r.out, "\n") {
		if d, ok := strings.CutPrefix(l, "decision: "); ok {
			return d
		}
	}
	return ""
}

func writeAgentConfig(t testing.TB, path string, fields map[string]any) {
	t.Helper()
	b, err := json.Marshal(fields) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func runAgent(t testing.TB, config string, args ...string) agentRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, upkeepBin, append([]string{"agent", "--config", config, "--once"}, args...)...)
	out, err := cmd.CombinedOutput()
	r := agentRun{out: string(out)}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("upkeep agent: %v\n%s", err, out)
		}
		r.code = ee.ExitCode()
	}
	t.Logf("upkeep agent --once %s → exit %d\n%s", strings.Join(args, " "), r.code, lastLines(r.out, 14))
	return r
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestAgentInIsolatedRoots(t *testing.T) {
	f := sharedAgentFixture(t)
	fleet := newFleetServer(t)
	for _, kind := range []string{"apt", "dnf", "zypper"} {
		t.Run(kind, func(t *testing.T) {
			h := newPackageHost(t, kind, f)
			h.workDir = t.TempDir()
			agentScenarios(t, h, fleet)
		})
	}
}

// agentHost is where the scenarios run the updater: a package manager in an
// isolated root (packageHost) or a real systemd in a container (systemdHost).
type agentHost interface {
	installed(t testing.TB) string
	settings(slowSettle bool) map[string]any // configuration fields; slowSettle leaves time to kill a pass mid-settle
	dir() string                             // a folder both the test and the updater see at the same path
	run(t testing.TB, config string) agentRun
	start(t testing.TB, config string) (kill func()) // a pass in the background
	breakAgent(t testing.TB)                         // make the running agent unhealthy
	publishGood(t testing.TB)
	otherKey(t testing.TB)
	tamper(t testing.TB)
	breakSignature(t testing.TB)
}

func (h *packageHost) dir() string { return h.workDir }

// agentScenarios runs the host updater's scenarios in order on one host;
// each starts from the previous one's end state.
func agentScenarios(t *testing.T, h agentHost, fleet *fleetServer) {
	dir := h.dir()
	stateDir := filepath.Join(dir, "state")
	tokenFile := filepath.Join(dir, "report-token") // where the updater can read it
	if err := os.WriteFile(tokenFile, []byte(fleet.token), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "agent.yaml")
	with := func(slowSettle bool, changes map[string]any) string {
		m := map[string]any{
			"server": fleet.srv.URL, "channel": "demo", "group": "demo",
			"stateDir": stateDir, "updateDuration": "5m",
			"tokenFile": tokenFile, "agentID": "e2e-" + filepath.Base(dir),
		}
		for k, v := range h.settings(slowSettle) {
			m[k] = v
		}
		for k, v := range changes {
			m[k] = v
		}
		p := filepath.Join(dir, fmt.Sprintf("agent-%d.yaml", time.Now().UnixNano()))
		writeAgentConfig(t, p, m)
		return p
	}
	config = with(false, nil)
	runAgent := h.run
	expect := func(t *testing.T, want string) {
		t.Helper()
		if got := h.installed(t); got != want {
			t.Fatalf("installed %q, want %q", got, want)
		}
	}
	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow() // later steps build on this one's end state
		}
	}

	step("an agent not installed yet is installed at once", func(t *testing.T) {
		fleet.set(t, "1.0.0", false, false)
		expect(t, "")
		r := runAgent(t, config)
		if !strings.HasPrefix(r.decision(), "Update (FirstInstall") || r.code != 0 {
			t.Fatalf("decision %q, exit %d; want an update because nothing runs", r.decision(), r.code)
		}
		expect(t, "1.0.0")
	})
	step("outside the window nothing changes", func(t *testing.T) {
		fleet.set(t, "1.1.0", false, false)
		r := runAgent(t, config)
		if !strings.HasPrefix(r.decision(), "Wait (WaitForWindow") || r.code != 0 {
			t.Fatalf("decision %q, exit %d", r.decision(), r.code)
		}
		expect(t, "1.0.0")
	})
	step("a version server that is down changes nothing", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		r := runAgent(t, with(false, map[string]any{"server": dead.URL}))
		if !strings.HasPrefix(r.decision(), "Keep (TargetUnknown") {
			t.Fatalf("decision %q", r.decision())
		}
		expect(t, "1.0.0")
	})
	step("a version server answering an HTML page changes nothing", func(t *testing.T) {
		html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><body>Please log in to the Wi-Fi</body></html>")
		}))
		defer html.Close()
		r := runAgent(t, with(false, map[string]any{"server": html.URL}))
		if !strings.HasPrefix(r.decision(), "Keep (TargetUnknown") || !strings.Contains(r.out, "<html>") {
			t.Fatalf("decision %q; the output should quote the page", r.decision())
		}
		expect(t, "1.0.0")
	})
	step("a critical update outside the window is applied", func(t *testing.T) {
		fleet.set(t, "1.1.0", true, false)
		r := runAgent(t, config)
		if !strings.HasPrefix(r.decision(), "Update (Critical") || r.code != 0 {
			t.Fatalf("decision %q, exit %d", r.decision(), r.code)
		}
		expect(t, "1.1.0")
	})
	step("a broken release is rolled back and skipped until the channel moves", func(t *testing.T) {
		fleet.set(t, "1.2.0", false, true)
		r := runAgent(t, config)
		if !strings.HasPrefix(r.decision(), "Update (InWindow") || !strings.Contains(r.out, "RolledBack") || r.code != 1 {
			t.Fatalf("decision %q, exit %d; want an update that rolled back", r.decision(), r.code)
		}
		expect(t, "1.1.0")
		r = runAgent(t, config)
		if !strings.HasPrefix(r.decision(), "Keep (Skipped") {
			t.Fatalf("second pass: decision %q, want the skip list to keep 1.1.0", r.decision())
		}
		expect(t, "1.1.0")
		st, err := apply.ReadState(stateDir)
		if err != nil || !st.IsSkipped("1.2.0") {
			t.Fatalf("state %+v, %v: 1.2.0 should be skipped", st, err)
		}
	})
	step("lowering the channel downgrades", func(t *testing.T) {
		fleet.set(t, "1.0.0", false, true)
		r := runAgent(t, config)
		if !strings.HasPrefix(r.decision(), "Update (InWindow") || r.code != 0 {
			t.Fatalf("decision %q, exit %d", r.decision(), r.code)
		}
		expect(t, "1.0.0")
		if st, _ := apply.ReadState(stateDir); st.IsSkipped("1.2.0") {
			t.Errorf("1.2.0 still skipped after the channel moved")
		}
	})
	step("an unhealthy agent is updated outside the window", func(t *testing.T) {
		fleet.set(t, "1.1.0", false, false)
		h.breakAgent(t)
		r := runAgent(t, config)
		if !strings.HasPrefix(r.decision(), "Update (Unhealthy") || r.code != 0 {
			t.Fatalf("decision %q, exit %d", r.decision(), r.code)
		}
		expect(t, "1.1.0")
	})
	step("without a schedule the agent updates after the confirmation checks", func(t *testing.T) {
		fleet.set(t, "1.0.0", false, false)
		noSchedule := with(false, map[string]any{"schedule": map[string]any{"source": "file", "file": filepath.Join(dir, "no-such-schedule")}})
		r := runAgent(t, noSchedule)
		if !strings.HasPrefix(r.decision(), "Wait (ScheduleUnusable") {
			t.Fatalf("first check: decision %q, want a wait for confirmation", r.decision())
		}
		expect(t, "1.1.0")
		r = runAgent(t, noSchedule)
		if !strings.HasPrefix(r.decision(), "Update (ScheduleUnusable") || r.code != 0 {
			t.Fatalf("second check: decision %q, exit %d", r.decision(), r.code)
		}
		expect(t, "1.0.0")
	})

	refused := func(t *testing.T, cause ...string) {
		t.Helper()
		r := runAgent(t, config)
		if !strings.HasPrefix(r.decision(), "Update (") || r.code == 0 {
			t.Fatalf("decision %q, exit %d; want an update that fails", r.decision(), r.code)
		}
		expect(t, "1.0.0")
		for _, c := range cause {
			if strings.Contains(strings.ToLower(r.out), c) {
				return
			}
		}
		t.Errorf("the output does not name the cause (any of %q)", cause)
	}
	step("a package signed by another key is refused", func(t *testing.T) {
		fleet.set(t, "1.1.0", false, true)
		h.otherKey(t)
		refused(t, "signature", "public key", "not signed", "no_pubkey", "gpg")
	})
	step("a tampered package is refused", func(t *testing.T) {
		h.publishGood(t)
		h.tamper(t)
		refused(t, "checksum", "hash sum", "digest", "signature", "mismatch")
	})
	step("a broken repository signature is refused", func(t *testing.T) {
		h.publishGood(t)
		h.breakSignature(t)
		refused(t, "signature", "not signed", "gpg", "verif")
	})
	step("an updater killed between install and health check ends consistent", func(t *testing.T) {
		h.publishGood(t)
		kill := h.start(t, with(true, nil))
		waitFor(t, 2*time.Minute, "the journal reaches settling", func() bool {
			j, err := apply.ReadJournal(stateDir)
			return err == nil && j != nil && j.Step == apply.StepSettling
		})
		kill()
		if j, _ := apply.ReadJournal(stateDir); j == nil || !j.Unfinished() {
			t.Fatalf("journal %+v: the kill should leave an unfinished journal", j)
		}
		expect(t, "1.1.0") // installed, not yet judged
		r := runAgent(t, config)
		if !strings.Contains(r.out, "recovered: Updated") {
			t.Fatalf("the next run did not finish the interrupted update")
		}
		expect(t, "1.1.0")
		if j, _ := apply.ReadJournal(stateDir); j != nil && j.Unfinished() {
			t.Fatalf("journal still unfinished: %+v", j)
		}
	})
	step("the server shows the agent's last report", func(t *testing.T) {
		var fleetView struct {
			Agents []struct {
				AgentID        string `json:"agentId"`
				CurrentVersion string `json:"currentVersion"`
				Health         string `json:"health"`
				Rule           string `json:"rule"`
			} `json:"agents"`
		}
		_, body, _ := get(t, fleet.srv.URL+"/v1/fleet", "Authorization", "Bearer "+fleet.token)
		if err := json.Unmarshal([]byte(body), &fleetView); err != nil {
			t.Fatalf("/v1/fleet: %v\n%s", err, body)
		}
		for _, a := range fleetView.Agents {
			if a.AgentID == "e2e-"+filepath.Base(dir) {
				if a.CurrentVersion != "1.1.0" || a.Health != "healthy" || a.Rule != "UpToDate" {
					t.Errorf("report %+v, want 1.1.0, healthy, UpToDate", a)
				}
				return
			}
		}
		t.Fatalf("the agent is not in /v1/fleet: %s", body)
	})
}

// tamperPackage changes 1.1.0's bytes in the repository after it was
// indexed and signed.
func tamperPackage(t testing.TB, h *packageHost) {
	t.Helper()
	name := filepath.Base(h.pkgs["1.1.0"])
	var found string
	filepath.WalkDir(filepath.Dir(h.root), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == name && strings.Contains(p, string(filepath.Separator)+"repo"+string(filepath.Separator)) {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("%s not found in the repository", name)
	}
	// A copy the package manager downloaded earlier is genuine and would be
	// used instead; remove it so the tampered file must be fetched.
	filepath.WalkDir(h.root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), demoPkg) && (strings.HasSuffix(p, ".deb") || strings.HasSuffix(p, ".rpm")) {
			os.Remove(p)
		}
		return nil
	})
	if err := repos.Tamper(found); err != nil {
		t.Fatal(err)
	}
}
