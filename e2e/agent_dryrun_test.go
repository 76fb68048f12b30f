package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/reconcile/apply"
)

// TestAgentDryRunChangesNothing runs the built `upkeep agent --once
// --dry-run` against real package managers in isolated roots, in an update
// path and in a recovery path (an update killed while settling), and
// compares before and after: the updater's state directory and the whole
// root the package manager works in (its package database — dpkg's status
// and info, the rpm database — its metadata and caches), the host's dpkg
// status, and what the server holds about the agent (reports, leases).
// Each dry run is followed by the same pass for real, which must change
// the state, so the comparison is known to be able to fail.
func TestAgentDryRunChangesNothing(t *testing.T) {
	f := sharedAgentFixture(t)
	fleet := newFleetServer(t)
	for _, kind := range []string{"apt", "dnf", "zypper"} {
		t.Run(kind, func(t *testing.T) {
			h := newPackageHost(t, kind, f)
			dir := t.TempDir()
			stateDir := filepath.Join(dir, "state")
			agentID := "e2e-dryrun-" + kind
			config := func(slowSettle bool) string {
				m := map[string]any{
					"server": fleet.srv.URL, "channel": "demo", "group": "demo", "stateDir": stateDir,
					"updateDuration": "5m", "tokenFile": fleet.tokenFile, "agentID": agentID,
				}
				for k, v := range h.settings(slowSettle) {
					m[k] = v
				}
				p := filepath.Join(dir, fmt.Sprintf("agent-%d.yaml", time.Now().UnixNano()))
				writeAgentConfig(t, p, m)
				return p
			}
			cfg := config(false)
			// What a dry run must leave alone, outside the package root.
			watched := []string{stateDir, "/var/lib/dpkg/status"}
			server := func() string {
				_, agent, _ := get(t, fleet.srv.URL+"/v1/agents/"+agentID+"?history=20", "Authorization", "Bearer "+fleet.token)
				_, leases, _ := get(t, fleet.srv.URL+"/v1/leases", "Authorization", "Bearer "+fleet.token)
				return agent + "\n" + leases
			}
			dryRun := func(t *testing.T, want ...string) {
				t.Helper()
				ageTree(t, h.root)
				ageTree(t, stateDir)
				before, srvBefore := treeState(t, append(watched, h.root)...), server()
				r := runAgent(t, cfg, "--dry-run")
				after, srvAfter := treeState(t, append(watched, h.root)...), server()
				if r.code != 0 {
					t.Errorf("dry run exit %d, want 0", r.code)
				}
				for _, w := range want {
					if !strings.Contains(r.out, w) {
						t.Errorf("the dry run's output does not contain %q", w)
					}
				}
				if d := diffTrees(before, after); d != "" {
					t.Errorf("the dry run changed files:\n%s", d)
				}
				if srvBefore != srvAfter {
					t.Errorf("the dry run changed what the server holds:\nbefore %s\nafter  %s", srvBefore, srvAfter)
				}
			}
			installed := func(t *testing.T, want string) {
				t.Helper()
				if got := h.installed(t); got != want {
					t.Fatalf("installed %q, want %q", got, want)
				}
			}

			fleet.set(t, "1.0.0", false, false)
			if r := runAgent(t, cfg); r.code != 0 || !strings.HasPrefix(r.decision(), "Update (FirstInstall") {
				t.Fatalf("the first install: decision %q, exit %d", r.decision(), r.code)
			}
			installed(t, "1.0.0")

			t.Run("an update in an open window is only listed", func(t *testing.T) {
				fleet.set(t, "1.1.0", false, true)
				// apt looks the exact version up without writing (its binary
				// caches off); dnf and zypper cannot, so a dry run does not ask.
				resolved := "upkeep-demo-agent=" + h.pkgVersion(t, "1.1.0")
				if kind != "apt" {
					resolved = "the exact package version of 1.1.0 is looked up when installing"
				}
				dryRun(t, "decision: Update (InWindow/InsideWindow)", "would run:", resolved)
				installed(t, "1.0.0")
				before := treeState(t, stateDir)
				if r := runAgent(t, cfg); r.code != 0 || !strings.Contains(r.out, "update:   Updated") {
					t.Fatalf("the real pass: decision %q, exit %d; want Updated", r.decision(), r.code)
				}
				installed(t, "1.1.0")
				if diffTrees(before, treeState(t, stateDir)) == "" {
					t.Errorf("the real pass left the state directory as it was: the dry-run check proves nothing")
				}
			})
			t.Run("an update killed while settling is named, not recovered", func(t *testing.T) {
				fleet.set(t, "1.0.0", false, true)
				kill := h.start(t, config(true))
				waitFor(t, 2*time.Minute, "the journal reaches settling", func() bool {
					j, err := apply.ReadJournal(stateDir)
					return err == nil && j != nil && j.Step == apply.StepSettling
				})
				kill()
				installed(t, "1.0.0") // installed, not yet judged
				dryRun(t, "unfinished: the update 1.1.0 → 1.0.0 stopped while settling; a real pass finishes it first")
				if j, _ := apply.ReadJournal(stateDir); j == nil || !j.Unfinished() {
					t.Fatalf("journal %+v after the dry run: it should still be unfinished", j)
				}
				r := runAgent(t, cfg)
				if r.code != 0 || !strings.Contains(r.out, "recovered: Updated") {
					t.Fatalf("the real pass: exit %d, want the interrupted update finished", r.code)
				}
				if j, _ := apply.ReadJournal(stateDir); j == nil || j.Unfinished() {
					t.Errorf("journal %+v after the real pass: want it finished", j)
				}
			})
		})
	}
}

// pkgVersion is the exact package version of release v in the test repository.
func (h *packageHost) pkgVersion(t *testing.T, v string) string {
	t.Helper()
	avail, err := h.inst.Available(context.Background(), demoPkg)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range avail {
		if installers.ReleaseVersion(a) == v {
			return a
		}
	}
	t.Fatalf("the repository offers no package of %s: %v", v, avail)
	return ""
}

// fileState is what a dry run must not change about one path.
type fileState struct {
	mode    fs.FileMode
	size    int64
	mtime   time.Time
	content string // regular files only
	link    string // symlinks only
}

// treeState maps every path under the given roots (files or folders; a
// missing root maps to nothing) to its state. Folders are included: a file
// created and removed again still changes its folder's mtime.
func treeState(t *testing.T, roots ...string) map[string]fileState {
	t.Helper()
	m := map[string]fileState{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if os.IsNotExist(err) {
				return nil
			}
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			s := fileState{mode: info.Mode(), size: info.Size(), mtime: info.ModTime()}
			switch {
			case info.Mode().IsRegular():
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				s.content = string(b)
			case info.Mode()&fs.ModeSymlink != 0:
				s.link, _ = os.Readlink(path)
			}
			m[path] = s
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// diffTrees lists the paths created, removed or changed between two
// treeStates; "" when none.
func diffTrees(before, after map[string]fileState) string {
	var out []string
	for p, b := range before {
		a, ok := after[p]
		if ok && strings.HasSuffix(p, "-shm") {
			// SQLite's shared-memory index of a WAL database (rpm's
			// rpmdb.sqlite-shm): every reader, `rpm -q` too, maps it and
			// bumps its mtime; it holds no data. Its content must still match.
			a.mtime = b.mtime
		}
		switch {
		case !ok:
			out = append(out, "removed "+p)
		case a != b:
			what := "changed"
			switch {
			case a.content != b.content || a.size != b.size:
				what = "rewritten with other content"
			case a.mode != b.mode:
				what = fmt.Sprintf("mode %v → %v", b.mode, a.mode)
			case !a.mtime.Equal(b.mtime):
				what = fmt.Sprintf("touched (mtime %s → %s)", b.mtime.Format(time.RFC3339Nano), a.mtime.Format(time.RFC3339Nano))
			}
			out = append(out, what+" "+p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, "created "+p)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// ageTree sets an old mtime on every path under root, so a rewrite within
// the same clock tick still shows.
func ageTree(t *testing.T, root string) {
	t.Helper()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	var paths []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink == 0 {
			paths = append(paths, p)
		}
		return nil
	})
	for i := len(paths) - 1; i >= 0; i-- { // children before their folder
		if err := os.Chtimes(paths[i], old, old); err != nil {
			t.Fatal(err)
		}
	}
}
