package spec

import (
	"fmt"
	"strings"
)

// A shape is one worst case for the loader: files that sit at (or just
// over) a limit, in the form that costs the most there.
type shape struct {
	name string
	// files makes the shape's files, to add to the base fleet.
	files func() map[string][]byte
	// valid is set when the shape must load without errors.
	valid bool
}

// oneFile reports whether the shape is one file beside the base fleet: the
// per-file targets apply to it, a whole repository's cost is its files'.
func (s shape) oneFile() bool { return len(s.files()) == 1 }

func size(files map[string][]byte) int {
	n := 0
	for _, d := range files {
		n += len(d)
	}
	return n
}

const groupHead = "apiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata:\n  name: %s\nspec:\n  channel: stable/cloud\n  timezone: UTC\n"

// fill repeats unit until the file holds about tokens tokens.
func fill(head, unit, tail string, tokens int) []byte {
	var b strings.Builder
	b.WriteString(head)
	per, _ := countTokens([]byte(unit), 1<<30)
	for n, _ := countTokens([]byte(head+tail), 1<<30); n+per <= tokens; n += per {
		b.WriteString(unit)
	}
	b.WriteString(tail)
	return []byte(b.String())
}

// worstShapes are the shapes BenchmarkLoadWorst and
// TestLoadWorstShapesStayBounded load.
func worstShapes() []shape {
	var shapes []shape
	addFiles := func(name string, valid bool, files func() map[string][]byte) {
		shapes = append(shapes, shape{name, files, valid})
	}
	add := func(name string, valid bool, data func() []byte) {
		addFiles(name, valid, func() map[string][]byte { return map[string][]byte{"worst.yaml": data()} })
	}

	// A valid group at the window and freeze limits.
	add("valid-group", true, func() []byte {
		var g strings.Builder
		fmt.Fprintf(&g, groupHead, "big")
		g.WriteString("  windows:\n")
		for i := range MaxWindows {
			fmt.Fprintf(&g, "    - {days: [Mon, Wed], start: \"%02d:%02d\", duration: 1h}\n", i%24, i%60)
		}
		g.WriteString("  freezes:\n")
		for i := range MaxFreezes {
			fmt.Fprintf(&g, "    - {name: f%d, start: 2027-01-01, end: 2027-01-02}\n", i)
		}
		return []byte(g.String())
	})

	// Valid channels, as many as one file may hold.
	add("valid-channels", true, func() []byte {
		var b strings.Builder
		for i := 0; i < MaxDocuments; i++ {
			fmt.Fprintf(&b, "---\napiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  name: c%d\nspec:\n  controlPlane: cloud\n  version: 17.1.0\n", i)
		}
		return []byte(b.String())
	})

	// One group in each of 1,000 files.
	addFiles("valid-many-files", true, func() map[string][]byte {
		many := map[string][]byte{}
		for i := range 1000 {
			many[fmt.Sprintf("g/%04d.yaml", i)] = fmt.Appendf(nil, groupHead+"  windows: [{days: [Tue, Thu], start: \"02:00\", duration: 4h}]\n  freezes: [{name: y, start: 2026-12-20, end: 2027-01-04}]\n", fmt.Sprintf("g%04d", i))
		}
		return many
	})

	// A large fleet as large fleets are laid out (BenchmarkLoad1000's).
	addFiles("valid-fleet-1000", true, func() map[string][]byte {
		files := map[string][]byte{}
		for name, f := range fleetFS(1000, 1000) {
			files[name] = f.Data
		}
		return files
	})

	// As many files as a repository may hold, each a small invalid document.
	addFiles("many-small-files", false, func() map[string][]byte {
		files := map[string][]byte{}
		for i := range MaxFiles - 1 {
			files[fmt.Sprintf("f/%05d.yaml", i)] = []byte("kind: Channel\n")
		}
		return files
	})

	// A window list one over its limit, to be refused before CUE.
	add("windows-over", false, func() []byte {
		return (fill(fmt.Sprintf(groupHead, "w")+"  windows:\n", "    - {start: \"02:00\", duration: 1h}\n", "", MaxFileTokens))
	})
	// A long flow list of one-letter scalars: the most nodes per byte.
	add("flow-list", false, func() []byte { return fill("x: [", "a,", "a]\n", MaxFileTokens) })
	// Many keys of one mapping.
	add("many-keys", false, func() []byte {
		var b strings.Builder
		for i := 0; i < MaxFileTokens; i++ {
			fmt.Fprintf(&b, "k%d:\n", i)
		}
		return []byte(b.String())
	})
	// A document that reaches CUE with as many unknown fields as a
	// mapping may hold: one violation each.
	add("many-unknown-fields", false, func() []byte {
		var b strings.Builder
		b.WriteString("apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: c}\nspec:\n  controlPlane: cloud\n  version: 17.1.0\n")
		for i := range MaxMappingKeys - 2 {
			fmt.Fprintf(&b, "  k%d: 0\n", i)
		}
		return []byte(b.String())
	})
	// Unknown fields spread over the mappings of documents as large as a
	// document may be: all of a document's errors come from one evaluation.
	add("unknown-fields-spread", false, func() []byte {
		item := "    - {start: \"02:00\", duration: 1h"
		for i := range MaxMappingKeys - 2 {
			item += fmt.Sprintf(", k%d: 0", i)
		}
		item += "}\n"
		doc := "---\n" + fmt.Sprintf(groupHead, "u") + "  windows:\n" + strings.Repeat(item, MaxDocumentNodes/(1+2*MaxMappingKeys)-1)
		return fill("", doc, "", MaxFileTokens)
	})
	// Values the schema refuses, as many as documents may hold.
	add("wrong-values", false, func() []byte {
		item := "    - {days: [" + strings.TrimSuffix(strings.Repeat("Mox, ", MaxDays), ", ") + "], start: \"25:00\", duration: 0}\n"
		doc := "---\n" + fmt.Sprintf(groupHead, "v") + "  windows:\n" + strings.Repeat(item, MaxWindows)
		return fill("", doc, "", MaxFileTokens)
	})
	// A list as long as a list may be, of names that reach the rules
	// between documents: one error each.
	add("long-list", false, func() []byte {
		var b strings.Builder
		b.WriteString("apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: c}\nspec:\n  controlPlane: cloud\n  version: 17.1.0\n  rollout:\n    stages:\n      - groups:\n")
		for i := range MaxEntries {
			fmt.Fprintf(&b, "        - g%d\n", i)
		}
		return []byte(b.String())
	})
	// Documents at the document limit, each with schema errors.
	add("many-documents", false, func() []byte { return ([]byte(strings.Repeat("---\nkind: Channel\n", MaxDocuments))) })
	// Invalid documents that reach CUE: unknown fields in every one.
	add("many-invalid-channels", false, func() []byte {
		return fill("", "---\napiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: c}\nspec: {controlPlane: cloud, version: 17.1.0, a: 1, b: 2, c: 3}\n", "", MaxFileTokens)
	})
	// Nesting just inside, and just over, the depth limit, many times.
	add("deep-inside", false, func() []byte {
		return fill("", "---\nx: "+strings.Repeat("[", MaxDepth)+strings.Repeat("]", MaxDepth)+"\n", "", MaxFileTokens)
	})
	add("deep-over", false, func() []byte {
		return fill("", "---\nx: "+strings.Repeat("[", MaxDepth+2)+strings.Repeat("]", MaxDepth+2)+"\n", "", MaxFileTokens)
	})
	// Block nesting: each level a key one space deeper.
	add("deep-block", false, func() []byte {
		var b strings.Builder
		for range MaxFileTokens / (MaxDepth + 3) {
			b.WriteString("---\n")
			for i := range MaxDepth + 2 {
				b.WriteString(strings.Repeat(" ", i) + "a:\n")
			}
		}
		return []byte(b.String())
	})
	// Nested aliases: each level ten of the one before.
	add("alias-bomb", false, func() []byte {
		return ([]byte("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"))
	})
	// Aliases that expand to just under the file's alias limit, in
	// documents that reach CUE.
	add("aliases-inside", false, func() []byte {
		doc := "---\n" + fmt.Sprintf(channelDoc, "a") + "x: &w [0,0,0,0,0,0,0,0,0,0]\ny: [" +
			strings.TrimSuffix(strings.Repeat("*w, ", MaxAliasNodes/11/3), ", ") + "]\n"
		return []byte(strings.Repeat(doc, 3))
	})
	// One scalar of nearly the file limit.
	add("huge-scalar", false, func() []byte {
		return ([]byte("apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: c}\nspec: {controlPlane: cloud, version: " + strings.Repeat("1", MaxFileSize-200) + "}\n"))
	})
	// A block scalar of nearly the file limit, many lines.
	add("huge-block-scalar", false, func() []byte {
		return []byte("x: |\n" + strings.Repeat("  "+strings.Repeat("y", 76)+"\n", (MaxFileSize-100)/79))
	})
	// A file just over the size limit.
	add("file-over", false, func() []byte { return (append([]byte("# "), strings.Repeat("x", MaxFileSize)...)) })
	return shapes
}
