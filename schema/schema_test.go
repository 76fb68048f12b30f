package schema

import (
	"cmp"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"cuelang.org/go/cue/ast"
	cueyaml "cuelang.org/go/encoding/yaml"
)

// extract decodes the first YAML document of src the way package spec does.
func extract(t testing.TB, src string) ast.Expr {
	t.Helper()
	expr, err := cueyaml.NewDecoder("doc.yaml", strings.NewReader(src)).Extract()
	if err != nil && err != io.EOF {
		t.Fatalf("extract: %v", err)
	}
	return expr
}

const validGroup = `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu-prod
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
  updateDuration: 20m
  order: 2
  windows:
    - days: [Tue, Thu]
      start: "02:00"
      duration: 4h
  freezes:
    - name: year-end
      start: 2026-12-20
      end: 2027-01-04T00:00:00Z
      allowCritical: true
  maxConcurrent: "20%"
`

const rolloutChannel = `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: stable/cloud
spec:
  controlPlane: cloud
  version: 17.4.0
  rollout:
    resume: 2026-12-03T10:00:00Z
    stages:
      - groups: [canary-hosts]
        canaries: 1
        bakeTime: 30m
        successThreshold: "100%"
        failureThreshold: 1
      - groups: [eu-prod, us-prod]
        canaries: 12.5%
        failureThreshold: "2%"
`

func TestCheckAcceptsValidDocuments(t *testing.T) {
	for kind, src := range map[string]string{ // kind, then what the case adds
		"ControlPlane":           "apiVersion: upkeep.dev/v1alpha1\nkind: ControlPlane\nmetadata: {name: cloud}\nspec: {version: 17.2.3, agents: '>= 16.0.0'}\n",
		"Channel":                "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: stable/cloud}\nspec: {controlPlane: cloud, follow: controlPlane, critical: true}\n",
		"Group":                  validGroup,
		"Channel with a rollout": rolloutChannel,
		"Group with a count":     strings.Replace(validGroup, `"20%"`, "0", 1),
	} {
		kind, _, _ = strings.Cut(kind, " ")
		vs, err := Check(kind, "doc.yaml", extract(t, src))
		if err != nil || len(vs) != 0 {
			t.Errorf("%s: violations %+v, error %v", kind, vs, err)
		}
	}
}

func TestCheckReportsViolations(t *testing.T) {
	tests := []struct {
		scenario string
		kind     string
		src      string
		want     []Violation
	}{
		{
			scenario: "an unknown field lists the allowed ones",
			kind:     "ControlPlane",
			src:      "apiVersion: upkeep.dev/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cloud\nspec:\n  version: 17.2.3\n  agnets: '>= 1'\n",
			want:     []Violation{{Path: "spec.agnets", Line: 7, Col: 3, Msg: "unknown field; allowed here: version, agents"}},
		},
		{
			scenario: "a missing field has no position in the document",
			kind:     "Channel",
			src:      "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  name: x\n",
			want:     []Violation{{Path: "spec", Msg: "required field is missing"}},
		},
		{
			scenario: "several bad values are all reported, with the value found",
			kind:     "Group",
			src: strings.NewReplacer(`"02:00"`, `"2:00"`, "20m", "20 minutes", "[Tue, Thu]", "[Tue, thu]", "order: 2", "order: two").
				Replace(validGroup),
			want: []Violation{
				{Path: "spec.updateDuration", Line: 8, Col: 19, Msg: `got "20 minutes"; want a duration such as "15m" or "1h"`},
				{Path: "spec.order", Line: 9, Col: 10, Msg: `got "two"; want an integer`},
				{Path: "spec.windows[0].days[1]", Line: 11, Col: 19, Msg: `got "thu"; want one of Mon, Tue, Wed, Thu, Fri, Sat, Sun`},
				{Path: "spec.windows[0].start", Line: 12, Col: 14, Msg: `got "2:00"; want a time of day "HH:MM" from "00:00" to "23:59"`},
			},
		},
		{
			scenario: "quantities, durations and times of a rollout say what they want",
			kind:     "Channel",
			src: strings.NewReplacer("resume: 2026-12-03T10:00:00Z", "resume: tomorrow", "canaries: 1\n", "canaries: -1\n",
				"bakeTime: 30m", "bakeTime: 30", `successThreshold: "100%"`, "successThreshold: all", "failureThreshold: 1\n", "failureThreshold: 1.5\n",
				"12.5%", "12,5%", "[eu-prod, us-prod]", "[eu-prod, US]").Replace(rolloutChannel),
			want: []Violation{
				{Path: "spec.rollout.resume", Line: 9, Col: 13, Msg: `got "tomorrow"; want an RFC 3339 time such as 2026-12-03T10:00:00Z`},
				{Path: "spec.rollout.stages[0].canaries", Line: 12, Col: 19, Msg: `got -1; want a count such as 1 or a percent such as "10%" of the stage's agents`},
				{Path: "spec.rollout.stages[0].bakeTime", Line: 13, Col: 19, Msg: `got 30; want a duration such as "30m" or "4h"`},
				{Path: "spec.rollout.stages[0].successThreshold", Line: 14, Col: 27, Msg: `got "all"; want a count such as 5 or a percent such as "95%" of the step's agents`},
				{Path: "spec.rollout.stages[0].failureThreshold", Line: 15, Col: 27, Msg: `got 1.5; want a count such as 1 or a percent such as "5%" of the step's agents`},
				{Path: "spec.rollout.stages[1].groups[1]", Line: 16, Col: 27, Msg: `got "US"; want the name of a Group`},
				{Path: "spec.rollout.stages[1].canaries", Line: 17, Col: 19, Msg: `got "12,5%"; want a count such as 1 or a percent such as "10%" of the stage's agents`},
			},
		},
		{
			scenario: "a rollout needs stages and a stage needs groups",
			kind:     "Channel",
			src:      "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: x}\nspec:\n  controlPlane: cloud\n  version: '1.0.0'\n  rollout:\n    stages:\n      - canaries: 1\n",
			want:     []Violation{{Path: "spec.rollout.stages[0].groups", Msg: "required field is missing"}},
		},
		{
			scenario: "stages written as a mapping",
			kind:     "Channel",
			src:      "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: x}\nspec:\n  controlPlane: cloud\n  version: '1.0.0'\n  rollout:\n    stages: {groups: [a]}\n",
			want:     []Violation{{Path: "spec.rollout.stages", Line: 8, Col: 13, Msg: "got a mapping; want a list of stages, each with groups"}},
		},
		{
			scenario: "a maxConcurrent with a space before the percent sign",
			kind:     "Group",
			src:      strings.Replace(validGroup, `"20%"`, "20 %", 1),
			want:     []Violation{{Path: "spec.maxConcurrent", Line: 19, Col: 18, Msg: `got "20 %"; want a count such as 5 or a percent such as "20%" of the group's agents`}},
		},
		{
			scenario: "a list where a mapping belongs",
			kind:     "Channel",
			src:      "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  - name: x\nspec: {controlPlane: cloud, version: '1.0.0'}\n",
			want:     []Violation{{Path: "metadata", Line: 4, Col: 3, Msg: "got a list; want a mapping"}},
		},
		{
			scenario: "a key that is not a plain word is quoted in the path",
			kind:     "Channel",
			src:      "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: x}\nspec: {controlPlane: cloud, version: '1.0.0', \"a b\": 1}\n",
			want:     []Violation{{Path: `spec["a b"]`, Line: 4, Col: 47, Msg: "unknown field; allowed here: controlPlane, version, follow, critical, default, rollout"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			got, err := Check(tt.kind, "doc.yaml", extract(t, tt.src))
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b Violation) int { return a.Line*1000 + a.Col - b.Line*1000 - b.Col })
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("violations:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCheckRefusesAnUnknownKind(t *testing.T) {
	if _, err := Check("Deployment", "doc.yaml", extract(t, "kind: Deployment\n")); err == nil {
		t.Error("want an error for a kind the schema does not define")
	}
}

func TestFields(t *testing.T) {
	if got := Fields("Group", "spec", "windows", "*"); !slices.Equal(got, []string{"days", "start", "duration"}) {
		t.Errorf("Fields(Group spec windows *) = %v", got)
	}
	if got := Fields("Channel", "nowhere"); got != nil {
		t.Errorf("Fields(Channel nowhere) = %v, want nil", got)
	}
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(Source(), "#Group:") {
		t.Error("Source does not hold the schema")
	}
}

// Check is called from several goroutines at once by spec.Load; each must
// get the answer a lone call gets.
func TestCheckConcurrently(t *testing.T) {
	bad := strings.Replace(validGroup, `"02:00"`, `"24:00"`, 1)
	want, _ := Check("Group", "doc.yaml", extract(t, bad))
	if len(want) != 1 {
		t.Fatalf("violations = %+v, want 1", want)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				expr := extract(t, bad)
				got, err := Check("Group", "doc.yaml", expr)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("concurrent Check = %+v, %v; want %+v", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestPaths(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{KeyPath("", "spec"), "spec"},
		{KeyPath("spec", "updateDuration"), "spec.updateDuration"},
		{KeyPath("spec", "a b"), `spec["a b"]`},
		{KeyPath("", "0"), `["0"]`},
		{IndexPath("spec.windows", 3), "spec.windows[3]"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

// CheckAll evaluates documents of one kind together; each document must get
// exactly the violations it gets alone, across batch boundaries and files,
// whatever the other documents of its batch hold.
func TestCheckAllMatchesCheck(t *testing.T) {
	sources := []struct{ kind, src string }{
		{"Group", validGroup},
		{"Group", strings.Replace(validGroup, `"02:00"`, `"25:00"`, 1)},
		{"Channel", "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: a}\nspec: {controlPlane: cloud, version: '1.0.0', extra: 1}\n"},
		{"ControlPlane", "apiVersion: upkeep.dev/v1alpha1\nkind: ControlPlane\nmetadata: {name: a}\nspec: {version: 17}\n"},
		{"Channel", "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: b}\n"},
		{"Group", strings.Replace(validGroup, "order: 2", "order: [2]", 1)},
	}
	var docs []Document
	for i := range BatchSize + 10 {
		s := sources[i%len(sources)]
		name := fmt.Sprintf("f%02d.yaml", i)
		expr, err := cueyaml.NewDecoder(name, strings.NewReader(s.src)).Extract()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, Document{Kind: s.kind, Filename: name, Expr: expr})
	}
	all, err := CheckAll(docs)
	if err != nil {
		t.Fatal(err)
	}
	invalid := 0
	for i, d := range docs {
		alone, err := Check(d.Kind, d.Filename, d.Expr)
		if err != nil {
			t.Fatal(err)
		}
		byPos := func(a, b Violation) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col), cmp.Compare(a.Msg, b.Msg))
		}
		slices.SortFunc(alone, byPos)
		slices.SortFunc(all[i], byPos)
		if !reflect.DeepEqual(all[i], alone) {
			t.Errorf("%s: in a batch %+v, alone %+v", d.Filename, all[i], alone)
		}
		if len(alone) > 0 {
			invalid++
		}
	}
	if invalid != 5*(BatchSize+10)/6 {
		t.Errorf("%d invalid documents, want %d", invalid, 5*(BatchSize+10)/6)
	}
}

// Valid documents are accepted in one evaluation per batch: that is what
// makes loading a large valid fleet fast.
func TestCheckAllAcceptsAValidBatchAtOnce(t *testing.T) {
	var docs []Document
	for i := range 2*BatchSize + 1 {
		src := strings.Replace(validGroup, "eu-prod", fmt.Sprintf("g%d", i), 1)
		name := fmt.Sprintf("g%d.yaml", i)
		expr, err := cueyaml.NewDecoder(name, strings.NewReader(src)).Extract()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, Document{Kind: "Group", Filename: name, Expr: expr})
	}
	before := batchesPassed.Load()
	all, err := CheckAll(docs)
	if err != nil {
		t.Fatal(err)
	}
	for i, vs := range all {
		if vs != nil {
			t.Errorf("%s: %+v", docs[i].Filename, vs)
		}
	}
	// Two full batches pass at once; the last document is checked alone.
	if n := batchesPassed.Load() - before; n != 2 {
		t.Errorf("%d batches passed in one evaluation, want 2", n)
	}
}

// A full batch with one bad document must not pass: whatever the kind of
// error, it has to surface, and then with the lone check's wording.
func TestCheckAllCatchesOneBadDocumentInAFullBatch(t *testing.T) {
	channel := "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  name: NAME\nspec:\n  controlPlane: cloud\n  version: 17.0.0\n"
	bad := []struct{ scenario, kind, valid, from, to string }{
		{"an unknown top-level field", "Channel", channel, "spec:\n", "extra: 1\nspec:\n"},
		{"an unknown nested field", "Channel", channel, "  version: 17.0.0\n", "  version: 17.0.0\n  pinned: true\n"},
		{"a missing required field", "Channel", channel, "  controlPlane: cloud\n", ""},
		{"a missing required section", "Channel", channel, "spec:\n  controlPlane: cloud\n  version: 17.0.0\n", ""},
		{"a wrong type", "Channel", channel, "version: 17.0.0", "version: 17"},
		{"a broken pattern", "Channel", channel, "name: NAME", "name: Bad_Name"},
		{"an unknown field in a list element", "Group", validGroup, "      duration: 4h\n", "      duration: 4h\n      until: x\n"},
		{"a bad list element", "Group", validGroup, "[Tue, Thu]", "[Tue, Thr]"},
		{"a wrong apiVersion", "Group", validGroup, "upkeep.dev/v1alpha1", "upkeep.dev/v2"},
		{"a quantity of neither branch", "Group", validGroup, `"20%"`, "true"},
		{"a bad quantity in a stage", "Channel", rolloutChannel, "canaries: 1\n", "canaries: '1'\n"},
	}
	for _, tt := range bad {
		t.Run(tt.scenario, func(t *testing.T) {
			var docs []Document
			badAt := BatchSize / 3
			for i := range BatchSize {
				src := tt.valid
				if i == badAt {
					src = strings.Replace(src, tt.from, tt.to, 1)
				}
				src = strings.NewReplacer("NAME", fmt.Sprintf("c%d", i), "eu-prod", fmt.Sprintf("g%d", i)).Replace(src)
				name := fmt.Sprintf("f%d.yaml", i)
				expr, err := cueyaml.NewDecoder(name, strings.NewReader(src)).Extract()
				if err != nil {
					t.Fatal(err)
				}
				docs = append(docs, Document{Kind: tt.kind, Filename: name, Expr: expr})
			}
			all, err := CheckAll(docs)
			if err != nil {
				t.Fatal(err)
			}
			alone, _ := Check(tt.kind, docs[badAt].Filename, docs[badAt].Expr)
			if len(alone) == 0 {
				t.Fatalf("the bad document is valid alone: the scenario is broken")
			}
			for i, vs := range all {
				switch {
				case i == badAt && !reflect.DeepEqual(vs, alone):
					t.Errorf("bad document: in a batch %+v, alone %+v", vs, alone)
				case i != badAt && vs != nil:
					t.Errorf("%s: %+v", docs[i].Filename, vs)
				}
			}
		})
	}
}
