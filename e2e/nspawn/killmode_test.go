package nspawn_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/e2e/nspawn"
)

// shippedKillSettings reads the stop settings of the shipped agent unit.
func shippedKillSettings(t *testing.T) []string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	unit := filepath.Join(filepath.Dir(file), "..", "..", "examples", "systemd", "upkeep-agent.service")
	f, err := os.Open(unit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		for _, k := range []string{"KillMode=", "TimeoutStopSec=", "SuccessExitStatus=", "KillSignal=", "SendSIGKILL="} {
			if strings.HasPrefix(l, k) {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), "KillMode=") {
		t.Fatalf("%s sets no KillMode=: %q", unit, lines)
	}
	return lines
}

// A real systemd stops the agent's unit while the updater's package
// transaction runs, and the updater process dies at once (the worst case:
// SIGKILL at TimeoutStopSec, or the updater giving up at --stop-timeout).
// With the shipped unit's kill settings the transaction — in its own
// session, writing to a file — is left alone and finishes; with
// KillMode=mixed, which the unit used to ship, systemd SIGKILLs it, which
// shows the check can fail.
func TestStoppingTheUnitLeavesThePackageTransactionRunning(t *testing.T) {
	nspawn.Require(t)
	dir := t.TempDir()
	probe := filepath.Join(dir, "transaction-probe")
	// installers/internal/run's test binary doubles as an updater that
	// starts one transaction (sh: sleep 1.5 s, then write the marker).
	build := exec.Command("go", "test", "-c", "-o", probe, "./installers/internal/run")
	build.Dir = filepath.Join(filepath.Dir(probeFile()), "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, out)
	}
	shipped := shippedKillSettings(t)
	c := nspawn.Boot(t, nspawn.Options{Binds: []nspawn.Bind{{Host: dir, Container: "/probe", ReadOnly: true}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		scenario string
		settings []string
		finishes bool
	}{
		{"the shipped unit: the transaction finishes", shipped, true},
		{"KillMode=mixed: systemd kills the transaction", []string{"KillMode=mixed", "TimeoutStopSec=5min"}, false},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			name := "probe-" + strings.NewReplacer("=", "-", " ", "-").Replace(tc.settings[0]) + ".service"
			marker := "/var/tmp/" + name + ".finished"
			unit := "[Service]\nType=oneshot\nEnvironment=UPKEEP_RUN_HELPER_MARKER=" + marker + "\nExecStart=/probe/transaction-probe -test.run=^$\n" +
				strings.Join(tc.settings, "\n") + "\n"
			if err := c.WriteFile(ctx, "/etc/systemd/system/"+name, []byte(unit), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, argv := range [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "start", "--no-block", name}} {
				if out, err := c.Exec(ctx, argv...); err != nil {
					t.Fatalf("%v: %v\n%s", argv, err, out)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				m, err := c.Show(ctx, name, "MainPID")
				if err == nil && m["MainPID"] != "" && m["MainPID"] != "0" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s did not start: %v %v", name, m, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond) // the transaction (1.5 s) is under way
			if out, err := c.Exec(ctx, "systemctl", "stop", name); err != nil {
				t.Fatalf("systemctl stop: %v\n%s", err, out)
			}
			time.Sleep(3 * time.Second)
			_, err := c.Exec(ctx, "test", "-e", marker)
			if finished := err == nil; finished != tc.finishes {
				st, _ := c.Show(ctx, name, "ActiveState", "Result", "ExecMainStatus")
				t.Fatalf("transaction finished: %v, want %v (unit: %v; settings %q)", finished, tc.finishes, st, tc.settings)
			}
		})
	}
}

func probeFile() string {
	_, file, _, _ := runtime.Caller(0)
	return file
}
