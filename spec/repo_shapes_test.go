package spec

import (
	"fmt"
	"strings"
	"testing"
)

// repoBudget is how many bytes a repository shape fills: the repository
// limit, less room for the base fleet beside it.
func repoBudget() int { return MaxRepositorySize - 4096 }

// hugeFile is the size of the files of the huge shapes: as large as the
// file limit allows, and small enough for two in the repository.
func hugeFile() int { return min(MaxFileSize, repoBudget()/2) }

// fillRepo writes files named prefix/NNNNN.yaml, each made by file(i,
// room) (i counts files; room is the bytes left), until the next would
// take the repository past its limit or is empty.
func fillRepo(prefix string, file func(i, room int) []byte) map[string][]byte {
	files := map[string][]byte{}
	total := 0
	for i := 0; i < MaxFiles-10; i++ {
		data := file(i, repoBudget()-total)
		if len(data) == 0 || total+len(data) > repoBudget() {
			return files
		}
		total += len(data)
		files[fmt.Sprintf("%s/%05d.yaml", prefix, i)] = data
	}
	return files
}

// fillDocs repeats doc(j) (j counts documents across files) in one file
// until it holds about MaxFileTokens tokens, MaxDocuments documents or
// room bytes.
func fillDocs(next *int, room int, doc func(j int) string) []byte {
	var b strings.Builder
	tokens := 0
	for n := 0; n < MaxDocuments; n++ {
		d := doc(*next)
		t, _ := countTokens([]byte(d), 1<<30)
		if tokens+t > MaxFileTokens || b.Len()+len(d) > room {
			break
		}
		tokens += t
		*next++
		b.WriteString(d)
	}
	return []byte(b.String())
}

// repoShapes are repositories filled to the repository limit in the shapes
// that cost the most there: valid documents (which the State keeps), every
// document invalid, and files each near the file limit.
func repoShapes() []shape {
	var shapes []shape
	add := func(name string, valid bool, files func() map[string][]byte) {
		shapes = append(shapes, shape{name, files, valid})
	}
	// Valid channels, as many as the files may hold: the most documents.
	add("repo-valid-channels", true, func() map[string][]byte {
		j := 0
		return fillRepo("c", func(_, room int) []byte {
			return fillDocs(&j, room, func(j int) string {
				return fmt.Sprintf("---\napiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  name: c%d\nspec:\n  controlPlane: cloud\n  version: 17.1.0\n", j)
			})
		})
	})
	// Valid groups with windows and freezes, as many as the files may hold.
	add("repo-valid-groups", true, func() map[string][]byte {
		j := 0
		return fillRepo("g", func(_, room int) []byte {
			return fillDocs(&j, room, func(j int) string {
				return "---\n" + fmt.Sprintf(groupHead, fmt.Sprintf("g%d", j)) +
					"  updateDuration: 20m\n  windows:\n    - days: [Tue, Thu]\n      start: \"02:00\"\n      duration: 4h\n" +
					"  freezes:\n    - name: year-end\n      start: 2026-12-20\n      end: 2027-01-04\n"
			})
		})
	})
	// Valid groups one per file, as large fleets are laid out: the most
	// files that pass.
	add("repo-valid-group-files", true, func() map[string][]byte {
		return fillRepo("g", func(i, _ int) []byte {
			return fmt.Appendf(nil, groupHead+"  updateDuration: 20m\n  windows:\n    - days: [Tue, Thu]\n      start: \"02:00\"\n      duration: 4h\n"+
				"  freezes:\n    - name: year-end\n      start: 2026-12-20\n      end: 2027-01-04\n      allowCritical: true\n", fmt.Sprintf("g%05d", i))
		})
	})
	// Every document invalid, and each reaches CUE: unknown fields.
	add("repo-invalid-channels", false, func() map[string][]byte {
		j := 0
		return fillRepo("c", func(_, room int) []byte {
			return fillDocs(&j, room, func(j int) string {
				return fmt.Sprintf("---\napiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: c%d}\nspec: {controlPlane: cloud, version: 17.1.0, a: 1, b: 2, c: 3}\n", j)
			})
		})
	})
	// Every group invalid in every window: values the schema refuses.
	add("repo-invalid-groups", false, func() map[string][]byte {
		j := 0
		return fillRepo("g", func(_, room int) []byte {
			return fillDocs(&j, room, func(j int) string {
				return "---\n" + fmt.Sprintf(groupHead, fmt.Sprintf("g%d", j)) +
					"  windows:\n    - {days: [Mox, Wex], start: \"25:00\", duration: 0}\n    - {days: [Mox], start: \"26:00\", duration: 0}\n"
			})
		})
	})
	// Valid documents whose references all dangle: one cross-document
	// error each.
	add("repo-dangling-refs", false, func() map[string][]byte {
		j := 0
		return fillRepo("g", func(_, room int) []byte {
			return fillDocs(&j, room, func(j int) string {
				return "---\n" + strings.Replace(fmt.Sprintf(groupHead, fmt.Sprintf("g%d", j)), "stable/cloud", fmt.Sprintf("nowhere/%d", j), 1)
			})
		})
	})
	// Files each as large as the file limit and the repository's allow
	// with two of them: one huge scalar a file, in a document that
	// reaches CUE.
	add("repo-huge-scalars", false, func() map[string][]byte {
		return fillRepo("s", func(i, _ int) []byte {
			return []byte(fmt.Sprintf("apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: s%d}\nspec: {controlPlane: cloud, version: ", i) + strings.Repeat("1", MaxScalarBytes) + "}\n" +
				"# " + strings.Repeat("x", hugeFile()-MaxScalarBytes-300) + "\n")
		})
	})
	// Such files of block-scalar lines.
	add("repo-huge-block-scalars", false, func() map[string][]byte {
		return fillRepo("b", func(int, int) []byte {
			return []byte("x: |\n" + strings.Repeat("  "+strings.Repeat("y", 76)+"\n", (hugeFile()-100)/79))
		})
	})
	return shapes
}

// BenchmarkLoadRepository loads each repository shape beside the base fleet.
func BenchmarkLoadRepository(b *testing.B) {
	for _, sh := range repoShapes() {
		b.Run(sh.name, func(b *testing.B) {
			fsys := shapeFS(sh)
			b.ReportMetric(float64(size(sh.files()))/(1<<20), "MiB")
			b.ReportAllocs()
			cpu0, haveCPU := processCPUTime()
			for b.Loop() {
				_, errs := Load(fsys)
				if (errs == nil) != sh.valid {
					b.Fatalf("valid = %v, want %v: %.3000v", errs == nil, sh.valid, errs)
				}
			}
			if cpu1, ok := processCPUTime(); ok && haveCPU {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
			}
		})
	}
}
