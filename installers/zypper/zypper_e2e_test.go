package zypper_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/rpmdb"
	"upkeep.dev/upkeep/installers/zypper"
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

func sharedFixture(t *testing.T) *repos.Fixture {
	t.Helper()
	repos.RequireTools(t, "gpg", "gpgconf", "rpm", "rpmbuild", "rpmsign", "createrepo_c", "zypper")
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "upkeep-zypper-fixture-")
		if fixtureErr == nil {
			fixture, fixtureErr = repos.BuildFixture(context.Background(), fixtureDir, repos.FixtureOptions{RPM: true})
		}
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixture
}

const pkg = "upkeep-demo-agent"

// TestZypperInIsolatedRoot drives the real zypper and rpm in an isolated root
// against a signed rpm-md repository on 127.0.0.1. Subtests run in order on
// one root.
func TestZypperInIsolatedRoot(t *testing.T) {
	f := sharedFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()

	repo, err := repos.NewRPMRepo(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if _, err := repo.Add(f.RPMs[v]); err != nil {
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
	if err := zypper.InitRoot(ctx, root); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "upkeep-test.asc")
	if err := f.Good.WritePublicKey(ctx, keyFile, true); err != nil {
		t.Fatal(err)
	}
	if err := rpmdb.ImportKey(ctx, root, keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(zypper.ReposDir(root), "upkeep-test.repo"), repo.RepoFile("upkeep-test", srv.URL, ""), 0o644); err != nil {
		t.Fatal(err)
	}
	inst := zypper.New(zypper.Config{Root: root})
	rpmName := func(v string) string { return filepath.Base(f.RPMs[v]) }

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
		if err != nil || !strings.Contains(string(body), "upkeep-demo-agent "+installers.UpstreamVersion(want)) {
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
	republishGood := func(t *testing.T, versions ...string) {
		t.Helper()
		for _, v := range versions {
			if _, err := repo.Add(f.RPMs[v]); err != nil {
				t.Fatal(err)
			}
		}
		if err := repo.Publish(ctx, f.Good); err != nil {
			t.Fatal(err)
		}
		if err := inst.Refresh(ctx); err != nil {
			t.Fatalf("refresh after restoring the repository: %v", err)
		}
	}
	extraRepo := filepath.Join(zypper.ReposDir(root), "extra.repo")

	steps := []struct {
		scenario string
		run      func(t *testing.T)
	}{
		{"nothing is installed in a fresh root", func(t *testing.T) { expectInstalled(t, "") }},
		{"refresh verifies the signed metadata", func(t *testing.T) {
			if err := inst.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"available lists the offered versions newest first", func(t *testing.T) {
			got, err := inst.Available(ctx, pkg)
			if err != nil || strings.Join(got, " ") != "1.1.0-1 1.0.0-1" {
				t.Fatalf("Available = %q, %v", got, err)
			}
		}},
		{"install 1.0.0 on a clean root", func(t *testing.T) {
			if err := inst.Install(ctx, pkg, "1.0.0"); err != nil {
				t.Fatal(err)
			}
			expectInstalled(t, "1.0.0-1")
		}},
		{"upgrade to v1.1.0", func(t *testing.T) {
			if err := inst.Install(ctx, pkg, "v1.1.0"); err != nil {
				t.Fatal(err)
			}
			expectInstalled(t, "1.1.0-1")
		}},
		{"downgrade to 1.0.0", func(t *testing.T) {
			if err := inst.Install(ctx, pkg, "1.0.0"); err != nil {
				t.Fatal(err)
			}
			expectInstalled(t, "1.0.0-1")
		}},
		{"a version no repository offers is a clear error and changes nothing", func(t *testing.T) {
			err := inst.Install(ctx, pkg, "9.9.9")
			expectFailure(t, err, installers.ErrNotAvailable)
			if !strings.Contains(err.Error(), "offered: 1.1.0-1, 1.0.0-1") {
				t.Fatalf("error does not list what is offered: %v", err)
			}
			expectInstalled(t, "1.0.0-1")
		}},
		{"a package signed by another key is refused and no key is imported", func(t *testing.T) {
			if _, err := repo.Add(f.OtherRPMs["1.2.0"]); err != nil {
				t.Fatal(err)
			}
			republishGood(t)
			err := inst.Install(ctx, pkg, "1.2.0")
			expectFailure(t, err, installers.ErrSignature)
			if !strings.Contains(err.Error(), "Signature verification failed") || !strings.Contains(err.Error(), "rpm --import") {
				t.Fatalf("error does not name the cause and the next step: %v", err)
			}
			expectInstalled(t, "1.0.0-1")
			cmd := exec.Command("rpm", "--root", root, "-qa", "gpg-pubkey*")
			cmd.Env = append(os.Environ(), rpmdb.Env(root)...)
			keys, err := cmd.Output()
			if err != nil || !strings.Contains(string(keys), strings.ToLower(f.Good.KeyID()[8:])) || strings.Contains(string(keys), strings.ToLower(f.Other.KeyID()[8:])) {
				t.Fatalf("keys in the rpm database = %q, %v: want only the good key %s", keys, err, f.Good.KeyID())
			}
		}},
		{"repository metadata signed by another key fails refresh", func(t *testing.T) {
			if err := repo.Sign(ctx, f.Other); err != nil {
				t.Fatal(err)
			}
			expectFailure(t, inst.Refresh(ctx), installers.ErrSignature)
		}},
		{"repository metadata changed after signing fails refresh", func(t *testing.T) {
			if err := repo.Sign(ctx, f.Good); err != nil {
				t.Fatal(err)
			}
			repomd := filepath.Join(repo.Dir, "repodata/repomd.xml")
			b, _ := os.ReadFile(repomd)
			if err := os.WriteFile(repomd, []byte(strings.Replace(string(b), "<revision>", "<revision>1", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			expectFailure(t, inst.Refresh(ctx), installers.ErrSignature)
		}},
		{"a package changed after signing, metadata untouched, is refused", func(t *testing.T) {
			republishGood(t, "1.2.0") // replaces the other-key 1.2.0
			if err := repos.Tamper(filepath.Join(repo.Dir, rpmName("1.2.0"))); err != nil {
				t.Fatal(err)
			}
			expectFailure(t, inst.Install(ctx, pkg, "1.2.0"), installers.ErrChecksum, installers.ErrSignature)
			expectInstalled(t, "1.0.0-1")
		}},
		{"a package changed after signing with metadata regenerated and re-signed is refused by its rpm signature", func(t *testing.T) {
			republishGood(t) // metadata now lists the tampered file's checksum
			err := inst.Install(ctx, pkg, "1.2.0")
			expectFailure(t, err, installers.ErrChecksum, installers.ErrSignature)
			if !errors.Is(err, installers.ErrChecksum) || !strings.Contains(err.Error(), "digest: BAD") {
				t.Fatalf("error does not say the package is corrupt: %v", err)
			}
			expectInstalled(t, "1.0.0-1")
		}},
		{"a package changed with metadata regenerated but not re-signed fails refresh", func(t *testing.T) {
			if _, err := repo.Add(f.RPMs["1.2.0"]); err != nil {
				t.Fatal(err)
			}
			if err := repo.Publish(ctx, f.Good); err != nil {
				t.Fatal(err)
			}
			if err := repos.Tamper(filepath.Join(repo.Dir, rpmName("1.2.0"))); err != nil {
				t.Fatal(err)
			}
			if err := repo.Index(ctx); err != nil { // the old repomd.xml.asc stays
				t.Fatal(err)
			}
			expectFailure(t, inst.Refresh(ctx), installers.ErrSignature)
			expectInstalled(t, "1.0.0-1")
		}},
		{"a repository that checks no signatures is refused before zypper runs", func(t *testing.T) {
			os.WriteFile(extraRepo, []byte("[extra]\nbaseurl=http://127.0.0.1:1/\nenabled=1\ngpgcheck=0\n"), 0o644)
			err := inst.Install(ctx, pkg, "1.1.0")
			expectFailure(t, err, installers.ErrUnsafeConfig)
			if !strings.Contains(err.Error(), "extra.repo:4") {
				t.Fatalf("error does not name file and line: %v", err)
			}
			expectFailure(t, inst.Refresh(ctx), installers.ErrUnsafeConfig)
			expectInstalled(t, "1.0.0-1")
			os.Remove(extraRepo)
		}},
		{"after the publisher fixes the repository the update goes through", func(t *testing.T) {
			republishGood(t, "1.2.0")
			if err := inst.Install(ctx, pkg, "1.2.0"); err != nil {
				t.Fatal(err)
			}
			expectInstalled(t, "1.2.0-1")
		}},
	}
	for _, s := range steps {
		if !t.Run(s.scenario, s.run) {
			t.FailNow()
		}
	}
}
