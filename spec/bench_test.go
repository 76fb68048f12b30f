package spec

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// fleetFS builds a repository of channels channels and groups groups, bound
// to three control planes: channels ten to a file, groups one per file, as
// large fleets tend to be laid out.
func fleetFS(channels, groups int) fstest.MapFS {
	fsys := fstest.MapFS{}
	var cps strings.Builder
	for i, v := range []string{"17.2.3", "16.4.1", "18.0.0"} {
		fmt.Fprintf(&cps, "---\napiVersion: upkeep.dev/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp%d\nspec:\n  version: %s\n  agents: \">= 16.0.0\"\n", i, v)
	}
	fsys["controlplanes.yaml"] = &fstest.MapFile{Data: []byte(cps.String())}
	var b strings.Builder
	for i := range channels {
		cp := i % 3
		version := []string{"17.1.0", "v16.4.0", "17.9.1"}[cp]
		if i%7 == 0 {
			fmt.Fprintf(&b, "---\napiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  name: stable/ch%04d\nspec:\n  controlPlane: cp%d\n  follow: controlPlane\n  critical: true\n", i, cp)
		} else {
			fmt.Fprintf(&b, "---\napiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  name: stable/ch%04d\nspec:\n  controlPlane: cp%d\n  version: %s\n", i, cp, version)
		}
		if i%10 == 9 || i == channels-1 {
			fsys[fmt.Sprintf("channels/c%03d.yaml", i/10)] = &fstest.MapFile{Data: []byte(b.String())}
			b.Reset()
		}
	}
	zones := []string{"Europe/Berlin", "America/New_York", "UTC", "Asia/Tokyo"}
	for i := range groups {
		fsys[fmt.Sprintf("groups/g%04d.yaml", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(`apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: g%04d
spec:
  channel: stable/ch%04d
  timezone: %s
  updateDuration: 20m
  order: %d
  windows:
    - days: [Tue, Thu]
      start: "02:00"
      duration: 4h
    - days: [Sat]
      start: "22:30"
      duration: 6h
  freezes:
    - name: year-end
      start: 2026-12-20
      end: 2027-01-04
      allowCritical: true
`, i, i%max(channels, 1), zones[i%len(zones)], i%5))}
	}
	return fsys
}

func BenchmarkLoad1000(b *testing.B) {
	fsys := fleetFS(1000, 1000)
	if _, errs := Load(fsys); errs != nil {
		b.Fatalf("generated fleet is invalid:\n%v", errs)
	}
	b.ReportAllocs()
	cpu0, haveCPU := processCPUTime()
	for b.Loop() {
		st, errs := Load(fsys)
		if errs != nil || len(st.Channels) != 1000 || len(st.Groups) != 1000 {
			b.Fatalf("load: %d channels, %d groups, %v", len(st.Channels), len(st.Groups), errs)
		}
	}
	if cpu1, ok := processCPUTime(); ok && haveCPU {
		// Wall time swings with the machine's load; CPU time much less.
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	}
}
