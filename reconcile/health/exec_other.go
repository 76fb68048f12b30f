//go:build !unix

package health

import "os/exec"

// killProcessGroup is a no-op where process groups do not exist; the
// default cancellation kills the command itself.
func killProcessGroup(*exec.Cmd) {}
