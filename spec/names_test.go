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

// longName is a name of n bytes, a channel name ("stable/...") when channel.
func longName(n int, channel bool) string {
	if channel {
		return "stable/" + strings.Repeat("c", n-len("stable/"))
	}
	return strings.Repeat("g", n)
}

// TestLoadNameLengths: every name at MaxNameLength loads, and one byte over
// is refused at its file:line with the limit's name.
func TestLoadNameLengths(t *testing.T) {
	fleetWith := func(cp, ch, g, freeze string) string {
		return "apiVersion: upkeep.dev/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: " + cp + "\nspec:\n  version: 17.2.3\n" +
			"---\napiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  name: " + ch + "\nspec:\n  controlPlane: " + cp + "\n  version: 17.1.0\n  rollout:\n    stages: [{groups: [" + g + "]}]\n" +
			"---\napiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata:\n  name: " + g + "\nspec:\n  channel: " + ch + "\n  timezone: UTC\n  freezes: [{name: " + freeze + ", start: 2027-01-01, end: 2027-01-02}]\n"
	}
	at, over := MaxNameLength, MaxNameLength+1
	st, errs := Load(fleet(map[string]string{"long.yaml": fleetWith(longName(at, false), longName(at, true), longName(at, false), longName(at, false))}))
	if errs != nil || st.Channel(longName(at, true)) == nil || st.Group(longName(at, false)) == nil || st.ControlPlane(longName(at, false)) == nil {
		t.Fatalf("names of %d bytes: %v", at, errs)
	}
	_, errs = Load(fleet(map[string]string{"long.yaml": fleetWith(longName(over, false), longName(over, true), longName(over, false), longName(over, false))}))
	msg := "name of 254 bytes is longer than 253 (limit name-length): names travel in URLs, headers, Kubernetes annotations and reports; shorten it"
	want := []string{
		"long.yaml:4:9: metadata.name: " + msg,
		"long.yaml:11:9: metadata.name: " + msg,
		"long.yaml:13:17: spec.controlPlane: " + msg,
		"long.yaml:16:24: spec.rollout.stages[0].groups[0]: " + msg,
		"long.yaml:21:9: metadata.name: " + msg,
		"long.yaml:23:12: spec.channel: " + msg,
		"long.yaml:25:20: spec.freezes[0].name: " + msg,
	}
	var got []string
	for _, e := range errs {
		if strings.Contains(e.Msg, "limit name-length") {
			got = append(got, e.Error())
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s\nall:\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"), errs)
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		scenario string
		name     string
		channel  bool
		want     bool
	}{
		{"a group name at the limit", longName(MaxNameLength, false), false, true},
		{"a group name one byte over", longName(MaxNameLength+1, false), false, false},
		{"a channel name at the limit", longName(MaxNameLength, true), true, true},
		{"a channel name one byte over", longName(MaxNameLength+1, true), true, false},
		{"a slash is not in a group name", "stable/cloud", false, false},
		{"an empty segment", "stable//cloud", true, false},
		{"a segment ending in a dot", "stable./cloud", true, false},
		{"upper case", "Prod", false, false},
		{"empty", "", false, false},
		{"digits, dots and dashes inside", "eu-1.prod", false, true},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name, tt.channel); got != tt.want {
			t.Errorf("%s: ValidName(%q, %v) = %v, want %v (%s)", tt.scenario, tt.name, tt.channel, got, tt.want, NameProblem(tt.name, tt.channel))
		}
	}
}
