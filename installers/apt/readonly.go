package apt

import (
	"context"
	"fmt"

	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/internal/run"
	"upkeep.dev/upkeep/installers/internal/vercmp"
)

var _ installers.ReadOnlyResolver = (*Installer)(nil)

// ReadOnlyMadisonArgs is MadisonArgs with apt's binary caches turned off:
// apt-cache otherwise rewrites pkgcache.bin and srcpkgcache.bin whenever
// the dpkg status changed since they were built (after every install), and
// a dry run must write nothing. The caches are rebuilt in memory instead.
func ReadOnlyMadisonArgs(cfg Config, pkg string) []string {
	return []string{"apt-cache", "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=", "madison", pkg}
}

// ResolveReadOnly is Resolve through ReadOnlyMadisonArgs.
func (i *Installer) ResolveReadOnly(ctx context.Context, pkg, version string) (string, error) {
	argv := ReadOnlyMadisonArgs(i.cfg, pkg)
	res, err := run.Run(ctx, run.Cmd{Argv: argv, Env: Env(i.cfg), Timeout: i.cfg.Timeout})
	if err != nil {
		return "", installers.CommandError("apt-cache madison", argv, res.ExitCode, res.Output, err, Rules)
	}
	v, err := installers.MatchVersion(version, ParseMadison(res.Output), vercmp.Debian)
	if err != nil {
		return "", fmt.Errorf("apt: package %s: %w; next: refresh (apt-get update) and check the repository publishes it", pkg, err)
	}
	return v, nil
}
