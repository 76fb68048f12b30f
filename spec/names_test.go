package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// TestErrorLinesCannotBeForged: whatever a repository's file names and
// values hold, each error is one line of printable text, and its file is
// shown as written when that is safe, quoted otherwise.
func TestErrorLinesCannotBeForged(t *testing.T) {
	tests := []struct {
		scenario, file, shown string
	}{
		{"a plain name is shown as it is", "edge.yaml", "edge.yaml"},
		{"a name with spaces and letters beyond ASCII is shown as it is", "groupes d'été.yaml", "groupes d'été.yaml"},
		{"a newline in a name is quoted, so it cannot start a line of its own", "x.yaml\nbase.yaml:1:1: all good\n.yaml", `"x.yaml\nbase.yaml:1:1: all good\n.yaml"`},
		{"a carriage return is quoted", "a\rb.yaml", `"a\rb.yaml"`},
		{"a terminal escape is quoted", "\x1b[2Kred.yaml", `"\x1b[2Kred.yaml"`},
		{"a Unicode line separator is quoted", "a\u2028b.yaml", `"a\u2028b.yaml"`},
		{"invalid UTF-8 is quoted", "a\xffb.yaml", `"a\xffb.yaml"`},
		{"a colon, which would read as a line number, is quoted", "c.yaml:7:1.yaml", `"c.yaml:7:1.yaml"`},
		{"a leading quote is quoted, so a quoted name is never ambiguous", `"q.yaml`, `"\"q.yaml"`},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tt.file), []byte("apiVersion: upkeep.dev/v1alpha1\nkind: \"Chan\\nnel\\x1b\"\nmetadata: {name: \"a\\rb\"}\n\"k\\ney\\u2028\": \"v\\u0085\"\n"), 0o644); err != nil {
				t.Skipf("this file system does not take the name: %v", err)
			}
			_, errs := LoadDir(dir)
			if len(errs) == 0 {
				t.Fatal("no errors")
			}
			for _, e := range errs {
				line := e.Error()
				if strings.ContainsFunc(line, func(r rune) bool { return !unicode.IsPrint(r) }) {
					t.Errorf("error line holds a character that does not print: %q", line)
				}
				if !strings.HasPrefix(line, tt.shown+":") {
					t.Errorf("error line %q does not start with the file shown as %s", line, tt.shown)
				}
			}
		})
	}
}
