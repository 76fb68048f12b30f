package spec

import (
	"encoding/json"
	"os"
	"runtime"
	"testing"
	"testing/fstest"
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
				_, errs := Load(fsys)
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

// worstEnv names the shape a child process of TestLoadWorstShapesStayBounded loads.
const worstEnv = "UPKEEP_SPEC_WORST_SHAPE"

// worstResult is what the child reports.
type worstResult struct {
	CPUms float64 // CPU time of the Load, ms
	Valid bool
}

// TestWorstShapeChild is the child: it loads one shape and prints what it
// cost. It does nothing unless started by TestLoadWorstShapesStayBounded.
func TestWorstShapeChild(t *testing.T) {
	name := os.Getenv(worstEnv)
	if name == "" {
		t.Skip("runs as a child of TestLoadWorstShapesStayBounded")
	}
	fsys := fleet(nil)
	for _, sh := range append(worstShapes(), repoShapes()...) {
		if sh.name == name {
			fsys = shapeFS(sh)
		}
	}
	if _, errs := Load(fleet(nil)); errs != nil { // compiles the schema, as a server has at start
		t.Fatal(errs)
	}
	runtime.GC()
	cpu0, _ := processCPUTime()
	_, errs := Load(fsys)
	cpu1, _ := processCPUTime()
	out, _ := json.Marshal(worstResult{CPUms: float64(cpu1-cpu0) / 1e6, Valid: errs == nil})
	os.Stdout.Write(append([]byte("RESULT "), append(out, '\n')...))
}
