package sources

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

const (
	// maxTreeFileBytes bounds one file read from a Git tree: a fleet file
	// is a few kilobytes, and a huge blob must not exhaust memory.
	maxTreeFileBytes = 64 << 20
	// maxSymlinkHops matches Linux's limit on nested symbolic links.
	maxSymlinkHops = 40
	// maxSymlinkTarget bounds the target of one link (Linux's PATH_MAX).
	maxSymlinkTarget = 4096
)

var (
	errSymlinkLoop   = errors.New("too many levels of symbolic links")
	errSymlinkEscape = errors.New("symbolic link points outside the repository")
)

// treeFS is a read-only fs.FS over one Git tree, read from the object store:
// no work tree, no index. Symbolic links inside the tree are followed (as
// os.DirFS would) as long as they stay inside it; submodules are left out.
// Every file and directory carries modTime, the commit time.
//
// go-git's object storage is not safe for concurrent use, so every access
// goes through mu; objects are immutable, so what is read never changes.
type treeFS struct {
	mu      sync.Mutex
	s       storer.EncodedObjectStorer
	root    plumbing.Hash
	modTime time.Time
	dirs    map[plumbing.Hash]*treeDir // decoded trees, by hash
}

// treeDir is a decoded tree with its listing sorted by name.
type treeDir struct {
	byName  map[string]object.TreeEntry
	entries []fs.DirEntry
}

// treeNode is a resolved path.
type treeNode struct {
	name string // base name, "." for the root
	mode filemode.FileMode
	hash plumbing.Hash
}

func newTreeFS(s storer.EncodedObjectStorer, root plumbing.Hash, modTime time.Time) *treeFS {
	return &treeFS{s: s, root: root, modTime: modTime, dirs: map[plumbing.Hash]*treeDir{}}
}

func (t *treeFS) Open(name string) (fs.File, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	info, err := t.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if n.mode == filemode.Dir {
		d, err := t.dir(n.hash)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &openDir{path: name, info: info, entries: d.entries}, nil
	}
	data, err := t.read(n.hash, maxTreeFileBytes)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return newOpenFile(name, info, data), nil
}

func (t *treeFS) ReadFile(name string) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.resolve("readfile", name, true)
	if err != nil {
		return nil, err
	}
	if n.mode == filemode.Dir {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errIsDir}
	}
	data, err := t.read(n.hash, maxTreeFileBytes)
	if err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return data, nil
}

func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if n.mode != filemode.Dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	d, err := t.dir(n.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return append([]fs.DirEntry(nil), d.entries...), nil
}

func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	info, err := t.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return info, nil
}

// resolve walks name from the root. Links in the middle of the path are
// always followed, a link at the end only when follow is set. The caller
// holds mu.
func (t *treeFS) resolve(op, name string, follow bool) (treeNode, error) {
	if !fs.ValidPath(name) {
		return treeNode{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	fail := func(err error) (treeNode, error) {
		return treeNode{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	root := treeNode{name: ".", mode: filemode.Dir, hash: t.root}
	parts := splitPath(name)
	cur, walked, hops := root, []string(nil), 0
	for i := 0; i < len(parts); i++ {
		if cur.mode != filemode.Dir {
			return fail(fs.ErrNotExist)
		}
		d, err := t.dir(cur.hash)
		if err != nil {
			return fail(err)
		}
		e, ok := d.byName[parts[i]]
		if !ok || e.Mode == filemode.Submodule {
			return fail(fs.ErrNotExist)
		}
		if e.Mode == filemode.Symlink && (follow || i < len(parts)-1) {
			if hops++; hops > maxSymlinkHops {
				return fail(errSymlinkLoop)
			}
			target, err := t.read(e.Hash, maxSymlinkTarget)
			if err != nil {
				return fail(err)
			}
			// A link is relative to the directory that holds it.
			joined := path.Join(path.Join(walked...), string(target))
			if path.IsAbs(string(target)) || joined == ".." || strings.HasPrefix(joined, "../") {
				return fail(errSymlinkEscape)
			}
			parts = append(splitPath(joined), parts[i+1:]...)
			cur, walked, i = root, nil, -1
			continue
		}
		cur = treeNode{name: e.Name, mode: e.Mode, hash: e.Hash}
		walked = append(walked, parts[i])
	}
	cur.name = path.Base(name) // Stat through a link names the link, as os.Stat does
	return cur, nil
}

func splitPath(p string) []string {
	if p == "." || p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// dir decodes the tree h once. The caller holds mu.
func (t *treeFS) dir(h plumbing.Hash) (*treeDir, error) {
	if d, ok := t.dirs[h]; ok {
		return d, nil
	}
	tree, err := object.GetTree(t.s, h)
	if err != nil {
		return nil, fmt.Errorf("reading tree %s: %w", h, err)
	}
	d := &treeDir{byName: make(map[string]object.TreeEntry, len(tree.Entries))}
	for _, e := range tree.Entries {
		if e.Mode == filemode.Submodule {
			continue // a commit of another repository: nothing to read here
		}
		d.byName[e.Name] = e
		n := treeNode{name: e.Name, mode: e.Mode, hash: e.Hash}
		typ := fs.FileMode(0)
		switch e.Mode {
		case filemode.Dir:
			typ = fs.ModeDir
		case filemode.Symlink:
			typ = fs.ModeSymlink
		}
		d.entries = append(d.entries, &dirEntry{name: e.Name, typ: typ, info: func() (fs.FileInfo, error) {
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.info(n)
		}})
	}
	// Git sorts a directory as if its name ended in "/"; fs wants plain names.
	sort.Slice(d.entries, func(i, j int) bool { return d.entries[i].Name() < d.entries[j].Name() })
	t.dirs[h] = d
	return d, nil
}

// info describes n without following it. The caller holds mu.
func (t *treeFS) info(n treeNode) (*fileInfo, error) {
	fi := &fileInfo{name: n.name, modTime: t.modTime}
	switch n.mode {
	case filemode.Dir:
		fi.mode = fs.ModeDir | 0o555
		return fi, nil
	case filemode.Symlink:
		fi.mode = fs.ModeSymlink | 0o777
	case filemode.Executable:
		fi.mode = 0o555
	default:
		fi.mode = 0o444
	}
	obj, err := t.s.EncodedObject(plumbing.BlobObject, n.hash)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", n.hash, err)
	}
	fi.size = obj.Size()
	return fi, nil
}

// read returns the content of blob h, refusing blobs above limit bytes.
// The caller holds mu.
func (t *treeFS) read(h plumbing.Hash, limit int64) ([]byte, error) {
	blob, err := object.GetBlob(t.s, h)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", h, err)
	}
	if blob.Size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, above the limit of %d", h, blob.Size, limit)
	}
	r, err := blob.Reader()
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", h, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", h, err)
	}
	return data, nil
}

// submodules lists up to limit paths of the tree's submodules (gitlinks),
// which the tree leaves out: their files belong to another repository.
func (t *treeFS) submodules(limit int) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tree, err := object.GetTree(t.s, t.root)
	if err != nil {
		return nil, fmt.Errorf("reading tree %s: %w", t.root, err)
	}
	w := object.NewTreeWalker(tree, true, nil)
	defer w.Close()
	var out []string
	for len(out) < limit {
		name, e, err := w.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, err
		}
		if e.Mode == filemode.Submodule {
			out = append(out, name)
		}
	}
	return out, nil
}
