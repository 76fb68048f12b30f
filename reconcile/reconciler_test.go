package reconcile_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/sources"
)

// scriptedSource returns the revisions (or errors) it is given, one per
// Fetch, repeating the last one.
type scriptedSource struct {
	steps []step
	i     int
}

type step struct {
	rev sources.Revision
	err error
}

func (s *scriptedSource) Fetch(context.Context) (sources.Revision, error) {
	st := s.steps[min(s.i, len(s.steps)-1)]
	s.i++
	return st.rev, st.err
}

func (s *scriptedSource) String() string { return "scripted" }

func fleet(cloudVersion string) fs.FS {
	return fstest.MapFS{
		"fleet.yaml": {Data: []byte(`apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: cloud
spec:
  version: 17.4.2
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: stable/cloud
spec:
  controlPlane: cloud
  version: ` + cloudVersion + `
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
  windows:
    - start: "02:00"
      duration: 2h
`)},
	}
}

func TestReconcilerKeepsLastGoodSnapshot(t *testing.T) {
	clock := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)
	src := &scriptedSource{steps: []step{
		{rev: sources.Revision{ID: "good1", Files: fleet("17.3.0")}},
		{rev: sources.Revision{ID: "bad", Files: fleet("18.0.0")}},
		{err: errors.New("connection refused")},
		{rev: sources.Revision{ID: "bad", Files: fleet("18.0.0")}},
		{rev: sources.Revision{ID: "good2", Files: fleet("17.4.0")}},
	}}
	reg := prometheus.NewRegistry()
	r := reconcile.New(src, reconcile.Options{Now: func() time.Time { return clock }, Registerer: reg})
	ctx := context.Background()

	if r.Snapshot() != nil {
		t.Fatal("a snapshot before the first sync")
	}

	// 1. A valid revision is served.
	if err := r.Sync(ctx); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	if v := r.Snapshot().Channel("stable/cloud").Version; v != "17.3.0" {
		t.Fatalf("served %q, want 17.3.0", v)
	}

	// 2. An invalid revision is not served; the error names file and line.
	clock = clock.Add(time.Minute)
	err := r.Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "still serving revision good1") {
		t.Fatalf("invalid sync: %v", err)
	}
	st := r.Status()
	if st.Revision != "good1" || st.LastError == nil || st.LastError.Revision != "bad" {
		t.Fatalf("status after invalid revision: %+v", st)
	}
	if len(st.LastError.Errors) == 0 || st.LastError.Errors[0].Pos.String() != "fleet.yaml:14:12" {
		t.Errorf("errors %v; want the first at fleet.yaml:14:12", st.LastError.Errors)
	}
	if v := r.Snapshot().Channel("stable/cloud").Version; v != "17.3.0" {
		t.Fatalf("served %q after an invalid revision, want 17.3.0", v)
	}

	// 3. An unreadable source keeps the snapshot, but its windows move on.
	before := r.Snapshot().Group("eu").Windows[0]
	clock = clock.Add(24 * time.Hour)
	if err := r.Sync(ctx); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("fetch failure: %v", err)
	}
	after := r.Snapshot().Group("eu").Windows[0]
	if !after.Start.After(before.Start) {
		t.Errorf("windows not refreshed while the source is down: %v then %v", before, after)
	}
	if r.Snapshot().Revision != "good1" {
		t.Errorf("revision %q, want good1", r.Snapshot().Revision)
	}

	// 4. The same invalid revision again still reports its errors.
	if err := r.Sync(ctx); err == nil || r.Status().LastError.Revision != "bad" {
		t.Fatalf("repeated invalid revision: %v %+v", err, r.Status().LastError)
	}

	// 5. The fix is served and the error clears.
	if err := r.Sync(ctx); err != nil {
		t.Fatalf("fixed sync: %v", err)
	}
	if v := r.Snapshot().Channel("stable/cloud").Version; v != "17.4.0" || r.Status().LastError != nil {
		t.Fatalf("after the fix: %q %+v", v, r.Status().LastError)
	}

	for result, want := range map[string]float64{"success": 2, "invalid": 2, "fetch_error": 1} {
		got := syncCount(t, reg, result)
		if got != want {
			t.Errorf("upkeep_syncs_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// syncCount reads one series of upkeep_syncs_total from the registry.
func syncCount(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "upkeep_syncs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no upkeep_syncs_total{result=%q}", result)
	return 0
}

func TestTriggerNeverBlocks(t *testing.T) {
	r := reconcile.New(&scriptedSource{steps: []step{{err: errors.New("x")}}}, reconcile.Options{})
	done := make(chan struct{})
	go func() {
		for range 100 {
			r.Trigger()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Trigger blocked with no Run loop")
	}
}
