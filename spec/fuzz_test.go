package spec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"
)

// FuzzLoad feeds arbitrary bytes as one file of a fleet next to the base
// fleet: Load must never panic, always return a State, and either accept
// the repository with all rules holding or explain every rejection with a
// position.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(baseFleet))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("a: b\n  c: d\n"))
	f.Add([]byte("x: &a [*a]\n"))
	f.Add([]byte("<<: {apiVersion: upkeep.dev/v1alpha1}\nkind: Channel\nmetadata: {name: m}\nspec: {controlPlane: cloud, follow: controlPlane}\n"))
	f.Add([]byte("apiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata: {name: g}\nspec: {channel: stable/cloud, timezone: UTC, windows: [{start: '23:59', duration: 168h, days: [Sun]}], freezes: [{name: f, start: 2026-01-01, end: 2026-01-01}]}\n"))
	f.Add([]byte("apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: r}\nspec: {controlPlane: cloud, version: 17.0.0, rollout: {resume: 2026-12-03T10:00:00Z, stages: [{groups: [g], canaries: '10%', bakeTime: 1h, successThreshold: 3, failureThreshold: '0.5%'}, {groups: [h]}]}}\n---\napiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata: {name: g}\nspec: {channel: r, timezone: UTC, maxConcurrent: 2}\n---\napiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata: {name: h}\nspec: {channel: r, timezone: UTC, maxConcurrent: '50%'}\n"))
	// Hostile inputs, each at or over a limit (see limits.go).
	f.Add([]byte("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"))
	f.Add([]byte("x: " + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + "\n"))
	f.Add([]byte("a: &a " + strings.Repeat("{b: ", 20) + "c" + strings.Repeat("}", 20) + "\nd: [[[[[[[[[[[[[[*a]]]]]]]]]]]]]]\n"))
	f.Add([]byte("apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: r}\nspec: {controlPlane: cloud, version: 17.0.0, <<: {version: 17.1.0}}\n"))
	f.Add([]byte("a: {!!merge <<: {b: 1}}\n"))
	f.Add([]byte("apiVersion: upkeep.dev/v1alpha1\nkind: Chan\xffnel\n"))
	f.Add([]byte("apiVersion: upkeep.dev/v1alpha1\nkind: \"Chan\\nnel\"\nmetadata: {name: \"a\\rb\"}\n\"k\\ney\": 1\n"))
	f.Add([]byte("? " + strings.Repeat("k", MaxScalarBytes+1) + "\n: 1\n"))
	f.Add([]byte(strings.Repeat("---\na: 1\n", MaxDocuments+1)))
	f.Add([]byte("apiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata: {name: " + strings.Repeat("g", MaxNameLength+1) + "}\nspec: {channel: stable/cloud, timezone: UTC}\n"))
	files, _ := filepath.Glob("testdata/valid/*/*.y*ml")
	more, _ := filepath.Glob("testdata/valid/*.yaml")
	for _, p := range append(files, more...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fleet(nil)
		fsys["fuzz.yaml"] = &fstest.MapFile{Data: data}
		st, errs := Load(fsys)
		if st == nil {
			t.Fatal("Load returned no State")
		}
		for _, e := range errs {
			if e.Pos.File == "" || e.Msg == "" {
				t.Fatalf("error without a file or message: %#v", e)
			}
			if strings.HasPrefix(e.Msg, internalError) {
				t.Fatalf("%v", e)
			}
			if line := e.Error(); strings.ContainsFunc(line, func(r rune) bool { return !unicode.IsPrint(r) }) {
				t.Fatalf("error is not one line of printable text: %q", line)
			}
		}
		if !slices.IsSortedFunc(errs, func(a, b Error) int {
			s := Errors{a, b}
			s.Sort()
			if s[0] == a && a != b {
				return -1
			}
			if a == b {
				return 0
			}
			return 1
		}) {
			t.Fatalf("errors not sorted:\n%v", errs)
		}
		if errs != nil {
			return
		}
		for _, ch := range st.Channels {
			cp := st.ControlPlane(ch.ControlPlane)
			if cp == nil {
				t.Fatalf("valid state: channel %q on missing control plane %q", ch.Name, ch.ControlPlane)
			}
			if v := st.ResolvedVersion(ch); v != "" {
				if err := cp.Admits(v); err != nil {
					t.Fatalf("valid state: channel %q: %v", ch.Name, err)
				}
			}
		}
		for _, ch := range st.Channels {
			checkRolloutInvariants(t, st, ch)
		}
		for _, g := range st.Groups {
			if !validQuantity(g.MaxConcurrent) {
				t.Fatalf("valid state: group %q maxConcurrent %+v", g.Name, g.MaxConcurrent)
			}
			if st.Channel(g.Channel) == nil || g.Location == nil {
				t.Fatalf("valid state: group %+v", g)
			}
			for _, fz := range g.Freezes {
				if !fz.End.After(fz.Start) {
					t.Fatalf("valid state: group %q freeze %q ends before it starts", g.Name, fz.Name)
				}
			}
			for _, w := range g.Windows {
				if w.Duration <= 0 || w.Duration > MaxWindowDuration || w.Start < 0 || w.Start >= 24*60*60*1e9 {
					t.Fatalf("valid state: group %q window %+v", g.Name, w)
				}
			}
		}
	})
}

// checkRolloutInvariants asserts what a valid State promises of a
// channel's rollout: stages with groups that follow the channel, each
// group in one stage, sane thresholds, and an implicit last stage.
func checkRolloutInvariants(t *testing.T, st *State, ch *Channel) {
	t.Helper()
	if ch.Rollout == nil {
		return
	}
	if len(ch.Rollout.Stages) == 0 {
		t.Fatalf("valid state: channel %q has a rollout without stages", ch.Name)
	}
	seen := map[string]bool{}
	for i, s := range ch.Rollout.Stages {
		if len(s.Groups) == 0 || !validQuantity(s.Canaries) || s.Canaries.IsPercent && s.Canaries.Percent >= 100 ||
			s.SuccessThreshold.IsZero() || !validQuantity(s.SuccessThreshold) || s.FailureThreshold.IsZero() || !validQuantity(s.FailureThreshold) ||
			s.BakeTime < 0 || s.BakeTime > MaxWindowDuration {
			t.Fatalf("valid state: channel %q stage %d %+v", ch.Name, i, s)
		}
		for _, g := range s.Groups {
			if grp := st.Group(g); grp == nil || grp.Channel != ch.Name || seen[g] {
				t.Fatalf("valid state: channel %q stage %d group %q missing, on another channel or in two stages", ch.Name, i, g)
			}
			seen[g] = true
		}
	}
	if stages := st.RolloutStages(ch.Name); ch.Version != NoVersion && (len(stages) != len(ch.Rollout.Stages)+1 || !stages[len(stages)-1].Implicit) {
		t.Fatalf("valid state: channel %q resolves to %+v", ch.Name, stages)
	}
}

func validQuantity(q Quantity) bool {
	if q.IsPercent {
		return q.Count == 0 && q.Percent > 0 && q.Percent <= 100
	}
	return q.Count >= 0 && q.Percent == 0
}
