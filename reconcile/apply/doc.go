// Package apply changes an agent's version safely: it installs the target,
// restarts the agent, judges its health over a settle period, and rolls back
// to the previous version when the new one does not prove healthy. Every
// step is written to a journal on disk before it runs, so an updater killed
// in the middle (crash, SIGKILL, power loss) finishes the job on its next
// start (Applier.Recover). The host updater and the Kubernetes updater share
// this step; they differ only in their Target.
//
// # Use
//
// An updater takes Lock(dir) for its whole life, calls Applier.Recover once
// at start, and on each check: reads the State, drops the skips the target
// has moved away from (State.PruneSkipped), passes State.SkippedVersions to
// reconcile.Decide, records the decision, and calls Applier.Apply when the
// decision is to update. Apply and Recover save the skip list and the last
// Result themselves.
//
// # Files in the state directory
//
//   - journal.json: the apply in progress or the last one finished (Journal).
//   - state.json: the skip list and the updater's small memory (State).
//   - lock: held with flock(2) by the one updater allowed to act (Lock).
//
// Both JSON files are written atomically (temporary file, fsync, rename,
// fsync of the directory) and read with a size bound. A file that cannot be
// parsed is an error naming the file and what to do; it is never silently
// replaced, because an empty skip list would reinstall a known-bad version.
//
// # The skip list
//
// A version goes on the skip list only when it was installed and then proved
// bad: its install changed the package and failed, it did not restart, or it
// did not settle healthy. A refused install (a signature that does not
// verify, a version the repository lacks, a locked package manager) leaves
// the installed version as it was; that says nothing about the release, so
// nothing is skipped and the next check tries again. An apply interrupted
// before the package changed is not a verdict either. A skipped version stays
// skipped until the channel's target becomes another version (PruneSkipped):
// lowering or raising the channel is always enough to move on.
//
// # Recovery
//
// Recover reads the unfinished journal and the installed version:
//
//	journal step                    installed  then
//	installing|restarting|settling  to         restart, settle; healthy: keep (Updated),
//	                                           else roll back and skip to
//	installing                      from       restart, settle from (Failed, nothing skipped)
//	installing                      other      roll back to from (nothing skipped)
//	restarting|settling             not to     roll back to from and skip to
//	rolling-back                    any        finish the rollback as it was started (skip to,
//	                                           unless it restores after an interrupted install)
//
// Recover is idempotent: it ends by marking the journal done, and a second
// run finds nothing to do; a run cut short leaves the journal at a step from
// which the next run goes on.
//
// Before anything else, Recover (and Apply, before it installs) lets a
// Target that is a Repairer finish what an interrupted package-manager
// transaction left (dpkg half-configured, two rpm versions), toward the
// version the journal was installing; while another package manager runs,
// it does nothing and says who runs. The repair is a step of the Result.
//
// # Stop and abort
//
// Cancelling the context is a stop, not an abort: no new step starts, a
// running package command (which the installers run detached from the
// context) is let finish and journaled — after an install that finished the
// journal says restarting — and the Result is Interrupted. Stopper turns
// SIGTERM/SIGINT into that stop, and a second signal or a bound into the
// abort that stops waiting for the package command without killing it
// (docs/sigterm.md).
package apply
