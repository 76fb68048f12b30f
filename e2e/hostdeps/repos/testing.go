package repos

import (
	"os"
	"testing"
)

// RequireTools skips t when a tool is missing, except under CI (env CI set),
// where a missing tool fails the test: CI must install
// e2e/hostdeps/debian-packages.txt.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	missing := MissingTools(names...)
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("tools %v are missing and CI is set: install the Debian packages listed in e2e/hostdeps/debian-packages.txt", missing)
	}
	t.Skipf("tools %v are missing: apt-get install $(cat e2e/hostdeps/debian-packages.txt) to run this test", missing)
}
