//go:build unix

package apply

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Lock takes an exclusive flock(2) on <dir>/lock without waiting, so that
// two updaters never act on one agent at once, and writes this process's
// pid into the file. When another process holds it, the error is a
// *LockedError naming that pid. The kernel drops the lock when the process
// dies, however it dies, so a crash never leaves a stale lock. The file is
// never removed: removing it would let two processes lock different files.
// The descriptor is close-on-exec, so commands the updater runs (a package
// manager) do not inherit the lock. unlock is safe to call more than once.
func Lock(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	path := LockPath(dir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the lock file: %w", err)
	}
	fd := int(f.Fd())
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		pid := readPID(f)
		f.Close()
		return nil, &LockedError{Path: path, PID: pid}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the pid into %s: %w", path, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			// Clear the pid while still holding the lock, then release it.
			f.Truncate(0)
			f.Close()
		})
	}, nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// readPID reads the holder's pid; 0 when the file holds none yet.
func readPID(f *os.File) int {
	b, _ := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, 32), 32))
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
