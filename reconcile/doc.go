// Package reconcile is upkeep's core: it turns a validated fleet State into an
// immutable Snapshot that the version server serves, keeps the last good
// snapshot when a revision is invalid, and decides whether an agent may be
// updated now.
package reconcile
