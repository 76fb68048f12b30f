package pmlock

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as "another package manager" holding a lock.
func TestMain(m *testing.M) {
	if path := os.Getenv("UPKEEP_PMLOCK_HOLD"); path != "" {
		f, held, err := Lock(path)
		if err != nil || held != nil {
			fmt.Println("ERR", err, held)
			os.Exit(3)
		}
		fmt.Println("LOCKED")
		time.Sleep(time.Minute)
		f.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestLocks(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "lock-frontend")

	if _, held, err := Fcntl(filepath.Join(dir, "missing")); held || err != nil {
		t.Errorf("a missing lock file: held %v, %v", held, err)
	}
	if _, held, err := Fcntl(lock); held || err != nil {
		t.Errorf("before anyone locks: held %v, %v", held, err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "UPKEEP_PMLOCK_HOLD="+lock)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 16)
	if n, _ := out.Read(buf); !strings.HasPrefix(string(buf[:n]), "LOCKED") {
		t.Fatalf("helper said %q", buf[:n])
	}
	h, held, err := Fcntl(lock)
	if !held || err != nil || h.PID != cmd.Process.Pid || !strings.Contains(h.String(), "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("while another process holds it: %+v held %v, %v; want pid %d", h, held, err, cmd.Process.Pid)
	}
	if f, other, err := Lock(lock); f != nil || other == nil || other.PID != cmd.Process.Pid || err != nil {
		t.Fatalf("Lock while held: %v %+v %v", f, other, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, held, _ := Fcntl(lock); held {
		t.Error("the lock of a killed process is still held")
	}
	f, other, err := Lock(lock)
	if f == nil || other != nil || err != nil {
		t.Fatalf("Lock after the holder died: %v %+v %v", f, other, err)
	}
	f.Close()
}

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "x.pid")
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // it exits, unreaped: a zombie
	defer zombie.Wait()
	for _, tc := range []struct {
		scenario, content string
		held              bool
	}{
		{"a live process's pid holds it", strconv.Itoa(sleeper.Process.Pid) + "\n", true},
		{"a zombie (killed, not reaped) holds nothing", strconv.Itoa(zombie.Process.Pid), false},
		{"a stale pid holds nothing", "999999999", false},
		{"an empty file holds nothing", "", false},
		{"this process's own pid holds nothing", strconv.Itoa(os.Getpid()), false},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			h, held := PIDFile(write(tc.content))
			if held != tc.held || (held && h.Name != "sleep") {
				t.Fatalf("PIDFile(%q) = %+v, %v; want held %v", tc.content, h, held, tc.held)
			}
		})
	}
	if _, held := PIDFile(filepath.Join(dir, "missing")); held {
		t.Error("a missing file is held")
	}
}
