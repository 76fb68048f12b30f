package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/e2e/demoagent/demopkg"
	"upkeep.dev/upkeep/e2e/hostdeps/repos"
	"upkeep.dev/upkeep/e2e/nspawn"
	"upkeep.dev/upkeep/installers"
)

// TestAgentUnderSystemd runs the host updater's scenarios with apt and a real
// systemd: a container booted with systemd-nspawn over the host root, the
// demo agent (an HTTP server; 1.2.0 crashes a second after it starts) as a
// systemd unit from a signed apt repository on loopback, and `upkeep agent`
// run inside the container. Last, one pass runs through the hardened unit in
// examples/systemd, to show its sandbox lets a package install through.
func TestAgentUnderSystemd(t *testing.T) {
	nspawn.Require(t)
	ctx := context.Background()
	pk := demopkg.BuildPackagesWith(t, t.TempDir(), demopkg.Options{SkipRPM: true})
	repo := pk.ServeAptT(t, demopkg.DefaultVersions...)
	other, err := repos.NewKey(ctx, t.TempDir(), "upkeep e2e other key")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })

	// Folders the test and the container share at the same path. os.MkdirTemp,
	// not t.TempDir: its names can hold commas, which overlay options forbid.
	work, err := os.MkdirTemp("", "upkeep-agent-systemd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	binDir := filepath.Dir(upkeepBin)
	c := nspawn.Boot(t, nspawn.Options{Binds: []nspawn.Bind{
		{Host: work, Container: work},
		{Host: binDir, Container: binDir, ReadOnly: true},
	}})
	const keyring = "/etc/apt/keyrings/upkeep-demo.gpg"
	for _, step := range []func() error{
		func() error { return c.RemoveAptSources(ctx) },
		func() error { return c.WriteFile(ctx, keyring, repo.Keyring, 0o644) },
		func() error {
			return c.WriteFile(ctx, "/etc/apt/sources.list.d/upkeep-demo.sources", repo.Source(keyring), 0o644)
		},
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}

	fleet := newFleetServer(t)
	h := &systemdHost{c: c, pk: pk, repo: repo, other: other, work: work}
	t.Run("scenarios", func(t *testing.T) { agentScenarios(t, h, fleet) })
	if t.Failed() {
		return
	}

	t.Run("the hardened unit installs a package", func(t *testing.T) {
		// The last scenario left 1.1.0; lowering the channel asks for 1.0.0.
		fleet.set(t, "1.0.0", false, true)
		// The unit exactly as shipped: PrivateTmp= hides the test's /tmp, so
		// the binary goes where the unit expects it.
		unit, err := os.ReadFile(filepath.Join(repoRoot(), "examples/systemd/upkeep-agent.service"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CopyFile(ctx, upkeepBin, "/usr/local/bin/upkeep", 0o755); err != nil {
			t.Fatal(err)
		}
		config := h.settings(false)
		config["server"], config["channel"], config["group"] = fleet.srv.URL, "demo", "demo"
		writeAgentConfig(t, filepath.Join(work, "unit-agent.yaml"), config)
		yaml, _ := os.ReadFile(filepath.Join(work, "unit-agent.yaml"))
		for _, err := range []error{
			c.WriteFile(ctx, "/etc/systemd/system/upkeep-agent.service", unit, 0o644),
			c.WriteFile(ctx, "/etc/upkeep/agent.yaml", yaml, 0o644),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		h.exec(t, "systemctl", "daemon-reload")
		out, err := c.Exec(ctx, "systemctl", "start", "upkeep-agent.service")
		journal, _ := c.Exec(ctx, "journalctl", "-u", "upkeep-agent.service", "-o", "cat", "--no-pager")
		t.Logf("upkeep-agent.service:\n%s", lastLines(journal, 12))
		if err != nil {
			status, _ := c.Exec(ctx, "systemctl", "status", "--no-pager", "upkeep-agent.service")
			t.Fatalf("systemctl start upkeep-agent.service: %v\n%s\n%s", err, out, status)
		}
		if got := h.installed(t); got != "1.0.0" {
			t.Fatalf("installed %q after the unit's pass, want 1.0.0", got)
		}
		if !strings.Contains(journal, `"outcome":"Updated"`) {
			t.Errorf("the unit's log does not show the update")
		}
	})
}

// systemdHost is the demo agent as a package and a systemd unit in a container.
type systemdHost struct {
	c     *nspawn.Container
	pk    *demopkg.Packages
	repo  *demopkg.AptRepo
	other *repos.Key
	work  string
}

func (h *systemdHost) dir() string { return h.work }

func (h *systemdHost) exec(t testing.TB, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := h.c.Exec(ctx, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (h *systemdHost) installed(t testing.TB) string {
	t.Helper()
	out, err := h.c.Exec(context.Background(), "dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", demopkg.Name)
	if err != nil {
		if strings.Contains(out, "no packages found") {
			return ""
		}
		t.Fatal(err)
	}
	status, version, _ := strings.Cut(strings.TrimSpace(out), " ")
	if status != "installed" {
		return ""
	}
	return installers.ReleaseVersion(version)
}

func (h *systemdHost) settings(slowSettle bool) map[string]any {
	// The agent needs a moment to listen after a restart, and three probes in
	// a row must then pass.
	settle := "6s"
	if slowSettle {
		settle = "40s"
	}
	return map[string]any{
		"package": demopkg.Name, "unit": demopkg.UnitName, "installer": "apt", "restart": "restart",
		"health": map[string]any{
			"http":    map[string]any{"url": h.pk.HealthURL(), "status": 200},
			"systemd": true, "settle": settle, "interval": "1s",
		},
	}
}

func (h *systemdHost) run(t testing.TB, config string) agentRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := h.c.Exec(ctx, upkeepBin, "agent", "--config", config, "--once")
	r := agentRun{out: out}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("upkeep agent in the container: %v", err)
		}
		r.code = ee.ExitCode()
	}
	t.Logf("upkeep agent --once (systemd) → exit %d\n%s", r.code, lastLines(r.out, 14))
	return r
}

// start runs a pass as a transient unit, so that it can be SIGKILLed inside
// the container like a real updater.
func (h *systemdHost) start(t testing.TB, config string) (kill func()) {
	const unit = "upkeep-killed-pass"
	h.exec(t, "systemd-run", "--unit="+unit, "--collect", "--quiet", upkeepBin, "agent", "--config", config, "--once")
	return func() { h.exec(t, "systemctl", "kill", "--signal=KILL", unit+".service") }
}

func (h *systemdHost) breakAgent(t testing.TB) { h.exec(t, "systemctl", "stop", demopkg.UnitName) }

func (h *systemdHost) publish(t testing.TB, key *repos.Key, versions ...string) {
	t.Helper()
	clearDir(t, filepath.Join(h.repo.Dir, "pool"))
	for _, v := range versions {
		if _, err := h.repo.AptRepo.Add(h.pk.Debs[v]); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.repo.Publish(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

func (h *systemdHost) publishGood(t testing.TB) { h.publish(t, h.pk.Key, demopkg.DefaultVersions...) }

func (h *systemdHost) otherKey(t testing.TB) { h.publish(t, h.other, demopkg.DefaultVersions...) }

func (h *systemdHost) breakSignature(t testing.TB) {
	dists := filepath.Join(h.repo.Dir, "dists", h.repo.Suite)
	tamperFile(t, filepath.Join(dists, "InRelease"), "Suite: stable", "Suite: stab1e")
	tamperFile(t, filepath.Join(dists, "Release"), "Suite: stable", "Suite: stab1e")
}

func (h *systemdHost) tamper(t testing.TB) {
	t.Helper()
	name := filepath.Base(h.pk.Debs["1.1.0"])
	matches, _ := filepath.Glob(filepath.Join(h.repo.Dir, "pool", "*", "*", "*", name))
	if len(matches) == 0 {
		matches, _ = filepath.Glob(filepath.Join(h.repo.Dir, "pool", "*", name))
	}
	if len(matches) != 1 {
		t.Fatalf("%s in the pool: %v", name, matches)
	}
	if err := repos.Tamper(matches[0]); err != nil {
		t.Fatal(err)
	}
	// The genuine copy apt downloaded earlier would be used instead.
	h.exec(t, "apt-get", "clean")
}
