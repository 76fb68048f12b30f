// Package zypper installs exact versions of rpm packages with zypper, on the
// host or in an isolated root (for tests), never auto-importing a key or
// skipping a signature check, and reads the installed version back with rpm.
package zypper

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/internal/repofile"
	"upkeep.dev/upkeep/installers/internal/run"
	"upkeep.dev/upkeep/installers/internal/vercmp"
	"upkeep.dev/upkeep/installers/rpmdb"
)

// Config says where zypper works.
type Config struct {
	// Root, when not empty, is an isolated root prepared by InitRoot: zypper
	// runs with --root Root (its configuration, repositories, caches and rpm
	// database all inside). Empty means the host.
	Root string
	// Timeout bounds each command; 0 means 15 minutes.
	Timeout time.Duration
}

// Installer is the zypper Installer.
type Installer struct{ cfg Config }

var _ installers.Installer = (*Installer)(nil)

// New returns a zypper Installer.
func New(cfg Config) *Installer { return &Installer{cfg: cfg} }

// Name returns "zypper".
func (i *Installer) Name() string { return "zypper" }

// ReposDir is where zypper's .repo files live (in root, or on the host for "").
func ReposDir(root string) string {
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, "etc", "zypp", "repos.d")
}

// mainConfig is zypp.conf, whose [main] may set gpgcheck defaults.
func mainConfig(root string) string {
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, "etc", "zypp", "zypp.conf")
}

// baseArgs: --non-interactive answers every prompt with its default, which
// rejects unknown keys and aborts on signature errors.
func baseArgs(cfg Config) []string {
	return append([]string{"zypper", "--non-interactive", "--no-color"}, rpmdb.RootArgs(cfg.Root)...)
}

// RefreshArgs force-download and verify all repositories' metadata.
func RefreshArgs(cfg Config) []string {
	return append(baseArgs(cfg), "refresh", "--force")
}

// SearchArgs list pkg's versions in the cached metadata, as XML.
func SearchArgs(cfg Config, pkg string) []string {
	return append(baseArgs(cfg), "--no-refresh", "--xmlout", "search", "--details", "--match-exact", "--type", "package", pkg)
}

// InstallArgs install pkg at the exact edition. --oldpackage allows a
// downgrade: without it zypper says "Nothing to do" and exits 0.
func InstallArgs(cfg Config, pkg, edition string) []string {
	return append(baseArgs(cfg), "install", "--oldpackage", pkg+"="+edition)
}

type searchResult struct {
	Solvables []struct {
		Name       string `xml:"name,attr"`
		Kind       string `xml:"kind,attr"`
		Edition    string `xml:"edition,attr"`
		Repository string `xml:"repository,attr"`
	} `xml:"search-result>solvable-list>solvable"`
}

// ParseSearch reads `zypper --xmlout search --details` output: the editions
// of pkg that repositories offer (not installed-only ones), newest first.
func ParseSearch(out, pkg string) ([]string, error) {
	start := strings.Index(out, "<stream>")
	if start < 0 {
		return nil, fmt.Errorf("zypper search: no XML stream in output %q", installers.LastLines(out, 3))
	}
	var r searchResult
	if err := xml.Unmarshal([]byte(out[start:]), &r); err != nil {
		return nil, fmt.Errorf("zypper search: %w", err)
	}
	var versions []string
	for _, s := range r.Solvables {
		if s.Name != pkg || s.Kind != "package" || s.Repository == "" || s.Repository == "@System" || s.Repository == "(System Packages)" {
			continue
		}
		versions = append(versions, s.Edition)
	}
	return installers.SortNewestFirst(versions, vercmp.RPM), nil
}

// exitReasons are zypper's documented exit codes that settle the reason
// when the output does not say more.
var exitReasons = map[int]installers.Rule{
	7:   {Name: "locked", Reason: installers.ErrLocked, Next: "another zypper or YaST run holds the lock: retry later"},
	104: {Name: "not-found", Reason: installers.ErrNotAvailable, Next: "refresh (zypper refresh) and check that an enabled repository publishes this version"},
	106: {Name: "repos-skipped", Reason: installers.ErrRepository, Next: "some repositories could not be refreshed: run `zypper refresh` to see which, fix or disable them"},
	6:   {Name: "no-repos", Reason: installers.ErrRepository, Next: "no repositories are defined: add the agent's repository"},
}

// Rules classify zypper output, most specific first.
var Rules = []installers.Rule{
	{Name: "checksum", Reason: installers.ErrChecksum,
		Match: []string{"Digest verification failed", "wrong checksum", "checksum mismatch", "Digests: BAD", "digest: BAD", "Checksum error"},
		Next:  "a downloaded file does not match its signed digests or the signed metadata (changed after signing, or a broken mirror/proxy): refresh and retry; if it persists, tell the repository owner"},
	{Name: "signature", Reason: installers.ErrSignature,
		Match: []string{"Signature verification failed", "signed with an unknown key", "public key is not available", "NOKEY", "Signature, key ID", "is not signed", "Unsigned file", "key rejected", "Trust the key"},
		Next:  "a signature did not verify: the repository or package is not signed by a key in the rpm database; check the key's fingerprint with the publisher, then `rpm --import <key file>`; upkeep never imports keys itself"},
	{Name: "not-found", Reason: installers.ErrNotAvailable,
		Match: []string{"not found in package names", "No provider of"},
		Next:  "refresh (zypper refresh) and check that an enabled repository publishes this version"},
	{Name: "locked", Reason: installers.ErrLocked,
		Match: []string{"System management is locked"},
		Next:  "another zypper or YaST run holds the lock: retry later"},
	{Name: "conflict", Reason: installers.ErrConflict,
		Match: []string{"Problem:", "conflicts with", "nothing provides"},
		Next:  "the version's dependencies conflict with installed packages: resolve by hand"},
	{Name: "network", Reason: installers.ErrRepository,
		Match: []string{"Problem retrieving", "Download (curl) error", "Valid metadata not found", "Repository type can't be determined", "Could not resolve host", "Connection refused"},
		Next:  "the repository could not be reached or read: check its baseurl and the network, then refresh"},
}

// Checks refuse a repository that checks neither its metadata nor its
// packages' signatures (libzypp: repo_gpgcheck and pkg_gpgcheck default to
// gpgcheck, which defaults to on).
var Checks = []repofile.Check{
	{Name: "signatures", Run: func(main, repo repofile.Section) (repofile.Finding, bool) {
		gpg, gfile, gline := repofile.Effective(main, repo, "gpgcheck", true)
		repoCheck, _, _ := repofile.Effective(main, repo, "repo_gpgcheck", gpg)
		pkgCheck, _, _ := repofile.Effective(main, repo, "pkg_gpgcheck", gpg)
		return repofile.Finding{File: gfile, Line: gline,
			Message: "neither metadata nor package signatures are checked: set gpgcheck=1 (and do not turn off repo_gpgcheck and pkg_gpgcheck together)"}, !repoCheck && !pkgCheck
	}},
}

// LoadConfig reads and audits zypper's repositories; an unsafe one is an
// error wrapping ErrUnsafeConfig that names file and line.
func LoadConfig(cfg Config) (repofile.Config, error) {
	rc, err := repofile.Load(mainConfig(cfg.Root), []string{ReposDir(cfg.Root)})
	if err != nil {
		return rc, fmt.Errorf("zypper: reading repositories: %w", err)
	}
	if findings := repofile.Audit(rc, Checks); len(findings) > 0 {
		var lines []string
		for _, f := range findings {
			lines = append(lines, f.String())
		}
		return rc, fmt.Errorf("zypper: refusing to run: %w:\n  %s", installers.ErrUnsafeConfig, strings.Join(lines, "\n  "))
	}
	return rc, nil
}

// exec runs argv; a transaction (one that changes packages) is never killed
// (see installers/internal/run), a query is killed when ctx is cancelled.
func (i *Installer) exec(ctx context.Context, op string, argv []string, transaction bool) (run.Result, error) {
	if err := installers.CheckArgv(argv); err != nil {
		return run.Result{}, err
	}
	res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: rpmdb.Env(i.cfg.Root), Timeout: i.cfg.Timeout, Transaction: transaction})
	if err != nil {
		e := installers.CommandError(op, argv, res.ExitCode, res.Output, err, Rules)
		if r, ok := exitReasons[res.ExitCode]; ok && e.Reason == nil {
			e.Reason, e.Next = r.Reason, r.Next
		}
		if res.ExitCode == 8 && e.Reason == nil {
			e.Next = "the transaction failed (exit 8: signatures, file conflicts or scripts): read the output above"
		}
		return res, e
	}
	return res, nil
}

// Refresh downloads and verifies every enabled repository's metadata.
func (i *Installer) Refresh(ctx context.Context) error {
	if _, err := LoadConfig(i.cfg); err != nil {
		return err
	}
	_, err := i.exec(ctx, "zypper refresh", RefreshArgs(i.cfg), false)
	return err
}

// Available lists the editions of pkg the repositories offer, newest first.
func (i *Installer) Available(ctx context.Context, pkg string) ([]string, error) {
	if _, err := LoadConfig(i.cfg); err != nil {
		return nil, err
	}
	res, err := i.exec(ctx, "zypper search", SearchArgs(i.cfg, pkg), false)
	if err != nil {
		if res.ExitCode == 104 { // no match
			return nil, nil
		}
		return nil, err
	}
	return ParseSearch(res.Output, pkg)
}

// Resolve maps version to the exact [epoch:]version-release offered.
func (i *Installer) Resolve(ctx context.Context, pkg, version string) (string, error) {
	avail, err := i.Available(ctx, pkg)
	if err != nil {
		return "", err
	}
	v, err := installers.MatchVersion(version, avail, vercmp.RPM)
	if err != nil {
		return "", fmt.Errorf("zypper: package %s: %w; next: refresh (zypper refresh) and check the repository publishes it", pkg, err)
	}
	return v, nil
}

// Installed reads pkg's installed version from the rpm database.
func (i *Installer) Installed(ctx context.Context, pkg string) (string, bool, error) {
	return rpmdb.Installed(ctx, i.cfg.Root, pkg, i.cfg.Timeout)
}

// Commands returns what an update runs for an exact edition: the refresh,
// then what Install runs.
func (i *Installer) Commands(pkg, edition string) [][]string {
	return [][]string{RefreshArgs(i.cfg), SearchArgs(i.cfg, pkg), InstallArgs(i.cfg, pkg, edition), rpmdb.QueryArgs(i.cfg.Root, pkg)}
}

var _ installers.Repairer = (*Installer)(nil)

// PIDFiles are zypper's lock (libzypp's zypp.pid: the pid of the zypper,
// YaST or PackageKit changing packages). libzypp keeps it under
// $ZYPP_LOCKFILE_ROOT, "/" by default, even with --root; an install root's
// own is checked too.
func PIDFiles(root string) []string {
	lockRoot := os.Getenv("ZYPP_LOCKFILE_ROOT")
	if lockRoot == "" {
		lockRoot = "/"
	}
	files := []string{filepath.Join(lockRoot, "run", "zypp.pid")}
	if root != "" {
		files = append(files, filepath.Join(root, "run", "zypp.pid"))
	}
	return files
}

// Busy reports whether zypper or rpm holds its lock now, and who.
func (i *Installer) Busy() (holder string, busy bool) {
	h, busy := rpmdb.Busy(i.cfg.Root, PIDFiles(i.cfg.Root)...)
	return h.String(), busy
}

// Repair finishes an interrupted transaction on pkg (see rpmdb.Repair), and
// never while zypper or rpm holds its lock. zypper has no command that
// erases a duplicate (`zypper verify` only checks dependencies), so it is
// erased with rpm as the transaction would have.
func (i *Installer) Repair(ctx context.Context, pkg, keep string) (installers.Repair, error) {
	return rpmdb.Repair(ctx, "zypper", i.cfg.Root, pkg, keep, i.cfg.Timeout, PIDFiles(i.cfg.Root)...)
}

// Install installs pkg at version and verifies the installed version.
func (i *Installer) Install(ctx context.Context, pkg, version string) error {
	want, err := i.Resolve(ctx, pkg, version)
	if err != nil {
		return err
	}
	before, _, _ := i.Installed(ctx, pkg)
	slog.Info("installing package", "installer", "zypper", "package", pkg, "version", want, "installed", before)
	if _, err := i.exec(ctx, "zypper install "+pkg+"="+want, InstallArgs(i.cfg, pkg, want), true); err != nil {
		return err
	}
	return installers.VerifyInstalled(ctx, i, pkg, want, "zypper install")
}

// InitRoot prepares an isolated root for zypper at root (absolute): an empty
// rpm database and repos.d. Import trusted keys with rpmdb.ImportKey (zypper
// trusts the rpm database's keys for metadata and packages) and add .repo
// files to ReposDir(root).
func InitRoot(ctx context.Context, root string) error {
	if err := rpmdb.InitRoot(ctx, root); err != nil {
		return err
	}
	return os.MkdirAll(ReposDir(root), 0o755)
}
