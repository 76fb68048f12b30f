package repos

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// File is one file a package installs.
type File struct {
	Path string      // absolute path on the target, e.g. /usr/bin/upkeep-demo-agent
	Mode fs.FileMode // permission bits; 0 means 0644
	Data []byte
}

// Package describes a package to build. It has no maintainer scripts and no
// dependencies, so it can be installed into an isolated root.
type Package struct {
	Name    string
	Version string // upstream version, e.g. 1.2.0
	// Release is the rpm Release and, when not empty, the Debian revision
	// (version 1.2.0-Release); empty means rpm release "1" and a native
	// Debian version "1.2.0".
	Release string
	Arch    string // Debian or rpm spelling; "" = the host's architecture
	Summary string
	Files   []File
	// PostInstallSleep, when not 0, gives the package a post-install script
	// that creates PostInstallMarker(Version) inside the root it is
	// installed to, then sleeps this long: a slow transaction, so a test can
	// signal the updater in the middle of it. The .deb's is sh (dpkg runs it
	// with DPKG_ROOT set); the .rpm's is rpm's built-in Lua (whole seconds),
	// which needs no shell in an empty root.
	PostInstallSleep time.Duration
}

// PostInstallMarker is the file (relative to the install root) a package
// built with PostInstallSleep creates when its post-install script starts.
func PostInstallMarker(version string) string { return "/postinst-" + version + ".started" }

// DebVersion is the package's Debian version.
func (p Package) DebVersion() string {
	if p.Release == "" {
		return p.Version
	}
	return p.Version + "-" + p.Release
}

// RPMVersion is the package's rpm VERSION-RELEASE.
func (p Package) RPMVersion() string { return p.Version + "-" + p.rpmRelease() }

func (p Package) rpmRelease() string {
	if p.Release == "" {
		return "1"
	}
	return p.Release
}

func (p Package) validate() error {
	if p.Name == "" || p.Version == "" || len(p.Files) == 0 {
		return fmt.Errorf("package %q %q: name, version and at least one file are required", p.Name, p.Version)
	}
	for _, f := range p.Files {
		if !strings.HasPrefix(f.Path, "/") || strings.Contains(f.Path, "..") || strings.ContainsAny(f.Path, " \n%") {
			return fmt.Errorf("package %s: file path %q must be absolute without spaces, '%%' or '..'", p.Name, f.Path)
		}
	}
	return nil
}

// DebArch maps a Go, Debian or rpm architecture name to Debian's.
func DebArch(arch string) string {
	if arch == "" {
		arch = runtime.GOARCH
	}
	switch arch {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	case "noarch":
		return "all"
	}
	return arch
}

// RPMArch maps a Go, Debian or rpm architecture name to rpm's.
func RPMArch(arch string) string {
	if arch == "" {
		arch = runtime.GOARCH
	}
	switch arch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "all":
		return "noarch"
	}
	return arch
}

// DemoAgentBinary is where the demo agent's files put its program.
const DemoAgentBinary = "/usr/bin/upkeep-demo-agent"

// DemoAgentFiles is the payload of the demo agent: a script printing its version.
func DemoAgentFiles(version string) []File {
	return []File{{
		Path: DemoAgentBinary,
		Mode: 0o755,
		Data: []byte("#!/bin/sh\n# upkeep demo agent: prints its version\necho \"upkeep-demo-agent " + version + "\"\n"),
	}}
}

func writeTree(root string, files []File) error {
	for _, f := range files {
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, f.Data, mode); err != nil {
			return err
		}
		if err := os.Chmod(p, mode); err != nil { // umask would narrow it
			return err
		}
	}
	return nil
}

// BuildDeb builds p as a .deb in outDir and returns its path.
func BuildDeb(ctx context.Context, p Package, outDir string) (string, error) {
	if err := p.validate(); err != nil {
		return "", err
	}
	stage, err := os.MkdirTemp(outDir, ".deb-stage-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	if err := writeTree(stage, p.Files); err != nil {
		return "", err
	}
	summary := p.Summary
	if summary == "" {
		summary = p.Name + " test package"
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: upkeep tests <tests@upkeep.test>\nSection: misc\nPriority: optional\nDescription: %s\n",
		p.Name, p.DebVersion(), DebArch(p.Arch), summary)
	if err := os.MkdirAll(filepath.Join(stage, "DEBIAN"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(stage, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		return "", err
	}
	if p.PostInstallSleep > 0 {
		script := fmt.Sprintf("#!/bin/sh\n: > \"$DPKG_ROOT%s\"\nsleep %.3f\n", PostInstallMarker(p.Version), p.PostInstallSleep.Seconds())
		if err := os.WriteFile(filepath.Join(stage, "DEBIAN", "postinst"), []byte(script), 0o755); err != nil {
			return "", err
		}
	}
	out := filepath.Join(outDir, fmt.Sprintf("%s_%s_%s.deb", p.Name, p.DebVersion(), DebArch(p.Arch)))
	if _, err := run(ctx, "", nil, "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", stage, out); err != nil {
		return "", err
	}
	return out, nil
}

// BuildRPM builds p as an unsigned .rpm in outDir and returns its path.
func BuildRPM(ctx context.Context, p Package, outDir string) (string, error) {
	if err := p.validate(); err != nil {
		return "", err
	}
	top, err := os.MkdirTemp(outDir, ".rpmbuild-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(top)
	payload := filepath.Join(top, "payload")
	if err := writeTree(payload, p.Files); err != nil {
		return "", err
	}
	summary := p.Summary
	if summary == "" {
		summary = p.Name + " test package"
	}
	var files strings.Builder
	for _, f := range p.Files {
		fmt.Fprintf(&files, "%s\n", f.Path)
	}
	spec := fmt.Sprintf(`Name: %s
Version: %s
Release: %s
Summary: %s
License: Apache-2.0
BuildArch: %s
AutoReqProv: no
%%define debug_package %%{nil}
%%define __os_install_post %%{nil}
%%description
%s
%%install
mkdir -p %%{buildroot}
cp -a %s/. %%{buildroot}/
%%files
%%defattr(-,root,root,-)
%s`, p.Name, p.Version, p.rpmRelease(), summary, RPMArch(p.Arch), summary, payload, files.String())
	if p.PostInstallSleep > 0 {
		spec += fmt.Sprintf("%%post -p <lua>\nio.open(\"%s\", \"w\"):close()\nposix.sleep(%d)\n", PostInstallMarker(p.Version), int(p.PostInstallSleep.Seconds()+0.5))
	}
	specPath := filepath.Join(top, p.Name+".spec")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		return "", err
	}
	if _, err := run(ctx, "", nil, "rpmbuild", "--define", "_topdir "+top, "-bb", specPath); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s-%s.%s.rpm", p.Name, p.RPMVersion(), RPMArch(p.Arch))
	built := filepath.Join(top, "RPMS", RPMArch(p.Arch), name)
	out := filepath.Join(outDir, name)
	if err := copyFile(built, out); err != nil {
		return "", fmt.Errorf("rpmbuild did not produce %s: %w", name, err)
	}
	return out, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// CopyFile copies src to dst, creating dst's folder.
func CopyFile(src, dst string) error { return copyFile(src, dst) }

// Tamper flips bytes near the end of the file at path (inside a package's
// compressed payload), as an attacker changing a signed package would.
func Tamper(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) < 64 {
		return fmt.Errorf("tamper %s: file too small", path)
	}
	for i := len(b) - 40; i < len(b)-24; i++ {
		b[i] ^= 0xff
	}
	return os.WriteFile(path, b, 0o644)
}
