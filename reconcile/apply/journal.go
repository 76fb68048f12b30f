package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"upkeep.dev/upkeep/reconcile/internal/atomicfile"
)

// Step is where an apply stands. The journal records a step before the step
// runs, so after a crash the journal names the step that may be half done.
type Step string

const (
	StepInstalling  Step = "installing"   // installing the target version
	StepRestarting  Step = "restarting"   // the target is installed; restarting the agent
	StepSettling    Step = "settling"     // judging the agent's health over the settle period
	StepRollingBack Step = "rolling-back" // reinstalling, restarting and settling the previous version
	StepDone        Step = "done"         // finished; Outcome says how
)

func (s Step) valid() bool {
	switch s {
	case StepInstalling, StepRestarting, StepSettling, StepRollingBack, StepDone:
		return true
	}
	return false
}

// journalFormat is the journal file's format number.
const journalFormat = 1

// Journal is the record of one apply, rewritten before each step.
type Journal struct {
	Format  int       `json:"format"`
	ID      string    `json:"id"`
	From    string    `json:"from"` // "" when nothing was installed
	To      string    `json:"to"`
	Step    Step      `json:"step"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// Attempt counts the applies of To in a row that did not end Updated,
	// this one included.
	Attempt int `json:"attempt"`
	// Error is the failure that led to this step (e.g. why a rollback runs),
	// or the final one when Step is done; Reason is its one-word form.
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Outcome is set when Step is done.
	Outcome Outcome `json:"outcome,omitempty"`
}

// Unfinished reports whether the apply was cut short before it finished.
func (j *Journal) Unfinished() bool { return j != nil && j.Step != StepDone }

// JournalPath is the journal's path in the state directory dir.
func JournalPath(dir string) string { return filepath.Join(dir, JournalFile) }

const journalNext = "the last update may be unfinished: check the agent's installed version and health, " +
	"then move the file aside (the agent then starts without recovering an update) and restart upkeep"

// ReadJournal reads dir's journal; it returns nil and no error when there is
// none. A journal that cannot be parsed or makes no sense is a
// *CorruptFileError.
func ReadJournal(dir string) (*Journal, error) {
	path := JournalPath(dir)
	data, err := readBounded(path, maxJournalSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &CorruptFileError{Path: path, Err: err, Next: journalNext}
	}
	var j Journal
	if err := decodeJSON(path, data, &j, journalNext); err != nil {
		return nil, err
	}
	if err := j.validate(); err != nil {
		return nil, &CorruptFileError{Path: path, Err: err, Next: journalNext}
	}
	return &j, nil
}

func (j *Journal) validate() error {
	switch {
	case j.Format == 0:
		return errors.New(`field "format" is missing; this is not an upkeep journal`)
	case j.Format > journalFormat:
		return fmt.Errorf(`field "format": %d was written by a newer upkeep (this one reads %d)`, j.Format, journalFormat)
	case j.ID == "":
		return errors.New(`field "id" is empty`)
	case j.To == "":
		return errors.New(`field "to" is empty`)
	case !j.Step.valid():
		return fmt.Errorf(`field "step": unknown step %q`, j.Step)
	case j.Step == StepDone && !j.Outcome.valid():
		return fmt.Errorf(`field "outcome": unknown outcome %q for a finished apply`, j.Outcome)
	}
	return nil
}

// WriteJournal replaces dir's journal atomically and durably.
func WriteJournal(dir string, j Journal) error {
	j.Format = journalFormat
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(JournalPath(dir), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the journal %s: %w", JournalPath(dir), err)
	}
	return nil
}
