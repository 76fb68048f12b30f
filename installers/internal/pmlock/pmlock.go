// Package pmlock finds out whether another package manager is at work, by
// the locks the package managers themselves take: dpkg's and rpm's fcntl(2)
// record locks, and the pid files of dnf and zypper. It tells the holder's
// pid when it can, so an error can say which process to wait for.
package pmlock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Holder is a process holding a package manager's lock.
type Holder struct {
	Path string // the lock file
	PID  int    // 0 when the lock does not say (an open file description lock)
	Name string // the process's command name, when it could be read
}

func (h Holder) String() string {
	switch {
	case h.PID > 0 && h.Name != "":
		return fmt.Sprintf("pid %d, %s, holds %s", h.PID, h.Name, h.Path)
	case h.PID > 0:
		return fmt.Sprintf("pid %d holds %s", h.PID, h.Path)
	}
	return fmt.Sprintf("a process holds %s", h.Path)
}

// Fcntl reports who holds a write lock on path as dpkg, apt and rpm take it
// (F_SETLK on the whole file): F_GETLK asks without taking it. A missing
// file is not held.
func Fcntl(path string) (Holder, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, fmt.Errorf("checking the lock %s: %w", path, err)
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return Holder{}, false, fmt.Errorf("checking the lock %s: %w", path, err)
	}
	if lk.Type == unix.F_UNLCK {
		return Holder{}, false, nil
	}
	h := Holder{Path: path}
	if lk.Pid > 0 {
		h.PID = int(lk.Pid)
		h.Name = comm(h.PID)
	}
	return h, true, nil
}

// Lock takes a write lock on path (created when missing) the way apt takes
// dpkg's frontend lock, without waiting. held is the holder when another
// process has it. Close the returned file to let go.
func Lock(path string) (f *os.File, held *Holder, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("taking the lock %s: %w", path, err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			h, ok, herr := Fcntl(path)
			if herr != nil || !ok {
				h = Holder{Path: path}
			}
			return nil, &h, nil
		}
		return nil, nil, fmt.Errorf("taking the lock %s: %w", path, err)
	}
	return f, nil, nil
}

// PIDFile reports whether the pid written in path (dnf's rpmdb_lock.pid,
// zypper's zypp.pid) names a live process other than this one. A missing,
// empty or stale file is not held.
func PIDFile(path string) (Holder, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Holder{}, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return Holder{}, false
	}
	if !alive(pid) {
		return Holder{}, false
	}
	return Holder{Path: path, PID: pid, Name: comm(pid)}, true
}

// alive reports whether pid is a running process: a zombie (killed, not yet
// reaped) holds no lock and does no work.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(rest) > 0 && rest[0] != "Z" && rest[0] != "X"
}

func comm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
