package server

import (
	"runtime"
	rtmetrics "runtime/metrics"
	"testing"
)

func heapGoal() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

func TestSetHeapFloor(t *testing.T) {
	defer func() { ballast = nil }()
	t.Run("an operator's GOGC wins", func(t *testing.T) {
		t.Setenv("GOGC", "100")
		SetHeapFloor(DefaultHeapFloor)
		if ballast != nil {
			t.Fatal("a ballast was allocated though GOGC is set")
		}
	})
	t.Run("without GOGC the heap goal is at least the floor", func(t *testing.T) {
		t.Setenv("GOGC", "")
		SetHeapFloor(DefaultHeapFloor)
		runtime.GC() // the goal is set at the end of a cycle
		if g := heapGoal(); g < DefaultHeapFloor {
			t.Fatalf("heap goal %d bytes, want at least %d", g, DefaultHeapFloor)
		}
		if len(ballast) != DefaultHeapFloor/2 {
			t.Fatalf("ballast of %d bytes", len(ballast))
		}
	})
}
