package server

import (
	"os"
	"runtime"
)

// DefaultHeapFloor is the heap goal SetHeapFloor keeps at least.
const DefaultHeapFloor = 32 << 20

// ballast is never read or written: it only counts as live heap.
var ballast []byte

// SetHeapFloor keeps the garbage collector's heap goal at no less than
// about floor bytes for the life of the process, unless the operator set
// GOGC (their choice wins). The server's live heap is a few megabytes, so
// Go's default goal (4 MB) runs a collection every few thousand requests
// under load — about 40 a second at 30,000 req/s — and each marks the
// whole heap: measured, that is most of what separates `upkeep serve`
// from a bare net/http server (BenchmarkServeVsFloor in e2e).
//
// It does so with a ballast: one pointer-free allocation of floor/2 bytes,
// which the collector never scans and, since nothing writes it, the kernel
// never backs with memory (it does not count in RSS). The heap goal,
// twice the live heap, becomes at least floor; a large live heap grows its
// goal by floor/2 only, unlike a higher GOGC, which would multiply it.
// What it costs is garbage: up to floor bytes of it may accumulate
// between collections.
func SetHeapFloor(floor int) {
	if os.Getenv("GOGC") != "" || floor <= 0 || ballast != nil {
		return
	}
	ballast = make([]byte, floor/2)
	runtime.KeepAlive(ballast)
}
