package sources

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFolderFetch(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"channels/stable.yaml": "kind: Channel\n",
		"groups/eu.yaml":       "kind: Group\n",
		".git/config":          "[core]\n",
		"README.md":            "hello\n",
	})
	src := NewFolder(dir)
	rev, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rev.ID, "sha256:") || len(rev.ID) != len("sha256:")+64 {
		t.Fatalf("ID = %q, want sha256:<64 hex>", rev.ID)
	}
	if err := fstest.TestFS(rev.Files, "channels/stable.yaml", "groups/eu.yaml", "README.md"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(rev.Files, ".git/config"); !os.IsNotExist(err) {
		t.Fatalf(".git must be skipped, Stat gave %v", err)
	}

	again, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != rev.ID {
		t.Fatalf("unchanged folder changed ID: %s then %s", rev.ID, again.ID)
	}

	// An edit changes the ID, and the earlier snapshot keeps its content.
	writeFiles(t, dir, map[string]string{"channels/stable.yaml": "kind: Channel\nspec: {}\n"})
	edited, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if edited.ID == rev.ID {
		t.Fatal("editing a file did not change the ID")
	}
	old, _ := fs.ReadFile(rev.Files, "channels/stable.yaml")
	if string(old) != "kind: Channel\n" {
		t.Fatalf("old snapshot changed under the reader: %q", old)
	}

	// Changes to .git alone do not change the ID.
	writeFiles(t, dir, map[string]string{".git/config": "[core]\nbare = false\n"})
	gitOnly, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if gitOnly.ID != edited.ID {
		t.Fatal("a change inside .git changed the ID")
	}

	// Moving content from one file to another changes the ID even though
	// the concatenated bytes are the same.
	writeFiles(t, dir, map[string]string{"README.md": "hello\nkind: Group\n"})
	os.Remove(filepath.Join(dir, "groups/eu.yaml"))
	moved, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if moved.ID == edited.ID {
		t.Fatal("moving content between files did not change the ID")
	}
}

func TestFolderSymlinks(t *testing.T) {
	// The layout of a Kubernetes ConfigMap mount: files are links through
	// a "..data" link to a timestamped directory.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"..2026_01_01/fleet.yaml": "kind: Group\n"})
	must(t, os.Symlink("..2026_01_01", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/fleet.yaml", filepath.Join(dir, "fleet.yaml")))

	rev, err := NewFolder(dir).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs.ReadFile(rev.Files, "fleet.yaml")
	if err != nil || string(got) != "kind: Group\n" {
		t.Fatalf("fleet.yaml through the link: %q, %v", got, err)
	}
	if _, err := fs.Stat(rev.Files, "..data"); !os.IsNotExist(err) {
		t.Fatalf("a link to a directory must not be followed, Stat gave %v", err)
	}

	must(t, os.Symlink("gone.yaml", filepath.Join(dir, "broken.yaml")))
	_, err = NewFolder(dir).Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("a dangling link must fail naming it, got %v", err)
	}
}

func TestFolderErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": strings.Repeat("x", 600), "b.yaml": strings.Repeat("y", 600)})
	tests := []struct {
		scenario string
		src      Source
		want     string
	}{
		{"a folder above the size limit is refused", NewFolderWithOptions(dir, FolderOptions{MaxBytes: 1000}), "more than 1000 bytes"},
		{"a folder that does not exist says so", NewFolder(filepath.Join(dir, "missing")), "does not exist"},
		{"a file is not a folder", NewFolder(filepath.Join(dir, "a.yaml")), "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			_, err := tt.src.Fetch(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := NewFolderWithOptions(dir, FolderOptions{MaxBytes: 1200}).Fetch(context.Background()); err != nil {
		t.Fatalf("a folder exactly at the limit must load: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
