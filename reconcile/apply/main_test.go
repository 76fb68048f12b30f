package apply

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as a helper process (re-executed with
// UPKEEP_APPLY_HELPER set), so that locks and crashes involve a real second
// process.
const helperEnv = "UPKEEP_APPLY_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "lock":
		lockHelper()
	case "apply":
		applyHelper()
	case "realapply":
		realApplyHelper()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// lockHelper takes the lock on $UPKEEP_DIR, says LOCKED, and holds it until
// its stdin closes. If the lock is taken it prints the error and exits 3.
func lockHelper() {
	unlock, err := Lock(os.Getenv("UPKEEP_DIR"))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	fmt.Println("LOCKED")
	io.Copy(io.Discard, os.Stdin)
	unlock()
	os.Exit(0)
}

// applyHelper runs Apply from 1.2.0 to 1.3.0 over a fakeTarget whose
// installed version lives in $UPKEEP_HOST_FILE and which SIGKILLs the
// process at $UPKEEP_CRASH_AT. Reaching the end is a failure of the test.
func applyHelper() {
	dir := os.Getenv("UPKEEP_DIR")
	tgt := &fakeTarget{dir: dir, file: os.Getenv("UPKEEP_HOST_FILE"), crashAt: os.Getenv("UPKEEP_CRASH_AT"),
		unhealthy: map[string]string{}}
	for _, v := range strings.Fields(os.Getenv("UPKEEP_UNHEALTHY")) {
		tgt.unhealthy[v] = "crash loop"
	}
	a := &Applier{Dir: dir, Target: tgt, Logger: quietLogger()}
	res := a.Apply(context.Background(), "1.2.0", "1.3.0")
	fmt.Printf("finished without crashing: %s %s\n", res.Outcome, res.Message)
	os.Exit(4)
}

// helper starts the test binary as a helper process.
func helper(t *testing.T, kind string, env ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + kind}, env...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if cmd.ProcessState == nil {
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
	})
	return cmd, stdin, bufio.NewReader(stdout)
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		s, _ := r.ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("helper process said nothing for 20s")
		return ""
	}
}
