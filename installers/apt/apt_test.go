package apt

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"upkeep.dev/upkeep/installers"
)

func TestCommandLines(t *testing.T) {
	host := Config{}
	root := Config{Root: "/tmp/r"}
	tests := []struct {
		scenario string
		got      []string
		want     string
	}{
		{"refresh fails on any repository error", UpdateArgs(host), "apt-get update -q --error-on=any"},
		{"available versions come from madison", MadisonArgs(host, "agent"), "apt-cache madison agent"},
		{"install pins the exact Debian version and allows downgrades but no removals", InstallArgs(host, "agent", "1.2.3-1"),
			"apt-get install -y -q --allow-downgrades --no-remove -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold agent=1.2.3-1"},
		{"the lock timeout is configurable", InstallArgs(Config{LockTimeout: 5e9}, "agent", "1.0.0")[6:8], "-o DPkg::Lock::Timeout=5"},
		{"read-back on the host uses the host's dpkg database", QueryArgs(host, "agent"), "dpkg-query -W -f=${db:Status-Status} ${Version}\\n agent"},
		{"read-back in a root uses the root's dpkg database", QueryArgs(root, "agent"), "dpkg-query --admindir=/tmp/r/var/lib/dpkg -W -f=${db:Status-Status} ${Version}\\n agent"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			if got := strings.Join(tt.got, " "); got != tt.want {
				t.Fatalf("argv\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	if got := Env(Config{}); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "APT_CONFIG=") }) {
		t.Fatalf("host env sets APT_CONFIG: %q", got)
	}
	if got := Env(Config{Root: "/r"}); !slices.Contains(got, "APT_CONFIG=/r/apt.conf") || !slices.Contains(got, "DEBIAN_FRONTEND=noninteractive") {
		t.Fatalf("root env = %q", got)
	}
}

// TestNoCommandWeakensSignatures scans every command line this package can build.
func TestNoCommandWeakensSignatures(t *testing.T) {
	for _, cfg := range []Config{{}, {Root: "/tmp/r"}} {
		i := New(cfg)
		all := append(i.Commands("agent", "1.0.0"), UpdateArgs(cfg), MadisonArgs(cfg, "agent"))
		for _, argv := range all {
			if err := installers.CheckArgv(argv); err != nil {
				t.Error(err)
			}
		}
		for _, kv := range Env(cfg) {
			if err := installers.CheckArgv([]string{kv}); err != nil {
				t.Error(err)
			}
		}
	}
	if err := installers.CheckArgv(strings.Fields(RootConfig("/tmp/r"))); err != nil {
		t.Error(err)
	}
}

func TestParseMadison(t *testing.T) {
	out := `    agent |      1.1.0 | http://127.0.0.1:40000 stable/main amd64 Packages
    agent | 1.10.0-1 | http://127.0.0.1:40000 stable/main amd64 Packages
    agent |      1.0.0 | http://127.0.0.1:40000 stable/main amd64 Packages
    agent |      1.0.0 | http://127.0.0.1:40000 stable/main Sources
N: Unable to locate package other
`
	got := ParseMadison(out)
	if strings.Join(got, " ") != "1.10.0-1 1.1.0 1.0.0" {
		t.Fatalf("ParseMadison = %q", got)
	}
	if got := ParseMadison(""); len(got) != 0 {
		t.Fatalf("ParseMadison(empty) = %q", got)
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		scenario, out, version string
		installed              bool
		err                    string
	}{
		{"an installed package reports its version", "installed 1.2.3-1\n", "1.2.3-1", true, ""},
		{"a removed package with config files is not installed", "config-files 1.2.3\n", "", false, ""},
		{"a package never installed is not installed", "not-installed \n", "", false, ""},
		{"a half-configured package is an error saying an install has not finished (Installed adds what to do, which depends on the lock)", "half-configured 1.2.3\n", "1.2.3", false, "half-configured at version 1.2.3: an install has not finished"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			v, ok, err := ParseQuery(tt.out)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || v != tt.version || ok != tt.installed {
				t.Fatalf("ParseQuery = %q %v %v", v, ok, err)
			}
		})
	}
}

// TestRules classifies output captured from real apt runs.
func TestRules(t *testing.T) {
	tests := []struct {
		scenario string
		out      string
		reason   error
		next     string
	}{
		{"a repository signed by an unknown key", "W: GPG error: http://127.0.0.1:42009 stable InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY EFB46C3ED114A07E\nE: The repository 'http://127.0.0.1:42009 stable InRelease' is not signed.", installers.ErrSignature, "Signed-By"},
		{"a Release changed after signing", "Err:1 http://127.0.0.1:4 stable InRelease\n  The following signatures were invalid: BADSIG 818B48D256012A85 upkeep test good", installers.ErrSignature, "Signed-By"},
		{"a tampered package", "E: Failed to fetch http://127.0.0.1:4/pool/main/agent_1.2.0_amd64.deb  Hash Sum mismatch\n   Hashes of expected file:", installers.ErrChecksum, "signed index"},
		{"a version not offered", "E: Version '9.9.9' for 'agent' was not found", installers.ErrNotAvailable, "refresh"},
		{"a package nobody offers", "E: Unable to locate package nosuch", installers.ErrNotAvailable, "refresh"},
		{"the dpkg lock is held", "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 123 (apt)", installers.ErrLocked, "retry later"},
		{"a repository that is down", "E: Failed to fetch http://127.0.0.1:1/dists/stable/InRelease  Could not connect to 127.0.0.1:1 (127.0.0.1). - connect (111: Connection refused)", installers.ErrRepository, "URI"},
		{"a change that needs removals", "E: Packages need to be removed but remove is disabled.", installers.ErrConflict, "by hand"},
		{"an apt too old for --error-on", "E: Command line option --error-on=any is not understood in combination with the other options", nil, "2.1.16"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			e := installers.CommandError("apt-get x", nil, 100, tt.out, errors.New("exit 100"), Rules)
			if e.Reason != tt.reason || !strings.Contains(e.Next, tt.next) || e.Detail == "" {
				t.Fatalf("reason=%v next=%q detail=%q", e.Reason, e.Next, e.Detail)
			}
		})
	}
}

func TestRootConfig(t *testing.T) {
	got := RootConfig("/tmp/r/")
	for _, want := range []string{`Dir "/tmp/r/";`, `Dir::State::status "/tmp/r/var/lib/dpkg/status";`, `"--root=/tmp/r";`, `"--force-script-chrootless";`} {
		if !strings.Contains(got, want) {
			t.Errorf("RootConfig lacks %s:\n%s", want, got)
		}
	}
	if err := InitRoot("relative/root"); err == nil {
		t.Error("InitRoot accepted a relative path")
	}
	if err := WriteSource(t.TempDir(), "../evil", nil); err == nil {
		t.Error("WriteSource accepted a path as name")
	}
}

func BenchmarkParseMadison(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 50; i++ {
		sb.WriteString("    agent | 17.")
		sb.WriteString(strings.Repeat("1", i%3+1))
		sb.WriteString(".0-1 | http://127.0.0.1:40000 stable/main amd64 Packages\n")
	}
	out := sb.String()
	for b.Loop() {
		ParseMadison(out)
	}
}
