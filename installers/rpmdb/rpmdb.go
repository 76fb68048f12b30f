// Package rpmdb reads installed versions from the rpm database that the dnf
// and zypper installers change, and prepares an isolated root's database for
// tests.
package rpmdb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/internal/run"
	"upkeep.dev/upkeep/installers/internal/vercmp"
)

// QueryFormat prints NAME and [EPOCH:]VERSION-RELEASE, the form dnf and
// zypper accept back.
const QueryFormat = `%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n`

// homeDir holds the .rpmmacros of an isolated root. Debian's rpm keeps its
// database in ~/.rpmdb by default; the macro moves it to /var/lib/rpm
// (inside --root), where dnf and zypper look.
func homeDir(root string) string { return filepath.Join(root, ".upkeep-rpm-home") }

// Env is the environment rpm-based tools need: for a root, HOME pointing at
// the folder whose .rpmmacros sets %_dbpath; nothing on the host.
func Env(root string) []string {
	if root == "" {
		return nil
	}
	return []string{"HOME=" + homeDir(root)}
}

// RootArgs is "--root R" for a root, nothing on the host.
func RootArgs(root string) []string {
	if root == "" {
		return nil
	}
	return []string{"--root", root}
}

// QueryArgs reads pkg's installed versions.
func QueryArgs(root, pkg string) []string {
	return append(append([]string{"rpm"}, RootArgs(root)...), "-q", "--qf", QueryFormat, pkg)
}

// ParseQuery returns the newest installed version of pkg in rpm -q output.
func ParseQuery(out, pkg string) (string, bool) {
	var versions []string
	for _, line := range strings.Split(out, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && name == pkg && v != "" {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return "", false
	}
	return installers.SortNewestFirst(versions, vercmp.RPM)[0], true
}

// Installed reads pkg's installed version from the rpm database of root ("" = host).
func Installed(ctx context.Context, root, pkg string, timeout time.Duration) (string, bool, error) {
	argv := QueryArgs(root, pkg)
	res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: Env(root), Timeout: timeout})
	if err != nil {
		if res.ExitCode == 1 && strings.Contains(res.Output, "is not installed") {
			return "", false, nil
		}
		return "", false, installers.CommandError("rpm -q", argv, res.ExitCode, res.Output, err, nil)
	}
	v, ok := ParseQuery(res.Output, pkg)
	if !ok {
		return "", false, fmt.Errorf("rpm -q %s: unexpected output %q", pkg, installers.LastLines(res.Output, 3))
	}
	return v, true, nil
}

// InitRoot creates an empty rpm database in root (absolute) and the macro
// file Env points at.
func InitRoot(ctx context.Context, root string) error {
	if !filepath.IsAbs(root) {
		return fmt.Errorf("rpm root %q must be an absolute path", root)
	}
	if err := os.MkdirAll(homeDir(root), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(homeDir(root), ".rpmmacros"), []byte("%_dbpath /var/lib/rpm\n"), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "var/lib/rpm"), 0o755); err != nil {
		return err
	}
	argv := []string{"rpm", "--root", root, "--initdb"}
	if res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: Env(root)}); err != nil {
		return installers.CommandError("rpm --initdb", argv, res.ExitCode, res.Output, err, nil)
	}
	return nil
}

// ImportKey adds the public key in keyFile to the rpm database of root (""
// = host): an operator's trust decision, made after checking the key's
// fingerprint. Installers never call it.
func ImportKey(ctx context.Context, root, keyFile string) error {
	argv := append(append([]string{"rpm"}, RootArgs(root)...), "--import", keyFile)
	if res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: Env(root)}); err != nil {
		return installers.CommandError("rpm --import", argv, res.ExitCode, res.Output, err, nil)
	}
	return nil
}
