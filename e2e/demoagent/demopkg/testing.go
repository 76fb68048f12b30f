package demopkg

import (
	"context"
	"maps"
	"slices"
	"testing"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
)

// BuildPackages builds DefaultVersions (BrokenVersion broken) as .debs and
// signed .rpms in dir, on a free port, failing t on error. It skips t when
// the packaging tools are missing (and fails under CI). Cleanup is registered.
func BuildPackages(t testing.TB, dir string) *Packages {
	t.Helper()
	return BuildPackagesWith(t, dir, Options{})
}

// BuildPackagesWith is BuildPackages with options.
func BuildPackagesWith(t testing.TB, dir string, o Options) *Packages {
	t.Helper()
	tools := []string{"gpg", "gpgconf"}
	if !o.SkipDeb {
		tools = append(tools, "dpkg-deb", "apt-ftparchive")
	}
	if !o.SkipRPM {
		tools = append(tools, "rpmbuild", "rpmsign", "createrepo_c")
	}
	repos.RequireTools(t, tools...)
	p, err := Build(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// ServeAptT is ServeApt into a new temporary folder, failing t on error,
// with the server's Close registered as cleanup.
func (p *Packages) ServeAptT(t testing.TB, versions ...string) *AptRepo {
	t.Helper()
	r, err := p.ServeApt(context.Background(), t.TempDir(), versions...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func keys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
