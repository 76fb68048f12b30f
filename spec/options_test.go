package spec

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestLoadWithRepositoryLimit: an operator's repository limit replaces the
// default both ways, and the error names the limit in force.
func TestLoadWithRepositoryLimit(t *testing.T) {
	// Eight files of valid channels, some 120 KiB each: over the default
	// limit together (c5 crosses it), under 1 MiB.
	files := map[string]string{}
	for f := range 8 {
		var b strings.Builder
		for i := 0; b.Len() < 120<<10; i++ {
			fmt.Fprintf(&b, "---\n"+channelDoc, fmt.Sprintf("c%d-%d", f, i))
		}
		files[fmt.Sprintf("c%d.yaml", f)] = b.String()
	}
	fsys := fleet(files)
	total := 0
	for _, f := range fsys {
		total += len(f.Data)
	}
	tests := []struct {
		scenario string
		opts     Options
		want     []string // nil: valid
	}{
		{
			scenario: "the zero Options is the default limit, which the repository exceeds",
			want:     []string{fmt.Sprintf("c5.yaml: the repository's YAML files, up to this one, hold more than 640 KiB (limit repository-bytes is %d); this and later files are not read; list files that are not fleet state in .upkeepignore, or raise the limit (--max-repository-bytes) knowing that a load takes time and memory in proportion", MaxRepositorySize)},
		},
		{
			scenario: "a limit raised to the repository's size loads it all",
			opts:     Options{MaxRepositoryBytes: total},
		},
		{
			scenario: "a limit one byte under the repository's size refuses its last file",
			opts:     Options{MaxRepositoryBytes: total - 1},
			want:     []string{fmt.Sprintf("c7.yaml: the repository's YAML files, up to this one, hold more than %d bytes (limit repository-bytes is %d); this and later files are not read; list files that are not fleet state in .upkeepignore, or raise the limit (--max-repository-bytes) knowing that a load takes time and memory in proportion", total-1, total-1)},
		},
		{
			scenario: "a limit of 1 MiB loads it all",
			opts:     Options{MaxRepositoryBytes: 1 << 20},
		},
		{
			scenario: "a negative limit is the default",
			opts:     Options{MaxRepositoryBytes: -1},
			want:     []string{fmt.Sprintf("c5.yaml: the repository's YAML files, up to this one, hold more than 640 KiB (limit repository-bytes is %d); this and later files are not read; list files that are not fleet state in .upkeepignore, or raise the limit (--max-repository-bytes) knowing that a load takes time and memory in proportion", MaxRepositorySize)},
		},
	}
	if total > 1<<20 {
		t.Fatalf("the repository holds %d bytes; the 1 MiB scenario needs fewer", total)
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			st, errs := LoadWith(fsys, tt.opts)
			if got := errorLines(errs); !slices.Equal(got, tt.want) {
				t.Fatalf("errors:\n got %q\nwant %q", got, tt.want)
			}
			if tt.want == nil && len(st.Channels) < 8*1000 {
				t.Fatalf("loaded %d channels", len(st.Channels))
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int]string{1 << 20: "1 MiB", 8 << 20: "8 MiB", 768 << 10: "768 KiB", 1536 << 10: "1536 KiB", 1000: "1000 bytes", 1025: "1025 bytes"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestRepeatedLoadsRetainNothing: a server loads every revision; once a
// load's State is dropped, nothing of it stays (the pooled CUE contexts
// do not grow with the documents they checked), and no goroutine is left.
func TestRepeatedLoadsRetainNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a full repository five times")
	}
	fsys := shapeFS(repoShapes()[0])
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	Load(fsys) // compiles the pooled schemas
	heap0, goroutines0 := heap(), runtime.NumGoroutine()
	for range 4 {
		if _, errs := Load(fsys); errs != nil {
			t.Fatal(errs)
		}
	}
	if h := heap(); h > heap0+2<<20 {
		t.Errorf("heap grew from %d to %d bytes over four loads", heap0, h)
	}
	if g := runtime.NumGoroutine(); g > goroutines0 {
		t.Errorf("goroutines grew from %d to %d", goroutines0, g)
	}
}
