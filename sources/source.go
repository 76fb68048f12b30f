// Package sources fetches the fleet repository's files: from a Git remote
// (cloned once into a cache, fetched on every sync), from a local Git
// repository at any revision, or from a plain folder. Each fetch returns a
// Revision: an identifier that changes whenever the content changes, and a
// read-only file system holding exactly that content.
//
// NewGit with an http(s) URL replaces go-git's process-wide HTTP transport
// (once) with one that enforces each fetch's byte limit and the
// https-except-loopback rule on redirects; requests made by other go-git
// users in the same binary pass through it unchanged.
package sources

import (
	"context"
	"io/fs"
)

// Revision is one immutable version of the fleet repository.
type Revision struct {
	// ID names the content: the full commit hash for Git, "sha256:<hex>" of
	// the files for a folder.
	ID string
	// Files is the content at ID. It does not change while it is read, even
	// when the source moves on, and is safe for concurrent use.
	Files fs.FS
}

// Source is where the fleet repository comes from.
type Source interface {
	// Fetch returns the newest revision. It returns within the source's
	// timeout (or the context's deadline, whichever is earlier).
	Fetch(ctx context.Context) (Revision, error)
	// String names the source for logs and status, without secrets.
	String() string
}
