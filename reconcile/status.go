package reconcile

import (
	"time"

	"upkeep.dev/upkeep/spec"
)

// Status is what the reconciler knows about its last syncs; /status shows it.
type Status struct {
	Source      string     `json:"source"`
	Revision    string     `json:"revision"` // the revision being served, "" before the first good sync
	LastSync    time.Time  `json:"lastSync"` // last attempt, good or bad
	LastSuccess time.Time  `json:"lastSuccess"`
	LastError   *SyncError `json:"lastError,omitempty"` // nil when the last attempt succeeded
}

// SyncError describes a sync that did not replace the served snapshot.
type SyncError struct {
	Revision string       `json:"revision,omitempty"` // "" when the source could not be read
	Time     time.Time    `json:"time"`
	Message  string       `json:"message"`
	Errors   []spec.Error `json:"errors,omitempty"` // file:line problems of an invalid revision
}
