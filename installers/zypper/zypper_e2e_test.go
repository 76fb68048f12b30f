package zypper_test

import (
	"testing"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/internal/rpmsuite"
	"upkeep.dev/upkeep/installers/zypper"
)

// TestZypperInIsolatedRoot drives the real zypper and rpm through the rpm
// installers' shared suite.
func TestZypperInIsolatedRoot(t *testing.T) {
	rpmsuite.Run(t, rpmsuite.Manager{
		Tool:            "zypper",
		InitRoot:        zypper.InitRoot,
		ReposDir:        zypper.ReposDir,
		New:             func(root string) installers.Installer { return zypper.New(zypper.Config{Root: root}) },
		OtherKeyMessage: func(string) string { return "Signature verification failed" },
		TamperMessage:   "digest: BAD",
		UnsafeRepos: []rpmsuite.UnsafeRepo{{
			Scenario: "a repository that checks no signatures is refused before zypper runs",
			Content:  "[extra]\nbaseurl=http://127.0.0.1:1/\nenabled=1\ngpgcheck=0\n",
			Line:     "4",
		}},
	})
}
