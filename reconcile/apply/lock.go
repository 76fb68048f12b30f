package apply

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ErrLocked is wrapped by the error of Lock when another process holds the lock.
var ErrLocked = errors.New("the state directory is locked by another updater")

// LockedError says who holds the lock.
type LockedError struct {
	Path string
	PID  int // 0 when the holder has not written its pid (yet)
}

func (e *LockedError) Error() string {
	pid := "pid unknown"
	if e.PID > 0 {
		pid = fmt.Sprintf("pid %d", e.PID)
	}
	return fmt.Sprintf("another upkeep agent (%s) holds %s; only one updater may act on a state directory: "+
		"stop the other one, or give this one its own state directory", pid, e.Path)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// LockPath is the lock file's path in the state directory dir.
func LockPath(dir string) string { return filepath.Join(dir, LockFile) }
