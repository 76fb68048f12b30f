package sources

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// TestTreeFS runs the standard file-system checks on a commit's tree read
// from the object store.
func TestTreeFS(t *testing.T) {
	r := newWorkRepo(t)
	r.commit("tree", map[string]string{
		"channels/stable.yaml":      "kind: Channel\n",
		"channels/edge/cloud.yaml":  "kind: Channel\n",
		"groups/eu.yaml":            "kind: Group\n",
		"groups/us.yaml":            "kind: Group\n",
		"a-b.yaml":                  "sorted before a/ in git, after in fs\n",
		"a/x.yaml":                  "x\n",
		".upkeepignore":             "drafts/\n",
		"scripts/check.sh":          "#!/bin/sh\n",
		"deep/er/and/deeper/z.yaml": "z\n",
	})
	must(t, os.Chmod(filepath.Join(r.dir, "scripts/check.sh"), 0o755))
	must(t, os.Symlink("channels/stable.yaml", filepath.Join(r.dir, "stable-link.yaml")))
	must(t, os.Symlink("../channels", filepath.Join(r.dir, "groups/channels-link")))
	head := r.commit("links and modes", nil)

	rev, err := ReadRevision(r.dir, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if rev.ID != head {
		t.Fatalf("ID %s, want %s", rev.ID, head)
	}
	if err := fstest.TestFS(rev.Files,
		"channels/stable.yaml", "channels/edge/cloud.yaml", "groups/eu.yaml", "a-b.yaml", "a/x.yaml",
		"scripts/check.sh", "deep/er/and/deeper/z.yaml", "stable-link.yaml",
	); err != nil {
		t.Fatal(err)
	}

	checks := []struct {
		scenario string
		check    func() error
	}{
		{"a link to a file reads the file", func() error {
			if got := readString(t, rev.Files, "stable-link.yaml"); got != "kind: Channel\n" {
				return errors.New("got " + got)
			}
			return nil
		}},
		{"a link to a directory inside the tree is followed", func() error {
			if got := readString(t, rev.Files, "groups/channels-link/edge/cloud.yaml"); got != "kind: Channel\n" {
				return errors.New("got " + got)
			}
			return nil
		}},
		{"an executable keeps its execute bit", func() error {
			fi, err := fs.Stat(rev.Files, "scripts/check.sh")
			if err != nil || fi.Mode().Perm()&0o100 == 0 {
				return errors.New("mode lost")
			}
			return nil
		}},
		{"files carry the commit time", func() error {
			fi, err := fs.Stat(rev.Files, "groups/eu.yaml")
			want := testGit(t, r.dir, "log", "-1", "--format=%ct")
			if err != nil || fi.ModTime().Unix() != mustParseUnix(t, want) {
				return errors.New("mod time is not the commit time")
			}
			return nil
		}},
	}
	for _, c := range checks {
		t.Run(c.scenario, func(t *testing.T) {
			if err := c.check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func mustParseUnix(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not a unix time: %q", s)
	}
	return n
}

func TestTreeFSLinksThatLeave(t *testing.T) {
	r := newWorkRepo(t)
	r.commit("files", map[string]string{"a.yaml": "a\n"})
	must(t, os.Symlink("/etc/passwd", filepath.Join(r.dir, "absolute")))
	must(t, os.Symlink("../outside", filepath.Join(r.dir, "up")))
	must(t, os.Symlink("loop-b", filepath.Join(r.dir, "loop-a")))
	must(t, os.Symlink("loop-a", filepath.Join(r.dir, "loop-b")))
	r.commit("bad links", nil)
	rev, err := ReadRevision(r.dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		scenario, name string
		want           error
	}{
		{"an absolute link is not followed out of the repository", "absolute", errSymlinkEscape},
		{"a link above the root is not followed", "up", errSymlinkEscape},
		{"a link loop ends", "loop-a", errSymlinkLoop},
		{"a missing file does not exist", "nope.yaml", fs.ErrNotExist},
		{"a path through a file does not exist", "a.yaml/x", fs.ErrNotExist},
		{"an invalid path is refused", "../a.yaml", fs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			_, err := fs.ReadFile(rev.Files, tt.name)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// The links are still listed, as links.
	entries, err := fs.ReadDir(rev.Files, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "absolute" && e.Type() != fs.ModeSymlink {
			t.Fatalf("absolute: type %v, want a symlink", e.Type())
		}
	}
}

func TestReadRevision(t *testing.T) {
	r := newWorkRepo(t)
	first := r.commit("first", map[string]string{"channels/stable.yaml": "version: 1.0.0\n", "gone.yaml": "old\n"})
	testGit(t, r.dir, "tag", "-a", "-m", "release", "v1", first)
	testGit(t, r.dir, "branch", "old-main", first)
	second := r.commit("second", map[string]string{"channels/stable.yaml": "version: 2.0.0\n", "gone.yaml": ""})

	// Uncommitted work: an edited file, a staged file, an untracked file.
	must(t, os.WriteFile(filepath.Join(r.dir, "channels/stable.yaml"), []byte("version: 3.0.0-wip\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(r.dir, "staged.yaml"), []byte("staged\n"), 0o644))
	testGit(t, r.dir, "add", "staged.yaml")
	must(t, os.WriteFile(filepath.Join(r.dir, "untracked.yaml"), []byte("new\n"), 0o644))
	statusBefore := testGit(t, r.dir, "status", "--porcelain=v2")
	index := filepath.Join(r.dir, ".git", "index")
	indexBefore, err := os.ReadFile(index)
	must(t, err)

	tests := []struct {
		scenario, rev, wantID, wantStable string
		wantGone                          bool
	}{
		{"HEAD~1 sees the previous commit, not the work tree", "HEAD~1", first, "version: 1.0.0\n", true},
		{"HEAD sees the commit, not the uncommitted edit", "HEAD", second, "version: 2.0.0\n", false},
		{"a branch name resolves", "old-main", first, "version: 1.0.0\n", true},
		{"an annotated tag resolves to its commit", "v1", first, "version: 1.0.0\n", true},
		{"a short hash resolves", first[:8], first, "version: 1.0.0\n", true},
		{"a full hash resolves", second, second, "version: 2.0.0\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			// A subdirectory is enough: the repository is found above it.
			rev, err := ReadRevision(filepath.Join(r.dir, "channels"), tt.rev)
			if err != nil {
				t.Fatal(err)
			}
			if rev.ID != tt.wantID {
				t.Fatalf("ID %s, want %s", rev.ID, tt.wantID)
			}
			if got := readString(t, rev.Files, "channels/stable.yaml"); got != tt.wantStable {
				t.Fatalf("channels/stable.yaml = %q, want %q", got, tt.wantStable)
			}
			_, err = fs.Stat(rev.Files, "gone.yaml")
			if (err == nil) != tt.wantGone {
				t.Fatalf("gone.yaml present = %v, want %v", err == nil, tt.wantGone)
			}
			for _, name := range []string{"staged.yaml", "untracked.yaml"} {
				if _, err := fs.Stat(rev.Files, name); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s is not committed but is visible (%v)", name, err)
				}
			}
		})
	}

	if after := testGit(t, r.dir, "status", "--porcelain=v2"); after != statusBefore {
		t.Fatalf("git status changed:\nbefore:\n%s\nafter:\n%s", statusBefore, after)
	}
	indexAfter, err := os.ReadFile(index)
	must(t, err)
	if string(indexAfter) != string(indexBefore) {
		t.Fatal("the index was rewritten")
	}
	if got := readString(t, os.DirFS(r.dir), "channels/stable.yaml"); got != "version: 3.0.0-wip\n" {
		t.Fatalf("the work tree changed: %q", got)
	}

	errs := []struct{ scenario, dir, rev, want string }{
		{"an unknown revision is named", r.dir, "no-such-branch", `revision "no-such-branch"`},
		{"a revision before the first commit fails", r.dir, "HEAD~5", `revision "HEAD~5"`},
		{"a folder outside any repository is explained", t.TempDir(), "HEAD", "not inside a git repository"},
	}
	for _, tt := range errs {
		t.Run(tt.scenario, func(t *testing.T) {
			_, err := ReadRevision(tt.dir, tt.rev)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestReadWorkTree(t *testing.T) {
	r := newWorkRepo(t)
	head := r.commit("first", map[string]string{
		"channels/stable.yaml": "version: 1.0.0\n",
		".gitignore":           "scratch/\n*.local.yaml\n",
	})
	// Ignored files are neither read nor make the tree dirty.
	must(t, os.MkdirAll(filepath.Join(r.dir, "scratch"), 0o755))
	must(t, os.WriteFile(filepath.Join(r.dir, "scratch/draft.yaml"), []byte("draft\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(r.dir, "mine.local.yaml"), []byte("local\n"), 0o644))

	clean, err := ReadWorkTree(r.dir)
	must(t, err)
	if clean.ID != head {
		t.Fatalf("clean work tree: ID %s, want HEAD %s", clean.ID, head)
	}
	if _, err := fs.Stat(clean.Files, "scratch/draft.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an ignored file is visible (%v)", err)
	}

	must(t, os.WriteFile(filepath.Join(r.dir, "channels/stable.yaml"), []byte("version: 1.1.0\n"), 0o644))
	edited, err := ReadWorkTree(r.dir)
	must(t, err)
	if !strings.HasPrefix(edited.ID, head+"-dirty-") {
		t.Fatalf("edited work tree: ID %s, want %s-dirty-<hash>", edited.ID, head)
	}
	if got := readString(t, edited.Files, "channels/stable.yaml"); got != "version: 1.1.0\n" {
		t.Fatalf("edited work tree: content %q", got)
	}

	must(t, os.WriteFile(filepath.Join(r.dir, "channels/stable.yaml"), []byte("version: 1.2.0\n"), 0o644))
	edited2, err := ReadWorkTree(r.dir)
	must(t, err)
	if edited2.ID == edited.ID {
		t.Fatal("two different edits share an ID")
	}

	must(t, os.WriteFile(filepath.Join(r.dir, "channels/stable.yaml"), []byte("version: 1.0.0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(r.dir, "new.yaml"), []byte("new\n"), 0o644))
	untracked, err := ReadWorkTree(r.dir)
	must(t, err)
	if !strings.Contains(untracked.ID, "-dirty-") {
		t.Fatalf("an untracked file must make the tree dirty: ID %s", untracked.ID)
	}

	must(t, os.Remove(filepath.Join(r.dir, "new.yaml")))
	must(t, os.Remove(filepath.Join(r.dir, ".gitignore")))
	deleted, err := ReadWorkTree(r.dir)
	must(t, err)
	if !strings.Contains(deleted.ID, "-dirty-") {
		t.Fatalf("a deleted file must make the tree dirty: ID %s", deleted.ID)
	}

	fresh := newWorkRepo(t)
	must(t, os.WriteFile(filepath.Join(fresh.dir, "a.yaml"), []byte("a\n"), 0o644))
	unborn, err := ReadWorkTree(fresh.dir)
	must(t, err)
	if !strings.HasPrefix(unborn.ID, "worktree-") {
		t.Fatalf("before the first commit: ID %s, want worktree-<hash>", unborn.ID)
	}
}
