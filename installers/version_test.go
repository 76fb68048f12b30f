package installers

import (
	"testing"

	"upkeep.dev/upkeep/installers/internal/vercmp"
	"upkeep.dev/upkeep/reconcile"
)

// TestChannelVersionToPackageVersion is the mapping the host updater relies
// on, end to end: a channel's version is resolved against what a
// repository offers (MatchVersion, as Resolve does), the installed package
// version is read back as a release (ReleaseVersion, as the updater does),
// and the next pass must find the agent up to date, or it would update in
// a loop.
func TestChannelVersionToPackageVersion(t *testing.T) {
	tests := []struct {
		scenario string
		channel  string
		offered  []string
		compare  func(a, b string) int
		pkg      string // what is installed
		release  string // what the updater reads back
	}{
		{"a Debian revision is dropped: 17.3.0 installs 17.3.0-1",
			"17.3.0", []string{"17.3.1-1", "17.3.0-1", "17.2.0-1"}, vercmp.Debian, "17.3.0-1", "17.3.0"},
		{"the channel's v prefix is dropped",
			"v17.3.0", []string{"17.3.0-1"}, vercmp.Debian, "17.3.0-1", "17.3.0"},
		{"the newest Debian build of the release is installed",
			"17.3.0", []string{"17.3.0-1", "17.3.0-2", "17.3.0-1+deb12u1"}, vercmp.Debian, "17.3.0-2", "17.3.0"},
		{"a Debian epoch is ignored",
			"17.3.0", []string{"1:17.3.0-1"}, vercmp.Debian, "1:17.3.0-1", "17.3.0"},
		{"a native Debian version without a revision is the release itself",
			"17.3.0", []string{"17.3.0"}, vercmp.Debian, "17.3.0", "17.3.0"},
		{"an Ubuntu-style revision is dropped",
			"17.3.0", []string{"17.3.0-0ubuntu1~22.04"}, vercmp.Debian, "17.3.0-0ubuntu1~22.04", "17.3.0"},
		{"an rpm release with a dist tag is dropped: 17.3.0 installs 17.3.0-1.el9",
			"17.3.0", []string{"17.3.0-1.el9", "17.2.0-1.el9"}, vercmp.RPM, "17.3.0-1.el9", "17.3.0"},
		{"the newest rpm release wins",
			"17.3.0", []string{"17.3.0-1.el9", "17.3.0-3.el9", "17.3.0-2.el9"}, vercmp.RPM, "17.3.0-3.el9", "17.3.0"},
		{"an rpm epoch is ignored",
			"17.3.0", []string{"2:17.3.0-1.fc40"}, vercmp.RPM, "2:17.3.0-1.fc40", "17.3.0"},
		{"a semver prerelease maps to the Debian tilde form",
			"17.4.0-rc.1", []string{"17.4.0~rc.1-1", "17.3.0-1"}, vercmp.Debian, "17.4.0~rc.1-1", "17.4.0-rc.1"},
		{"a semver prerelease maps to the rpm tilde form",
			"17.4.0-rc.1", []string{"17.4.0~rc.1-1.el9"}, vercmp.RPM, "17.4.0~rc.1-1.el9", "17.4.0-rc.1"},
		{"an exact package version is installed as is",
			"17.3.0-1", []string{"17.3.0-2", "17.3.0-1"}, vercmp.Debian, "17.3.0-1", "17.3.0"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			pkg, err := MatchVersion(tc.channel, tc.offered, tc.compare)
			if err != nil || pkg != tc.pkg {
				t.Fatalf("resolved %q, %v; want package version %q", pkg, err, tc.pkg)
			}
			if got := ReleaseVersion(pkg); got != tc.release {
				t.Fatalf("read back as release %q, want %q", got, tc.release)
			}
			// The next pass: the installed release against the channel.
			d := reconcile.Decide(reconcile.DecisionInput{Current: ReleaseVersion(pkg), Target: reconcile.Target{Version: tc.channel}})
			if tc.channel == tc.pkg {
				return // an exact package pin is not a release; the channel should name releases
			}
			if d.Rule != reconcile.RuleUpToDate {
				t.Errorf("after installing %s for channel %s the next pass decides %s by %s: %s", pkg, tc.channel, d.Action, d.Rule, d.Message)
			}
		})
	}
}
