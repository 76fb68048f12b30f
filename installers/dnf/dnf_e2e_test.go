package dnf_test

import (
	"testing"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/dnf"
	"upkeep.dev/upkeep/installers/internal/rpmsuite"
)

// TestDnfInIsolatedRoot drives the real dnf and rpm through the rpm
// installers' shared suite.
func TestDnfInIsolatedRoot(t *testing.T) {
	rpmsuite.Run(t, rpmsuite.Manager{
		Tool:         "dnf",
		InitRoot:     dnf.InitRoot,
		ReposDir:     dnf.ReposDir,
		New:          func(root string) installers.Installer { return dnf.New(dnf.Config{Root: root}) },
		RepoNamesKey: true,
		OtherKeyMessage: func(rpmName string) string {
			return "Public key for " + rpmName + " is not installed"
		},
		TamperMessage: "Problem opening package",
		UnsafeRepos: []rpmsuite.UnsafeRepo{
			{
				Scenario: "a repository whose key would be fetched from the network is refused before dnf runs",
				Content:  "[extra]\nbaseurl=http://127.0.0.1:1/\ngpgcheck=1\ngpgkey=https://example.invalid/key.asc\n",
				Line:     "4",
			},
			{
				Scenario: "a repository with package signature checks off is refused",
				Content:  "[extra]\nbaseurl=http://127.0.0.1:1/\ngpgcheck=0\n",
				Line:     "3",
			},
		},
	})
}
