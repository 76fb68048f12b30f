package repos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Fixture is a set of keys and built packages that tests share: build it
// once per test binary (it takes a few seconds) and copy packages into
// per-test repositories.
type Fixture struct {
	Dir   string
	Good  *Key // the trusted key
	Other *Key // a key nobody trusts
	// Packages by version; Debs are unsigned (apt signs repositories, not
	// packages), RPMs are signed by Good, OtherRPMs by Other.
	Packages  map[string]Package
	Debs      map[string]string
	RPMs      map[string]string
	OtherRPMs map[string]string
}

// FixtureOptions says what to build.
type FixtureOptions struct {
	Name     string   // package name, default "upkeep-demo-agent"
	Versions []string // default 1.0.0, 1.1.0, 1.2.0
	// Payload gives the files of a version; default DemoAgentFiles.
	Payload func(version string) []File
	Deb     bool // build .debs (needs dpkg-deb)
	RPM     bool // build signed .rpms (needs rpmbuild, rpmsign)
}

// BuildFixture makes the keys and packages in dir.
func BuildFixture(ctx context.Context, dir string, o FixtureOptions) (f *Fixture, err error) {
	if o.Name == "" {
		o.Name = "upkeep-demo-agent"
	}
	if len(o.Versions) == 0 {
		o.Versions = []string{"1.0.0", "1.1.0", "1.2.0"}
	}
	if o.Payload == nil {
		o.Payload = DemoAgentFiles
	}
	f = &Fixture{Dir: dir, Packages: map[string]Package{}, Debs: map[string]string{}, RPMs: map[string]string{}, OtherRPMs: map[string]string{}}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if f.Good, err = NewKey(ctx, dir, "good"); err != nil {
		return f, err
	}
	if f.Other, err = NewKey(ctx, dir, "other"); err != nil {
		return f, err
	}
	for _, v := range o.Versions {
		p := Package{Name: o.Name, Version: v, Files: o.Payload(v)}
		f.Packages[v] = p
		if o.Deb {
			out := filepath.Join(dir, "deb")
			if err := os.MkdirAll(out, 0o755); err != nil {
				return f, err
			}
			if f.Debs[v], err = BuildDeb(ctx, p, out); err != nil {
				return f, err
			}
		}
		if o.RPM {
			unsigned := filepath.Join(dir, "rpm-unsigned")
			if err := os.MkdirAll(unsigned, 0o755); err != nil {
				return f, err
			}
			built, err := BuildRPM(ctx, p, unsigned)
			if err != nil {
				return f, err
			}
			for _, s := range []struct {
				key  *Key
				into map[string]string
				dir  string
			}{{f.Good, f.RPMs, "rpm-good"}, {f.Other, f.OtherRPMs, "rpm-other"}} {
				dst := filepath.Join(dir, s.dir, filepath.Base(built))
				if err := copyFile(built, dst); err != nil {
					return f, err
				}
				if err := s.key.SignRPM(ctx, dst); err != nil {
					return f, fmt.Errorf("sign %s with %s: %w", dst, s.key.Name, err)
				}
				s.into[v] = dst
			}
		}
	}
	return f, nil
}

// Close stops the keys' gpg-agents.
func (f *Fixture) Close() {
	for _, k := range []*Key{f.Good, f.Other} {
		if k != nil {
			k.Close()
		}
	}
}
