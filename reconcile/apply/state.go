package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"upkeep.dev/upkeep/reconcile/internal/atomicfile"
)

// stateFormat is the state file's format number.
const stateFormat = 1

// State is the updater's small persistent memory.
type State struct {
	Format int `json:"format"`
	// Skipped are versions that were installed and proved bad; the updater
	// keeps away from them until the channel offers another version.
	Skipped []Skip `json:"skipped"`
	// UnusableChecks counts consecutive checks that found the maintenance
	// schedule unusable (reconcile.DecisionInput.UnusableChecks).
	UnusableChecks int `json:"unusableChecks"`
	// LastDecision is the last update decision with its reason.
	LastDecision *DecisionRecord `json:"lastDecision,omitempty"`
	// LastResult is the last apply's result.
	LastResult *Result `json:"lastResult,omitempty"`
}

// Skip is a skipped version, with when and why.
type Skip struct {
	Version string    `json:"version"`
	Since   time.Time `json:"since"`
	From    string    `json:"from,omitempty"` // the version it was rolled back to
	Reason  string    `json:"reason"`         // the apply's Reason (Unhealthy, RestartFailed, ...)
	Message string    `json:"message"`
}

// DecisionRecord is an update decision as remembered: the fields of
// reconcile.Decision and when it was taken.
type DecisionRecord struct {
	At        time.Time `json:"at"`
	Action    string    `json:"action"`
	Rule      string    `json:"rule"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	RecheckAt time.Time `json:"recheckAt,omitzero"`
}

// StatePath is the state file's path in the state directory dir.
func StatePath(dir string) string { return filepath.Join(dir, StateFile) }

func stateNext(path string) string {
	return fmt.Sprintf("the skip list in it cannot be trusted, so upkeep will not guess: fix the JSON, "+
		"or move %s aside to start with an empty skip list (a version rolled back earlier may then be retried), "+
		"and restart upkeep", path)
}

// ReadState reads dir's state file. No file gives an empty State; a file
// that cannot be parsed is a *CorruptFileError and is left as it is.
func ReadState(dir string) (State, error) {
	path := StatePath(dir)
	data, err := readBounded(path, maxStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		return State{Format: stateFormat}, nil
	}
	if err != nil {
		return State{}, &CorruptFileError{Path: path, Err: err, Next: stateNext(path)}
	}
	var s State
	if err := decodeJSON(path, data, &s, stateNext(path)); err != nil {
		return State{}, err
	}
	if err := s.validate(); err != nil {
		return State{}, &CorruptFileError{Path: path, Err: err, Next: stateNext(path)}
	}
	return s, nil
}

func (s *State) validate() error {
	switch {
	case s.Format == 0:
		return errors.New(`field "format" is missing; this is not an upkeep state file`)
	case s.Format > stateFormat:
		return fmt.Errorf(`field "format": %d was written by a newer upkeep (this one reads %d)`, s.Format, stateFormat)
	case s.UnusableChecks < 0:
		return fmt.Errorf(`field "unusableChecks": %d is negative`, s.UnusableChecks)
	}
	for i, k := range s.Skipped {
		if strings.TrimSpace(k.Version) == "" {
			return fmt.Errorf(`field "skipped[%d].version" is empty`, i)
		}
	}
	return nil
}

// WriteState replaces dir's state file atomically and durably.
func WriteState(dir string, s State) error {
	s.Format = stateFormat
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(StatePath(dir), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the state file %s: %w", StatePath(dir), err)
	}
	return nil
}

// UpdateState reads dir's state, lets change modify it and writes it back;
// nothing is written when the read or change fails. Callers hold the lock
// (Lock), which keeps other processes from writing in between.
func UpdateState(dir string, change func(*State) error) (State, error) {
	s, err := ReadState(dir)
	if err != nil {
		return State{}, err
	}
	if err := change(&s); err != nil {
		return State{}, err
	}
	if err := WriteState(dir, s); err != nil {
		return State{}, err
	}
	return s, nil
}

// AddSkip puts k on the skip list; it reports false, and keeps the first
// entry, when k's version is already there (so a repeated recovery does not
// rewrite history).
func (s *State) AddSkip(k Skip) bool {
	if s.IsSkipped(k.Version) {
		return false
	}
	s.Skipped = append(s.Skipped, k)
	return true
}

// IsSkipped reports whether version is on the skip list.
func (s State) IsSkipped(version string) bool {
	return slices.ContainsFunc(s.Skipped, func(k Skip) bool { return SameVersion(k.Version, version) })
}

// SkippedVersions lists the skipped versions, for
// reconcile.DecisionInput.Skipped.
func (s State) SkippedVersions() []string {
	vs := make([]string, len(s.Skipped))
	for i, k := range s.Skipped {
		vs[i] = k.Version
	}
	return vs
}

// PruneSkipped drops the skip entries that target has moved away from and
// returns them.
func (s *State) PruneSkipped(target string) (dropped []Skip) {
	s.Skipped, dropped = PruneSkipped(s.Skipped, target)
	return dropped
}

// PruneSkipped applies the skip rule: a skipped version stays skipped while
// the channel's target is that version, and its entry is dropped once the
// target is another version (the channel was lowered or raised, so the
// operator has moved on; should the channel come back to it, it is a fresh
// decision). Only a concrete version moves the target: "" (unknown, a fetch
// failed) and "none" (the channel offers nothing) keep every entry, since
// they say nothing about the skipped release. The input is not modified.
func PruneSkipped(skipped []Skip, target string) (kept, dropped []Skip) {
	t := strings.TrimSpace(target)
	if t == "" || t == "none" {
		return slices.Clone(skipped), nil
	}
	for _, k := range skipped {
		if SameVersion(k.Version, t) {
			kept = append(kept, k)
		} else {
			dropped = append(dropped, k)
		}
	}
	return kept, dropped
}

// SameVersion reports whether a and b name the same release: equal semantic
// versions (a leading "v" ignored, build metadata ignored as semver says),
// or the same text when either is not semver. "" equals only "".
func SameVersion(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == b {
		return true
	}
	if a == "" || b == "" {
		return false
	}
	va, errA := semver.StrictNewVersion(strings.TrimPrefix(a, "v"))
	vb, errB := semver.StrictNewVersion(strings.TrimPrefix(b, "v"))
	if errA != nil || errB != nil {
		return strings.TrimPrefix(a, "v") == strings.TrimPrefix(b, "v")
	}
	return va.Equal(vb)
}
