// Package atomicfile replaces small files so that a crash or power loss at
// any moment leaves either the old or the new content, never a mix: the
// updaters' journal, state and saved schedules depend on it.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPattern matches the temporary files Write creates beside path, which a
// crash may leave behind (filepath.Match syntax, relative to path's folder).
func TempPattern(path string) string { return "." + filepath.Base(path) + ".*.tmp" }

// Write replaces path with data and mode: a temporary file in the same
// folder, fsync, rename, then fsync of the folder, which makes the rename
// itself durable. The folder is created if missing.
func Write(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, TempPattern(path))
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	// CreateTemp makes 0600 files; set the mode explicitly, whatever the umask.
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	return nil
}
