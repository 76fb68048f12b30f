package auto

import (
	"strings"
	"testing"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/apt"
	"upkeep.dev/upkeep/installers/dnf"
	"upkeep.dev/upkeep/installers/zypper"
)

func TestChoose(t *testing.T) {
	all := []string{"apt-get", "apt-cache", "dpkg-query", "dnf", "yum", "rpm", "zypper"}
	tests := []struct {
		scenario string
		osr      string
		have     []string
		kind     string
		err      string
	}{
		{"Debian with rpm tools installed still uses apt", `ID=debian`, all, Apt, ""},
		{"Ubuntu uses apt", "ID=ubuntu\nID_LIKE=debian", all, Apt, ""},
		{"Fedora uses dnf", `ID=fedora`, all, Dnf, ""},
		{"Rocky is found through ID_LIKE", "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"", all, Dnf, ""},
		{"an unknown RHEL rebuild is found through ID_LIKE", "ID=myrhel\nID_LIKE=\"rhel fedora\"", all, Dnf, ""},
		{"CentOS 7 with only yum uses yum", `ID="centos"`, []string{"yum", "rpm"}, Yum, ""},
		{"openSUSE Leap uses zypper", "ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"", all, Zypper, ""},
		{"SLES uses zypper", `ID="sles"`, all, Zypper, ""},
		{"a missing os-release falls back to what is on PATH", "", []string{"zypper", "rpm"}, Zypper, ""},
		{"a Debian without apt is an error naming what is missing", `ID=debian`, []string{"rpm", "dnf"}, "", "apt-get+apt-cache+dpkg-query is not on PATH"},
		{"nothing known and nothing on PATH is an error", `ID=plan9`, nil, "", "no supported package manager"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			have := map[string]bool{}
			for _, b := range tt.have {
				have[b] = true
			}
			c, err := Choose(ParseOSRelease([]byte(tt.osr)), func(b string) bool { return have[b] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || c.Kind != tt.kind || c.Reason == "" {
				t.Fatalf("Choose = %+v, %v; want %s", c, err, tt.kind)
			}
		})
	}
}

func TestNew(t *testing.T) {
	for _, k := range []string{Apt, Dnf, Yum, Zypper} {
		i, err := New(k)
		if err != nil || i.Name() != k {
			t.Fatalf("New(%q) = %v, %v", k, i, err)
		}
	}
	if _, err := New("pacman"); err == nil {
		t.Fatal("New(pacman) = nil error")
	}
}

// TestDetectOnThisHost runs detection on the real host: whatever it picks
// must agree with os-release.
func TestDetectOnThisHost(t *testing.T) {
	i, c, err := Detect()
	if err != nil {
		t.Skipf("no package manager detected here: %v", err)
	}
	t.Logf("detected %s: %s", i.Name(), c.Reason)
	if i.Name() != c.Kind {
		t.Fatalf("installer %s for choice %s", i.Name(), c.Kind)
	}
}

// TestNoInstallerBuildsAWeakeningCommand scans the dry-run commands of every
// installer kind, on the host and in a root, for flags that weaken signatures.
func TestNoInstallerBuildsAWeakeningCommand(t *testing.T) {
	var all []installers.Installer
	for _, k := range []string{Apt, Dnf, Yum, Zypper} {
		i, _ := New(k)
		all = append(all, i)
	}
	root := t.TempDir()
	all = append(all, apt.New(apt.Config{Root: root}), dnf.New(dnf.Config{Root: root}), zypper.New(zypper.Config{Root: root}))
	for _, i := range all {
		cmds := i.Commands("agent", "1.0.0-1")
		if len(cmds) < 2 {
			t.Fatalf("%s: Commands returned %d command lines", i.Name(), len(cmds))
		}
		for _, argv := range cmds {
			if err := installers.CheckArgv(argv); err != nil {
				t.Errorf("%s: %v", i.Name(), err)
			}
		}
	}
	for _, argv := range append(dnf.RefreshArgs(dnf.Config{}), apt.UpdateArgs(apt.Config{}), zypper.RefreshArgs(zypper.Config{})) {
		if err := installers.CheckArgv(argv); err != nil {
			t.Error(err)
		}
	}
}

// --dry-run and the pass's record print Commands: they begin with the
// metadata refresh every update runs first.
func TestCommandsBeginWithTheRefresh(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		i       installers.Installer
		refresh [][]string
	}{
		{apt.New(apt.Config{}), [][]string{apt.UpdateArgs(apt.Config{})}},
		{dnf.New(dnf.Config{Root: root}), dnf.RefreshArgs(dnf.Config{Root: root})},
		{dnf.New(dnf.Config{Binary: "yum"}), dnf.RefreshArgs(dnf.Config{Binary: "yum"})},
		{zypper.New(zypper.Config{}), [][]string{zypper.RefreshArgs(zypper.Config{})}},
	} {
		cmds := tc.i.Commands("agent", "1.0.0-1")
		if len(cmds) <= len(tc.refresh) {
			t.Fatalf("%s: %q", tc.i.Name(), cmds)
		}
		for k, want := range tc.refresh {
			if strings.Join(cmds[k], " ") != strings.Join(want, " ") {
				t.Errorf("%s: command %d is %q, want the refresh %q", tc.i.Name(), k, cmds[k], want)
			}
		}
	}
}
