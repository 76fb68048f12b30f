package kube

import (
	"encoding/json"
	"fmt"
	"time"

	"upkeep.dev/upkeep/reconcile/apply"
)

// Outcomes of what a reconcile did after deciding (Status.Outcome).
const (
	OutcomeNone       = ""           // decided, nothing to do now
	OutcomeUpdating   = "Updating"   // the image was changed; the rollout is followed
	OutcomeUpdated    = "Updated"    // the rollout finished healthy
	OutcomeRolledBack = "RolledBack" // the rollout failed; the previous image is back
	OutcomeRefused    = "Refused"    // the image failed verification; nothing changed
	OutcomeFailed     = "Failed"     // the pass failed (API error, bad annotation)
)

// Status is the last decision as the updater records it in the annotation
// AnnotationLastDecision, and what it did about it.
type Status struct {
	Action  string `json:"action,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`

	Current    string     `json:"current"`          // version from the image tag, "" when unknown
	Target     string     `json:"target,omitempty"` // the channel's version, "none", "" when unknown
	Critical   bool       `json:"critical,omitempty"`
	Health     string     `json:"health,omitempty"` // Healthy, Unhealthy, Unknown, with PodMessage
	Pods       string     `json:"pods,omitempty"`
	Schedule   string     `json:"schedule,omitempty"`
	NextWindow *time.Time `json:"nextWindow,omitempty"`
	RecheckAt  *time.Time `json:"recheckAt,omitempty"`

	Outcome        string `json:"outcome,omitempty"`
	OutcomeReason  string `json:"outcomeReason,omitempty"`
	OutcomeMessage string `json:"outcomeMessage,omitempty"`

	UnusableChecks int `json:"unusableChecks,omitempty"`

	// Since is when this decision was first taken; it does not move while
	// the decision stays the same, so the annotation is not rewritten on
	// every pass.
	Since time.Time `json:"since"`
}

// sameDecision reports whether s and o record the same decision and outcome,
// ignoring what changes on every pass (message wording with times left,
// recheck times, Since).
func (s *Status) sameDecision(o *Status) bool {
	if o == nil {
		return false
	}
	return s.Action == o.Action && s.Rule == o.Rule && s.Reason == o.Reason &&
		s.Current == o.Current && s.Target == o.Target && s.Critical == o.Critical &&
		s.Health == o.Health && timeEq(s.NextWindow, o.NextWindow) &&
		s.Outcome == o.Outcome && s.OutcomeReason == o.OutcomeReason &&
		s.UnusableChecks == o.UnusableChecks
}

func timeEq(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// Rollout is an image change being followed (AnnotationRollout).
type Rollout struct {
	Version       string    `json:"version"`       // the version rolled out
	Image         string    `json:"image"`         // the pinned image written
	PreviousImage string    `json:"previousImage"` // what to restore on failure
	From          string    `json:"from"`          // the version before, "" when unknown
	Started       time.Time `json:"started"`
	KeyID         string    `json:"keyId,omitempty"` // which public key verified the image
}

// State is the updater's memory kept in a workload's annotations.
type State struct {
	Last    *Status
	Rollout *Rollout
	Skipped []apply.Skip
}

// ReadState reads the state annotations. A skip list that cannot be read
// is an error: guessing an empty one would reinstall a version known to be
// bad. A last decision that cannot be read is dropped (it is only a record).
func ReadState(ann map[string]string) (State, error) {
	var st State
	if s := ann[AnnotationLastDecision]; s != "" {
		var last Status
		if json.Unmarshal([]byte(s), &last) == nil {
			st.Last = &last
		}
	}
	if s := ann[AnnotationSkipped]; s != "" {
		if err := json.Unmarshal([]byte(s), &st.Skipped); err != nil {
			return st, &ConfigError{AnnotationSkipped, fmt.Sprintf("cannot be read (%v); fix the JSON, or remove the annotation to forget the skipped versions (a version rolled back before may then be retried)", err)}
		}
	}
	if s := ann[AnnotationRollout]; s != "" {
		var r Rollout
		if err := json.Unmarshal([]byte(s), &r); err != nil || r.Image == "" || r.PreviousImage == "" || r.Started.IsZero() {
			if err == nil {
				err = fmt.Errorf("image, previousImage and started are required")
			}
			return st, &ConfigError{AnnotationRollout, fmt.Sprintf("cannot be read (%v); remove it to stop following the rollout", err)}
		}
		st.Rollout = &r
	}
	return st, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("kube: encoding %T: %v", v, err)) // only plain structs are encoded
	}
	return string(b)
}
