package vercmp

import (
	"os/exec"
	"testing"
)

var debianCases = []struct{ a, b string }{
	{"1.0.0", "1.0.0"}, {"1.0.0", "1.1.0"}, {"1.10.0", "1.9.0"}, {"1.2.3-1", "1.2.3-2"},
	{"1.2.3", "1.2.3-1"}, {"1:1.0", "2.0"}, {"1.2.3~rc.1-1", "1.2.3-1"}, {"1.2.3~rc.1", "1.2.3~rc.2"},
	{"1.0a", "1.0"}, {"1.0+b1", "1.0"}, {"1.0-1+deb12u1", "1.0-1"}, {"1.0~~", "1.0~"},
	{"2.0-1", "10.0-1"}, {"1.0.0-1", "1.0.0-10"}, {"0:1.0", "1.0"}, {"1.0-a", "1.0-b"},
}

// TestDebianMatchesDpkg compares against dpkg itself, the authority.
func TestDebianMatchesDpkg(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed; the table test below still runs")
	}
	for _, c := range debianCases {
		for _, pair := range [][2]string{{c.a, c.b}, {c.b, c.a}} {
			want := 0
			if exec.Command("dpkg", "--compare-versions", pair[0], "lt", pair[1]).Run() == nil {
				want = -1
			} else if exec.Command("dpkg", "--compare-versions", pair[0], "gt", pair[1]).Run() == nil {
				want = 1
			}
			if got := Debian(pair[0], pair[1]); got != want {
				t.Errorf("Debian(%q, %q) = %d, dpkg says %d", pair[0], pair[1], got, want)
			}
		}
	}
}

func TestDebianTable(t *testing.T) {
	tests := []struct {
		scenario string
		a, b     string
		want     int
	}{
		{"equal versions are equal", "1.2.3-1", "1.2.3-1", 0},
		{"a later minor is newer", "1.1.0", "1.0.0", 1},
		{"numbers compare as numbers", "1.10.0", "1.9.0", 1},
		{"a later revision is newer", "1.2.3-2", "1.2.3-1", 1},
		{"an epoch wins over everything", "1:0.1", "9.9", 1},
		{"a tilde prerelease is older than the release", "1.2.3~rc.1", "1.2.3", -1},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			if got := Debian(tt.a, tt.b); got != tt.want {
				t.Fatalf("Debian(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestRPM(t *testing.T) {
	tests := []struct {
		scenario string
		a, b     string
		want     int
	}{
		{"equal versions are equal", "1.2.3-1", "1.2.3-1", 0},
		{"a later minor is newer", "1.1.0-1", "1.0.0-1", 1},
		{"numbers compare as numbers", "1.10.0-1", "1.9.0-1", 1},
		{"a later release is newer", "1.2.3-2", "1.2.3-1", 1},
		{"a release with a dist tag compares by segments", "1.2.3-1.el9", "1.2.3-1", 1},
		{"an epoch wins", "1:0.1-1", "9.9-1", 1},
		{"a tilde prerelease is older", "1.2.3~rc.1-1", "1.2.3-1", -1},
		{"a caret snapshot is newer than the release", "1.2.3^git1-1", "1.2.3-1", 1},
		{"a caret snapshot is older than the next version", "1.2.3^git1-1", "1.2.3.1-1", -1},
		{"numeric segments beat alphabetic ones", "1.0.1-1", "1.0.a-1", 1},
		{"a missing release matches any release", "1.2.3", "1.2.3-7", 0},
		{"separators do not matter", "1_0-1", "1.0-1", 0},
		{"more segments are newer", "1.0.0.1-1", "1.0.0-1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			if got := RPM(tt.a, tt.b); got != tt.want {
				t.Fatalf("RPM(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := RPM(tt.b, tt.a); got != -tt.want {
				t.Fatalf("RPM(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
			}
		})
	}
}

func BenchmarkDebian(b *testing.B) {
	for b.Loop() {
		Debian("1:17.2.3~rc.1-1+deb12u1", "1:17.2.3-1")
	}
}

func BenchmarkRPM(b *testing.B) {
	for b.Loop() {
		RPM("17.2.3~rc.1-1.el9", "17.2.3-1.el9")
	}
}

// TestRPMSegmentsMatchRPM compares rpmvercmp against rpm's own (lua rpm.vercmp).
func TestRPMSegmentsMatchRPM(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm not installed; the table test still runs")
	}
	pairs := [][2]string{{"1.0", "1.0"}, {"1.0", "1.1"}, {"1.10", "1.9"}, {"1.0~rc1", "1.0"}, {"1.0^git1", "1.0"},
		{"1.0^git1", "1.0.1"}, {"1.0a", "1.0"}, {"1.0.a", "1.0.1"}, {"1_0", "1.0"}, {"1.0~rc1", "1.0~rc2"},
		{"2.el9", "1.el9"}, {"1.el9_2", "1.el9"}, {"a", "b"}, {"1.0^", "1.0"}, {"1.0~", "1.0"}, {"007", "7"}}
	for _, p := range pairs {
		script := `%{lua: print(rpm.vercmp("` + p[0] + `", "` + p[1] + `"))}`
		out, err := exec.Command("rpm", "--eval", script).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"-1\n": -1, "0\n": 0, "1\n": 1}[string(out)]
		if got := rpmvercmp(p[0], p[1]); got != want {
			t.Errorf("rpmvercmp(%q, %q) = %d, rpm says %q", p[0], p[1], got, out)
		}
	}
}
