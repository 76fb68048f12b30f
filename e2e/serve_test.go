package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
)

const fleetControlPlanes = `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: cloud
spec:
  version: 17.4.2
---
apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: onprem
spec:
  version: 16.5.1
`

func fleetChannels(cloudVersion string, critical bool) string {
	return fmt.Sprintf(`apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: stable/cloud
spec:
  controlPlane: cloud
  version: %s
  critical: %t
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: stable/rolling
spec:
  controlPlane: cloud
  follow: controlPlane
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: paused
spec:
  controlPlane: onprem
  version: none
`, cloudVersion, critical)
}

const fleetGroups = `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu-prod
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
  windows:
    - start: "02:00"
      duration: 4h
`

// teleportVersion parses a /version body the way Teleport's updaters do
// (lib/automaticupgrades/version): "none" means no version, otherwise the
// trimmed body with an optional leading "v" must be semver.
func teleportVersion(t *testing.T, body string) string {
	t.Helper()
	if body == "none" {
		return "none"
	}
	v, err := semver.StrictNewVersion(strings.TrimPrefix(strings.TrimSpace(body), "v"))
	if err != nil {
		t.Fatalf("Teleport would reject version body %q: %v", body, err)
	}
	return v.String()
}

// teleportCritical parses a /critical body the way Teleport's updaters do.
func teleportCritical(t *testing.T, body string) bool {
	t.Helper()
	switch strings.TrimSpace(body) {
	case "yes":
		return true
	case "no":
		return false
	}
	t.Fatalf("Teleport would reject critical body %q", body)
	return false
}

func signHook(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func postHook(t *testing.T, url string, secret []byte, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/hooks/git", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	if secret != nil {
		req.Header.Set("X-Hub-Signature-256", signHook(secret, []byte(body)))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestServeFromGit(t *testing.T) {
	g := newGitServer(t)
	first := g.commit("initial fleet", map[string]string{
		"controlplanes.yaml":   fleetControlPlanes,
		"channels/stable.yaml": fleetChannels("17.3.0", false),
		"groups/eu.yaml":       fleetGroups,
		"README.md":            "not read",
		"drafts/ignored.yaml":  "kind: Nonsense\n",
		".upkeepignore":        "drafts/\n",
	})

	secret := []byte("e2e-webhook-secret")
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(secretFile, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	// A long interval: only the webhook can make the server see new commits quickly.
	srv := startServe(t, "--source", g.URL, "--branch", "main", "--interval", "1h", "--webhook-secret-file", secretFile)

	waitFor(t, 20*time.Second, "readyz", func() bool {
		code, _, _ := get(t, srv.URL+"/readyz")
		return code == http.StatusOK
	})

	t.Run("every endpoint answers", func(t *testing.T) {
		for _, base := range []string{"/v1/webapi/automaticupgrades/channel/", "/v1/"} {
			code, body, resp := get(t, srv.URL+base+"stable/cloud/version")
			if code != 200 || teleportVersion(t, body) != "17.3.0" {
				t.Errorf("%sstable/cloud/version = %d %q", base, code, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("Cache-Control = %q", cc)
			}
			if code, body, _ := get(t, srv.URL+base+"stable/rolling/version"); code != 200 || teleportVersion(t, body) != "17.4.2" {
				t.Errorf("rolling = %d %q", code, body)
			}
			if code, body, _ := get(t, srv.URL+base+"paused/version"); code != 200 || teleportVersion(t, body) != "none" {
				t.Errorf("paused = %d %q", code, body)
			}
			if code, body, _ := get(t, srv.URL+base+"stable/cloud/critical"); code != 200 || teleportCritical(t, body) {
				t.Errorf("critical = %d %q", code, body)
			}
			if code, _, _ := get(t, srv.URL+base+"no/such/channel/version"); code != 404 {
				t.Errorf("unknown channel: %d, want 404", code)
			}
		}
		if code, _, _ := get(t, srv.URL+"/v1/webapi/automaticupgrades/channel/stable/cloud/bogus"); code != 400 {
			t.Errorf("malformed path: %d, want 400", code)
		}

		code, body, resp := get(t, srv.URL+"/v1/channels/stable/cloud")
		if code != 200 || !strings.Contains(body, first) {
			t.Errorf("channel detail = %d %s; want the revision %s in it", code, body, first)
		}
		etag := resp.Header.Get("ETag")
		if !strings.Contains(etag, first) {
			t.Errorf("ETag %q does not carry the revision %s", etag, first)
		}
		if code, _, _ := get(t, srv.URL+"/v1/channels/stable/cloud", "If-None-Match", etag); code != http.StatusNotModified {
			t.Errorf("If-None-Match: %d, want 304", code)
		}

		var list []map[string]any
		code, body, _ = get(t, srv.URL+"/v1/channels")
		if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
			// The list may be wrapped in an object.
			var wrapped struct {
				Channels []map[string]any `json:"channels"`
			}
			if err2 := json.Unmarshal([]byte(body), &wrapped); code != 200 || err2 != nil {
				t.Fatalf("channels = %d %s: %v", code, body, err)
			}
			list = wrapped.Channels
		}
		if len(list) != 3 {
			t.Errorf("channels: %d entries, want 3: %s", len(list), body)
		}

		var sched struct {
			Windows []struct{ Start, Stop time.Time } `json:"windows"`
		}
		code, body, _ = get(t, srv.URL+"/v1/groups/eu-prod/schedule")
		if err := json.Unmarshal([]byte(body), &sched); code != 200 || err != nil {
			t.Fatalf("schedule = %d %s: %v", code, body, err)
		}
		// A daily 4h window over 14 days: 14 or 15 windows depending on the hour.
		if n := len(sched.Windows); n < 14 || n > 15 {
			t.Errorf("schedule has %d windows, want 14–15", n)
		}
		for _, w := range sched.Windows {
			if w.Stop.Sub(w.Start) != 4*time.Hour {
				t.Errorf("window %v–%v is not 4h", w.Start, w.Stop)
			}
		}
		code, body, _ = get(t, srv.URL+"/v1/groups/eu-prod/schedule?format=systemd")
		lines := strings.Split(strings.TrimSpace(body), "\n")
		if code != 200 || !strings.HasPrefix(lines[0], "#") || len(lines) != len(sched.Windows)+1 {
			t.Fatalf("systemd schedule = %d %q", code, body)
		}
		for i, l := range lines[1:] {
			f := strings.Fields(l)
			start, err1 := strconv.ParseInt(f[0], 10, 64)
			stop, err2 := strconv.ParseInt(f[1], 10, 64)
			if len(f) != 2 || err1 != nil || err2 != nil || start != sched.Windows[i].Start.Unix() || stop != sched.Windows[i].Stop.Unix() {
				t.Errorf("systemd line %q does not match window %v", l, sched.Windows[i])
			}
		}

		if code, body, _ := get(t, srv.URL+"/healthz"); code != 200 {
			t.Errorf("healthz = %d %s", code, body)
		}
		code, body, _ = get(t, srv.URL+"/metrics")
		for _, want := range []string{`upkeep_syncs_total{result="success"}`, `upkeep_channel_info{`, `version="17.3.0"`} {
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("webhook needs a valid signature", func(t *testing.T) {
		if code := postHook(t, srv.URL, nil, `{}`); code != http.StatusUnauthorized {
			t.Errorf("unsigned hook: %d, want 401", code)
		}
		if code := postHook(t, srv.URL, []byte("wrong"), `{}`); code != http.StatusUnauthorized {
			t.Errorf("badly signed hook: %d, want 401", code)
		}
	})

	t.Run("a new commit is served within 2s of the webhook", func(t *testing.T) {
		rev := g.commit("raise stable/cloud", map[string]string{"channels/stable.yaml": fleetChannels("17.4.0", true)})
		if code := postHook(t, srv.URL, secret, `{"ref":"refs/heads/main"}`); code/100 != 2 {
			t.Fatalf("signed hook: %d", code)
		}
		took := waitFor(t, 2*time.Second, "new version served", func() bool {
			_, body, _ := get(t, srv.URL+"/v1/stable/cloud/version")
			return teleportVersion(t, body) == "17.4.0"
		})
		t.Logf("served %s %s after the webhook", rev[:8], took.Round(time.Millisecond))
		if _, body, _ := get(t, srv.URL+"/v1/stable/cloud/critical"); !teleportCritical(t, body) {
			t.Errorf("critical not served: %q", body)
		}
	})

	t.Run("an invalid commit is never served", func(t *testing.T) {
		bad := g.commit("push a channel above its control plane", map[string]string{
			"channels/stable.yaml": fleetChannels("17.9.0", false),
		})
		postHook(t, srv.URL, secret, `{}`)
		var status struct {
			Revision  string `json:"revision"`
			LastError *struct {
				Revision string `json:"revision"`
				Message  string `json:"message"`
				Errors   []struct {
					Pos struct {
						File string `json:"file"`
						Line int    `json:"line"`
					} `json:"pos"`
					Path    string `json:"path"`
					Message string `json:"message"`
				} `json:"errors"`
			} `json:"lastError"`
		}
		waitFor(t, 5*time.Second, "/status shows the invalid revision", func() bool {
			_, body, _ := get(t, srv.URL+"/status")
			if err := json.Unmarshal([]byte(body), &status); err != nil {
				t.Fatalf("status %s: %v", body, err)
			}
			return status.LastError != nil && status.LastError.Revision == bad
		})
		if len(status.LastError.Errors) == 0 {
			t.Fatalf("status names no error: %+v", status.LastError)
		}
		e := status.LastError.Errors[0]
		if e.Pos.File != "channels/stable.yaml" || e.Pos.Line != 7 || e.Path != "spec.version" {
			t.Errorf("error at %s:%d %s (%s); want channels/stable.yaml:7 spec.version", e.Pos.File, e.Pos.Line, e.Path, e.Message)
		}
		if status.Revision == bad {
			t.Errorf("status says the invalid revision is served")
		}
		if _, body, _ := get(t, srv.URL+"/v1/stable/cloud/version"); teleportVersion(t, body) != "17.4.0" {
			t.Errorf("after an invalid commit the server serves %q, want the last good 17.4.0", body)
		}
		if _, body, _ := get(t, srv.URL+"/metrics"); !strings.Contains(body, `upkeep_syncs_total{result="invalid"}`) || !strings.Contains(body, "upkeep_sync_failing 1") {
			t.Errorf("metrics do not show the failing sync")
		}
		if !strings.Contains(srv.logs.String(), "channels/stable.yaml:7") {
			t.Errorf("the log does not name channels/stable.yaml:7")
		}
	})

	t.Run("the fix is served", func(t *testing.T) {
		fixed := g.commit("lower stable/cloud again", map[string]string{"channels/stable.yaml": fleetChannels("17.2.0", false)})
		postHook(t, srv.URL, secret, `{}`)
		waitFor(t, 2*time.Second, "fixed version served", func() bool {
			_, body, _ := get(t, srv.URL+"/v1/stable/cloud/version")
			return teleportVersion(t, body) == "17.2.0"
		})
		_, body, _ := get(t, srv.URL+"/status")
		if !strings.Contains(body, fixed) || strings.Contains(body, "lastError") {
			t.Errorf("status after the fix: %s", body)
		}
	})

	t.Run("SIGTERM stops gracefully", func(t *testing.T) {
		srv.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-srv.done:
			srv.done <- err
			if err != nil {
				t.Errorf("exit after SIGTERM: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("still running 15s after SIGTERM")
		}
	})
}
