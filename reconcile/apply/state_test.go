package apply

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 5, 2, 0, 0, 0, time.UTC)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := State{
		Skipped:        []Skip{{Version: "1.3.0", Since: t0, From: "1.2.0", Reason: ReasonUnhealthy, Message: "1.3.0 did not settle healthy: crash loop"}},
		UnusableChecks: 3,
		LastDecision: &DecisionRecord{At: t0, Action: "Wait", Rule: "WaitForWindow", Reason: "OutsideWindow",
			Message: "outside maintenance windows", RecheckAt: t0.Add(time.Hour)},
		LastResult: &Result{ID: "20260505T020000Z-0a0b0c0d", Outcome: RolledBack, From: "1.2.0", To: "1.3.0", Reason: ReasonUnhealthy,
			Message: "rolled back", Error: "crash loop", Skipped: true, Attempt: 2, Started: t0, Finished: t0.Add(time.Minute),
			Steps: []StepRecord{{Step: StepInstalling, Action: "install", Version: "1.3.0", Took: 1500 * time.Millisecond}}},
	}
	if err := WriteState(dir, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	in.Format = stateFormat
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("read back\n%+v\nwant\n%+v", out, in)
	}
	data, _ := os.ReadFile(StatePath(dir))
	if !strings.Contains(string(data), `"took": "1.5s"`) {
		t.Errorf("step durations are not readable in the file:\n%s", data)
	}
	fi, err := os.Stat(StatePath(dir))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	if temps, _ := filepath.Glob(filepath.Join(dir, ".*")); len(temps) != 0 {
		t.Errorf("temporary files left: %q", temps)
	}
}

func TestReadStateWithoutAFileIsEmpty(t *testing.T) {
	s, err := ReadState(t.TempDir())
	if err != nil || len(s.Skipped) != 0 || s.LastResult != nil || s.Format != stateFormat {
		t.Fatalf("%+v, %v", s, err)
	}
}

// A state file that cannot be trusted is an error naming the file and the
// way out; it is never replaced by an empty one (that would forget skips).
func TestCorruptStateIsAnErrorNotAReset(t *testing.T) {
	tests := []struct {
		scenario string
		data     string
		where    string // ":line:col" or ""
		has      string
	}{
		{"a truncated file", "{\"format\": 1,\n \"skipped\": [{\"version\": \"1.3.0\"", "", "empty or truncated"},
		{"an empty file", "", "", "empty or truncated"},
		{"garbage", "\x00\x01binary", ":1:1", "invalid character"},
		{"a syntax error on line 3", "{\n  \"format\": 1,\n  \"skipped\": [,]\n}", ":3:15", "invalid character ','"},
		{"a field of the wrong type", "{\n  \"format\": 1,\n  \"skipped\": \"1.3.0\"\n}", ":3:20", "skipped"},
		{"data after the object", "{\"format\": 1}\n{\"format\": 1}", ":2:1", "unexpected data after the JSON object"},
		{"no format", "{}", "", `field "format" is missing`},
		{"a newer format", `{"format": 2}`, "", "written by a newer upkeep"},
		{"a skip without a version", `{"format": 1, "skipped": [{"version": " ", "reason": "Unhealthy"}]}`, "", `"skipped[0].version" is empty`},
		{"a negative count", `{"format": 1, "unusableChecks": -1}`, "", "negative"},
		{"a bad step duration", `{"format": 1, "lastResult": {"steps": [{"action": "install", "took": "soon"}]}}`, "", `took: time: invalid duration "soon"`},
		{"an oversized file", `{"format": 1, "x": "` + strings.Repeat("a", maxStateSize) + `"}`, "", "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(StatePath(dir), []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadState(dir)
			var ce *CorruptFileError
			if !errors.As(err, &ce) || ce.Path != StatePath(dir) {
				t.Fatalf("error %v (%T), want a *CorruptFileError for %s", err, err, StatePath(dir))
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, StatePath(dir)+tc.where) || !strings.Contains(msg, tc.has) ||
				!strings.Contains(msg, "move "+StatePath(dir)+" aside") {
				t.Errorf("error %q, want it to start with %q and contain %q and the way out", msg, StatePath(dir)+tc.where, tc.has)
			}
			_, err = UpdateState(dir, func(s *State) error { s.UnusableChecks++; return nil })
			if !errors.As(err, &ce) {
				t.Errorf("UpdateState over a corrupt file: %v", err)
			}
			if got, _ := os.ReadFile(StatePath(dir)); string(got) != tc.data {
				t.Errorf("the corrupt file was rewritten")
			}
		})
	}
}

func TestCorruptJournalIsAnError(t *testing.T) {
	tests := []struct{ scenario, data, has string }{
		{"garbage", "not json", "invalid character"},
		{"no id", `{"format": 1, "to": "1.3.0", "step": "installing"}`, `"id" is empty`},
		{"no target", `{"format": 1, "id": "x", "step": "installing"}`, `"to" is empty`},
		{"an unknown step", `{"format": 1, "id": "x", "to": "1.3.0", "step": "downloading"}`, `unknown step "downloading"`},
		{"done without an outcome", `{"format": 1, "id": "x", "to": "1.3.0", "step": "done"}`, `unknown outcome ""`},
		{"a newer format", `{"format": 9, "id": "x", "to": "1.3.0", "step": "done"}`, "newer upkeep"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(JournalPath(dir), []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			j, err := ReadJournal(dir)
			var ce *CorruptFileError
			if j != nil || !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), JournalPath(dir)) || !strings.Contains(err.Error(), tc.has) ||
				!strings.Contains(err.Error(), "check the agent's installed version") {
				t.Fatalf("%+v, %v; want an error containing %q", j, err, tc.has)
			}
		})
	}
}

func TestJournalRoundTripAndCrashMidWrite(t *testing.T) {
	dir := t.TempDir()
	j := Journal{ID: "a", From: "1.2.0", To: "1.3.0", Step: StepSettling, Started: t0, Updated: t0.Add(time.Minute), Attempt: 2}
	if err := WriteJournal(dir, j); err != nil {
		t.Fatal(err)
	}
	// A writer killed before its rename leaves only a temporary file: the
	// journal still reads as the last complete version.
	if err := os.WriteFile(filepath.Join(dir, ".journal.json.999.tmp"), []byte(`{"format":1,"id":"b","to":"1.3.0","step":"rolling-`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	j.Format = journalFormat
	if *got != j {
		t.Fatalf("read %+v, want %+v", got, j)
	}
	if !got.Unfinished() {
		t.Error("a settling journal is unfinished")
	}
	j.Step, j.Outcome = StepDone, Updated
	if err := WriteJournal(dir, j); err != nil {
		t.Fatal(err)
	}
	if got := mustJournal(t, dir); got.Unfinished() || got.Outcome != Updated {
		t.Errorf("after done: %+v", got)
	}
	var none *Journal
	if none.Unfinished() {
		t.Error("no journal is not unfinished")
	}
}

func TestPruneSkipped(t *testing.T) {
	skips := []Skip{{Version: "1.3.0", Reason: ReasonUnhealthy}, {Version: "v1.4.0", Reason: ReasonRestartFailed}}
	tests := []struct {
		scenario string
		target   string
		kept     []string
	}{
		{"the channel still offers a skipped version: every entry of it stays", "1.3.0", []string{"1.3.0"}},
		{"the same version with a leading v is the same target", "v1.3.0", []string{"1.3.0"}},
		{"the channel moved to another version: every skip is dropped", "1.5.0", nil},
		{"the channel was lowered below the skipped versions: dropped", "1.2.0", nil},
		{"the channel offers the other skipped version", "1.4.0", []string{"v1.4.0"}},
		{"an unknown target (fetch failed) keeps everything", "", []string{"1.3.0", "v1.4.0"}},
		{"a channel offering no version keeps everything", "none", []string{"1.3.0", "v1.4.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			in := append([]Skip(nil), skips...)
			kept, dropped := PruneSkipped(in, tc.target)
			if got := (State{Skipped: kept}).SkippedVersions(); !equalStrings(got, tc.kept) {
				t.Errorf("kept %q, want %q", got, tc.kept)
			}
			if len(kept)+len(dropped) != len(skips) {
				t.Errorf("kept %d + dropped %d != %d", len(kept), len(dropped), len(skips))
			}
			if !reflect.DeepEqual(in, skips) {
				t.Errorf("input modified: %+v", in)
			}
			s := State{Skipped: in}
			if d := s.PruneSkipped(tc.target); len(d) != len(dropped) || !equalStrings(s.SkippedVersions(), tc.kept) {
				t.Errorf("State.PruneSkipped: dropped %+v, left %q", d, s.SkippedVersions())
			}
		})
	}
}

func TestAddSkipKeepsTheFirstEntry(t *testing.T) {
	var s State
	if !s.AddSkip(Skip{Version: "1.3.0", Since: t0, Reason: ReasonUnhealthy}) {
		t.Fatal("first AddSkip reported no change")
	}
	if s.AddSkip(Skip{Version: "v1.3.0", Since: t0.Add(time.Hour), Reason: ReasonVersionChanged}) {
		t.Error("a repeated skip was added again")
	}
	if len(s.Skipped) != 1 || s.Skipped[0].Reason != ReasonUnhealthy || !s.Skipped[0].Since.Equal(t0) {
		t.Errorf("skip list %+v", s.Skipped)
	}
	if !s.IsSkipped("1.3.0") || s.IsSkipped("1.3.1") {
		t.Error("IsSkipped disagrees with the list")
	}
}

func TestSameVersion(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"1.2.3", "1.2.3", true},
		{"v1.2.3", "1.2.3", true},
		{" 1.2.3\n", "1.2.3", true},
		{"1.2.3+build.7", "1.2.3", true},
		{"1.2.3-rc.1", "1.2.3", false},
		{"1.2.3", "1.2.4", false},
		{"", "", true},
		{"", "1.2.3", false},
		{"1.2.3-1", "1.2.3-1", true},
		{"1:1.2.3-1", "1.2.3", false},
		{"vnext", "next", true},
	} {
		if got := SameVersion(tc.a, tc.b); got != tc.same {
			t.Errorf("SameVersion(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}
