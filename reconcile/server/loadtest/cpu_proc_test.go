package loadtest

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestCPUOfCountsThisProcessWork(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/<pid>/stat is Linux's")
	}
	before, err := CPUOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Busy until getrusage counts 300 ms of CPU, however loaded the machine.
	for start := ProcessCPU(); ProcessCPU()-start < 300*time.Millisecond; {
		_ = make([]byte, 64)
	}
	after, err := CPUOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The same 300 ms, within /proc's 10 ms ticks (one tick at each end).
	if d := after - before; d < 280*time.Millisecond || d > 5*time.Second {
		t.Errorf("CPU time grew by %s over 300 ms of CPU work", d)
	}
	if _, err := CPUOf(1 << 30); err == nil {
		t.Error("a process that does not exist has a CPU time")
	}
}
