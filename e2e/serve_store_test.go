package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet/pgtest"
)

// The fleet store of `upkeep serve`: SQLite in the state directory by
// default, PostgreSQL with --store; reports survive a restart, and a
// password in the store URL never reaches the log.

const storeFleetYAML = `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: cloud
spec:
  version: 1.9.0
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: prod
spec:
  controlPlane: cloud
  version: 1.1.0
---
apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu
spec:
  channel: prod
  timezone: UTC
`

const storeToken = "e2e-store-token-0123456789abcdef"

// storeServeArgs writes a fleet folder and a token file and returns the
// serve arguments that use them.
func storeServeArgs(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(storeFleetYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tok, []byte(storeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--source", dir, "--report-token-file", tok}
}

func postStoreReport(t *testing.T, base, agent string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"agentId": agent, "group": "eu", "channel": "prod", "kind": "host", "hostname": agent,
		"currentVersion": "1.1.0", "targetVersion": "1.1.0", "health": "healthy",
		"action": "Nothing", "rule": "UpToDate", "reason": "UpToDate", "message": "up to date",
		"updaterVersion": "e2e", "time": time.Now().UTC(),
	})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/reports", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+storeToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/reports: %d", resp.StatusCode)
	}
}

// storeAgents is the agent ids GET /v1/fleet shows.
func storeAgents(t *testing.T, base string) []string {
	t.Helper()
	code, body, _ := get(t, base+"/v1/fleet", "Authorization", "Bearer "+storeToken)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/fleet: %d %s", code, body)
	}
	var f struct {
		Agents []struct {
			AgentID string `json:"agentId"`
		} `json:"agents"`
	}
	if err := json.Unmarshal([]byte(body), &f); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range f.Agents {
		ids = append(ids, a.AgentID)
	}
	return ids
}

func stopServe(t *testing.T, s *server) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup's wait
		if err != nil {
			t.Fatalf("serve did not stop cleanly: %v\n%s", err, s.logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of SIGTERM")
	}
}

func TestServeStoreDefaultsToSQLiteInTheStateDir(t *testing.T) {
	state := t.TempDir()
	args := append(storeServeArgs(t), "--state-dir", state)
	first := startServe(t, args...)
	postStoreReport(t, first.URL, "web-01")
	if _, err := os.Stat(filepath.Join(state, "fleet.db")); err != nil {
		t.Fatalf("no fleet.db in --state-dir: %v", err)
	}
	if !strings.Contains(first.logs.String(), `"store":"sqlite://`+filepath.Join(state, "fleet.db")+`"`) {
		t.Errorf("the start line does not name the store:\n%s", first.logs.String())
	}
	stopServe(t, first)

	second := startServe(t, args...)
	if ids := storeAgents(t, second.URL); len(ids) != 1 || ids[0] != "web-01" {
		t.Errorf("after a restart the fleet shows %v, want web-01", ids)
	}
}

func TestServeStoreOnPostgreSQLKeepsThePasswordOutOfTheLog(t *testing.T) {
	url := pgtest.Start(t)
	// The test server trusts loopback; the password is only there to be hidden.
	const password = "hunter2-e2e-password"
	withPassword := strings.Replace(url, "postgres@", "postgres:"+password+"@", 1)
	if withPassword == url {
		t.Fatalf("cannot put a password in %s", url)
	}
	args := append(storeServeArgs(t), "--store", withPassword)
	a := startServe(t, args...)
	b := startServe(t, args...)
	postStoreReport(t, a.URL, "web-01")
	postStoreReport(t, b.URL, "web-02")
	for _, s := range []*server{a, b} {
		if ids := storeAgents(t, s.URL); len(ids) != 2 {
			t.Errorf("a replica shows %v, want both agents", ids)
		}
	}
	waitFor(t, 10*time.Second, "one replica leads the rollouts", func() bool {
		return strings.Contains(a.logs.String()+b.logs.String(), "rollout engine leads")
	})
	for _, s := range []*server{a, b} {
		if logs := s.logs.String(); strings.Contains(logs, password) || !strings.Contains(logs, `"storeEngine":"postgres"`) {
			t.Errorf("the log shows the password, or not the store:\n%s", logs)
		}
	}
}
