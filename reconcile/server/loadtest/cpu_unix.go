//go:build unix

package loadtest

import (
	"syscall"
	"time"
)

// ProcessCPU is the user and system CPU time this process used so far: on
// a shared machine it measures a benchmark's cost better than wall time.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
