package dnf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upkeep.dev/upkeep/installers"
)

func join(argv []string) string { return strings.Join(argv, " ") }

func TestCommandLines(t *testing.T) {
	host := Config{}
	yum := Config{Binary: "yum"}
	root := Config{Root: "/r"}
	ids := []string{"upkeep", "base"}
	rootBase := "dnf -y -c /r/etc/dnf/dnf.conf --installroot /r --setopt=reposdir=/r/etc/yum.repos.d --releasever 1"
	tests := []struct {
		scenario string
		got      string
		want     string
	}{
		{"refresh on the host re-downloads and verifies metadata", join(RefreshArgs(host)[0]), "dnf -y makecache --refresh"},
		{"refresh with yum expires the cache then rebuilds it", join(RefreshArgs(yum)[0]) + " && " + join(RefreshArgs(yum)[1]), "yum -y clean expire-cache && yum -y makecache"},
		{"refresh in a root names config, root, repos and release", join(RefreshArgs(root)[0]), rootBase + " makecache --refresh"},
		{"an explicit release version is passed on the host", join(RefreshArgs(Config{ReleaseVer: "9"})[0]), "dnf -y --releasever 9 makecache --refresh"},
		{"listing blanks every repository's gpgkey", join(ListArgs(host, ids, "agent")), "dnf -y -q --setopt=upkeep.gpgkey= --setopt=base.gpgkey= list --showduplicates agent"},
		{"install names the exact version and blanks gpgkeys", join(InstallArgs(host, ids, "agent", "1.2.3-1", false)), "dnf -y --setopt=upkeep.gpgkey= --setopt=base.gpgkey= install agent-1.2.3-1"},
		{"dnf downgrades with install too", join(InstallArgs(host, nil, "agent", "1.0.0-1", true)), "dnf -y install agent-1.0.0-1"},
		{"yum downgrades with downgrade", join(InstallArgs(yum, nil, "agent", "1.0.0-1", true)), "yum -y downgrade agent-1.0.0-1"},
		{"yum upgrades with install", join(InstallArgs(yum, nil, "agent", "1:2.0.0-1", false)), "yum -y install agent-1:2.0.0-1"},
		{"install in a root", join(InstallArgs(root, []string{"t"}, "agent", "1.0.0-1", false)), rootBase + " --setopt=t.gpgkey= install agent-1.0.0-1"},
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
	for _, cfg := range []Config{{}, {Binary: "yum"}, {Root: "/r"}} {
		all := append(RefreshArgs(cfg), ListArgs(cfg, []string{"a"}, "agent"),
			InstallArgs(cfg, []string{"a"}, "agent", "1.0.0-1", false), InstallArgs(cfg, []string{"a"}, "agent", "1.0.0-1", true))
		for _, argv := range all {
			if err := installers.CheckArgv(argv); err != nil {
				t.Error(err)
			}
			if strings.Contains(join(argv), "--allowerasing") || strings.Contains(join(argv), "--nogpgcheck") {
				t.Errorf("argv may erase packages or skip checks: %s", join(argv))
			}
		}
	}
}

func TestParseList(t *testing.T) {
	out := `Installed Packages
agent.x86_64                        1.1.0-1                         @upkeep-test
Available Packages
agent.x86_64                        1.0.0-1                         upkeep-test
agent.x86_64                        1.1.0-1                         upkeep-test
agent.x86_64                        1:1.10.0-1.el9                  upkeep-test
agent.x86_64                        0:1.2.0-1                       upkeep-test
agent-extra.x86_64                  9.0-1                           upkeep-test
a-very-long-package-name-that-wraps.x86_64
                                    9.0-1                           upkeep-test
agent.noarch
                                    1.3.0-1                         upkeep-test
`
	got := join(ParseList(out, "agent"))
	if got != "1:1.10.0-1.el9 1.3.0-1 1.2.0-1 1.1.0-1 1.0.0-1" {
		t.Fatalf("ParseList = %q", got)
	}
}

func TestRules(t *testing.T) {
	tests := []struct {
		scenario string
		out      string
		reason   error
		next     string
	}{
		{"a package signed by an untrusted key", "Public key for agent-1.2.0-1.x86_64.rpm is not installed\nError: GPG check FAILED", installers.ErrSignature, "rpm --import"},
		{"metadata signed by another key", "Error: Failed to download metadata for repo 'upkeep-test': repomd.xml GPG signature verification error: Bad GPG signature", installers.ErrSignature, "gpgkey="},
		{"a package changed after signing with metadata re-signed", "Problem opening package agent-1.2.0-1.x86_64.rpm\nError: GPG check FAILED", installers.ErrChecksum, "changed after signing"},
		{"a package changed after signing", "[MIRROR] agent-1.2.0-1.x86_64.rpm: Downloading successful, but checksum doesn't match.", installers.ErrChecksum, "changed after signing"},
		{"a version nobody offers", "No match for argument: agent-9.9.9\nError: Unable to find a match: agent-9.9.9", installers.ErrNotAvailable, "makecache"},
		{"a repository that is down", "Error: Failed to download metadata for repo 'x': Cannot download repomd.xml: Curl error (7): Couldn't connect to server", installers.ErrRepository, "baseurl"},
		{"a dependency conflict", "Error: \n Problem: package agent-2.0 requires libfoo >= 3, but none of the providers can be installed", installers.ErrConflict, "by hand"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			e := installers.CommandError("dnf x", nil, 1, tt.out, errors.New("exit 1"), Rules)
			if e.Reason != tt.reason || !strings.Contains(e.Next, tt.next) {
				t.Fatalf("reason=%v next=%q detail=%q", e.Reason, e.Next, e.Detail)
			}
		})
	}
}

func TestLoadConfigAudit(t *testing.T) {
	tests := []struct {
		scenario string
		main     string
		repo     string
		refused  string // "" = accepted; else text the error must contain
	}{
		{"a repository with gpgcheck=1 and a local key is accepted", "[main]\n", "[a]\nbaseurl=http://x/\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/k\n", ""},
		{"gpgcheck from [main] applies to repositories", "[main]\ngpgcheck=1\n", "[a]\nbaseurl=http://x/\n", ""},
		{"gpgcheck defaults to off in dnf, so an unset one is refused", "[main]\n", "[a]\nbaseurl=http://x/\n", `a.repo:1: repository "a": package signature checks are off`},
		{"gpgcheck=0 in the repository overrides [main] and is refused", "[main]\ngpgcheck=1\n", "[a]\nbaseurl=http://x/\ngpgcheck=0\n", "a.repo:3"},
		{"gpgcheck=0 in [main] is refused naming dnf.conf", "[main]\ngpgcheck=0\n", "[a]\nbaseurl=http://x/\n", "dnf.conf:2"},
		{"an https gpgkey is refused since dnf -y would import it", "[main]\ngpgcheck=1\n", "[a]\nbaseurl=http://x/\ngpgkey=file:///k\n  https://x/key\n", "gpgkey=https://x/key"},
		{"a disabled unsafe repository is ignored", "[main]\ngpgcheck=1\n", "[a]\nenabled=0\ngpgcheck=0\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "etc/dnf"), 0o755)
			os.MkdirAll(filepath.Join(root, "etc/yum.repos.d"), 0o755)
			os.WriteFile(filepath.Join(root, "etc/dnf/dnf.conf"), []byte(tt.main), 0o644)
			os.WriteFile(filepath.Join(root, "etc/yum.repos.d/a.repo"), []byte(tt.repo), 0o644)
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
