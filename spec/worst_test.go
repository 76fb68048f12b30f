package spec

import (
	"encoding/json"
	"os"
	"runtime"
	"testing"
	"testing/fstest"
	"time"
)

func shapeFS(sh shape) fstest.MapFS {
	fsys := fleet(nil)
	for name, data := range sh.files() {
		fsys[name] = &fstest.MapFile{Data: data}
	}
	return fsys
}

// BenchmarkLoadWorst loads each worst shape beside the base fleet.
func BenchmarkLoadWorst(b *testing.B) {
	for _, sh := range worstShapes() {
		b.Run(sh.name, func(b *testing.B) {
			fsys := shapeFS(sh)
			b.ReportAllocs()
			cpu0, haveCPU := processCPUTime()
			for b.Loop() {
				_, errs := LoadWith(fsys, fileShapeOptions)
				if (errs == nil) != sh.valid {
					b.Fatalf("valid = %v, want %v: %v", errs == nil, sh.valid, errs)
				}
			}
			if cpu1, ok := processCPUTime(); ok && haveCPU {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
			}
		})
	}
}

// fileShapeOptions raise the repository limit above the file limit, so
// that the shapes of one file near the file limits reach those limits
// rather than the repository's (640 KiB by default).
var fileShapeOptions = Options{MaxRepositoryBytes: 8 << 20}

// worstEnv names the shape a child process of TestLoadWorstShapesStayBounded loads.
const worstEnv = "UPKEEP_SPEC_WORST_SHAPE"

// worstResult is what the child reports.
type worstResult struct {
	CPUms  float64 // CPU time of the Load, ms
	WallMs float64 // its wall time, ms: noisy on a shared machine
	Valid  bool
}

// TestWorstShapeChild is the child: it loads one shape and prints what it
// cost. It does nothing unless started by TestLoadWorstShapesStayBounded.
func TestWorstShapeChild(t *testing.T) {
	name := os.Getenv(worstEnv)
	if name == "" {
		t.Skip("runs as a child of TestLoadWorstShapesStayBounded")
	}
	fsys, opts := fleet(nil), Options{}
	for _, sh := range worstShapes() {
		if sh.name == name {
			fsys, opts = shapeFS(sh), fileShapeOptions
		}
	}
	for _, sh := range repoShapes() {
		if sh.name == name {
			fsys = shapeFS(sh)
		}
	}
	if _, errs := Load(fleet(nil)); errs != nil { // compiles the schema, as a server has at start
		t.Fatal(errs)
	}
	runtime.GC()
	cpu0, _ := processCPUTime()
	start := time.Now()
	_, errs := LoadWith(fsys, opts)
	wall := time.Since(start)
	cpu1, _ := processCPUTime()
	out, _ := json.Marshal(worstResult{CPUms: float64(cpu1-cpu0) / 1e6, WallMs: float64(wall) / 1e6, Valid: errs == nil})
	os.Stdout.Write(append([]byte("RESULT "), append(out, '\n')...))
}
