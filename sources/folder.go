package sources

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// DefaultFolderMaxBytes bounds the files a folder snapshot reads.
const DefaultFolderMaxBytes int64 = 64 << 20

// FolderOptions tunes NewFolderWithOptions.
type FolderOptions struct {
	// MaxBytes is the most file content a fetch reads; a larger folder is
	// refused. Zero means DefaultFolderMaxBytes.
	MaxBytes int64
}

// NewFolder returns a Source that reads a plain folder, for example a
// Kubernetes ConfigMap mount or a checkout kept up to date by another tool.
//
// Each Fetch copies the folder into memory, so the Revision is a consistent
// snapshot: its ID is the hash of exactly the bytes its Files hold, and an
// edit made while the revision is validated or served cannot tear it.
// Regular files and symbolic links to regular files inside dir are read;
// .git, symbolic links to directories and special files are skipped; a link
// that leaves dir fails the fetch (see snapshotDir): nothing outside dir is
// ever read.
func NewFolder(dir string) Source { return NewFolderWithOptions(dir, FolderOptions{}) }

// NewFolderWithOptions is NewFolder with limits.
func NewFolderWithOptions(dir string, o FolderOptions) Source {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultFolderMaxBytes
	}
	return &folder{dir: dir, maxBytes: o.MaxBytes}
}

type folder struct {
	dir      string
	maxBytes int64
}

func (f *folder) String() string { return "folder " + f.dir }

func (f *folder) Fetch(ctx context.Context) (Revision, error) {
	files, sum, err := snapshotDir(ctx, f.dir, f.maxBytes, nil)
	if err != nil {
		return Revision{}, err
	}
	return Revision{ID: "sha256:" + hex.EncodeToString(sum), Files: files}, nil
}

// skipFunc reports whether a slash path relative to the snapshot root is
// left out (with its contents, for a directory).
type skipFunc func(rel string, isDir bool) bool

// snapshotDir copies the regular files under dir into memory and hashes them.
// The hash covers, in sorted path order, each path and its content (length
// prefixed, so no two different trees hash alike).
//
// Nothing outside dir is read: every access goes through an os.Root, which
// follows a symbolic link only while it stays beneath dir (the kernel
// checks each step, so a link swapped in during the walk cannot escape
// either). A link to a file inside is read as that file, as in a
// Kubernetes ConfigMap mount; a link that leaves dir, is absolute, dangles
// or loops is an error naming it. Links to directories are not followed
// (their files are read at their real paths), so a loop cannot trap the walk.
func snapshotDir(ctx context.Context, dir string, maxBytes int64, skip skipFunc) (*memFS, []byte, error) {
	rootInfo, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("folder %s does not exist: check the path", dir)
		}
		return nil, nil, fmt.Errorf("folder %s: %w", dir, err)
	}
	if !rootInfo.IsDir() {
		return nil, nil, fmt.Errorf("folder %s is not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("folder %s: %w", dir, err)
	}
	defer root.Close()
	m := newMemFS(infoOf(rootInfo, "."))
	var paths []string
	var total int64
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Name() == ".git" || (skip != nil && skip(rel, d.IsDir())) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := root.Stat(rel) // follows the link, beneath dir only
			if err != nil {
				return symlinkError(root, rel, err)
			}
			if !target.Mode().IsRegular() {
				return nil // a directory (not followed) or a special file
			}
			info = target
		}
		switch {
		case info.IsDir():
			m.add(rel, infoOf(info, d.Name()), nil)
			return nil
		case !info.Mode().IsRegular():
			return nil // sockets, devices, FIFOs: not fleet files, and a FIFO would block
		}
		data, err := readBoundedIn(root, rel, maxBytes-total)
		if err != nil {
			if errors.Is(err, errTooBig) {
				return fmt.Errorf("%s: the folder holds more than %d bytes of files; raise the limit or point at a smaller folder", rel, maxBytes)
			}
			return err
		}
		total += int64(len(data))
		fi := infoOf(info, d.Name())
		fi.size = int64(len(data)) // what we read, even if the file changed since Stat
		m.add(rel, fi, data)
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("folder %s: %w", dir, err)
	}
	m.seal()
	sort.Strings(paths)
	h := sha256.New()
	var n [8]byte
	for _, p := range paths {
		data := m.nodes[p].data
		io.WriteString(h, p)
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(n[:], uint64(len(data)))
		h.Write(n[:])
		h.Write(data)
	}
	return m, h.Sum(nil), nil
}

// symlinkError says why the link rel cannot be read, naming its target.
func symlinkError(root *os.Root, rel string, err error) error {
	target, lerr := root.Readlink(rel)
	if lerr != nil {
		target = "?"
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: symbolic link to %q, which does not exist: fix or remove the link", rel, target)
	case errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("%s: symbolic link to %q: too many levels of symbolic links (a loop): remove the link", rel, target)
	}
	return fmt.Errorf("%s: symbolic link to %q leaves the repository (or is absolute); nothing outside the repository root is read: copy the file into the repository, or use a relative link to a file inside it", rel, target)
}

var errTooBig = errors.New("too big")

// readBounded reads a whole file, failing with errTooBig past limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllBounded(f, limit)
}

// readBoundedIn is readBounded for a file beneath root.
func readBoundedIn(root *os.Root, path string, limit int64) ([]byte, error) {
	f, err := root.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllBounded(f, limit)
}

func readAllBounded(f io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, max(limit, 0)+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooBig
	}
	return data, nil
}

func infoOf(fi fs.FileInfo, name string) *fileInfo {
	return &fileInfo{name: name, size: fi.Size(), mode: fi.Mode(), modTime: fi.ModTime()}
}
