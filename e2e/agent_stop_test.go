package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/e2e/demoagent/demopkg"
	"upkeep.dev/upkeep/e2e/hostdeps/repos"
	"upkeep.dev/upkeep/e2e/nspawn"
)

// TestAgentUnitStoppedMidInstall stops the shipped upkeep-agent.service
// with `systemctl stop` while apt's transaction runs (the demo agent's
// post-install script takes 6 s), in a real systemd: the stop waits for the
// transaction, dpkg is left "install ok installed", upkeep exits 143 (not a
// failure of the unit), the journal says the install finished, and the next start of the unit
// restarts and judges the new version without anyone repairing dpkg.
func TestAgentUnitStoppedMidInstall(t *testing.T) {
	nspawn.Require(t)
	ctx := context.Background()
	pk := demopkg.BuildPackagesWith(t, t.TempDir(), demopkg.Options{SkipRPM: true, Broken: []string{}, PostInstallSleep: 6 * time.Second})
	repo := pk.ServeAptT(t, "1.0.0", "1.1.0")
	work, err := os.MkdirTemp("", "upkeep-agent-stop-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	c := nspawn.Boot(t, nspawn.Options{Binds: []nspawn.Bind{{Host: work, Container: work}}})
	h := &systemdHost{c: c, pk: pk, repo: repo, work: work}
	const keyring = "/etc/apt/keyrings/upkeep-demo.gpg"
	unit, err := os.ReadFile(filepath.Join(repoRoot(), "examples/systemd/upkeep-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	fleet := newFleetServer(t)
	config := h.settings(false)
	config["server"], config["channel"], config["group"] = fleet.srv.URL, "demo", "demo"
	writeAgentConfig(t, filepath.Join(work, "agent.yaml"), config)
	yaml, _ := os.ReadFile(filepath.Join(work, "agent.yaml"))
	for _, err := range []error{
		c.RemoveAptSources(ctx),
		c.WriteFile(ctx, keyring, repo.Keyring, 0o644),
		c.WriteFile(ctx, "/etc/apt/sources.list.d/upkeep-demo.sources", repo.Source(keyring), 0o644),
		c.CopyFile(ctx, upkeepBin, "/usr/local/bin/upkeep", 0o755),
		c.WriteFile(ctx, "/etc/systemd/system/upkeep-agent.service", unit, 0o644),
		c.WriteFile(ctx, "/etc/upkeep/agent.yaml", yaml, 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	h.exec(t, "systemctl", "daemon-reload")
	unitLog := func() string {
		out, _ := c.Exec(ctx, "journalctl", "-u", "upkeep-agent.service", "-o", "cat", "--no-pager")
		return out
	}

	// The first install (1.0.0) through the unit.
	fleet.set(t, "1.0.0", false, true)
	if out, err := c.Exec(ctx, "systemctl", "start", "upkeep-agent.service"); err != nil {
		t.Fatalf("first pass: %v\n%s\n%s", err, out, lastLines(unitLog(), 20))
	}
	if got := h.installed(t); got != "1.0.0" {
		t.Fatalf("installed %q, want 1.0.0\n%s", got, lastLines(unitLog(), 20))
	}

	fleet.set(t, "1.1.0", false, true)
	marker := repos.PostInstallMarker("1.1.0")
	h.exec(t, "systemctl", "start", "--no-block", "upkeep-agent.service")
	waitFor(t, 2*time.Minute, "the post-install script of 1.1.0 starts", func() bool {
		_, err := c.Exec(ctx, "test", "-e", marker)
		return err == nil
	})
	start := time.Now()
	if out, err := c.Exec(ctx, "systemctl", "stop", "upkeep-agent.service"); err != nil {
		t.Fatalf("systemctl stop: %v\n%s", err, out)
	}
	took := time.Since(start)
	st, err := c.Show(ctx, "upkeep-agent.service", "ExecMainStatus", "Result", "ActiveState")
	if err != nil {
		t.Fatal(err)
	}
	status, _ := c.Exec(ctx, "dpkg-query", "-W", "-f=${Status} ${Version}", demopkg.Name)
	t.Logf("systemctl stop took %s; unit %v; dpkg: %s\n%s", took.Round(time.Millisecond), st, status, lastLines(unitLog(), 6))
	if status != "install ok installed 1.1.0" {
		t.Errorf("dpkg after the stop: %q, want \"install ok installed 1.1.0\"\n%s", status, lastLines(unitLog(), 20))
	}
	// upkeep exits 143; systemd 252 clears ExecMainStatus on a stop it asked
	// for, so the unit's Result is what shows that 143 is not a failure.
	if st["Result"] != "success" || st["ActiveState"] != "inactive" {
		t.Errorf("unit after the stop: %v; want inactive, Result success (SuccessExitStatus=143)", st)
	}
	if took < 2*time.Second {
		t.Errorf("the stop took %s: it cannot have waited for the post-install script", took)
	}
	raw, err := c.Exec(ctx, "cat", "/var/lib/upkeep-agent/journal.json")
	if err != nil {
		t.Fatal(err)
	}
	var j struct{ Step, To string }
	if err := json.Unmarshal([]byte(raw), &j); err != nil || j.Step != "restarting" || j.To != "1.1.0" {
		t.Fatalf("journal after the stop: %s (%v); want step restarting to 1.1.0", raw, err)
	}
	if log := unitLog(); !strings.Contains(log, "stopped by terminated") {
		t.Errorf("the unit's log does not say it was stopped:\n%s", lastLines(log, 20))
	}

	// The next pass finishes the update.
	if out, err := c.Exec(ctx, "systemctl", "start", "upkeep-agent.service"); err != nil {
		t.Fatalf("next pass: %v\n%s\n%s", err, out, lastLines(unitLog(), 20))
	}
	log := unitLog()
	t.Logf("upkeep-agent.service:\n%s", lastLines(log, 12))
	if got := h.installed(t); got != "1.1.0" || !strings.Contains(log, "finished an interrupted update") {
		t.Fatalf("after the next pass: %q installed; want 1.1.0 kept after recovering\n%s", got, lastLines(log, 20))
	}
}
