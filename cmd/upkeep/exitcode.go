package main

import "strconv"

// exitCodeError ends the process with Code after printing Err (when not nil):
// 1 for a failed check (an invalid repository), 2 for a usage error.
type exitCodeError struct {
	Code int
	Err  error
}

func (e *exitCodeError) Error() string {
	if e.Err == nil {
		return "exit status " + strconv.Itoa(e.Code)
	}
	return e.Err.Error()
}

func (e *exitCodeError) Unwrap() error { return e.Err }
