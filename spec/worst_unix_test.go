//go:build unix

package spec

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// The targets of issue 11: any input up to the limits, valid or not,
// loads in under a second of CPU and 100 MB of peak memory.
const (
	worstCPUms   = 1000
	worstPeakRSS = 100 << 20
)

// TestLoadWorstShapesStayBounded loads each worst shape in a child process
// of its own and checks its CPU time (for shapes of one file: a repository
// costs the sum of its files) and its peak resident memory (the kernel's
// maxrss, less that of a child that loads the base fleet alone) against
// the targets. The shapes cost a fraction of the targets (see
// BenchmarkLoadWorst), so machine load does not make this fail; a regression
// to the old per-node index (900 MB, 20 s) does.
func TestLoadWorstShapesStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process per shape")
	}
	run := childRunner(t)
	_, base := run("none")
	for _, sh := range worstShapes() {
		r, rss := run(sh.name)
		peak := rss - base
		t.Logf("%-22s %7.1f ms CPU  %6.1f MB peak RSS over the base fleet's (%6.1f MB in all)", sh.name, r.CPUms, float64(peak)/(1<<20), float64(rss)/(1<<20))
		if r.Valid != sh.valid {
			t.Errorf("%s: valid = %v, want %v", sh.name, r.Valid, sh.valid)
		}
		if r.CPUms > worstCPUms && sh.oneFile() {
			t.Errorf("%s: loading took %.0f ms of CPU, over the %d ms target", sh.name, r.CPUms, worstCPUms)
		}
		if peak > worstPeakRSS {
			t.Errorf("%s: loading took %d MB of memory at its peak, over the %d MB target", sh.name, peak>>20, worstPeakRSS>>20)
		}
	}
}

// childRunner returns a function that loads the named shape in a child
// process (TestWorstShapeChild) and returns its result and peak RSS.
func childRunner(t *testing.T) func(name string) (worstResult, int64) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return func(name string) (worstResult, int64) {
		t.Helper()
		cmd := exec.Command(exe, "-test.run=^TestWorstShapeChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), worstEnv+"="+name)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("shape %s: %v\n%s", name, err, out.String())
		}
		var r worstResult
		_, line, found := bytes.Cut(out.Bytes(), []byte("RESULT "))
		line, _, _ = bytes.Cut(line, []byte("\n"))
		if !found || json.Unmarshal(line, &r) != nil {
			t.Fatalf("shape %s: no result in\n%s", name, out.String())
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		return r, int64(ru.Maxrss) << 10 // KiB on Linux
	}
}

// repoCPUms is the CPU time a whole repository at the default limit may
// take: a load spreads over GOMAXPROCS workers, so on the two cores of
// the machines upkeep is sized for, 2 s of CPU is 1 s of wall time, the
// issue's target. CPU time is checked, not wall time, as it does not grow
// when other processes share the machine.
const repoCPUms = 2000

// TestLoadRepositoryShapesStayBounded loads each repository shape (a
// repository filled to the default repository limit) in a child process
// and checks the whole load against the targets: repoCPUms of CPU and
// worstPeakRSS over the base fleet's. The worst shape costs some 55% of
// the CPU target and a third of the memory target.
func TestLoadRepositoryShapesStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process per shape")
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average: %s", bytes.TrimSpace(load))
	}
	run := childRunner(t)
	_, base := run("none")
	for _, sh := range repoShapes() {
		r, rss := run(sh.name)
		peak := rss - base
		t.Logf("%-24s %4.0f KiB %7.1f ms CPU %7.1f ms wall %6.1f MB peak RSS over the base fleet's (%6.1f MB in all)",
			sh.name, float64(size(sh.files()))/(1<<10), r.CPUms, r.WallMs, float64(peak)/(1<<20), float64(rss)/(1<<20))
		if r.Valid != sh.valid {
			t.Errorf("%s: valid = %v, want %v", sh.name, r.Valid, sh.valid)
		}
		if r.CPUms > repoCPUms {
			t.Errorf("%s: loading took %.0f ms of CPU, over the %d ms target", sh.name, r.CPUms, repoCPUms)
		}
		if peak > worstPeakRSS {
			t.Errorf("%s: loading took %d MB of memory at its peak, over the %d MB target", sh.name, peak>>20, worstPeakRSS>>20)
		}
	}
}
