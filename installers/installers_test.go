package installers

import (
	"errors"
	"strings"
	"testing"

	"upkeep.dev/upkeep/installers/internal/vercmp"
)

func TestMatchVersion(t *testing.T) {
	tests := []struct {
		scenario  string
		want      string
		available []string
		compare   func(a, b string) int
		got       string
		err       string
	}{
		{"a release version matches a native Debian version", "1.2.3", []string{"1.2.4", "1.2.3", "1.2.2"}, vercmp.Debian, "1.2.3", ""},
		{"a leading v is accepted", "v1.2.3", []string{"1.2.3-1"}, vercmp.Debian, "1.2.3-1", ""},
		{"the newest revision of a release wins", "1.2.3", []string{"1.2.3-1", "1.2.3-10", "1.2.3-2"}, vercmp.Debian, "1.2.3-10", ""},
		{"an epoch is ignored when matching", "1.2.3", []string{"2:1.2.3-1"}, vercmp.Debian, "2:1.2.3-1", ""},
		{"an exact package version is returned as is", "1.2.3-1", []string{"1.2.3-2", "1.2.3-1"}, vercmp.Debian, "1.2.3-1", ""},
		{"an rpm release with a dist tag matches", "17.2.3", []string{"17.2.3-1.el9", "17.2.2-1.el9"}, vercmp.RPM, "17.2.3-1.el9", ""},
		{"a semver prerelease matches the tilde form", "1.2.3-rc.1", []string{"1.2.3~rc.1-1", "1.2.3-1"}, vercmp.RPM, "1.2.3~rc.1-1", ""},
		{"a prefix of a version does not match", "1.2", []string{"1.2.3", "1.20"}, vercmp.Debian, "", "1.2 is not offered"},
		{"a version that is not offered is an error listing what is", "9.9.9", []string{"1.0.0", "1.1.0"}, vercmp.Debian, "", "offered: 1.0.0, 1.1.0"},
		{"nothing offered says none", "1.0.0", nil, vercmp.Debian, "", "offered: none"},
		{"an empty request is an error", "", []string{"1.0.0"}, vercmp.Debian, "", "no version requested"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			got, err := MatchVersion(tt.want, tt.available, tt.compare)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrNotAvailable) {
					t.Fatalf("err = %v, want ErrNotAvailable containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.got {
				t.Fatalf("MatchVersion = %q, %v; want %q", got, err, tt.got)
			}
		})
	}
}

func TestReleaseVersion(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3": "1.2.3", "1.2.3-1": "1.2.3", "1:1.2.3-1.el9": "1.2.3", "1.2.3~rc.1-1": "1.2.3-rc.1", "1.2.3~rc.1": "1.2.3-rc.1",
	} {
		if got := ReleaseVersion(in); got != want {
			t.Errorf("ReleaseVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSortNewestFirst(t *testing.T) {
	got := SortNewestFirst([]string{"1.0.0-1", "1.10.0-1", "1.2.0-1", "1.10.0-1"}, vercmp.RPM)
	if strings.Join(got, " ") != "1.10.0-1 1.2.0-1 1.0.0-1" {
		t.Fatalf("got %q", got)
	}
}

func TestCheckArgv(t *testing.T) {
	tests := []struct {
		scenario string
		argv     []string
		bad      bool
	}{
		{"a plain install is allowed", []string{"apt-get", "install", "-y", "--allow-downgrades", "agent=1.0.0"}, false},
		{"apt's unauthenticated switch is refused", []string{"apt-get", "install", "--allow-unauthenticated", "agent"}, true},
		{"an apt option hidden in -o is refused", []string{"apt-get", "-o", "Acquire::AllowInsecureRepositories=true", "update"}, true},
		{"dnf without gpg checks is refused", []string{"dnf", "--nogpgcheck", "install", "agent"}, true},
		{"a setopt turning gpgcheck off is refused", []string{"dnf", "--setopt=agent.gpgcheck=0", "install"}, true},
		{"zypper's auto import is refused", []string{"zypper", "--gpg-auto-import-keys", "refresh"}, true},
		{"zypper without gpg checks is refused", []string{"zypper", "--no-gpg-checks", "install"}, true},
		{"a trusted=yes source option is refused", []string{"apt-get", "-o", "Deb::Trusted=yes", "[trusted=yes]"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			if err := CheckArgv(tt.argv); (err != nil) != tt.bad {
				t.Fatalf("CheckArgv = %v, want refused=%v", err, tt.bad)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Op: "apt-get update", ExitCode: 100, Reason: ErrSignature, Detail: "NO_PUBKEY 0EACFB803CD02849", Next: "check Signed-By"}
	want := "apt-get update failed (exit 100): signature verification failed: NO_PUBKEY 0EACFB803CD02849; next: check Signed-By"
	if e.Error() != want {
		t.Fatalf("Error() = %q\nwant      %q", e.Error(), want)
	}
	if !errors.Is(e, ErrSignature) {
		t.Fatal("errors.Is(e, ErrSignature) = false")
	}
	e2 := &Error{Op: "zypper refresh", ExitCode: 4, Output: "a\n\nb\nc\n"}
	if !strings.HasSuffix(e2.Error(), "last output: a | b | c") {
		t.Fatalf("Error() = %q", e2.Error())
	}
}

func TestClassifyFirstRuleWins(t *testing.T) {
	rules := []Rule{
		{Name: "signature", Match: []string{"NO_PUBKEY"}, Reason: ErrSignature},
		{Name: "network", Match: []string{"failed to fetch"}, Reason: ErrRepository},
	}
	out := "W: Failed to fetch http://x/InRelease\nW: GPG error: The following signatures couldn't be verified: NO_PUBKEY ABC\n"
	r, line := Classify(rules, out)
	if r.Name != "signature" || !strings.Contains(line, "NO_PUBKEY ABC") || strings.Contains(line, "\n") {
		t.Fatalf("Classify = %q, %q", r.Name, line)
	}
	if r, _ := Classify(rules, "all fine"); r.Name != "" {
		t.Fatalf("Classify matched %q on clean output", r.Name)
	}
}

func BenchmarkMatchVersion(b *testing.B) {
	avail := []string{"17.2.3-1", "17.2.2-1", "17.2.1-1", "17.1.0-1", "16.5.0-1", "16.4.0-1"}
	for b.Loop() {
		if _, err := MatchVersion("v17.1.0", avail, vercmp.Debian); err != nil {
			b.Fatal(err)
		}
	}
}
