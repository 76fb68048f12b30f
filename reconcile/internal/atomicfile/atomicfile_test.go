package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "state.json")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	for _, content := range []string{"first", "second, longer than the first"} {
		if err := Write(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v; want 0644 whatever the umask", st.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, TempPattern(path))); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestWriteFailureKeepsTheOldContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := Write(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A folder where the file should be: the rename fails.
	target := filepath.Join(dir, "busy")
	if err := os.MkdirAll(filepath.Join(target, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, []byte("new"), 0o644); err == nil {
		t.Fatal("replacing a non-empty folder succeeded")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, TempPattern(target))); len(left) != 0 {
		t.Fatalf("temporary files left after a failed write: %v", left)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("other file changed: %q", got)
	}
}
