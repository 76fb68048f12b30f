// Package rpmsuite is the real-tool test both rpm installers (dnf and zypper)
// must pass: install, upgrade, downgrade and every refusal, against a signed
// rpm-md repository on 127.0.0.1, in an isolated root. Test code only.
package rpmsuite

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/rpmdb"
)

const pkg = "upkeep-demo-agent"

// Manager is one rpm package manager under test and what differs between them.
type Manager struct {
	Tool     string // "dnf" or "zypper": the binary the suite requires
	InitRoot func(ctx context.Context, root string) error
	ReposDir func(root string) string
	New      func(root string) installers.Installer
	// RepoNamesKey says whether the .repo file names the key file (dnf checks
	// repomd.xml.asc with it; zypper reads keys from the rpm database).
	RepoNamesKey bool
	// OtherKeyMessage is what the tool says of a package signed by a key it
	// does not have; TamperMessage what it says of a corrupt package.
	OtherKeyMessage func(rpmName string) string
	TamperMessage   string
	// UnsafeRepos are repository files the installer must refuse before the
	// tool runs, naming the file and Line.
	UnsafeRepos []UnsafeRepo
}

// UnsafeRepo is one repository configuration that weakens signature checks.
type UnsafeRepo struct {
	Scenario, Content, Line string
}

// fixture builds the signed demo packages once for the test.
func fixture(t *testing.T, tool string) *repos.Fixture {
	t.Helper()
	repos.RequireTools(t, "gpg", "gpgconf", "rpm", "rpmbuild", "rpmsign", "createrepo_c", tool)
	dir, err := os.MkdirTemp("", "upkeep-"+tool+"-fixture-")
	if err != nil {
		t.Fatal(err)
	}
	f, err := repos.BuildFixture(context.Background(), dir, repos.FixtureOptions{RPM: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		os.RemoveAll(dir)
	})
	return f
}

// Run drives the real tool and rpm in an isolated root against a signed
// rpm-md repository on 127.0.0.1. Steps run in order on one root; the first
// failure stops the rest.
func Run(t *testing.T, m Manager) {
	f := fixture(t, m.Tool)
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
	if err := m.InitRoot(ctx, root); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "upkeep-test.asc")
	if err := f.Good.WritePublicKey(ctx, keyFile, true); err != nil {
		t.Fatal(err)
	}
	if err := rpmdb.ImportKey(ctx, root, keyFile); err != nil {
		t.Fatal(err)
	}
	repoKey := ""
	if m.RepoNamesKey {
		repoKey = keyFile
	}
	if err := os.WriteFile(filepath.Join(m.ReposDir(root), "upkeep-test.repo"), repo.RepoFile("upkeep-test", srv.URL, repoKey), 0o644); err != nil {
		t.Fatal(err)
	}
	inst := m.New(root)
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
	extraRepo := filepath.Join(m.ReposDir(root), "extra.repo")

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
			if !strings.Contains(err.Error(), m.OtherKeyMessage(rpmName("1.2.0"))) || !strings.Contains(err.Error(), "rpm --import") {
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
			if !errors.Is(err, installers.ErrChecksum) || !strings.Contains(err.Error(), m.TamperMessage) {
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
		{"after the publisher fixes the repository the update goes through", func(t *testing.T) {
			republishGood(t, "1.2.0")
			if err := inst.Install(ctx, pkg, "1.2.0"); err != nil {
				t.Fatal(err)
			}
			expectInstalled(t, "1.2.0-1")
		}},
	}
	// The unsafe configurations come before the last step, which needs the
	// repository directory free of them.
	last := steps[len(steps)-1]
	steps = steps[:len(steps)-1]
	for _, u := range m.UnsafeRepos {
		steps = append(steps, struct {
			scenario string
			run      func(t *testing.T)
		}{u.Scenario, func(t *testing.T) {
			if err := os.WriteFile(extraRepo, []byte(u.Content), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(extraRepo)
			err := inst.Install(ctx, pkg, "1.1.0")
			expectFailure(t, err, installers.ErrUnsafeConfig)
			if !strings.Contains(err.Error(), "extra.repo:"+u.Line) {
				t.Fatalf("error does not name file and line %s: %v", u.Line, err)
			}
			expectFailure(t, inst.Refresh(ctx), installers.ErrUnsafeConfig)
			expectInstalled(t, "1.0.0-1")
		}})
	}
	steps = append(steps, last)
	for _, s := range steps {
		if !t.Run(s.scenario, s.run) {
			t.FailNow()
		}
	}
}
