package apt_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/e2e/hostdeps/repos"
	"upkeep.dev/upkeep/installers"
	"upkeep.dev/upkeep/installers/apt"
)

// One broken source that has nothing to do with the agent blocks apt-get
// update as a whole; the error names that source, the file and line that
// configure it, says it is not where the agent's package comes from, and
// what to do.
func TestABrokenUnrelatedSourceIsNamed(t *testing.T) {
	f := sharedFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()

	agentRepo, err := repos.NewAptRepo(filepath.Join(dir, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agentRepo.Add(f.Debs["1.0.0"]); err != nil {
		t.Fatal(err)
	}
	if err := agentRepo.Publish(ctx, f.Good); err != nil {
		t.Fatal(err)
	}
	// The unrelated repository is signed by a key nobody trusts.
	otherRepo, err := repos.NewAptRepo(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	if err := otherRepo.Publish(ctx, f.Other); err != nil {
		t.Fatal(err)
	}
	agentSrv, err := repos.Serve(agentRepo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer agentSrv.Close()
	otherSrv, err := repos.Serve(otherRepo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer otherSrv.Close()

	for _, tc := range []struct {
		scenario string
		uri      string // the broken source's URI
		reason   error
	}{
		{"an unrelated source whose signature does not verify", otherSrv.URL, installers.ErrSignature},
		{"an unrelated source that cannot be reached", "http://127.0.0.1:1/", installers.ErrRepository},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			if err := apt.InitRoot(root); err != nil {
				t.Fatal(err)
			}
			keyring := filepath.Join(root, "etc/apt/keyrings/agent.gpg")
			if err := f.Good.WritePublicKey(ctx, keyring, false); err != nil {
				t.Fatal(err)
			}
			if err := apt.WriteSource(root, "agent", agentRepo.AptSource(agentSrv.URL, keyring)); err != nil {
				t.Fatal(err)
			}
			inst := apt.New(apt.Config{Root: root, Package: pkg})
			// The agent's source alone refreshes; then the unrelated one is added.
			if err := inst.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			if err := apt.WriteSource(root, "vendor-tools", otherRepo.AptSource(tc.uri, keyring)); err != nil {
				t.Fatal(err)
			}
			err := inst.Refresh(ctx)
			if !errors.Is(err, tc.reason) {
				t.Fatalf("Refresh: %v; want %v", err, tc.reason)
			}
			msg := err.Error()
			t.Logf("refused: %s", msg)
			uri := strings.TrimSuffix(tc.uri, "/")
			file := filepath.Join(apt.SourcesDir(root), "vendor-tools.sources") + ":2"
			for _, want := range []string{
				"source " + uri + " (" + file + ")",
				"although it is not where " + pkg + " comes from (" + strings.TrimSuffix(agentSrv.URL, "/") + ")",
				"apt-get update fails as a whole when any source fails, so this blocks every update",
				"disable it (`Enabled: no`",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not say %q:\n%s", want, msg)
				}
			}
			if strings.Contains(msg, agentSrv.URL+" (") {
				t.Errorf("the agent's own source is named as broken:\n%s", msg)
			}
		})
	}
}
