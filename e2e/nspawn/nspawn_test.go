package nspawn

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBootExecStop(t *testing.T) {
	Require(t)
	dir, err := os.MkdirTemp("", "upkeep-nspawn-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	shared := t.TempDir()
	if err := os.WriteFile(shared+"/from-host", []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Start(ctx, dir, Options{Binds: []Bind{{Host: shared, Container: "/mnt/upkeep-shared", ReadOnly: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	t.Logf("booted %s in %s", c.Name, c.BootTime)

	t.Run("systemd runs as the container's PID 1 and reports running", func(t *testing.T) {
		out, err := c.Exec(ctx, "systemctl", "is-system-running")
		if got := strings.TrimSpace(out); err != nil || (got != "running" && got != "degraded") {
			t.Fatalf("is-system-running = %q, %v", got, err)
		}
		if comm, _ := os.ReadFile("/proc/" + itoa(c.PID1()) + "/comm"); strings.TrimSpace(string(comm)) != "systemd" {
			t.Fatalf("PID %d is %q, want systemd", c.PID1(), comm)
		}
		if out, err := c.Exec(ctx, "cat", "/proc/1/comm"); err != nil || strings.TrimSpace(out) != "systemd" {
			t.Fatalf("inside, PID 1 is %q (%v)", out, err)
		}
	})

	t.Run("files written or copied inside stay inside", func(t *testing.T) {
		path := "/etc/upkeep-nspawn-test/" + c.Name
		if err := c.WriteFile(ctx, path, []byte("inside\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := c.Exec(ctx, "stat", "-c", "%a %s", path)
		if err != nil || strings.TrimSpace(out) != "600 7" {
			t.Fatalf("stat inside = %q, %v", out, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the host sees %s: %v", path, err)
		}
		// A host program copied in runs there, as a test's upkeep binary would.
		if err := c.CopyFile(ctx, "/bin/echo", "/usr/local/bin/upkeep-echo", 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := c.Exec(ctx, "upkeep-echo", "copied"); err != nil || out != "copied\n" {
			t.Fatalf("copied program said %q, %v", out, err)
		}
		if _, err := os.Stat("/usr/local/bin/upkeep-echo"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the host sees the copied program: %v", err)
		}
	})

	t.Run("a read-only bind shows host files and refuses writes", func(t *testing.T) {
		if out, err := c.Exec(ctx, "cat", "/mnt/upkeep-shared/from-host"); err != nil || out != "hello\n" {
			t.Fatalf("cat = %q, %v", out, err)
		}
		if _, err := c.Exec(ctx, "touch", "/mnt/upkeep-shared/new"); err == nil {
			t.Fatal("writing into a read-only bind succeeded")
		}
	})

	t.Run("a failing command reports its status and output", func(t *testing.T) {
		out, err := c.Exec(ctx, "sh", "-c", "echo to-stderr >&2; exit 3")
		if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(out, "to-stderr") {
			t.Fatalf("Exec = %q, %v", out, err)
		}
	})

	t.Run("a command past its deadline is killed inside the container", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		began := time.Now()
		if _, err := c.Exec(cctx, "sh", "-c", "sleep 60; echo survived"); err == nil {
			t.Fatal("Exec of a 60 s sleep returned no error")
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Fatalf("Exec returned %s after its deadline", took)
		}
		if out, _ := c.Exec(ctx, "pgrep", "-x", "sleep"); strings.TrimSpace(out) != "" {
			t.Fatalf("the sleep survived inside the container: PIDs %s", out)
		}
	})

	pid1 := c.PID1()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %s", c.StopTime)
	// A clean halt takes well under a second; 10 s means systemd-shutdown
	// waited for a process it could not reap (see ExecInput's Cancel).
	if c.StopTime > 5*time.Second {
		t.Errorf("stop took %s, want a clean halt within 5 s", c.StopTime)
	}

	t.Run("stopping leaves no process, mount or file on the host", func(t *testing.T) {
		if _, err := os.Stat("/proc/" + itoa(pid1)); err == nil {
			if st, err := readStat(pid1); err == nil && st.start == c.pid1Start {
				t.Fatalf("PID 1 (%d) still runs", pid1)
			}
		}
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(mounts), dir) || strings.Contains(string(mounts), "upkeep-nspawn") {
			t.Fatalf("host mounts mention the container:\n%s", mounts)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 0 {
			t.Fatalf("%s holds %d entries on the host", dir, len(entries))
		}
		if _, err := os.Stat("/run/systemd/nspawn/propagate/" + c.Name); err == nil {
			t.Fatal("nspawn left its propagation folder in the host's /run")
		}
		if _, err := c.Exec(ctx, "true"); err == nil {
			t.Fatal("Exec into a stopped container succeeded")
		}
		if err := c.Stop(); err != nil {
			t.Fatalf("second Stop = %v", err)
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }
