// Package installers changes the installed version of a host package through
// the host's own package manager (apt, dnf/yum, zypper), with its signature
// checks always on, and verifies the result by reading the version back.
//
// Subpackages implement Installer for each package manager; installers/auto
// picks one for the running host.
package installers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"upkeep.dev/upkeep/installers/internal/run"
)

// Installer installs exact versions of one package manager's packages.
//
// Versions: callers pass a release version ("1.2.3", a leading "v" is
// accepted) or an exact package version ("1.2.3-1", "1:1.2.3-1.el9");
// Resolve maps it to the exact package version a configured repository
// offers. Installed and Available return exact package versions.
type Installer interface {
	// Name is the package manager's name: "apt", "dnf", "yum" or "zypper".
	Name() string
	// Installed reports the installed version of pkg; ok is false when pkg is
	// not installed.
	Installed(ctx context.Context, pkg string) (version string, ok bool, err error)
	// Available lists the versions of pkg the configured repositories offer,
	// newest first, from the package manager's cached metadata (see Refresh).
	Available(ctx context.Context, pkg string) ([]string, error)
	// Resolve maps a release or exact version to an available package version.
	// The error wraps ErrNotAvailable when no repository offers it.
	Resolve(ctx context.Context, pkg, version string) (string, error)
	// Refresh downloads and verifies repository metadata. A repository whose
	// signature does not verify is an error (wrapping ErrSignature).
	Refresh(ctx context.Context) error
	// Install makes version (release or exact) the installed version of pkg,
	// upgrading or downgrading, then reads the installed version back: it
	// returns nil only when the read-back version is the resolved one.
	Install(ctx context.Context, pkg, version string) error
	// Commands returns the command lines an update runs for an exact package
	// version, in order, without running them (for --dry-run and the pass's
	// record): the metadata refresh (Refresh) first, then what Install runs.
	// Environment (APT_CONFIG, HOME) is not shown.
	Commands(pkg, pkgVersion string) [][]string
}

// Reasons an operation failed. An *Error wraps at most one of them; test with
// errors.Is.
var (
	// ErrSignature: a repository or package signature did not verify, or its
	// key is not trusted. Nothing was installed.
	ErrSignature = errors.New("signature verification failed")
	// ErrChecksum: a downloaded file does not match the checksum in the
	// repository's signed metadata (tampered or changed in flight).
	ErrChecksum = errors.New("checksum mismatch")
	// ErrNotAvailable: no configured repository offers the package or version.
	ErrNotAvailable = errors.New("version not available")
	// ErrReadBack: the command succeeded but the installed version is not the
	// requested one.
	ErrReadBack = errors.New("installed version differs from the requested one")
	// ErrUnsafeConfig: the package manager's configuration would weaken
	// signature checks (or auto-trust a key); upkeep refuses to run it.
	ErrUnsafeConfig = errors.New("unsafe package manager configuration")
	// ErrRepository: a repository could not be reached or read.
	ErrRepository = errors.New("repository unavailable")
	// ErrLocked: another process holds the package manager's lock; retry later.
	ErrLocked = errors.New("package manager is locked")
	// ErrConflict: the change needs other packages removed or held packages
	// changed; upkeep does not do that on its own.
	ErrConflict = errors.New("change conflicts with other packages")
)

// Error is a failed package manager command, with the reason, the output line
// that shows it, and what the operator should do next.
type Error struct {
	Op       string   // what was attempted, e.g. "apt-get update"
	Argv     []string // the command line
	ExitCode int      // -1 if it did not start or was killed
	Reason   error    // one of the Err* values above, or nil if unclassified
	Detail   string   // the output line(s) naming the cause
	Next     string   // the operator's next step
	Output   string   // tail of the combined output (at most 64 KiB)
	Err      error    // the underlying run error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s failed", e.Op)
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, " (exit %d)", e.ExitCode)
	} else if e.Err != nil {
		fmt.Fprintf(&b, " (%v)", e.Err)
	}
	if e.Reason != nil {
		fmt.Fprintf(&b, ": %v", e.Reason)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	} else if tail := LastLines(e.Output, 5); tail != "" {
		fmt.Fprintf(&b, "; last output: %s", tail)
	}
	if e.Next != "" {
		fmt.Fprintf(&b, "; next: %s", e.Next)
	}
	return b.String()
}

// Unwrap exposes the reason and the run error to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Reason != nil {
		errs = append(errs, e.Reason)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// LastLines returns the last n non-empty lines of out joined by " | ".
func LastLines(out string, n int) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var kept []string
	for i := len(lines) - 1; i >= 0 && len(kept) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			kept = append(kept, l)
		}
	}
	for i, j := 0, len(kept)-1; i < j; i, j = i+1, j-1 {
		kept[i], kept[j] = kept[j], kept[i]
	}
	return strings.Join(kept, " | ")
}

// Rule classifies command output: when any of Match appears in the output
// (case-insensitive), the failure has Reason and the operator should do Next.
// Rules are checked in order and the first match wins, so put the most
// specific (signatures) before the generic (network).
type Rule struct {
	Name   string
	Match  []string
	Reason error
	Next   string
}

// Classify returns the first rule matching output and the output line that
// matched, or a zero Rule.
func Classify(rules []Rule, output string) (Rule, string) {
	lower := strings.ToLower(output)
	for _, r := range rules {
		for _, m := range r.Match {
			if i := strings.Index(lower, strings.ToLower(m)); i >= 0 {
				return r, lineAt(output, i)
			}
		}
	}
	return Rule{}, ""
}

func lineAt(s string, i int) string {
	start := strings.LastIndexByte(s[:i], '\n') + 1
	end := strings.IndexByte(s[i:], '\n')
	if end < 0 {
		end = len(s)
	} else {
		end += i
	}
	line := strings.TrimSpace(s[start:end])
	const max = 300
	if len(line) > max {
		line = line[:max] + "..."
	}
	return line
}

// CommandError builds the *Error for a failed command: it classifies output
// with rules and fills in the reason, the line showing it and the next step.
func CommandError(op string, argv []string, exitCode int, output string, runErr error, rules []Rule) *Error {
	e := &Error{Op: op, Argv: argv, ExitCode: exitCode, Output: output, Err: runErr}
	if r, line := Classify(rules, output); r.Name != "" {
		e.Reason, e.Detail, e.Next = r.Reason, line, r.Next
		if r.Reason == ErrChecksum {
			e.Detail = withFileName(line, output)
		}
	}
	return e
}

// VerifyInstalled reads the installed version of pkg back and returns an
// error wrapping ErrReadBack unless it is want: exit codes lie.
//
// It runs even when ctx is done (a stop arrived during the transaction),
// bounded by DetachedTimeout: what the transaction left must be known.
func VerifyInstalled(ctx context.Context, i Installer, pkg, want, op string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DetachedTimeout)
	defer cancel()
	got, ok, err := i.Installed(ctx, pkg)
	if err != nil {
		return fmt.Errorf("%s: reading back the installed version of %s: %w", i.Name(), pkg, err)
	}
	if !ok || got != want {
		if !ok {
			got = "nothing"
		}
		return &Error{Op: op, ExitCode: 0, Reason: ErrReadBack,
			Detail: fmt.Sprintf("%s reports %s %s installed, want %s", i.Name(), pkg, got, want),
			Next:   "inspect the package manager's log; the package may be held, pinned, excluded or replaced by another package"}
	}
	slog.Info("package installed", "installer", i.Name(), "package", pkg, "version", got)
	return nil
}

// ErrLeftRunning is wrapped by an install's error when the package manager's
// transaction was still running at its timeout or when upkeep was told to
// abort: upkeep stopped waiting, and the transaction goes on by itself (it is
// never killed mid-way). The next pass finds its lock held, or its work done.
var ErrLeftRunning = run.ErrLeftRunning

// WithAbort returns a context under which a running package manager
// transaction is no longer waited for once abort closes (it is left running,
// never killed). Cancelling ctx itself is "stop": no new command starts, and
// a transaction already running is waited for until it ends or abort closes.
func WithAbort(ctx context.Context, abort <-chan struct{}) context.Context {
	return run.WithAbort(ctx, abort)
}

// Repairer is an Installer that can find a transaction an earlier run left
// unfinished (the updater or the package manager killed mid-way, a power
// loss) and finish it.
type Repairer interface {
	// Repair checks the package manager's database and, when a transaction
	// was interrupted and no other package manager is running, finishes it:
	// apt runs `dpkg --configure -a`; the rpm installers erase the duplicate
	// of pkg an interrupted upgrade left beside keep (the release version
	// the interrupted transaction was installing; "" when not known). While
	// another package manager holds its lock, the error wraps ErrLocked and
	// names it, and nothing runs. Nothing interrupted: Rule RepairNothing.
	Repair(ctx context.Context, pkg, keep string) (Repair, error)
}

// Names of Repair rules.
const (
	RepairNothing         = "NothingInterrupted"    // the database shows no unfinished transaction
	RepairDpkgInterrupted = "DpkgInterrupted"       // dpkg left packages half-installed or half-configured
	RepairRPMDuplicates   = "RPMDuplicates"         // an interrupted rpm upgrade left two versions installed
	RepairBusy            = "PackageManagerRunning" // another package manager holds its lock: wait
)

// Repair is what Repair found and did.
type Repair struct {
	Rule     string     // one of the Repair* names
	Message  string     // what was found and done, in a sentence
	Commands [][]string // what ran, in order
}

// DetachedTimeout bounds a read-back that runs after a transaction even
// though the caller was told to stop: the answer says what the transaction
// did, and the journal needs it.
const DetachedTimeout = time.Minute
