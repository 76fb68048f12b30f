//go:build !unix

package apply

import "errors"

// Lock needs flock(2); the updater runs on Linux.
func Lock(dir string) (unlock func(), err error) {
	return nil, errors.New("the updater's lock needs flock(2), which this system lacks; run upkeep agent on Linux")
}
