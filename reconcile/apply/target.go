package apply

import "context"

// Target is the agent being updated, as the apply step sees it. The host
// updater's Target wraps a package manager and systemd; the Kubernetes
// updater's wraps a Deployment. Versions are release versions as the version
// server serves them ("1.2.3", a leading "v" accepted); the Target maps them
// to its own form (a package version, an image digest) and reports Current
// in release form, so that SameVersion can compare them.
type Target interface {
	// Current returns the installed version, "" when nothing is installed.
	Current(ctx context.Context) (version string, err error)
	// Install makes version the installed one, up or down, and verifies it by
	// reading it back; nil means the read-back version is version. On error
	// the installed version may or may not have changed: Apply asks Current.
	Install(ctx context.Context, version string) error
	// Restart restarts (or reloads) the agent as configured. Returning nil
	// proves nothing about health; Settle judges that.
	Restart(ctx context.Context) error
	// Settle judges the agent's health over a settle period, never from one
	// probe. reason says why, in a sentence. err means health could not be
	// judged at all (no check could run); Apply treats that as not healthy.
	Settle(ctx context.Context) (healthy bool, reason string, err error)
}

// Repairer is a Target whose package manager can be left mid-transaction
// (the updater or the package manager killed, a power loss). Recover, and
// Apply before it installs, call Repair first, so an interrupted
// transaction is finished before anything reads or changes the version.
type Repairer interface {
	// Repair finds a transaction an earlier run left unfinished and
	// finishes it, never while another package manager runs (that is an
	// error saying which one, and that the next pass checks again). keep is
	// the release version the interrupted transaction was installing, ""
	// when not known. Nothing to do is Repair{Rule: RepairNothing}.
	Repair(ctx context.Context, keep string) (Repair, error)
}

// RepairNothing is the Rule of a Repair that found nothing to finish.
const RepairNothing = "NothingInterrupted"

// Repair is what Repairer.Repair found and did: a named rule, a sentence,
// and the commands it ran.
type Repair struct {
	Rule     string     `json:"rule"`
	Message  string     `json:"message"`
	Commands [][]string `json:"commands,omitempty"`
}
