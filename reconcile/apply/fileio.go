package apply

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"upkeep.dev/upkeep/reconcile/internal/atomicfile"
)

// File names inside the state directory.
const (
	JournalFile = "journal.json"
	StateFile   = "state.json"
	LockFile    = "lock"
)

// Size bounds for reading the files; anything larger is corrupt, not cut.
const (
	maxJournalSize = 64 << 10
	maxStateSize   = 1 << 20
)

// CorruptFileError is a journal or state file that cannot be trusted.
type CorruptFileError struct {
	Path      string
	Line, Col int // 0 when the problem has no position
	Err       error
	Next      string // what the operator should do
}

func (e *CorruptFileError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.Next != "" {
		fmt.Fprintf(&b, "; next: %s", e.Next)
	}
	return b.String()
}

func (e *CorruptFileError) Unwrap() error { return e.Err }

// readBounded reads at most max bytes of path; a larger file is an error.
// A missing file returns an error wrapping fs.ErrNotExist.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return data, nil
}

// decodeJSON decodes exactly one JSON value from data into v; syntax and
// type errors carry their line and column. Unknown fields are allowed so
// that a newer upkeep's additions do not break an older one.
func decodeJSON(path string, data []byte, v any, next string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		ce := &CorruptFileError{Path: path, Err: fmt.Errorf("unexpected content: %w", err), Next: next}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			ce.Err = fmt.Errorf("not valid JSON: %w", err)
			ce.Line, ce.Col = lineCol(data, se.Offset-1) // Offset counts the bad byte
		case errors.As(err, &te):
			ce.Line, ce.Col = lineCol(data, te.Offset-1) // the value's last byte
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			ce.Err = errors.New("empty or truncated file")
		}
		return ce
	}
	off := dec.InputOffset()
	rest := data[off:]
	if trimmed := bytes.TrimLeft(rest, " \t\r\n"); len(trimmed) > 0 {
		line, col := lineCol(data, off+int64(len(rest)-len(trimmed)))
		return &CorruptFileError{Path: path, Line: line, Col: col, Err: errors.New("unexpected data after the JSON object"), Next: next}
	}
	return nil
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// removeStaleTemps deletes temporary files a crash left behind in dir. The
// caller holds the lock, so no write is in progress.
func removeStaleTemps(dir string) {
	for _, name := range []string{JournalFile, StateFile} {
		matches, _ := filepath.Glob(filepath.Join(dir, atomicfile.TempPattern(name)))
		for _, m := range matches {
			os.Remove(m)
		}
	}
}
