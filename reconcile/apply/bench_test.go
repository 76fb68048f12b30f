package apply

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkWriteJournal is the cost of one durable journal write (temporary
// file, fsync, rename, fsync of the directory); an apply makes 4 to 7.
func BenchmarkWriteJournal(b *testing.B) {
	dir := b.TempDir()
	j := Journal{ID: "20260505T020000Z-0a0b0c0d", From: "1.2.0", To: "1.3.0", Step: StepSettling, Started: t0, Attempt: 1}
	for b.Loop() {
		if err := WriteJournal(dir, j); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadState is what every check pays to learn the skip list.
func BenchmarkReadState(b *testing.B) {
	dir := b.TempDir()
	s := State{LastResult: &Result{Outcome: RolledBack, From: "1.2.0", To: "1.3.0", Message: "rolled back",
		Steps: make([]StepRecord, 6)}}
	for i := range 20 {
		s.Skipped = append(s.Skipped, Skip{Version: fmt.Sprintf("1.%d.0", i), Since: t0, Reason: ReasonUnhealthy, Message: "crash loop"})
	}
	for i := range s.LastResult.Steps {
		s.LastResult.Steps[i] = StepRecord{Step: StepSettling, Action: "settle", Version: "1.3.0", Took: 30 * time.Second}
	}
	if err := WriteState(dir, s); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ReadState(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPruneSkipped is the per-check skip-list upkeep for a list of 20.
func BenchmarkPruneSkipped(b *testing.B) {
	var skips []Skip
	for i := range 20 {
		skips = append(skips, Skip{Version: fmt.Sprintf("1.%d.0", i)})
	}
	for b.Loop() {
		PruneSkipped(skips, "1.7.0")
	}
}

// BenchmarkApplyBookkeeping is a whole healthy apply over a Target that
// takes no time: the journal and state writes the apply step adds.
func BenchmarkApplyBookkeeping(b *testing.B) {
	dir := b.TempDir()
	tgt := &fakeTarget{dir: dir, installed: "1.2.0"}
	a := &Applier{Dir: dir, Target: tgt, Logger: quietLogger()}
	vs := [2]string{"1.2.0", "1.3.0"}
	i := 0
	for b.Loop() {
		if res := a.Apply(context.Background(), vs[i%2], vs[(i+1)%2]); res.Outcome != Updated {
			b.Fatal(res.Message)
		}
		tgt.calls = tgt.calls[:0]
		i++
	}
}
