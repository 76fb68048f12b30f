package sources

import (
	"io/fs"
	"path"
	"sort"
)

// memFS is an immutable in-memory file system: a snapshot that cannot change
// while it is read. Build it with add, then call seal before use.
type memFS struct {
	nodes map[string]*memNode // by slash path; the root is "."
}

type memNode struct {
	info    *fileInfo
	data    []byte        // regular files
	entries []fs.DirEntry // directories, sorted by name
}

func newMemFS(root *fileInfo) *memFS {
	r := *root
	r.name = "."
	return &memFS{nodes: map[string]*memNode{".": {info: &r}}}
}

// add records a file (data != nil or info is not a directory) or a directory
// at the slash path name; its parent directory must have been added first.
func (m *memFS) add(name string, info *fileInfo, data []byte) {
	m.nodes[name] = &memNode{info: info, data: data}
}

// seal builds the directory listings.
func (m *memFS) seal() {
	for name, n := range m.nodes {
		if name == "." {
			continue
		}
		parent := m.nodes[path.Dir(name)]
		info := n.info
		parent.entries = append(parent.entries, &dirEntry{
			name: info.name,
			typ:  info.mode.Type(),
			info: func() (fs.FileInfo, error) { return info, nil },
		})
	}
	for _, n := range m.nodes {
		sort.Slice(n.entries, func(i, j int) bool { return n.entries[i].Name() < n.entries[j].Name() })
	}
}

func (m *memFS) lookup(op, name string) (*memNode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n, ok := m.nodes[name]
	if !ok {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return n, nil
}

func (m *memFS) Open(name string) (fs.File, error) {
	n, err := m.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if n.info.IsDir() {
		return &openDir{path: name, info: n.info, entries: n.entries}, nil
	}
	return newOpenFile(name, n.info, n.data), nil
}

func (m *memFS) Stat(name string) (fs.FileInfo, error) {
	n, err := m.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return n.info, nil
}

func (m *memFS) ReadFile(name string) ([]byte, error) {
	n, err := m.lookup("readfile", name)
	if err != nil {
		return nil, err
	}
	if n.info.IsDir() {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errIsDir}
	}
	return append([]byte(nil), n.data...), nil
}

func (m *memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := m.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.info.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return append([]fs.DirEntry(nil), n.entries...), nil
}
