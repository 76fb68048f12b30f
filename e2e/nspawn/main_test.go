package nspawn

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperDirEnv makes the test binary boot a container in the named folder,
// print its PID 1, and wait to be killed (see TestKilledTestTakesContainerDown).
const helperDirEnv = "UPKEEP_NSPAWN_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		c, err := Start(context.Background(), dir, Options{})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("pid1", c.PID1(), c.pid1Start)
		select {} // until killed
	}
	os.Exit(m.Run())
}

func TestKilledTestTakesContainerDown(t *testing.T) {
	Require(t)
	dir, err := os.MkdirTemp("", "upkeep-nspawn-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		lines <- sc.Text()
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(time.Minute):
		t.Fatal("the helper did not boot a container within a minute")
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "pid1" {
		t.Fatalf("helper said %q", line)
	}
	pid1, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[2], 10, 64)

	// SIGKILL: no cleanup runs; only Pdeathsig on the container's nspawn.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	began := time.Now()
	for {
		st, err := readStat(pid1)
		if err != nil || st.start != start {
			break
		}
		if time.Since(began) > 20*time.Second {
			syscall.Kill(pid1, syscall.SIGKILL)
			t.Fatalf("the container's PID 1 (%d) still runs 20 s after its test binary was killed", pid1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("container gone %s after its test binary was killed", time.Since(began).Round(time.Millisecond))
}
