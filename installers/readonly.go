package installers

import "context"

// ReadOnlyResolver is an Installer that can map a version to the exact
// package version without writing anything: no cache rebuilt, no log, no
// lock or pid file. `upkeep agent --dry-run` resolves only through it; with
// an installer that lacks it, a dry run lists the commands with the
// release version and says the exact one is looked up when installing.
type ReadOnlyResolver interface {
	// ResolveReadOnly is Resolve from the cached metadata, writing nothing.
	ResolveReadOnly(ctx context.Context, pkg, version string) (string, error)
}
