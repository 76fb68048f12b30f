package apt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/apt"
)

var (
	fixtureOnce sync.Once
	fixture     *repos.Fixture
	fixtureErr  error
	fixtureDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture != nil {
		fixture.Close()
	}
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// sharedFixture builds keys and .debs once per test binary.
func sharedFixture(t *testing.T) *repos.Fixture {
	t.Helper()
	repos.RequireTools(t, "gpg", "gpgconf", "dpkg-deb", "apt-ftparchive", "apt-get", "dpkg-query")
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "upkeep-apt-fixture-")
		if fixtureErr == nil {
			fixture, fixtureErr = repos.BuildFixture(context.Background(), fixtureDir, repos.FixtureOptions{Deb: true})
		}
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixture
}

const pkg = "upkeep-demo-agent"

// TestAptInIsolatedRoot drives the real apt-get and dpkg in an isolated root
// against a signed repository served on 127.0.0.1. The subtests run in order
// on one root: each starts from the state the previous one left.
func TestAptInIsolatedRoot(t *testing.T) {
	f := sharedFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()

	repo, err := repos.NewAptRepo(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if _, err := repo.Add(f.Debs[v]); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.Publish(ctx, f.Good); err != nil {
		t.Fatal(err)
	}
	srv, err := repos.Serve(repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	root := filepath.Join(dir, "root")
	if err := apt.InitRoot(root); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(root, "etc/apt/keyrings/upkeep-test.gpg")
	if err := f.Good.WritePublicKey(ctx, keyring, false); err != nil {
		t.Fatal(err)
	}
	if err := apt.WriteSource(root, "upkeep-test", repo.AptSource(srv.URL, keyring)); err != nil {
		t.Fatal(err)
	}
	inst := apt.New(apt.Config{Root: root})

	expectInstalled := func(t *testing.T, want string) {
		t.Helper()
		got, ok, err := inst.Installed(ctx, pkg)
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			if ok {
				t.Fatalf("installed %q, want nothing", got)
			}
			return
		}
		if !ok || got != want {
			t.Fatalf("installed = %q (ok=%v), want %q", got, ok, want)
		}
		body, err := os.ReadFile(filepath.Join(root, repos.DemoAgentBinary))
		if err != nil || !strings.Contains(string(body), "upkeep-demo-agent "+want) {
			t.Fatalf("payload in root = %q, %v; want version %s", body, err, want)
		}
	}
	expectFailure := func(t *testing.T, err error, reasons ...error) {
		t.Helper()
		if err == nil {
			t.Fatalf("got nil error, want one of %v", reasons)
		}
		for _, r := range reasons {
			if errors.Is(err, r) {
				t.Logf("refused as expected: %v", err)
				return
			}
		}
		t.Fatalf("error %v does not wrap any of %v", err, reasons)
	}
	republishGood := func(t *testing.T) {
		t.Helper()
		if err := repo.Publish(ctx, f.Good); err != nil {
			t.Fatal(err)
		}
		if err := inst.Refresh(ctx); err != nil {
			t.Fatalf("refresh after restoring the repository: %v", err)
		}
	}

	steps := []struct {
		scenario string
		run      func(t *testing.T)
	}{
		{"nothing is installed in a fresh root", func(t *testing.T) { expectInstalled(t, "") }},
		{"refresh verifies the signed repository", func(t *testing.T) {
			if err := inst.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"available lists the offered versions newest first", func(t *testing.T) {
			got, err := inst.Available(ctx, pkg)
			if err != nil || strings.Join(got, " ") != "1.1.0 1.0.0" {
				t.Fatalf("Available = %q, %v", got, err)
			}
		}},
		{"install 1.0.0 on a clean root", func(t *testing.T) {
			if err := inst.Install(ctx, pkg, "1.0.0"); err != nil {
				t.Fatal(err)
			}
			expectInstalled(t, "1.0.0")
		}},
		{"upgrade to v1.1.0", func(t *testing.T) {
			if err := inst.Install(ctx, pkg, "v1.1.0"); err != nil {
				t.Fatal(err)
			}
			expectInstalled(t, "1.1.0")
		}},
		{"downgrade to 1.0.0", func(t *testing.T) {
			if err := inst.Install(ctx, pkg, "1.0.0"); err != nil {
				t.Fatal(err)
			}
			expectInstalled(t, "1.0.0")
		}},
		{"a version no repository offers is a clear error and changes nothing", func(t *testing.T) {
			err := inst.Install(ctx, pkg, "9.9.9")
			expectFailure(t, err, installers.ErrNotAvailable)
			if !strings.Contains(err.Error(), "9.9.9") || !strings.Contains(err.Error(), "offered: 1.1.0, 1.0.0") {
				t.Fatalf("error does not name the version and what is offered: %v", err)
			}
			expectInstalled(t, "1.0.0")
		}},
		{"a repository signed by another key fails refresh and installs nothing", func(t *testing.T) {
			if _, err := repo.Add(f.Debs["1.2.0"]); err != nil {
				t.Fatal(err)
			}
			if err := repo.Publish(ctx, f.Other); err != nil {
				t.Fatal(err)
			}
			err := inst.Refresh(ctx)
			expectFailure(t, err, installers.ErrSignature)
			if !strings.Contains(err.Error(), "NO_PUBKEY "+f.Other.KeyID()) {
				t.Fatalf("error does not name the unknown key %s: %v", f.Other.KeyID(), err)
			}
			expectFailure(t, inst.Install(ctx, pkg, "1.2.0"), installers.ErrNotAvailable)
			expectInstalled(t, "1.0.0")
		}},
		{"a Release changed after signing fails refresh", func(t *testing.T) {
			republishGood(t)
			inRelease := filepath.Join(repo.Dir, "dists/stable/InRelease")
			b, err := os.ReadFile(inRelease)
			if err != nil {
				t.Fatal(err)
			}
			b = []byte(strings.Replace(string(b), "Suite: stable", "Suite: stable\nLabel: injected", 1))
			if err := os.WriteFile(inRelease, b, 0o644); err != nil {
				t.Fatal(err)
			}
			expectFailure(t, inst.Refresh(ctx), installers.ErrSignature)
			expectInstalled(t, "1.0.0")
		}},
		{"a package changed after signing is refused at install", func(t *testing.T) {
			republishGood(t)
			if err := repos.Tamper(filepath.Join(repo.Dir, "pool/main", filepath.Base(f.Debs["1.2.0"]))); err != nil {
				t.Fatal(err)
			}
			err := inst.Install(ctx, pkg, "1.2.0")
			expectFailure(t, err, installers.ErrChecksum)
			expectInstalled(t, "1.0.0")
		}},
		{"a package changed with the index regenerated but not re-signed is refused", func(t *testing.T) {
			if err := repo.Index(ctx); err != nil { // Packages and Release list the tampered file; InRelease is stale
				t.Fatal(err)
			}
			// apt reads only indexes the signed InRelease lists (unchanged), so
			// refresh may pass; the install must not.
			if err := inst.Refresh(ctx); err != nil {
				expectFailure(t, err, installers.ErrChecksum, installers.ErrSignature)
			}
			expectFailure(t, inst.Install(ctx, pkg, "1.2.0"), installers.ErrChecksum, installers.ErrSignature)
			expectInstalled(t, "1.0.0")
		}},
		{"a dropped InRelease with a Release that no longer matches Release.gpg fails refresh", func(t *testing.T) {
			if err := os.Remove(filepath.Join(repo.Dir, "dists/stable/InRelease")); err != nil {
				t.Fatal(err)
			}
			expectFailure(t, inst.Refresh(ctx), installers.ErrSignature)
			expectFailure(t, inst.Install(ctx, pkg, "1.2.0"), installers.ErrChecksum, installers.ErrSignature)
			expectInstalled(t, "1.0.0")
		}},
		{"after the publisher fixes the repository the update goes through", func(t *testing.T) {
			if _, err := repo.Add(f.Debs["1.2.0"]); err != nil {
				t.Fatal(err)
			}
			republishGood(t)
			if err := inst.Install(ctx, pkg, "1.2.0"); err != nil {
				t.Fatal(err)
			}
			expectInstalled(t, "1.2.0")
		}},
	}
	for _, s := range steps {
		if !t.Run(s.scenario, s.run) {
			t.FailNow() // later steps depend on this one's state
		}
	}
}
