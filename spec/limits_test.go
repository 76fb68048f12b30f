package spec

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

const channelDoc = "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  name: %s\nspec:\n  controlPlane: cloud\n  version: 17.1.0\n"

// aliasesPerDoc is how many aliases of a ten-element list fit in a
// document of 13 nodes besides.
const aliasesPerDoc = (MaxDocumentNodes - 13) / 11

// flowList is a flow list of n copies of item.
func flowList(n int, item string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(item+", ", n), ", ") + "]"
}

// TestLoadRefusesHostileInputs: each input that breaks a limit, or that
// the loader refuses on sight, is refused with file:line and the limit's
// name, before CUE sees it; the base fleet beside it still loads.
func TestLoadRefusesHostileInputs(t *testing.T) {
	groupWith := func(extra string) string { return fmt.Sprintf(groupHead, "h") + extra }
	tests := []struct {
		scenario string
		files    map[string]string
		want     []string
	}{
		{
			scenario: "a file one byte over the size limit is not parsed",
			files:    map[string]string{"big.yaml": "#" + strings.Repeat("x", MaxFileSize)},
			want:     []string{"big.yaml: file is larger than 1 MiB (limit file-bytes is 1048576); split it, or list it in .upkeepignore if it is not fleet state"},
		},
		{
			scenario: "the file that takes the repository over its size limit is refused, and later files are not read",
			files: func() map[string]string {
				files := map[string]string{}
				for i := range 4 {
					files[fmt.Sprintf("z%d.yaml", i)] = "#" + strings.Repeat("x", MaxRepositorySize/3-1)
				}
				files["zz.yaml"] = "not: [read"
				return files
			}(),
			// base.yaml and z0 to z1 fit; z2 takes the total over.
			want: []string{"z2.yaml: the repository's YAML files, up to this one, hold more than 640 KiB (limit repository-bytes is 655360); this and later files are not read; list files that are not fleet state in .upkeepignore, or raise the limit (--max-repository-bytes) knowing that a load takes time and memory in proportion"},
		},
		{
			scenario: "the file one over the files limit is refused, and later files are not read",
			files: func() map[string]string {
				files := map[string]string{}
				for i := range MaxFiles - 1 { // and base.yaml
					files[fmt.Sprintf("many/%05d.yaml", i)] = ""
				}
				files["many/z.yaml"] = "not: [read"
				files["zz.yaml"] = "not: [read"
				return files
			}(),
			want: []string{"many/z.yaml: the repository holds more than 20000 YAML files (limit files-per-repository is 20000); this and later files are not read; merge small files, or list files that are not fleet state in .upkeepignore"},
		},
		{
			scenario: "repeated keys are reported ten times in a document, and the rest counted",
			files:    map[string]string{"k.yaml": fmt.Sprintf(channelDoc, "k") + "a: 1\n" + strings.Repeat("a: 2\n", maxLimitErrors+5)},
			want: func() []string {
				var w []string
				for i := range maxLimitErrors {
					w = append(w, fmt.Sprintf("k.yaml:%d:1: a: duplicate key (first at line 8); remove one of them", i+9))
				}
				return append([]string{"k.yaml:1:1: 5 more duplicate keys in this document; remove them"}, w...)
			}(),
		},
		{
			scenario: "a file with one token over the token limit is refused at the line where it crosses",
			files:    map[string]string{"t.yaml": "a: b\n" + strings.Repeat("x ", MaxFileTokens-2) + "\ny\n"},
			want:     []string{fmt.Sprintf("t.yaml:3: file holds more than %d tokens (limit file-tokens is %[1]d); split it into several files", MaxFileTokens)},
		},
		{
			scenario: "one document over the documents limit is refused at that document",
			files:    map[string]string{"d.yaml": strings.Repeat("---\na: 1\n", MaxDocuments+1)},
			want:     []string{fmt.Sprintf("d.yaml:%d:1: file holds more than 2000 documents (limit documents-per-file is 2000); split it into several files", 2*MaxDocuments+1)},
		},
		{
			scenario: "flow lists nested one level too deep are refused at the innermost",
			files:    map[string]string{"n.yaml": "x: " + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + "\n"},
			want:     []string{"n.yaml:1:36: mappings and lists nest more than 32 levels deep (limit nesting-depth is 32); flatten the document"},
		},
		{
			scenario: "block mappings nested too deep are refused as flow ones are",
			files: map[string]string{"n.yaml": func() string {
				var b strings.Builder
				for i := range MaxDepth + 1 {
					b.WriteString(strings.Repeat(" ", i) + "a:\n")
				}
				return b.String() + strings.Repeat(" ", MaxDepth+1) + "b: 1\n"
			}()},
			want: []string{"n.yaml:34:34: mappings and lists nest more than 32 levels deep (limit nesting-depth is 32); flatten the document"},
		},
		{
			scenario: "an alias of a deep value nests too deep once expanded",
			files:    map[string]string{"n.yaml": "a: &a " + strings.Repeat("[", 20) + strings.Repeat("]", 20) + "\nb: [[[[[[[[[[[[[[*a]]]]]]]]]]]]]]\n"},
			want:     []string{"n.yaml:2:18: expanded, the alias *a nests more than 32 levels deep (limit nesting-depth is 32); flatten the anchored value"},
		},
		{
			scenario: "nested aliases that expand past the document limit are refused at the alias that crosses it",
			files:    map[string]string{"a.yaml": "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"},
			// Before d: 1,235 nodes; each *c adds 1,111.
			want: []string{fmt.Sprintf("a.yaml:4:%d: document holds more than %d YAML nodes (the limit is crossed here) (limit nodes-per-document is %[2]d); split it into several documents",
				5+3*((MaxDocumentNodes-1235)/1111), MaxDocumentNodes)},
		},
		{
			scenario: "aliases that expand past the alias limit over several documents are refused at the alias that crosses it",
			// Each document: 13 nodes and as many aliases of 11 as fit in
			// it; the third document crosses the alias limit.
			files: map[string]string{"a.yaml": strings.Repeat("---\na: &a [x,x,x,x,x,x,x,x,x,x]\nb: ["+strings.TrimSuffix(strings.Repeat("*a,", aliasesPerDoc), ",")+"]\n", 3)},
			want: []string{fmt.Sprintf("a.yaml:9:%d: aliases expand to more than %d nodes in this file (limit alias-nodes is %[2]d); write the values out, or use fewer aliases of large values",
				5+3*((MaxAliasNodes-2*11*aliasesPerDoc)/11), MaxAliasNodes)},
		},
		{
			scenario: "a document of more nodes than allowed is refused where it crosses the limit",
			files:    map[string]string{"n.yaml": "x:\n" + strings.Repeat("  - "+flowList(MaxEntries, "0")+"\n", MaxDocumentNodes/MaxEntries+1)},
			want: func() []string {
				// The document and x: 2 nodes; each line's list 1 + MaxEntries.
				lines := (MaxDocumentNodes - 2) / (MaxEntries + 1)
				z := MaxDocumentNodes - (2 + lines*(MaxEntries+1) + 1) + 1 // the scalar that crosses
				return []string{fmt.Sprintf("n.yaml:%d:%d: document holds more than %d YAML nodes (the limit is crossed here) (limit nodes-per-document is %[3]d); split it into several documents",
					lines+2, 6+3*(z-1), MaxDocumentNodes)}
			}(),
		},
		{
			scenario: "a group with one window over the windows limit is refused at the list",
			files:    map[string]string{"g.yaml": groupWith("  windows: " + flowList(MaxWindows+1, `{start: "02:00", duration: 1h}`) + "\n")},
			want:     []string{"g.yaml:8:12: list has 201 entries (limit windows-per-group is 200); split the document"},
		},
		{
			scenario: "a group with one freeze over the freezes limit is refused at the list",
			files:    map[string]string{"g.yaml": groupWith("  freezes: " + flowList(MaxFreezes+1, "{name: f, start: 2027-01-01, end: 2027-01-02}") + "\n")},
			want:     []string{"g.yaml:8:12: list has 201 entries (limit freezes-per-group is 200); split the document"},
		},
		{
			scenario: "windows given by an alias count as written out",
			files:    map[string]string{"g.yaml": groupWith("  order: &w " + flowList(MaxWindows+1, "0") + "\n  windows: *w\n")},
			want:     []string{"g.yaml:9:12: list has 201 entries (limit windows-per-group is 200); split the document"},
		},
		{
			scenario: "a window with too many days is refused",
			files:    map[string]string{"g.yaml": groupWith("  windows: [{start: \"02:00\", duration: 1h, days: " + flowList(MaxDays+1, "Mon") + "}]\n")},
			want:     []string{"g.yaml:8:50: list has 15 entries (limit days-per-window is 14); split the document"},
		},
		{
			scenario: "a rollout with too many stages is refused",
			files:    map[string]string{"c.yaml": fmt.Sprintf(channelDoc, "r") + "  rollout:\n    stages: " + flowList(MaxStages+1, "{groups: [eu-prod]}") + "\n"},
			want:     []string{"c.yaml:9:13: list has 101 entries (limit stages-per-rollout is 100); split the document"},
		},
		{
			scenario: "any other list over the entries limit is refused",
			files:    map[string]string{"c.yaml": fmt.Sprintf(channelDoc, "r") + "  x: " + flowList(MaxEntries+1, "0") + "\n"},
			want:     []string{"c.yaml:8:6: list has 1001 entries (limit entries-per-collection is 1000); split the document"},
		},
		{
			scenario: "a mapping over the entries limit is refused",
			files: map[string]string{"m.yaml": func() string {
				var b strings.Builder
				for i := range MaxMappingKeys + 1 {
					fmt.Fprintf(&b, "k%d: 0\n", i)
				}
				return b.String()
			}()},
			want: []string{"m.yaml:1:1: mapping has 101 keys (limit keys-per-mapping is 100); remove the keys the schema does not know"},
		},
		{
			scenario: "a scalar over the scalar limit is refused, not quoted back whole",
			files:    map[string]string{"c.yaml": strings.Replace(fmt.Sprintf(channelDoc, "r"), "17.1.0", strings.Repeat("1", MaxScalarBytes+1), 1)},
			want:     []string{"c.yaml:7:12: scalar of 4097 bytes (limit scalar-bytes is 4096); no field of a fleet document takes so long a value: shorten it"},
		},
		{
			scenario: "a key over the scalar limit is refused too",
			files:    map[string]string{"c.yaml": "? " + strings.Repeat("k", MaxScalarBytes+1) + "\n: 1\n"},
			want:     []string{"c.yaml:1:3: scalar of 4097 bytes (limit scalar-bytes is 4096); no field of a fleet document takes so long a value: shorten it"},
		},
		{
			scenario: "a file that breaks a limit many times says so at most ten times",
			files:    map[string]string{"n.yaml": strings.Repeat("---\nx: "+strings.Repeat("[", MaxDepth+1)+strings.Repeat("]", MaxDepth+1)+"\n", 20)},
			want: func() []string {
				var w []string
				for i := range maxLimitErrors {
					w = append(w, fmt.Sprintf("n.yaml:%d:36: mappings and lists nest more than 32 levels deep (limit nesting-depth is 32); flatten the document", 2*i+2))
				}
				return w
			}(),
		},
		{
			scenario: "a merge key is refused where it is written, with why and what to do instead",
			files:    map[string]string{"c.yaml": "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: r}\nspec: {controlPlane: cloud, version: 17.0.0, <<: {version: 17.1.0}}\n"},
			want:     []string{"c.yaml:4:46: merge keys (<<) are not supported: tools disagree on what they mean, so a review cannot tell which value is served; write the keys out, or use an alias (*name) for a whole value"},
		},
		{
			scenario: "a merge key of an alias in block style is refused too",
			files:    map[string]string{"c.yaml": "base: &b {version: 17.0.0}\napiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: r}\nspec:\n  <<: *b\n  controlPlane: cloud\n"},
			want:     []string{"c.yaml:6:3: merge keys (<<) are not supported: tools disagree on what they mean, so a review cannot tell which value is served; write the keys out, or use an alias (*name) for a whole value"},
		},
		{
			scenario: "a merge key tagged !!merge is refused as a plain one is",
			files:    map[string]string{"c.yaml": "a: {!!merge <<: {b: 1}}\n"},
			want:     []string{"c.yaml:1:5: merge keys (<<) are not supported: tools disagree on what they mean, so a review cannot tell which value is served; write the keys out, or use an alias (*name) for a whole value"},
		},
		{
			scenario: "invalid UTF-8 is reported at the line and column of its first byte",
			files:    map[string]string{"u.yaml": "apiVersion: upkeep.dev/v1alpha1\nkind: Chan\xffnel\n"},
			want:     []string{"u.yaml:2:11: invalid UTF-8 (byte 0xff); YAML files must be UTF-8: save the file as UTF-8"},
		},
		{
			scenario: "a truncated UTF-8 sequence at the end of a file is reported where it starts",
			files:    map[string]string{"u.yaml": "a: b\nc: \xc3"},
			want:     []string{"u.yaml:2:4: invalid UTF-8 (byte 0xc3); YAML files must be UTF-8: save the file as UTF-8"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			fsys := fleet(nil)
			for name, data := range tt.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			st, errs := Load(fsys)
			if got := errorLines(errs); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if st.Channel("stable/cloud") == nil || st.Group("eu-prod") == nil {
				t.Errorf("the base fleet beside the hostile file did not load: %+v", st)
			}
		})
	}
}

// TestLoadAcceptsInputsAtTheLimits: what sits exactly at a limit loads,
// so the limits refuse only what is over them.
func TestLoadAcceptsInputsAtTheLimits(t *testing.T) {
	tests := []struct {
		scenario string
		data     func() string
		check    func(*State) bool
	}{
		{
			scenario: "a group with as many windows and freezes as allowed, each window with as many days",
			data: func() string {
				var b strings.Builder
				fmt.Fprintf(&b, groupHead, "full")
				b.WriteString("  windows:\n")
				b.WriteString("    - {days: [" + strings.TrimSuffix(strings.Repeat("Mon, ", MaxDays), ", ") + "], start: \"02:00\", duration: 1h}\n")
				for range MaxWindows - 1 {
					b.WriteString("    - {start: \"02:00\", duration: 1h}\n")
				}
				b.WriteString("  freezes:\n")
				for i := range MaxFreezes {
					fmt.Fprintf(&b, "    - {name: f%d, start: 2027-01-01, end: 2027-01-02}\n", i)
				}
				return b.String()
			},
			check: func(st *State) bool {
				g := st.Group("full")
				return g != nil && len(g.Windows) == MaxWindows && len(g.Freezes) == MaxFreezes
			},
		},
		{
			scenario: "a file with as many channel documents as allowed",
			data: func() string {
				var b strings.Builder
				for i := range MaxDocuments - 1 { // the base fleet has one
					fmt.Fprintf(&b, "---\n"+channelDoc, fmt.Sprintf("c%d", i))
				}
				return b.String()
			},
			check: func(st *State) bool { return len(st.Channels) == MaxDocuments },
		},
		{
			scenario: "a rollout with as many stages as allowed",
			data: func() string {
				var b strings.Builder
				fmt.Fprintf(&b, channelDoc, "r")
				b.WriteString("  rollout:\n    stages:\n")
				for i := range MaxStages {
					fmt.Fprintf(&b, "      - groups: [g%d]\n", i)
				}
				for i := range MaxStages {
					fmt.Fprintf(&b, "---\n"+groupHead, fmt.Sprintf("g%d", i))
				}
				return strings.ReplaceAll(b.String(), "channel: stable/cloud", "channel: r")
			},
			check: func(st *State) bool {
				ch := st.Channel("r")
				return ch != nil && ch.Rollout != nil && len(ch.Rollout.Stages) == MaxStages
			},
		},
		{
			scenario: "aliases that expand to the alias limit, documents at the node limit, and a scalar at the scalar limit",
			data: func() string {
				// Each *w adds 1 + 10 nodes of the list; three documents of
				// 303 aliases make 9,999 nodes of aliases, each document
				// 3,346 nodes of 5,000.
				doc := "---\n" + fmt.Sprintf(channelDoc, "a") + "x: &w [0,0,0,0,0,0,0,0,0,0]\ny: [" +
					strings.TrimSuffix(strings.Repeat("*w, ", MaxAliasNodes/11/3), ", ") + "]\n"
				full := "---\nz: " + strings.Repeat("z", MaxScalarBytes) + "\nx:\n" + strings.Repeat("  - "+flowList(MaxEntries, "0")+"\n", MaxDocumentNodes/(MaxEntries+1)) +
					"  - " + flowList(MaxDocumentNodes-(MaxDocumentNodes/(MaxEntries+1))*(MaxEntries+1)-5, "0") + "\n"
				return strings.Repeat(doc, 3) + full
			},
			// The schema refuses these documents (unknown fields, a second
			// channel "a"): no limit does.
			check: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			fsys := fleet(map[string]string{"limit.yaml": tt.data()})
			st, errs := Load(fsys)
			for _, e := range errs {
				if strings.Contains(e.Msg, "(limit ") {
					t.Fatalf("refused by a limit: %v", e)
				}
			}
			if tt.check != nil && (errs != nil || !tt.check(st)) {
				t.Errorf("not loaded whole: %v", errs)
			}
		})
	}
}
