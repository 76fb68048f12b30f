package sources

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upkeep.dev/upkeep/spec"
)

// The rule for every source and for validate: nothing outside the
// repository root is ever read. A relative link to a file inside is read
// as that file; a link that leaves the root, is absolute, dangles or loops
// is refused naming the link; submodules are not read.

const secretMarker = "9.9.9-outside"

func controlPlaneDoc(name, version string) string {
	return "apiVersion: upkeep.dev/v1alpha1\nkind: ControlPlane\nmetadata: {name: " + name + "}\nspec: {version: " + version + "}\n"
}

// outcome is what one reader made of a repository.
type outcome struct {
	err   string // the fetch error or the loader's errors, joined
	st    *spec.State
	files string // every file the reader's file system holds, concatenated
}

func (o outcome) refused(link string) bool { return strings.Contains(o.err, link) }

// readers are the ways upkeep reads a repository: validate, serve --source
// DIR, a Git revision (the remote source and diff --base use the same
// tree), and diff's work tree.
var readers = []struct {
	name string
	git  bool // needs the repository committed
	read func(t *testing.T, dir string) outcome
}{
	{"validate (spec.LoadDir)", false, func(t *testing.T, dir string) outcome {
		st, errs := spec.LoadDir(dir)
		return outcome{err: errText(errs), st: st}
	}},
	{"serve --source DIR (folder)", false, func(t *testing.T, dir string) outcome {
		rev, err := NewFolder(dir).Fetch(context.Background())
		return load(rev, err)
	}},
	{"a Git revision (tree)", true, func(t *testing.T, dir string) outcome {
		rev, err := ReadRevision(dir, "HEAD")
		return load(rev, err)
	}},
	{"a Git work tree", true, func(t *testing.T, dir string) outcome {
		rev, err := ReadWorkTree(dir)
		return load(rev, err)
	}},
}

func errText(errs spec.Errors) string {
	if errs == nil {
		return ""
	}
	return errs.Error()
}

func load(rev Revision, err error) outcome {
	if err != nil {
		return outcome{err: err.Error()}
	}
	st, errs := spec.Load(rev.Files)
	var all strings.Builder
	_ = fs.WalkDir(rev.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, err := fs.ReadFile(rev.Files, p); err == nil {
				all.Write(data)
			}
		}
		return nil
	})
	return outcome{err: errText(errs), st: st, files: all.String()}
}

func TestSymlinksNeverLeaveTheRepository(t *testing.T) {
	type link struct{ name, target string }
	tests := []struct {
		scenario string
		links    []link
		// refused names the link that must be refused; "" when the
		// repository loads.
		refused string
		// inside is the control plane a link to an inside file brings in.
		inside string
	}{
		{"a link to a file outside is refused", []link{{"out.yaml", "../outside/secret.yaml"}}, "out.yaml", ""},
		{"a link to a directory outside reads nothing from it", []link{{"shared", "../outside"}}, "", ""},
		{"a chain of links that ends outside is refused", []link{{"a.yaml", "b.yaml"}, {"b.yaml", "../outside/secret.yaml"}}, "a.yaml", ""},
		{"a link whose .. components climb out is refused", []link{{"up.yaml", "data/../../outside/secret.yaml"}}, "up.yaml", ""},
		{"an absolute link is refused", []link{{"abs.yaml", "ABS/outside/secret.yaml"}}, "abs.yaml", ""},
		{"an absolute link to a file inside is refused too (it breaks when the repository moves)", []link{{"absin.yaml", "ABS/repo/data/cp.txt"}}, "absin.yaml", ""},
		{"a relative link to a file inside is read as that file", []link{{"cp.yaml", "data/cp.txt"}}, "", "inside"},
		{"a link inside with .. components that stay inside is read", []link{{"cp.yaml", "data/../data/cp.txt"}}, "", "inside"},
		{"a link loop is refused", []link{{"loop-a.yaml", "loop-b.yaml"}, {"loop-b.yaml", "loop-a.yaml"}}, "loop-a.yaml", ""},
		{"a dangling link is refused", []link{{"gone.yaml", "data/gone.yaml"}}, "gone.yaml", ""},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			base := t.TempDir()
			writeFiles(t, base, map[string]string{
				"outside/secret.yaml": controlPlaneDoc("outside", secretMarker),
				"repo/fleet.yaml":     controlPlaneDoc("cloud", "17.4.2"),
				"repo/data/cp.txt":    controlPlaneDoc("inside", "17.4.1"),
			})
			dir := filepath.Join(base, "repo")
			for _, l := range tt.links {
				must(t, os.Symlink(strings.Replace(l.target, "ABS", base, 1), filepath.Join(dir, l.name)))
			}
			testGit(t, dir, "-c", "init.defaultBranch=main", "init", "-q")
			testGit(t, dir, "add", "-A")
			testGit(t, dir, "commit", "-q", "-m", "links")
			for _, r := range readers {
				t.Run(r.name, func(t *testing.T) {
					o := r.read(t, dir)
					if strings.Contains(o.err, secretMarker) || strings.Contains(o.files, secretMarker) ||
						(o.st != nil && o.st.ControlPlane("outside") != nil) {
						t.Fatalf("read a file outside the repository: err %q", o.err)
					}
					if tt.refused != "" {
						if !o.refused(tt.refused) {
							t.Fatalf("link %s not refused: err %q", tt.refused, o.err)
						}
						return
					}
					// The directory link outside: the folder readers refuse
					// it (they cannot tell it from a file link without
					// following it); the loader skips it as not YAML.
					if tt.scenario == tests[1].scenario && o.err != "" {
						if !o.refused("shared") {
							t.Fatalf("unexpected error %q", o.err)
						}
						return
					}
					if o.err != "" {
						t.Fatalf("unexpected error: %s", o.err)
					}
					if tt.inside != "" && (o.st == nil || o.st.ControlPlane(tt.inside) == nil) {
						t.Fatalf("the link to a file inside was not read as it")
					}
				})
			}
		})
	}
}

// A submodule is another repository: neither a Git revision nor the work
// tree reads its files.
func TestSubmodulesAreNotRead(t *testing.T) {
	sub := newWorkRepo(t)
	sub.commit("sub", map[string]string{"outside.yaml": controlPlaneDoc("outside", secretMarker)})
	r := newWorkRepo(t)
	r.commit("fleet", map[string]string{"fleet.yaml": controlPlaneDoc("cloud", "17.4.2")})
	testGit(t, r.dir, "-c", "protocol.file.allow=always", "submodule", "add", "-q", sub.dir, "mod")
	testGit(t, r.dir, "commit", "-q", "-m", "submodule")
	if _, err := os.Stat(filepath.Join(r.dir, "mod", "outside.yaml")); err != nil {
		t.Fatalf("the submodule was not checked out: %v", err)
	}
	rev, err := ReadRevision(r.dir, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	// The Git source logs these paths as not read.
	if subs, err := rev.Files.(*treeFS).submodules(10); err != nil || len(subs) != 1 || subs[0] != "mod" {
		t.Errorf("submodules %v, %v; want [mod]", subs, err)
	}
	for _, rd := range readers {
		if !rd.git {
			continue
		}
		t.Run(rd.name, func(t *testing.T) {
			o := rd.read(t, r.dir)
			if o.err != "" {
				t.Fatalf("error: %s", o.err)
			}
			if strings.Contains(o.files, secretMarker) || o.st.ControlPlane("outside") != nil {
				t.Fatal("read a submodule's file")
			}
			if o.st.ControlPlane("cloud") == nil {
				t.Fatal("the repository's own file was not read")
			}
		})
	}
}
