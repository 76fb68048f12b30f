package spec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
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
		for _, g := range st.Groups {
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
