//go:build unix

package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
)

// The real thing for the package manager's part: the updater is signalled
// at every journal step of an apply driven through real apt/dpkg, dnf/rpm
// and zypper/rpm (isolated roots, signed repositories on loopback, packages
// whose post-install script takes slowPostinst), and the next pass must
// converge without anyone running a command by hand.

const (
	realPkg      = "upkeep-demo-agent"
	slowPostinst = 2 * time.Second
)

// realTarget is the host updater's Target minus systemd: the real installer,
// a restart that does nothing, a settle that finds UPKEEP_UNHEALTHY
// unhealthy. pauseAt names a call ("install 1.1.0", "restart 1.0.0",
// "settle 1.1.0") at whose start it writes dir/paused and waits for the stop
// (a signal) — so the test signals at exactly that step.
type realTarget struct {
	inst      installers.Installer
	dir       string
	pauseAt   string
	unhealthy string
}

func (t *realTarget) pause(ctx context.Context, call string) {
	if call != t.pauseAt {
		return
	}
	os.WriteFile(filepath.Join(t.dir, "paused"), []byte(call), 0o644)
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
	}
}

func (t *realTarget) Current(ctx context.Context) (string, error) {
	v, ok, err := t.inst.Installed(ctx, realPkg)
	if err != nil || !ok {
		return "", err
	}
	return installers.ReleaseVersion(v), nil
}

func (t *realTarget) Install(ctx context.Context, v string) error {
	t.pause(ctx, "install "+v)
	return t.inst.Install(ctx, realPkg, v)
}

func (t *realTarget) Restart(ctx context.Context) error {
	v, _ := t.Current(context.WithoutCancel(ctx))
	t.pause(ctx, "restart "+v)
	return ctx.Err()
}

func (t *realTarget) Settle(ctx context.Context) (bool, string, error) {
	v, _ := t.Current(context.WithoutCancel(ctx))
	t.pause(ctx, "settle "+v)
	if err := ctx.Err(); err != nil {
		return false, "settling stopped", err
	}
	if v == t.unhealthy {
		return false, "crash loop", nil
	}
	return true, "healthy", nil
}

func (t *realTarget) Repair(ctx context.Context, keep string) (Repair, error) {
	rep, err := t.inst.(installers.Repairer).Repair(ctx, realPkg, keep)
	return Repair{Rule: rep.Rule, Message: rep.Message, Commands: rep.Commands}, err
}

func newRealInstaller(kind, root string) installers.Installer {
	switch kind {
	case "apt":
		return apt.New(apt.Config{Root: root, Package: realPkg})
	case "dnf":
		return dnf.New(dnf.Config{Root: root})
	}
	return zypper.New(zypper.Config{Root: root})
}

// realApplyHelper is the updater process: the signal handling of `upkeep
// agent` (NotifyStop, WithAbort, exit 143 or 75) around Recover and an Apply
// from 1.0.0 to 1.1.0.
func realApplyHelper() {
	dir := os.Getenv("UPKEEP_DIR")
	tgt := &realTarget{inst: newRealInstaller(os.Getenv("UPKEEP_PM"), os.Getenv("UPKEEP_ROOT")), dir: dir,
		pauseAt: os.Getenv("UPKEEP_PAUSE_AT"), unhealthy: os.Getenv("UPKEEP_UNHEALTHY")}
	bound, _ := time.ParseDuration(os.Getenv("UPKEEP_STOP_BOUND"))
	ctx, stopper := NotifyStop(context.Background(), bound, func() {
		time.AfterFunc(5*time.Second, func() { os.Exit(75) })
	}, syscall.SIGTERM, os.Interrupt)
	ctx = installers.WithAbort(ctx, stopper.Abort())
	a := &Applier{Dir: dir, Target: tgt, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if _, err := a.Recover(ctx); err != nil {
		fmt.Println("RECOVER", err)
		os.Exit(1)
	}
	res := a.Apply(ctx, "1.0.0", "1.1.0")
	fmt.Printf("RESULT %s %s %s\n", res.Outcome, res.Reason, res.Message)
	switch {
	case stopper.Aborted():
		os.Exit(75)
	case stopper.Signal() != nil:
		os.Exit(143)
	}
	os.Exit(0)
}

// pmFixture is one package manager's signed repository of the slow packages.
type pmFixture struct {
	kind    string
	url     string
	keyFile string // armored public key (rpm) or keyring (apt)
}

var (
	fixtures     = map[string]*pmFixture{}
	fixturesMu   sync.Mutex
	fixtureKey   *repos.Key
	fixtureKeyMu sync.Mutex
)

func slowFixture(t *testing.T, kind string) *pmFixture {
	t.Helper()
	tools := []string{"gpg", "gpgconf"}
	switch kind {
	case "apt":
		tools = append(tools, "dpkg-deb", "apt-ftparchive", "apt-get", "dpkg")
	default:
		tools = append(tools, "rpm", "rpmbuild", "rpmsign", "createrepo_c", kind)
	}
	repos.RequireTools(t, tools...)
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if f := fixtures[kind]; f != nil {
		return f
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "upkeep-slow-"+kind+"-")
	if err != nil {
		t.Fatal(err)
	}
	fixtureKeyMu.Lock()
	if fixtureKey == nil {
		if fixtureKey, err = repos.NewKey(ctx, dir, "slow"); err != nil {
			fixtureKeyMu.Unlock()
			t.Fatal(err)
		}
	}
	key := fixtureKey
	fixtureKeyMu.Unlock()
	f := &pmFixture{kind: kind}
	var serveDir string
	if kind == "apt" {
		r, err := repos.NewAptRepo(filepath.Join(dir, "repo"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"1.0.0", "1.1.0"} {
			deb, err := repos.BuildDeb(ctx, repos.Package{Name: realPkg, Version: v, Files: repos.DemoAgentFiles(v), PostInstallSleep: slowPostinst}, dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Add(deb); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Publish(ctx, key); err != nil {
			t.Fatal(err)
		}
		f.keyFile = filepath.Join(dir, "slow.gpg")
		if err := key.WritePublicKey(ctx, f.keyFile, false); err != nil {
			t.Fatal(err)
		}
		serveDir = r.Dir
	} else {
		r, err := repos.NewRPMRepo(filepath.Join(dir, "repo"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"1.0.0", "1.1.0"} {
			rpm, err := repos.BuildRPM(ctx, repos.Package{Name: realPkg, Version: v, Files: repos.DemoAgentFiles(v), PostInstallSleep: slowPostinst}, dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := key.SignRPM(ctx, rpm); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Add(rpm); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Publish(ctx, key); err != nil {
			t.Fatal(err)
		}
		f.keyFile = filepath.Join(dir, "slow.asc")
		if err := key.WritePublicKey(ctx, f.keyFile, true); err != nil {
			t.Fatal(err)
		}
		serveDir = r.Dir
	}
	srv, err := repos.Serve(serveDir)
	if err != nil {
		t.Fatal(err)
	}
	f.url = srv.URL
	fixtures[kind] = f
	return f
}

// newRoot makes an isolated root trusting the fixture's key, with 1.0.0
// installed through the installer.
func (f *pmFixture) newRoot(t *testing.T) (string, installers.Installer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := filepath.Join(t.TempDir(), "root")
	switch f.kind {
	case "apt":
		if err := apt.InitRoot(root); err != nil {
			t.Fatal(err)
		}
		keyring := filepath.Join(root, "etc/apt/keyrings/slow.gpg")
		if err := repos.CopyFile(f.keyFile, keyring); err != nil {
			t.Fatal(err)
		}
		src := fmt.Sprintf("Types: deb\nURIs: %s\nSuites: stable\nComponents: main\nSigned-By: %s\n", f.url, keyring)
		if err := apt.WriteSource(root, "slow", []byte(src)); err != nil {
			t.Fatal(err)
		}
	case "dnf", "zypper":
		init, reposDir := dnf.InitRoot, dnf.ReposDir
		repoKey := f.keyFile
		if f.kind == "zypper" {
			init, reposDir, repoKey = zypper.InitRoot, zypper.ReposDir, ""
		}
		if err := init(ctx, root); err != nil {
			t.Fatal(err)
		}
		if err := rpmdb.ImportKey(ctx, root, f.keyFile); err != nil {
			t.Fatal(err)
		}
		rr := &repos.RPMRepo{}
		if err := os.WriteFile(filepath.Join(reposDir(root), "slow.repo"), rr.RepoFile("slow", f.url, repoKey), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inst := newRealInstaller(f.kind, root)
	if err := inst.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inst.Install(ctx, realPkg, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	// The test watches for the next post-install script to start.
	markers, _ := filepath.Glob(filepath.Join(root, "postinst-*.started"))
	for _, m := range markers {
		os.Remove(m)
	}
	return root, inst
}

// settled checks that no package command is half done: dpkg lists the
// package "installed" (not half-configured), rpm lists one version.
func settled(t *testing.T, kind, root string) string {
	t.Helper()
	ctx := context.Background()
	if kind == "apt" {
		out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f=${db:Status-Abbrev}|${Version}", realPkg).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "ii |") {
			t.Fatalf("dpkg status %q, %v: want \"ii \" (install ok installed)", out, err)
		}
		return strings.TrimPrefix(string(out), "ii |")
	}
	vs, err := rpmdb.AllInstalled(ctx, root, realPkg, 0)
	if err != nil || len(vs) != 1 {
		t.Fatalf("rpm lists %v, %v: want exactly one version", vs, err)
	}
	return installers.ReleaseVersion(vs[0])
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSignalsAtEveryStepWithRealPackageManagers(t *testing.T) {
	if testing.Short() {
		t.Skip("drives real package managers")
	}
	type point struct {
		name      string
		pauseAt   string // the call the target pauses at; "" = the postinst marker of version
		postinst  string // signal once this version's post-install script runs
		unhealthy bool
		bound     time.Duration // the stop bound (0: wait as long as it takes)
		// killPM: SIGKILL the package manager's whole process group too, as
		// a power loss would, so the next pass must repair its database.
		killPM   bool
		wantRule string // the repair the next pass names
		// after a SIGTERM: the journal step left, and the end after the next pass
		step Step
	}
	points := []point{
		{name: "before the package command starts", pauseAt: "install 1.1.0", step: StepInstalling},
		{name: "during the package command", postinst: "1.1.0", step: StepRestarting},
		{name: "during the package command, past the stop bound (left running)", postinst: "1.1.0", bound: 300 * time.Millisecond, step: StepInstalling},
		{name: "after the install, before health (restart)", pauseAt: "restart 1.1.0", step: StepRestarting},
		{name: "during health", pauseAt: "settle 1.1.0", step: StepSettling},
		{name: "after the rollback starts", pauseAt: "restart 1.0.0", unhealthy: true, step: StepRollingBack},
		{name: "during the rollback's package command", postinst: "1.0.0", unhealthy: true, step: StepRollingBack},
		{name: "with the package manager, during the package command (power loss)", postinst: "1.1.0", killPM: true, step: StepInstalling},
		{name: "with the package manager, during the rollback's package command (power loss)", postinst: "1.0.0", unhealthy: true, killPM: true, step: StepRollingBack},
	}
	for _, kind := range []string{"apt", "dnf", "zypper"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel() // separate roots and locks; about 1.5, 3.5 and 2.5 minutes alone
			f := slowFixture(t, kind)
			for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
				for _, p := range points {
					if sig == syscall.SIGKILL && p.bound > 0 || sig == syscall.SIGTERM && p.killPM {
						continue // a bound is for SIGTERM only; a power loss is a SIGKILL
					}
					t.Run(fmt.Sprintf("%v %s", sig, p.name), func(t *testing.T) {
						root, inst := f.newRoot(t)
						dir := t.TempDir()
						unhealthy := ""
						if p.unhealthy {
							unhealthy = "1.1.0"
						}
						env := []string{"UPKEEP_DIR=" + dir, "UPKEEP_ROOT=" + root, "UPKEEP_PM=" + kind,
							"UPKEEP_PAUSE_AT=" + p.pauseAt, "UPKEEP_UNHEALTHY=" + unhealthy, "UPKEEP_STOP_BOUND=" + p.bound.String()}
						cmd, _, out := helper(t, "realapply", env...)
						if p.postinst != "" {
							marker := filepath.Join(root, repos.PostInstallMarker(p.postinst))
							waitFor(t, "the post-install script of "+p.postinst+" starts", 90*time.Second, func() bool { _, err := os.Stat(marker); return err == nil })
						} else {
							waitFor(t, "the updater reaches "+p.pauseAt, 90*time.Second, func() bool { _, err := os.Stat(filepath.Join(dir, "paused")); return err == nil })
						}
						var pmTree []int
						if p.killPM {
							pmTree = descendants(childOf(t, cmd.Process.Pid))
						}
						start := time.Now()
						cmd.Process.Signal(sig)
						for _, pid := range pmTree {
							syscall.Kill(pid, syscall.SIGKILL)
						}
						waitFor(t, "the package manager dies", 10*time.Second, func() bool {
							for _, pid := range pmTree {
								if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
									return false
								}
							}
							return true
						})
						line := readLine(t, out)
						err := cmd.Wait()
						took := time.Since(start)
						var ee *exec.ExitError
						errors.As(err, &ee)
						if ee == nil {
							t.Fatalf("the updater ended with %v after %s (said %q); want a stopped exit", err, took, line)
						}
						code := ee.ExitCode()

						ctx := context.Background()
						a := &Applier{Dir: dir, Target: &realTarget{inst: inst, dir: t.TempDir(), unhealthy: unhealthy}, Logger: quietLogger()}
						if sig == syscall.SIGTERM {
							wantCode := 143
							if p.bound > 0 {
								wantCode = 75
							}
							if code != wantCode || !strings.HasPrefix(line, "RESULT Interrupted") {
								t.Fatalf("exit %d, said %q; want %d and an Interrupted result", code, line, wantCode)
							}
							if j := mustJournal(t, dir); j == nil || j.Step != p.step {
								t.Fatalf("journal %+v, want it at %s", j, p.step)
							}
							if p.bound == 0 {
								// The package command had finished before the updater exited.
								got := settled(t, kind, root)
								t.Logf("stopped in %s; %s installed; %s", took.Round(time.Millisecond), got, line)
							}
						} else if ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
							t.Fatalf("updater not killed: %v", err)
						}

						// While a package command the updater left behind still runs,
						// the next pass waits and says who runs; it never advises
						// `dpkg --configure -a`.
						if p.postinst != "" && !p.killPM && (sig == syscall.SIGKILL || p.bound > 0) {
							if _, err := a.Recover(ctx); err == nil || !errors.Is(err, installers.ErrLocked) ||
								!strings.Contains(err.Error(), "another package manager (pid ") || strings.Contains(err.Error(), "--configure") {
								t.Fatalf("Recover while the package manager runs: %v; want it to wait, naming the pid, never advising dpkg --configure -a", err)
							} else {
								t.Logf("while it runs: %v", err)
							}
							if _, _, err := inst.Installed(ctx, realPkg); err != nil && strings.Contains(err.Error(), "--configure") {
								t.Fatalf("Installed while dpkg runs advises dpkg --configure -a: %v", err)
							}
							waitFor(t, "the package manager left running finishes", 60*time.Second, func() bool {
								_, busy := busyHolder(kind, root)
								return !busy
							})
							settled(t, kind, root)
						}

						// The next pass converges: Recover, then (when the update had
						// not started) the next check's Apply.
						res, err := a.Recover(ctx)
						if err != nil {
							t.Fatalf("Recover: %v", err)
						}
						if p.killPM {
							if res == nil || res.Repair == nil || !strings.Contains(res.Message, "first repaired the package manager") {
								t.Fatalf("after a power loss the next pass repaired nothing: %+v", res)
							}
							t.Logf("repaired: %s: %s; %v", res.Repair.Rule, res.Repair.Message, res.Repair.Commands)
						}
						if res == nil || (res.Outcome == Failed && res.Reason == ReasonInterruptedBeforeChange) {
							r := a.Apply(ctx, "1.0.0", "1.1.0")
							res = &r
						}
						if j := mustJournal(t, dir); j.Unfinished() {
							t.Fatalf("journal unfinished after the next pass: %+v", j)
						}
						want, wantOutcome := "1.1.0", Updated
						if p.unhealthy {
							want, wantOutcome = "1.0.0", RolledBack
						}
						if got := settled(t, kind, root); installers.ReleaseVersion(got) != want || res.Outcome != wantOutcome {
							t.Fatalf("after the next pass: %s installed, %s/%s: %s; want %s %s", got, res.Outcome, res.Reason, res.Message, want, wantOutcome)
						}
					})
				}
			}
		})
	}
}

// childOf returns the pid of pid's one child process: the package command
// the updater started (the leader of its own session and process group).
func childOf(t *testing.T, pid int) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ")".
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == fmt.Sprint(pid) {
			var child int
			fmt.Sscan(e.Name(), &child)
			return child
		}
	}
	t.Fatalf("the updater (pid %d) has no child: no package command runs", pid)
	return 0
}

// descendants returns pid and every process below it (apt runs dpkg in a
// session of its own, so neither a process group nor a session holds the
// whole package manager).
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		var p, pp int
		fmt.Sscan(e.Name(), &p)
		if len(f) > 1 {
			fmt.Sscan(f[1], &pp)
			parent[p] = pp
		}
	}
	tree := []int{pid}
	for k := 0; k < len(tree); k++ {
		for p, pp := range parent {
			if pp == tree[k] {
				tree = append(tree, p)
			}
		}
	}
	return tree
}

// busyHolder is whether a package manager of kind holds its lock in root.
func busyHolder(kind, root string) (string, bool) {
	b, ok := newRealInstaller(kind, root).(interface{ Busy() (string, bool) })
	if !ok {
		panic(kind + " installer has no Busy")
	}
	return b.Busy()
}
