package installers

import (
	"fmt"
	"strings"
)

// ForbiddenArguments are command-line fragments that weaken or skip
// signature checks, or trust a key without asking. No installer may ever
// build a command line containing one (case-insensitive substring match, so
// "-o Acquire::AllowInsecureRepositories=true" is caught too).
var ForbiddenArguments = []string{
	"--allow-unauthenticated",
	"--allow-insecure-repositories",
	"AllowInsecureRepositories",
	"AllowDowngradeToInsecureRepositories",
	"AllowWeakRepositories",
	"AllowUnauthenticated",
	"Check-Valid-Until",
	"trusted=yes",
	"--force-bad-verify",
	"--nogpgcheck",
	"--no-gpgcheck",
	"gpgcheck=0",
	"gpgcheck=false",
	"gpgcheck=no",
	"--nosignature",
	"--nodigest",
	"--no-gpg-checks",
	"--gpg-auto-import-keys",
	"--no-check-signatures",
	"--skip-signature",
	"--insecure",
	"sslverify=0",
	"sslverify=false",
}

// CheckArgv returns an error naming the first forbidden fragment in argv.
func CheckArgv(argv []string) error {
	for _, a := range argv {
		la := strings.ToLower(a)
		for _, f := range ForbiddenArguments {
			if strings.Contains(la, strings.ToLower(f)) {
				return fmt.Errorf("command line %q contains %q, which weakens signature checks", strings.Join(argv, " "), f)
			}
		}
	}
	return nil
}
