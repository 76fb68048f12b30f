package nspawn

import (
	"context"
	"os"
	"testing"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
)

// Tools are the host commands a container needs (Debian: util-linux,
// mount, systemd-container).
var Tools = []string{"unshare", "nsenter", "mount", "systemd-nspawn"}

// Require skips t unless this host can boot a container: root, the tools,
// and a systemd to boot (the container runs the host's own /lib/systemd).
// Under CI (env CI set) a missing part fails t instead: CI installs
// e2e/hostdeps/debian-packages.txt and runs as root.
func Require(t testing.TB) {
	t.Helper()
	repos.RequireTools(t, Tools...)
	why := ""
	switch _, err := os.Stat("/lib/systemd/systemd"); {
	case os.Geteuid() != 0:
		why = "booting a container needs root (mount namespaces, overlayfs, systemd-nspawn)"
	case err != nil:
		why = "the host has no /lib/systemd/systemd to boot: apt-get install systemd"
	default:
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// Boot boots a container for t and stops it when t ends, logging its
// console when t failed. It fails t if the container does not boot.
func Boot(t testing.TB, o Options) *Container {
	t.Helper()
	Require(t)
	// Not t.TempDir: test names may put ',' in its path, which the overlay's
	// mount options cannot hold.
	dir, err := os.MkdirTemp("", "upkeep-nspawn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // runs after Stop: cleanups are LIFO
	c, err := Start(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("container %s booted in %s (PID 1 is %d on the host)", c.Name, c.BootTime, c.PID1())
	t.Cleanup(func() {
		err := c.Stop()
		if err != nil {
			t.Error(err)
		}
		if t.Failed() && err == nil {
			t.Logf("container %s console:\n%s", c.Name, c.Console())
		}
		t.Logf("container %s stopped in %s", c.Name, c.StopTime)
	})
	return c
}
