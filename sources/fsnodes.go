package sources

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"time"
)

// The read-only file systems of this package (the folder snapshot and the Git
// tree) share these node types: a file's content is in memory once opened,
// a directory's listing is fixed when opened.

var (
	errIsDir  = errors.New("is a directory")
	errNotDir = errors.New("not a directory")
)

// fileInfo implements fs.FileInfo.
type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.size }
func (i *fileInfo) Mode() fs.FileMode  { return i.mode }
func (i *fileInfo) ModTime() time.Time { return i.modTime }
func (i *fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *fileInfo) Sys() any           { return nil }

// dirEntry implements fs.DirEntry. info runs only when asked for, because
// the size of a Git blob costs an object lookup that a walk rarely needs.
type dirEntry struct {
	name string
	typ  fs.FileMode
	info func() (fs.FileInfo, error)
}

func (e *dirEntry) Name() string               { return e.name }
func (e *dirEntry) IsDir() bool                { return e.typ.IsDir() }
func (e *dirEntry) Type() fs.FileMode          { return e.typ }
func (e *dirEntry) Info() (fs.FileInfo, error) { return e.info() }
func (e *dirEntry) String() string             { return fs.FormatDirEntry(e) }

// openFile is an opened regular file.
type openFile struct {
	path string
	info *fileInfo
	r    *bytes.Reader
}

func newOpenFile(path string, info *fileInfo, data []byte) *openFile {
	return &openFile{path: path, info: info, r: bytes.NewReader(data)}
}

func (f *openFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *openFile) Close() error               { return nil }

func (f *openFile) Read(p []byte) (int, error) { return f.r.Read(p) }

func (f *openFile) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }

func (f *openFile) Seek(offset int64, whence int) (int64, error) {
	n, err := f.r.Seek(offset, whence)
	if err != nil {
		return n, &fs.PathError{Op: "seek", Path: f.path, Err: err}
	}
	return n, nil
}

// openDir is an opened directory; entries are sorted by name.
type openDir struct {
	path    string
	info    *fileInfo
	entries []fs.DirEntry
	offset  int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *openDir) Close() error               { return nil }

func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errIsDir}
}

// ReadDir follows fs.ReadDirFile: n <= 0 returns all remaining entries,
// n > 0 at most n and io.EOF at the end.
func (d *openDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.offset:]
	if n <= 0 {
		d.offset = len(d.entries)
		return append([]fs.DirEntry(nil), rest...), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.offset += n
	return append([]fs.DirEntry(nil), rest[:n]...), nil
}
