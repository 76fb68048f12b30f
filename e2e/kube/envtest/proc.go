package envtest

import (
	"os/exec"
	"syscall"
	"time"
)

// killGroupOnCancel makes cancelling cmd's context end the whole process
// group: the script's `go build` children too, not only bash.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
}
