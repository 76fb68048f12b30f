// Package apt installs exact versions of Debian packages with apt-get, on the
// host or in an isolated root (for tests), with repository signatures always
// enforced and the installed version read back with dpkg-query.
package apt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/internal/run"
	"upkeep.dev/upkeep/installers/internal/vercmp"
)

// Config says where apt works.
type Config struct {
	// Root, when not empty, is an isolated root prepared by InitRoot: apt
	// reads Root/apt.conf (through APT_CONFIG) and dpkg installs under Root.
	// Only for packages without maintainer scripts: dpkg runs them on the host.
	// Empty means the host's own apt.
	Root string
	// Timeout bounds each command; 0 means 15 minutes.
	Timeout time.Duration
	// LockTimeout is how long apt-get install waits for another dpkg user
	// (unattended-upgrades) to finish; 0 means 2 minutes.
	LockTimeout time.Duration
	// Package, when set, is the agent's package: a failed refresh then says
	// whether the broken source is the one that serves it.
	Package string
}

// Installer is the apt Installer.
type Installer struct{ cfg Config }

var _ installers.Installer = (*Installer)(nil)

// New returns an apt Installer.
func New(cfg Config) *Installer { return &Installer{cfg: cfg} }

// Name returns "apt".
func (i *Installer) Name() string { return "apt" }

// ConfigFile is the APT_CONFIG file of an isolated root.
func ConfigFile(root string) string { return filepath.Join(root, "apt.conf") }

// SourcesDir is where sources live: /etc/apt/sources.list.d on the host.
func SourcesDir(root string) string {
	return filepath.Join(rootOrSlash(root), "etc", "apt", "sources.list.d")
}

func rootOrSlash(root string) string {
	if root == "" {
		return "/"
	}
	return root
}

// Env is the environment apt commands run with (added to PATH, HOME, proxies).
func Env(cfg Config) []string {
	env := []string{"DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none"}
	if cfg.Root != "" {
		env = append(env, "APT_CONFIG="+ConfigFile(cfg.Root))
	}
	return env
}

// UpdateArgs is the refresh command. --error-on=any: without it a repository
// whose signature stops verifying is only a warning and the old index is kept.
func UpdateArgs(cfg Config) []string {
	return []string{"apt-get", "update", "-q", "--error-on=any"}
}

// MadisonArgs lists the versions the repositories offer for pkg.
func MadisonArgs(cfg Config, pkg string) []string {
	return []string{"apt-cache", "madison", pkg}
}

// InstallArgs installs pkg at the exact Debian version debVersion, upgrading
// or downgrading. It never removes other packages (--no-remove) and keeps
// the operator's changed configuration files (--force-confold).
func InstallArgs(cfg Config, pkg, debVersion string) []string {
	lock := cfg.LockTimeout
	if lock <= 0 {
		lock = 2 * time.Minute
	}
	return []string{"apt-get", "install", "-y", "-q",
		"--allow-downgrades", "--no-remove",
		"-o", fmt.Sprintf("DPkg::Lock::Timeout=%d", int(lock.Seconds())),
		"-o", "Dpkg::Options::=--force-confdef",
		"-o", "Dpkg::Options::=--force-confold",
		pkg + "=" + debVersion}
}

// QueryArgs reads pkg's status and version from the dpkg database.
func QueryArgs(cfg Config, pkg string) []string {
	argv := []string{"dpkg-query"}
	if cfg.Root != "" {
		argv = append(argv, "--admindir="+filepath.Join(cfg.Root, "var", "lib", "dpkg"))
	}
	return append(argv, "-W", "-f=${db:Status-Status} ${Version}\\n", pkg)
}

// Commands returns what an update runs for an exact version: the refresh,
// then what Install runs.
func (i *Installer) Commands(pkg, debVersion string) [][]string {
	return [][]string{UpdateArgs(i.cfg), MadisonArgs(i.cfg, pkg), InstallArgs(i.cfg, pkg, debVersion), QueryArgs(i.cfg, pkg)}
}

// ParseMadison returns the versions in `apt-cache madison` output from
// binary package indexes, newest first.
func ParseMadison(out string) []string {
	var versions []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 || !strings.HasSuffix(strings.TrimSpace(f[2]), "Packages") {
			continue
		}
		if v := strings.TrimSpace(f[1]); v != "" {
			versions = append(versions, v)
		}
	}
	return installers.SortNewestFirst(versions, vercmp.Debian)
}

// ParseQuery reads dpkg-query output ("installed 1.2.3").
func ParseQuery(out string) (version string, installed bool, err error) {
	status, version, _ := strings.Cut(strings.TrimSpace(out), " ")
	switch status {
	case "installed":
		return version, true, nil
	case "not-installed", "config-files", "":
		return "", false, nil
	default:
		return version, false, &InterruptedError{Status: status, Version: version}
	}
}

// InterruptedError is a package dpkg reports in a transient state
// (half-configured, unpacked, half-installed, triggers-pending): an install
// is running now, or was interrupted. Next says which, and what to do.
type InterruptedError struct {
	Status, Version string
	Next            string
}

func (e *InterruptedError) Error() string {
	msg := fmt.Sprintf("dpkg reports the package %s at version %s: an install has not finished", e.Status, e.Version)
	if e.Next != "" {
		msg += "; " + e.Next
	}
	return msg
}

// interruptedNext fills in what to do about an InterruptedError, which
// depends on whether a package manager is at work now: `dpkg --configure -a`
// is never advised while another dpkg runs.
func (i *Installer) interruptedNext(err error) error {
	var ie *InterruptedError
	if !errors.As(err, &ie) {
		return err
	}
	if h, busy := i.busy(); busy {
		ie.Next = fmt.Sprintf("another package manager (%s) is running and may be this install: wait for it to finish; upkeep's next pass checks again", h)
	} else {
		ie.Next = "no package manager is running, so it was interrupted: upkeep finishes it with `dpkg --configure -a` before it next recovers or updates (or run that yourself now)"
	}
	return ie
}

// Rules classify apt's output, most specific first.
var Rules = []installers.Rule{
	{Name: "old-apt", Match: []string{"--error-on=any is not understood", "option --error-on"},
		Next: "upgrade apt to 2.1.16 or newer (Debian 11, Ubuntu 22.04); older apt cannot fail on a bad repository signature"},
	{Name: "repository-signature", Reason: installers.ErrSignature,
		Match: []string{"NO_PUBKEY", "EXPKEYSIG", "REVKEYSIG", "BADSIG", "signatures couldn't be verified", "signatures were invalid", "is not signed", "The repository is insecure", "Clearsigned file isn't valid"},
		Next:  "the repository's signature did not verify: check that the key file named by Signed-By in the source (/etc/apt/sources.list.d) holds the repository's current signing key (compare fingerprints with the publisher) and that nothing changed the repository files"},
	{Name: "unauthenticated-package", Reason: installers.ErrSignature,
		Match: []string{"packages cannot be authenticated", "There were unauthenticated packages"},
		Next:  "the package comes from a repository whose signature is not trusted: fix the source's Signed-By key, then refresh"},
	{Name: "checksum", Reason: installers.ErrChecksum,
		Match: []string{"Hash Sum mismatch", "Hashes of expected file", "File has unexpected size", "Size mismatch"},
		Next:  "a downloaded file does not match the repository's signed index (changed after signing, or a broken mirror/proxy): refresh and retry; if it persists, tell the repository owner"},
	{Name: "version-not-found", Reason: installers.ErrNotAvailable,
		Match: []string{"was not found", "Unable to locate package", "has no installation candidate", "is not available"},
		Next:  "refresh the package lists, and check that a configured repository publishes this version"},
	{Name: "lock", Reason: installers.ErrLocked,
		Match: []string{"Could not get lock", "Unable to acquire the dpkg frontend lock", "Unable to lock directory", "is another process using it"},
		Next:  "another package manager run holds the lock (unattended-upgrades?): retry later"},
	{Name: "held", Reason: installers.ErrConflict,
		Match: []string{"Held packages were changed", "held broken packages"},
		Next:  "the package is held or its dependencies conflict: `apt-mark showhold`, resolve by hand"},
	{Name: "removal", Reason: installers.ErrConflict,
		Match: []string{"Packages need to be removed but remove is disabled"},
		Next:  "installing this version would remove other packages; upkeep never does that: resolve the conflict by hand"},
	// apt says this only once it holds dpkg's lock, so no dpkg is running.
	{Name: "dpkg-interrupted", Match: []string{"dpkg was interrupted"},
		Next: "an earlier install was interrupted: upkeep's next pass finishes it (`dpkg --configure -a`) when no other package manager runs"},
	{Name: "network", Reason: installers.ErrRepository,
		Match: []string{"Failed to fetch", "Could not connect", "Connection refused", "Temporary failure resolving", "Could not resolve", "Some index files failed to download", "404  Not Found", "Connection timed out"},
		Next:  "the repository could not be reached or read: check the source's URI and the network/proxy"},
}

// exec runs argv; a transaction (one that changes packages) is never killed
// (see installers/internal/run), a query is killed when ctx is cancelled.
func (i *Installer) exec(ctx context.Context, op string, argv []string, transaction bool) (run.Result, error) {
	if err := installers.CheckArgv(argv); err != nil {
		return run.Result{}, err
	}
	res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: Env(i.cfg), Timeout: i.cfg.Timeout, Transaction: transaction})
	if err != nil {
		return res, installers.CommandError(op, argv, res.ExitCode, res.Output, err, Rules)
	}
	return res, nil
}

// Refresh runs apt-get update and fails when any repository does not verify.
func (i *Installer) Refresh(ctx context.Context) error {
	argv := UpdateArgs(i.cfg)
	res, err := i.exec(ctx, "apt-get update", argv, false)
	if err != nil {
		return i.explainSources(ctx, err, res.Output)
	}
	// Belt and braces: a warning about signatures is an error even if apt exited 0.
	if r, line := installers.Classify(Rules, res.Output); r.Reason != nil && r.Reason != installers.ErrNotAvailable {
		return &installers.Error{Op: "apt-get update", Argv: argv, ExitCode: res.ExitCode, Reason: r.Reason, Detail: line, Next: r.Next, Output: res.Output}
	}
	return nil
}

// Available lists offered versions of pkg, newest first.
func (i *Installer) Available(ctx context.Context, pkg string) ([]string, error) {
	res, err := i.exec(ctx, "apt-cache madison", MadisonArgs(i.cfg, pkg), false)
	if err != nil {
		return nil, err
	}
	return ParseMadison(res.Output), nil
}

// Resolve maps version to the exact Debian version offered.
func (i *Installer) Resolve(ctx context.Context, pkg, version string) (string, error) {
	avail, err := i.Available(ctx, pkg)
	if err != nil {
		return "", err
	}
	v, err := installers.MatchVersion(version, avail, vercmp.Debian)
	if err != nil {
		return "", fmt.Errorf("apt: package %s: %w; next: refresh (apt-get update) and check the repository publishes it", pkg, err)
	}
	return v, nil
}

// Installed reads pkg's installed version from the dpkg database.
func (i *Installer) Installed(ctx context.Context, pkg string) (string, bool, error) {
	argv := QueryArgs(i.cfg, pkg)
	res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: Env(i.cfg), Timeout: i.cfg.Timeout})
	if err != nil {
		if res.ExitCode == 1 && strings.Contains(res.Output, "no packages found") {
			return "", false, nil
		}
		return "", false, installers.CommandError("dpkg-query", argv, res.ExitCode, res.Output, err, nil)
	}
	v, ok, err := ParseQuery(res.Output)
	if err != nil {
		return "", false, fmt.Errorf("apt: package %s: %w", pkg, i.interruptedNext(err))
	}
	return v, ok, nil
}

// Install installs pkg at version and verifies the installed version.
func (i *Installer) Install(ctx context.Context, pkg, version string) error {
	want, err := i.Resolve(ctx, pkg, version)
	if err != nil {
		return err
	}
	before, _, _ := i.Installed(ctx, pkg)
	slog.Info("installing package", "installer", "apt", "package", pkg, "version", want, "installed", before)
	argv := InstallArgs(i.cfg, pkg, want)
	if _, err := i.exec(ctx, "apt-get install "+pkg+"="+want, argv, true); err != nil {
		return err
	}
	return installers.VerifyInstalled(ctx, i, pkg, want, "apt-get install")
}
