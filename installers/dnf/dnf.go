// Package dnf installs exact versions of rpm packages with dnf (or yum on
// hosts that only have yum), on the host or in an isolated root (for tests).
// Package signatures are always checked, no key is ever imported into the
// rpm database by an install, and the installed version is read back with rpm.
//
// Keys: dnf runs with -y, and -y also answers "import this key?". So
//   - every command first audits the configuration (LoadConfig) and refuses
//     a repository with gpgcheck off or a gpgkey= that is not a local
//     file:/// path (a key fetched from the network would be trusted blindly);
//   - list and install blank every repository's gpgkey= (--setopt=ID.gpgkey=),
//     so packages verify only against keys already in the rpm database;
//   - refresh (makecache) keeps gpgkey=: repositories with repo_gpgcheck=1
//     need it to check repomd.xml.asc, and dnf keeps that key in a
//     per-repository metadata keyring, not in the rpm database. Only the
//     local files the operator configured can be read there.
package dnf

import (
	"context"
	"errors"
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

// Config says where and with which binary dnf works.
type Config struct {
	// Binary is "dnf" (default) or "yum".
	Binary string
	// Root, when not empty, is an isolated root prepared by InitRoot: dnf runs
	// with --installroot Root, -c Root/etc/dnf/dnf.conf and repositories from
	// Root/etc/yum.repos.d. Empty means the host.
	Root string
	// ReleaseVer is passed as --releasever; an empty root has no release
	// package to take it from, so there it defaults to "1".
	ReleaseVer string
	// Timeout bounds each command; 0 means 15 minutes.
	Timeout time.Duration
}

func (c Config) binary() string {
	if c.Binary == "" {
		return "dnf"
	}
	return c.Binary
}

// ConfigFile is the main configuration dnf reads.
func (c Config) ConfigFile() string {
	if c.Root != "" {
		return filepath.Join(c.Root, "etc", "dnf", "dnf.conf")
	}
	if c.binary() == "yum" {
		return "/etc/yum.conf"
	}
	return "/etc/dnf/dnf.conf"
}

// ReposDirs are the folders whose *.repo files dnf reads.
func (c Config) ReposDirs(main repofile.Section) []string {
	if c.Root != "" {
		return []string{filepath.Join(c.Root, "etc", "yum.repos.d")}
	}
	if v, ok := main.Get("reposdir"); ok {
		return strings.FieldsFunc(v.Text, func(r rune) bool { return r == ',' || r == ' ' })
	}
	return []string{"/etc/yum.repos.d", "/etc/yum/repos.d", "/etc/distro.repos.d"}
}

// CacheDir is where dnf keeps metadata (and the per-repository keyrings
// whose gpg-agents it leaves running).
func (c Config) CacheDir() string {
	dir := "/var/cache/dnf"
	if c.binary() == "yum" {
		dir = "/var/cache/yum"
	}
	if c.Root != "" {
		return filepath.Join(c.Root, dir)
	}
	return dir
}

// Installer is the dnf/yum Installer.
type Installer struct{ cfg Config }

var _ installers.Installer = (*Installer)(nil)

// New returns a dnf Installer.
func New(cfg Config) *Installer { return &Installer{cfg: cfg} }

// Name returns "dnf" or "yum".
func (i *Installer) Name() string { return i.cfg.binary() }

// baseArgs selects binary, config and root; -y answers prompts (which is why
// keys must never be importable, see InstallArgs).
func baseArgs(cfg Config) []string {
	argv := []string{cfg.binary(), "-y"}
	if cfg.Root != "" {
		rel := cfg.ReleaseVer
		if rel == "" {
			rel = "1"
		}
		argv = append(argv, "-c", cfg.ConfigFile(), "--installroot", cfg.Root,
			"--setopt=reposdir="+filepath.Join(cfg.Root, "etc", "yum.repos.d"), "--releasever", rel)
	} else if cfg.ReleaseVer != "" {
		argv = append(argv, "--releasever", cfg.ReleaseVer)
	}
	return argv
}

// noKeyImport blanks gpgkey= of every enabled repository for this run: with
// -y, dnf would otherwise import any key a repository names into the rpm
// database when a package is signed by a key not yet trusted. Packages must
// be signed by keys the operator imported (rpm --import).
func noKeyImport(repoIDs []string) []string {
	var argv []string
	for _, id := range repoIDs {
		argv = append(argv, "--setopt="+id+".gpgkey=")
	}
	return argv
}

// RefreshArgs download and verify metadata of all enabled repositories now.
// Repositories with repo_gpgcheck=1 check repomd.xml.asc against the keys
// their gpgkey= names; the audit allows only local key files there.
func RefreshArgs(cfg Config) [][]string {
	if cfg.binary() == "yum" {
		// yum has no --refresh: expire the cache, then rebuild it.
		return [][]string{
			append(baseArgs(cfg), "clean", "expire-cache"),
			append(baseArgs(cfg), "makecache"),
		}
	}
	return [][]string{append(baseArgs(cfg), "makecache", "--refresh")}
}

// ListArgs lists installed and available versions of pkg.
func ListArgs(cfg Config, repoIDs []string, pkg string) []string {
	argv := append(baseArgs(cfg), "-q")
	argv = append(argv, noKeyImport(repoIDs)...)
	return append(argv, "list", "--showduplicates", pkg)
}

// InstallArgs installs pkg at the exact version [epoch:]version-release.
// dnf's install both upgrades and downgrades to an exact version; yum's only
// upgrades, so downgrade selects yum's downgrade command. It never erases
// other packages (no --allowerasing).
func InstallArgs(cfg Config, repoIDs []string, pkg, rpmVersion string, downgrade bool) []string {
	argv := append(baseArgs(cfg), noKeyImport(repoIDs)...)
	verb := "install"
	if downgrade && cfg.binary() == "yum" {
		verb = "downgrade"
	}
	return append(argv, verb, pkg+"-"+rpmVersion)
}

// ParseList reads `dnf list --showduplicates` output: the versions in
// repositories (not the "@repo" installed entries), newest first. It works on
// tokens because dnf wraps long lines.
func ParseList(out, pkg string) []string {
	var versions []string
	tok := strings.Fields(out)
	for k := 0; k+2 < len(tok); k++ {
		dot := strings.LastIndexByte(tok[k], '.')
		if dot < 0 || tok[k][:dot] != pkg { // name.arch
			continue
		}
		ver, repo := tok[k+1], tok[k+2]
		if strings.HasPrefix(repo, "@") {
			continue
		}
		versions = append(versions, strings.TrimPrefix(ver, "0:"))
		k += 2
	}
	return installers.SortNewestFirst(versions, vercmp.RPM)
}

// Rules classify dnf and yum output, most specific first.
var Rules = []installers.Rule{
	{Name: "checksum", Reason: installers.ErrChecksum,
		Match: []string{"checksum doesn't match", "digest: BAD", "Digest: BAD", "digests: BAD", "Checksum mismatch", "does not match checksum", "Problem opening package"},
		Next:  "a downloaded package does not match its signed digests or the signed metadata (changed after signing, or a broken mirror/proxy): refresh and retry; if it persists, tell the repository owner"},
	{Name: "key-not-trusted", Reason: installers.ErrSignature,
		Match: []string{"Public key for", "NOKEY", "are already installed but they are not correct"},
		Next:  "the package is signed by a key the rpm database does not trust: check the key's fingerprint with the publisher, then `rpm --import <key file>`; upkeep never imports keys itself"},
	{Name: "signature", Reason: installers.ErrSignature,
		Match: []string{"GPG signature verification error", "Bad GPG signature", "GPG check FAILED", "signature: BAD", "Signature, key ID", "is not signed", "repomd.xml GPG signature"},
		Next:  "a signature did not verify: check that the repository's key file (gpgkey=) and the rpm database hold the publisher's current key, and that nothing changed the repository"},
	{Name: "not-found", Reason: installers.ErrNotAvailable,
		Match: []string{"No match for argument", "Unable to find a match", "No package", "No matching Packages"},
		Next:  "refresh (dnf makecache) and check that an enabled repository publishes this version"},
	{Name: "conflict", Reason: installers.ErrConflict,
		Match: []string{"conflicts with", "nothing provides", "Problem:", "cannot install both"},
		Next:  "the version's dependencies conflict with installed packages; upkeep never erases packages: resolve by hand"},
	{Name: "lock", Reason: installers.ErrLocked,
		Match: []string{"Waiting for process with pid", "Existing lock", "another app is currently holding the yum lock"},
		Next:  "another dnf/yum run holds the lock: retry later"},
	{Name: "network", Reason: installers.ErrRepository,
		Match: []string{"Failed to download metadata", "Cannot download repomd.xml", "Curl error", "All mirrors were tried", "Cannot retrieve repository metadata", "Cache-only enabled but no cache"},
		Next:  "the repository could not be reached or read: check baseurl/mirrorlist and the network, then refresh"},
}

// Checks are the audit run before every command: refuse a configuration
// that skips package signatures or would import a key from the network.
var Checks = []repofile.Check{
	{Name: "package-signatures", Run: func(main, repo repofile.Section) (repofile.Finding, bool) {
		on, file, line := repofile.Effective(main, repo, "gpgcheck", false)
		return repofile.Finding{File: file, Line: line,
			Message: "package signature checks are off (gpgcheck is not 1): set gpgcheck=1 in the repository or [main]"}, !on
	}},
	{Name: "local-keys-only", Run: func(main, repo repofile.Section) (repofile.Finding, bool) {
		keys, v := repofile.GPGKeys(repo)
		for _, k := range keys {
			if !strings.HasPrefix(k, "file:///") {
				return repofile.Finding{File: repo.File, Line: v.Line,
					Message: fmt.Sprintf("gpgkey=%s would be downloaded and trusted without review: fetch it once, check its fingerprint with the publisher, save it under /etc/pki/rpm-gpg/ and point gpgkey=file:///... at it", k)}, true
			}
		}
		return repofile.Finding{}, false
	}},
}

// LoadConfig reads and audits the configuration dnf will use; an unsafe one
// is an error wrapping ErrUnsafeConfig that names every file and line.
func LoadConfig(cfg Config) (repofile.Config, error) {
	main, err := repofile.Load(cfg.ConfigFile(), nil)
	if err != nil {
		return main, fmt.Errorf("%s: reading configuration: %w", cfg.binary(), err)
	}
	rc, err := repofile.Load(cfg.ConfigFile(), cfg.ReposDirs(main.Main))
	if err != nil {
		return rc, fmt.Errorf("%s: reading repositories: %w", cfg.binary(), err)
	}
	if findings := repofile.Audit(rc, Checks); len(findings) > 0 {
		var lines []string
		for _, f := range findings {
			lines = append(lines, f.String())
		}
		return rc, fmt.Errorf("%s: refusing to run: %w:\n  %s", cfg.binary(), installers.ErrUnsafeConfig, strings.Join(lines, "\n  "))
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
	i.stopKeyringAgents()
	if err != nil {
		return res, installers.CommandError(op, argv, res.ExitCode, res.Output, err, Rules)
	}
	return res, nil
}

// stopKeyringAgents stops the gpg-agents dnf starts for each repository's
// metadata keyring (repo_gpgcheck) and leaves running.
func (i *Installer) stopKeyringAgents() {
	homes, _ := filepath.Glob(filepath.Join(i.cfg.CacheDir(), "*", "pubring"))
	for _, h := range homes {
		// No socket check: gpg may keep the socket under /run/user instead.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _ = run.Run(ctx, run.Cmd{Argv: []string{"gpgconf", "--homedir", h, "--kill", "gpg-agent"}})
		cancel()
	}
}

// Refresh downloads and verifies the metadata of every enabled repository.
func (i *Installer) Refresh(ctx context.Context) error {
	if _, err := LoadConfig(i.cfg); err != nil {
		return err
	}
	for _, argv := range RefreshArgs(i.cfg) {
		if _, err := i.exec(ctx, i.Name()+" makecache", argv, false); err != nil {
			return err
		}
	}
	return nil
}

// Available lists the versions of pkg the enabled repositories offer.
func (i *Installer) Available(ctx context.Context, pkg string) ([]string, error) {
	rc, err := LoadConfig(i.cfg)
	if err != nil {
		return nil, err
	}
	res, err := i.exec(ctx, i.Name()+" list", ListArgs(i.cfg, rc.IDs(), pkg), false)
	if err != nil {
		var e *installers.Error
		if errors.As(err, &e) && errors.Is(e.Reason, installers.ErrNotAvailable) {
			return nil, nil // "No matching Packages to list"
		}
		return nil, err
	}
	return ParseList(res.Output, pkg), nil
}

// Resolve maps version to the exact [epoch:]version-release offered.
func (i *Installer) Resolve(ctx context.Context, pkg, version string) (string, error) {
	avail, err := i.Available(ctx, pkg)
	if err != nil {
		return "", err
	}
	v, err := installers.MatchVersion(version, avail, vercmp.RPM)
	if err != nil {
		return "", fmt.Errorf("%s: package %s: %w; next: refresh (%s makecache) and check the repository publishes it", i.Name(), pkg, err, i.Name())
	}
	return v, nil
}

// Installed reads pkg's installed version from the rpm database.
func (i *Installer) Installed(ctx context.Context, pkg string) (string, bool, error) {
	return rpmdb.Installed(ctx, i.cfg.Root, pkg, i.cfg.Timeout)
}

// Commands returns what an update runs for an exact version, assuming an
// upgrade and the repositories currently configured: the refresh, then
// what Install runs.
func (i *Installer) Commands(pkg, rpmVersion string) [][]string {
	rc, _ := LoadConfig(i.cfg)
	ids := rc.IDs()
	cmds := RefreshArgs(i.cfg)
	return append(cmds, ListArgs(i.cfg, ids, pkg), InstallArgs(i.cfg, ids, pkg, rpmVersion, false), rpmdb.QueryArgs(i.cfg.Root, pkg))
}

var _ installers.Repairer = (*Installer)(nil)

// PIDFile is dnf's rpm database lock: the pid of the dnf that is changing
// packages (dnf's persistdir, /var/lib/dnf, inside the install root).
func (c Config) PIDFile() string {
	root := c.Root
	if root == "" {
		root = "/"
	}
	if c.binary() == "yum" {
		return filepath.Join(root, "var", "run", "yum.pid")
	}
	return filepath.Join(root, "var", "lib", "dnf", "rpmdb_lock.pid")
}

// Busy reports whether dnf, yum or rpm holds its lock now, and who.
func (i *Installer) Busy() (holder string, busy bool) {
	h, busy := rpmdb.Busy(i.cfg.Root, i.cfg.PIDFile())
	return h.String(), busy
}

// Repair finishes an interrupted transaction on pkg (see rpmdb.Repair), and
// never while dnf, yum or rpm holds its lock.
func (i *Installer) Repair(ctx context.Context, pkg, keep string) (installers.Repair, error) {
	return rpmdb.Repair(ctx, i.Name(), i.cfg.Root, pkg, keep, i.cfg.Timeout, i.cfg.PIDFile())
}

// Install installs pkg at version and verifies the installed version.
func (i *Installer) Install(ctx context.Context, pkg, version string) error {
	rc, err := LoadConfig(i.cfg)
	if err != nil {
		return err
	}
	want, err := i.Resolve(ctx, pkg, version)
	if err != nil {
		return err
	}
	before, installed, err := i.Installed(ctx, pkg)
	if err != nil {
		return err
	}
	downgrade := installed && vercmp.RPM(want, before) < 0
	slog.Info("installing package", "installer", i.Name(), "package", pkg, "version", want, "installed", before, "downgrade", downgrade)
	if _, err := i.exec(ctx, i.Name()+" install "+pkg+"-"+want, InstallArgs(i.cfg, rc.IDs(), pkg, want, downgrade), true); err != nil {
		return err
	}
	return installers.VerifyInstalled(ctx, i, pkg, want, i.Name()+" install")
}

// InitRoot prepares an isolated root for dnf at root (absolute): an empty rpm
// database, dnf.conf with gpgcheck=1, and an empty yum.repos.d. Import trusted
// keys with rpmdb.ImportKey and add .repo files to ReposDir(root).
func InitRoot(ctx context.Context, root string) error {
	if err := rpmdb.InitRoot(ctx, root); err != nil {
		return err
	}
	for _, d := range []string{"etc/dnf", "etc/yum.repos.d", "var/cache/dnf", "var/log"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	conf := "[main]\ngpgcheck=1\ninstallonly_limit=3\nclean_requirements_on_remove=False\nbest=True\nskip_if_unavailable=False\n"
	return os.WriteFile(filepath.Join(root, "etc/dnf/dnf.conf"), []byte(conf), 0o644)
}

// ReposDir is where an isolated root's .repo files go.
func ReposDir(root string) string { return filepath.Join(root, "etc", "yum.repos.d") }
