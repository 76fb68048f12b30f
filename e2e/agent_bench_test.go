package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
)

// BenchmarkAgentPassNothingToDo runs the real binary for one pass (`upkeep
// agent --once`) on a host whose agent is already at the channel's version:
// process start, fetch target and critical, read the installed version with
// dpkg-query, probe health, decide, write the state. It reports the whole
// process's wall time per pass and its peak RSS.
func BenchmarkAgentPassNothingToDo(b *testing.B) {
	f := sharedAgentFixture(b)
	fleet := newFleetServer(b)
	h := newPackageHost(b, "apt", f)
	ctx := context.Background()
	if err := h.inst.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	if err := h.inst.Install(ctx, demoPkg, "1.0.0"); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	config := filepath.Join(dir, "agent.yaml")
	writeAgentConfig(b, config, map[string]any{
		"server": fleet.srv.URL, "channel": "demo", "group": "demo",
		"package": demoPkg, "installer": "apt", "root": h.root, "restart": "none",
		"stateDir": filepath.Join(dir, "state"),
		"health":   map[string]any{"systemd": false, "command": []string{filepath.Join(h.root, repos.DemoAgentBinary), "health"}},
	})
	var maxRSS int64
	b.ResetTimer()
	for b.Loop() {
		cmd := exec.Command(upkeepBin, "agent", "--config", config, "--once")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "decision: Nothing (UpToDate") {
			b.Fatalf("pass: %v\n%s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > maxRSS {
			maxRSS = ru.Maxrss
		}
	}
	b.ReportMetric(float64(maxRSS)/1024, "MB-peak-RSS")
}
