//go:build !unix

package spec

import "time"

func processCPUTime() (time.Duration, bool) { return 0, false }
