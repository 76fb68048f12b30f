package zypper

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"upkeep.dev/upkeep/installers"
)

func join(argv []string) string { return strings.Join(argv, " ") }

func TestCommandLines(t *testing.T) {
	host, root := Config{}, Config{Root: "/r"}
	tests := []struct{ scenario, got, want string }{
		{"refresh forces a download and verification of all metadata", join(RefreshArgs(host)), "zypper --non-interactive --no-color refresh --force"},
		{"refresh in a root", join(RefreshArgs(root)), "zypper --non-interactive --no-color --root /r refresh --force"},
		{"search lists exact matches from the cache as XML", join(SearchArgs(host, "agent")), "zypper --non-interactive --no-color --no-refresh --xmlout search --details --match-exact --type package agent"},
		{"install allows downgrades with --oldpackage and pins the edition", join(InstallArgs(host, "agent", "1.0.0-1")), "zypper --non-interactive --no-color install --oldpackage agent=1.0.0-1"},
		{"install in a root", join(InstallArgs(root, "agent", "1:1.0.0-1")), "zypper --non-interactive --no-color --root /r install --oldpackage agent=1:1.0.0-1"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("argv\n got %s\nwant %s", tt.got, tt.want)
			}
		})
	}
}

func TestNoCommandWeakensSignatures(t *testing.T) {
	for _, cfg := range []Config{{}, {Root: "/r"}} {
		for _, argv := range append(New(cfg).Commands("agent", "1.0.0-1"), RefreshArgs(cfg)) {
			if err := installers.CheckArgv(argv); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestParseSearch(t *testing.T) {
	out := `<?xml version='1.0'?>
<stream>
<message type="info">Loading repository data...</message>
<search-result version="0.0">
<solvable-list>
<solvable status="other-version" name="agent" kind="package" edition="1.2.0-1" arch="noarch" repository="test"/>
<solvable status="installed" name="agent" kind="package" edition="1.10.0-1" arch="noarch" repository="test"/>
<solvable status="installed" name="agent" kind="package" edition="0.9.0-1" arch="noarch" repository="(System Packages)"/>
<solvable status="not-installed" name="agent" kind="srcpackage" edition="1.3.0-1" arch="noarch" repository="test"/>
<solvable status="not-installed" name="agent-extra" kind="package" edition="9.0-1" arch="noarch" repository="test"/>
</solvable-list>
</search-result>
</stream>`
	got, err := ParseSearch(out, "agent")
	if err != nil || join(got) != "1.10.0-1 1.2.0-1" {
		t.Fatalf("ParseSearch = %q, %v", got, err)
	}
	if _, err := ParseSearch("Loading repository data...", "agent"); err == nil {
		t.Fatal("ParseSearch accepted output without XML")
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		scenario string
		exit     int
		out      string
		reason   error
	}{
		{"a package signed by an untrusted key", 8, "agent-1.2.0-1.noarch (test): Signature verification failed [4-Signatures public key is not available]", installers.ErrSignature},
		{"metadata signed by an unknown key", 4, "Signature verification failed for file 'repomd.xml' from repository 'test'.", installers.ErrSignature},
		{"a tampered package", 8, "Payload SHA256 ALT digest: BAD (Expected 14 != f2)", installers.ErrChecksum},
		{"a version nobody offers, by output", 104, "'agent=9.9.9' not found in package names. Trying capabilities.\nNo provider of 'agent=9.9.9' found.", installers.ErrNotAvailable},
		{"a version nobody offers, by exit code alone", 104, "", installers.ErrNotAvailable},
		{"the lock is held, by exit code", 7, "", installers.ErrLocked},
		{"skipped repositories on refresh", 106, "", installers.ErrRepository},
		{"an unclassified commit failure keeps no reason", 8, "something odd", nil},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			script := filepath.Join(dir, "z.sh")
			os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \""+strings.ReplaceAll(tt.out, "'", "'\\''")+"\"\nexit "+strconv.Itoa(tt.exit)+"\n"), 0o755)
			_, err := New(Config{}).exec(t.Context(), "zypper x", []string{"sh", script}, false)
			var e *installers.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *installers.Error", err)
			}
			if e.Reason != tt.reason || e.ExitCode != tt.exit {
				t.Fatalf("reason=%v exit=%d, want %v %d (%v)", e.Reason, e.ExitCode, tt.reason, tt.exit, e)
			}
		})
	}
}

func TestAudit(t *testing.T) {
	tests := []struct {
		scenario, zyppConf, repo, refused string
	}{
		{"defaults check signatures", "", "[a]\nbaseurl=http://x/\n", ""},
		{"package checks alone are enough", "", "[a]\nrepo_gpgcheck=0\npkg_gpgcheck=1\n", ""},
		{"metadata checks alone are enough", "", "[a]\nrepo_gpgcheck=1\npkg_gpgcheck=0\n", ""},
		{"gpgcheck=0 is refused", "", "[a]\nbaseurl=http://x/\ngpgcheck=0\n", `a.repo:3: repository "a"`},
		{"turning both checks off is refused", "", "[a]\nrepo_gpgcheck=0\npkg_gpgcheck=0\n", "a.repo:1"},
		{"gpgcheck = off in zypp.conf is refused naming it", "[main]\ngpgcheck = off\n", "[a]\nbaseurl=http://x/\n", "zypp.conf:2"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(ReposDir(root), 0o755)
			os.WriteFile(filepath.Join(ReposDir(root), "a.repo"), []byte(tt.repo), 0o644)
			if tt.zyppConf != "" {
				os.WriteFile(mainConfig(root), []byte(tt.zyppConf), 0o644)
			}
			_, err := LoadConfig(Config{Root: root})
			if tt.refused == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, installers.ErrUnsafeConfig) || !strings.Contains(err.Error(), tt.refused) {
				t.Fatalf("err = %v, want ErrUnsafeConfig containing %q", err, tt.refused)
			}
		})
	}
}
