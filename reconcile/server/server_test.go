package server_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/Masterminds/semver/v3"
	"github.com/prometheus/client_golang/prometheus"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/spec"
)

// fakeBackend stands in for the reconciler: the server is a pure function
// of the snapshot and status it is given.
type fakeBackend struct {
	snap     atomic.Pointer[reconcile.Snapshot]
	mu       sync.Mutex
	status   reconcile.Status
	triggers atomic.Int32
}

func (b *fakeBackend) Snapshot() *reconcile.Snapshot { return b.snap.Load() }
func (b *fakeBackend) Trigger()                      { b.triggers.Add(1) }
func (b *fakeBackend) Status() reconcile.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

var buildTime = time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)

func testState(t testing.TB) *spec.State {
	t.Helper()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return &spec.State{
		ControlPlanes: []*spec.ControlPlane{
			{Name: "cloud", Version: "17.4.2"},
			{Name: "onprem", Version: "16.5.1"},
		},
		Channels: []*spec.Channel{
			{Name: "stable/cloud", ControlPlane: "cloud", Version: "17.3.0"},
			{Name: "stable/rolling", ControlPlane: "cloud", Follow: spec.FollowControlPlane},
			{Name: "paused", ControlPlane: "onprem", Version: spec.NoVersion},
			{Name: "hotfix", ControlPlane: "cloud", Version: "17.4.1", Critical: true},
			// Reads like the detail route of channel "edge": the existing name wins.
			{Name: "channels/edge", ControlPlane: "cloud", Version: "17.2.0"},
		},
		Groups: []*spec.Group{{
			Name: "eu-prod", Channel: "stable/cloud", Timezone: "Europe/Berlin", Location: berlin,
			Windows: []spec.Window{{Days: []time.Weekday{time.Tuesday, time.Thursday}, Start: 2 * time.Hour, Duration: 4 * time.Hour}},
		}},
	}
}

type testServer struct {
	*httptest.Server
	b   *fakeBackend
	reg *prometheus.Registry
	log *bytes.Buffer
}

// start serves b over real HTTP on 127.0.0.1.
func start(t testing.TB, b *fakeBackend, secret []byte) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{}
	h := server.New(b, server.Options{
		WebhookSecret: secret,
		Registerer:    reg,
		Logger:        slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil)),
	})
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return &testServer{Server: s, b: b, reg: reg, log: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func serving(t testing.TB, revision string) *fakeBackend {
	b := &fakeBackend{}
	b.snap.Store(reconcile.BuildSnapshot(testState(t), revision, buildTime))
	b.status = reconcile.Status{Source: "test", Revision: revision, LastSync: buildTime, LastSuccess: buildTime}
	return b
}

type response struct {
	code   int
	body   string
	header http.Header
}

func (s *testServer) do(t testing.TB, method, path string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, body: string(body), header: resp.Header}
}

// teleportVersion reads a /version body as Teleport's updaters do
// (lib/automaticupgrades/version/basichttp.go): "none" compared as is,
// otherwise trimmed, "v" added when missing, and it must be semver.
func teleportVersion(body string) (string, error) {
	if body == "none" {
		return "none", nil
	}
	v := strings.TrimSpace(body)
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if _, err := semver.StrictNewVersion(v[1:]); err != nil {
		return "", fmt.Errorf("tag %s is not following semver: %v", v, err)
	}
	return v, nil
}

// teleportCritical reads a /critical body as Teleport's updaters do
// (lib/automaticupgrades/maintenance/basichttp.go).
func teleportCritical(body string) (bool, error) {
	switch in := strings.TrimSpace(body); {
	case strings.EqualFold(in, "true"), strings.EqualFold(in, "yes"):
		return true, nil
	case strings.EqualFold(in, "false"), strings.EqualFold(in, "no"):
		return false, nil
	}
	return false, fmt.Errorf("cannot convert input to boolean: %s", body)
}

func TestRoutes(t *testing.T) {
	b := serving(t, "rev1")
	s := start(t, b, []byte("s3cret"))
	snap := b.Snapshot()
	const webapi = "/v1/webapi/automaticupgrades/channel/"
	const text, js = "text/plain; charset=utf-8", "application/json"

	cases := []struct {
		scenario string
		method   string
		path     string
		code     int
		body     string // exact, when not ""
		ctype    string // exact, when not ""
		// teleport: how Teleport's updater must read the body: "v…"/"none"
		// for /version, "yes"/"no" for /critical.
		teleport string
	}{
		{scenario: "Teleport asks a pinned channel's version", path: webapi + "stable/cloud/version", code: 200, body: "v17.3.0", ctype: text, teleport: "v17.3.0"},
		{scenario: "the plain base URL answers the same", path: "/v1/stable/cloud/version", code: 200, body: "v17.3.0", ctype: text, teleport: "v17.3.0"},
		{scenario: "a following channel offers the control plane's version", path: webapi + "stable/rolling/version", code: 200, body: "v17.4.2", teleport: "v17.4.2"},
		{scenario: "a paused channel answers none", path: "/v1/paused/version", code: 200, body: "none", ctype: text, teleport: "none"},
		{scenario: "a critical channel answers yes", path: webapi + "hotfix/critical", code: 200, body: "yes", ctype: text, teleport: "yes"},
		{scenario: "a normal channel answers no", path: "/v1/stable/cloud/critical", code: 200, body: "no", teleport: "no"},
		{scenario: "surrounding slashes are ignored as Teleport does", path: webapi + "stable/cloud/version/", code: 200, body: "v17.3.0"},
		{scenario: "HEAD answers headers only", method: "HEAD", path: "/v1/stable/cloud/version", code: 200, ctype: text},
		{scenario: "an unknown channel is 404", path: webapi + "no/such/channel/version", code: 404},
		{scenario: "an unknown channel under the plain base is 404", path: "/v1/no/such/channel/critical", code: 404},
		{scenario: "a request type other than version or critical is 400", path: webapi + "stable/cloud/bogus", code: 400},
		{scenario: "a missing channel name is 400", path: webapi + "version", code: 400},
		{scenario: "an empty Teleport path is 400", path: webapi, code: 400},
		{scenario: "a channel name with capitals is 400", path: webapi + "Stable/version", code: 400},
		{scenario: "a channel name with an empty segment is 400", path: "/v1/stable//cloud/version", code: 400},
		{scenario: "writing to a Teleport route is 405", method: "POST", path: webapi + "stable/cloud/version", code: 405},
		{scenario: "a PUT to the plain base is 405", method: "PUT", path: "/v1/stable/cloud/critical", code: 405},

		{scenario: "the channel list is the snapshot's document", path: "/v1/channels", code: 200, body: string(snap.ChannelsJSON), ctype: js},
		{scenario: "a channel's detail", path: "/v1/channels/stable/cloud", code: 200, body: string(snap.Channel("stable/cloud").JSON), ctype: js},
		{scenario: "a channel named channels/… keeps its Teleport route", path: "/v1/channels/edge/version", code: 200, body: "v17.2.0"},
		{scenario: "and its detail", path: "/v1/channels/channels/edge", code: 200, body: string(snap.Channel("channels/edge").JSON)},
		{scenario: "an unknown channel's detail is 404", path: "/v1/channels/no/such", code: 404},
		{scenario: "a malformed channel name's detail is 400", path: "/v1/channels/Bad_Name", code: 400},
		{scenario: "deleting the channel list is 405", method: "DELETE", path: "/v1/channels", code: 405},
		{scenario: "the group list", path: "/v1/groups", code: 200, body: string(snap.GroupsJSON), ctype: js},
		{scenario: "a group's schedule in Teleport's Kubernetes format", path: "/v1/groups/eu-prod/schedule", code: 200, body: string(snap.Group("eu-prod").ScheduleJSON), ctype: js},
		{scenario: "format=json is the same", path: "/v1/groups/eu-prod/schedule?format=json", code: 200, body: string(snap.Group("eu-prod").ScheduleJSON)},
		{scenario: "a group's schedule in the systemd file format", path: "/v1/groups/eu-prod/schedule?format=systemd", code: 200, body: string(snap.Group("eu-prod").ScheduleSystemd), ctype: text},
		{scenario: "an unknown schedule format is 400", path: "/v1/groups/eu-prod/schedule?format=yaml", code: 400},
		{scenario: "an unknown group is 404", path: "/v1/groups/nope/schedule", code: 404},
		{scenario: "a malformed group name is 400", path: "/v1/groups/-x/schedule", code: 400},
		{scenario: "a group's detail names its channel", path: "/v1/groups/eu-prod", code: 200, body: string(snap.Group("eu-prod").JSON), ctype: js},
		{scenario: "an unknown group's detail is 404", path: "/v1/groups/nope", code: 404},
		{scenario: "a malformed group name's detail is 400", path: "/v1/groups/-x", code: 400},
		{scenario: "writing a group's detail is 405", method: "POST", path: "/v1/groups/eu-prod", code: 405},

		{scenario: "liveness", path: "/healthz", code: 200, body: "ok\n"},
		{scenario: "readiness once a snapshot is served", path: "/readyz", code: 200, body: "ready: serving revision rev1\n"},
		{scenario: "metrics", path: "/metrics", code: 200},
		{scenario: "an unknown path is 404", path: "/nope", code: 404},
		{scenario: "the root is 404", path: "/", code: 404},
		{scenario: "an unknown path under /v1 is 404", path: "/v1/nope", code: 404},
		{scenario: "a channel-like path without a request type is 404 under /v1", path: "/v1/stable/cloud/bogus", code: 404},
		{scenario: "paths are not cleaned into other routes", path: "/v1/channels/../../metrics", code: 400},
		{scenario: "reading the webhook is 405", path: "/v1/hooks/git", code: 405},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			r := s.do(t, method, tc.path)
			if r.code != tc.code {
				t.Fatalf("%s %s = %d %q, want %d", method, tc.path, r.code, r.body, tc.code)
			}
			if tc.body != "" && r.body != tc.body {
				t.Errorf("body %q, want %q", r.body, tc.body)
			}
			if tc.ctype != "" && r.header.Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", r.header.Get("Content-Type"), tc.ctype)
			}
			if method == "HEAD" && r.body != "" {
				t.Errorf("HEAD returned a body %q", r.body)
			}
			if r.code == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
			if r.code != 405 && tc.path != "/metrics" && r.header.Get("Cache-Control") != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache", r.header.Get("Cache-Control"))
			}
			switch {
			case tc.teleport == "":
			case strings.HasSuffix(tc.path, "/version"):
				v, err := teleportVersion(r.body)
				if err != nil || v != tc.teleport {
					t.Errorf("Teleport reads %q as %q, %v; want %q", r.body, v, err, tc.teleport)
				}
			default:
				c, err := teleportCritical(r.body)
				if err != nil || c != (tc.teleport == "yes") {
					t.Errorf("Teleport reads %q as %v, %v; want %s", r.body, c, err, tc.teleport)
				}
			}
		})
	}
}

func TestStatusIsTheBackendsStatus(t *testing.T) {
	b := serving(t, "rev1")
	b.status.LastError = &reconcile.SyncError{
		Revision: "bad", Time: buildTime, Message: "revision bad is invalid (1 errors); still serving revision rev1",
		Errors: []spec.Error{{Pos: spec.Position{File: "channels/stable.yaml", Line: 7, Col: 12}, Path: "spec.version", Msg: "above"}},
	}
	s := start(t, b, nil)
	r := s.do(t, "GET", "/status")
	if r.code != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("/status = %d %s", r.code, r.header.Get("Content-Type"))
	}
	var got reconcile.Status
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	if got.Revision != "rev1" || got.LastError == nil || got.LastError.Revision != "bad" ||
		len(got.LastError.Errors) != 1 || got.LastError.Errors[0].Pos.Line != 7 || !got.LastSuccess.Equal(buildTime) {
		t.Errorf("/status = %s", r.body)
	}
}

func TestReadyOnlyOnceASnapshotIsServed(t *testing.T) {
	b := &fakeBackend{}
	b.status = reconcile.Status{Source: "test", LastError: &reconcile.SyncError{Message: "reading test: connection refused"}}
	s := start(t, b, nil)

	if r := s.do(t, "GET", "/readyz"); r.code != 503 || !strings.Contains(r.body, "connection refused") {
		t.Errorf("/readyz before the first snapshot = %d %q, want 503 naming the last error", r.code, r.body)
	}
	if r := s.do(t, "GET", "/healthz"); r.code != 200 {
		t.Errorf("/healthz before the first snapshot = %d", r.code)
	}
	for _, path := range []string{"/v1/stable/cloud/version", "/v1/webapi/automaticupgrades/channel/stable/cloud/critical",
		"/v1/channels", "/v1/channels/stable/cloud", "/v1/groups", "/v1/groups/eu-prod", "/v1/groups/eu-prod/schedule"} {
		if r := s.do(t, "GET", path); r.code != 503 {
			t.Errorf("%s before the first snapshot = %d %q, want 503", path, r.code, r.body)
		}
	}
	if r := s.do(t, "GET", "/status"); r.code != 200 {
		t.Errorf("/status before the first snapshot = %d", r.code)
	}

	b.snap.Store(reconcile.BuildSnapshot(testState(t), "rev1", buildTime))
	if r := s.do(t, "GET", "/readyz"); r.code != 200 {
		t.Errorf("/readyz after the first snapshot = %d %q", r.code, r.body)
	}
	if r := s.do(t, "GET", "/v1/stable/cloud/version"); r.code != 200 || r.body != "v17.3.0" {
		t.Errorf("version after the first snapshot = %d %q", r.code, r.body)
	}
}

func TestETags(t *testing.T) {
	b := serving(t, "rev1")
	s := start(t, b, nil)

	cases := []struct {
		scenario, path, etag string
	}{
		{"the channel list carries the revision", "/v1/channels", `"rev1"`},
		{"a channel's detail carries revision and name", "/v1/channels/stable/cloud", `"rev1-channel-stable/cloud"`},
		{"a version body carries revision and name", "/v1/stable/cloud/version", `"rev1-version-stable/cloud"`},
		{"a critical body carries revision and name", "/v1/webapi/automaticupgrades/channel/stable/cloud/critical", `"rev1-critical-stable/cloud"`},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			r := s.do(t, "GET", tc.path)
			if got := r.header.Get("ETag"); got != tc.etag {
				t.Fatalf("ETag %s, want %s", got, tc.etag)
			}
			for _, inm := range []string{tc.etag, "W/" + tc.etag, `"other", ` + tc.etag, "*"} {
				r := s.do(t, "GET", tc.path, "If-None-Match", inm)
				if r.code != 304 || r.body != "" || r.header.Get("ETag") != tc.etag {
					t.Errorf("If-None-Match %s = %d %q ETag %s, want 304 with the ETag", inm, r.code, r.body, r.header.Get("ETag"))
				}
			}
			for _, inm := range []string{`"rev0"`, `"rev1`, "garbage", `W/"rev1-other"`} {
				if r := s.do(t, "GET", tc.path, "If-None-Match", inm); r.code != 200 {
					t.Errorf("If-None-Match %s = %d, want 200", inm, r.code)
				}
			}
		})
	}

	t.Run("a new revision changes every ETag", func(t *testing.T) {
		old := s.do(t, "GET", "/v1/channels/stable/cloud").header.Get("ETag")
		b.snap.Store(reconcile.BuildSnapshot(testState(t), "rev2", buildTime))
		r := s.do(t, "GET", "/v1/channels/stable/cloud", "If-None-Match", old)
		if r.code != 200 || r.header.Get("ETag") != `"rev2-channel-stable/cloud"` || !strings.Contains(r.body, `"revision":"rev2"`) {
			t.Errorf("after a new revision: %d ETag %s %s", r.code, r.header.Get("ETag"), r.body)
		}
	})

	t.Run("a group's detail ETag names revision and group and revalidates", func(t *testing.T) {
		tag := s.do(t, "GET", "/v1/groups/eu-prod").header.Get("ETag")
		if !regexp.MustCompile(`^"rev[0-9]+-group-eu-prod-[0-9a-f]{12}"$`).MatchString(tag) {
			t.Fatalf("group detail ETag %s: want revision, group and a hash", tag)
		}
		if r := s.do(t, "GET", "/v1/groups/eu-prod", "If-None-Match", tag); r.code != 304 {
			t.Fatalf("If-None-Match with the current ETag: %d, want 304", r.code)
		}
	})
	t.Run("schedule ETags follow the body within a revision", func(t *testing.T) {
		b.snap.Store(reconcile.BuildSnapshot(testState(t), "rev3", buildTime))
		jsonTag := s.do(t, "GET", "/v1/groups/eu-prod/schedule").header.Get("ETag")
		sysTag := s.do(t, "GET", "/v1/groups/eu-prod/schedule?format=systemd").header.Get("ETag")
		if !regexp.MustCompile(`^"rev3-schedule-eu-prod-[0-9a-f]{12}"$`).MatchString(jsonTag) || jsonTag == sysTag {
			t.Fatalf("schedule ETags %s and %s: want revision, group and a hash, different per format", jsonTag, sysTag)
		}
		// Rebuilt at the same moment: same bytes, same ETag.
		b.snap.Store(reconcile.BuildSnapshot(testState(t), "rev3", buildTime))
		if r := s.do(t, "GET", "/v1/groups/eu-prod/schedule", "If-None-Match", jsonTag); r.code != 304 {
			t.Errorf("same revision and windows: %d, want 304", r.code)
		}
		// A week later the windows moved on: same revision, new ETag.
		b.snap.Store(reconcile.BuildSnapshot(testState(t), "rev3", buildTime.Add(7*24*time.Hour)))
		r := s.do(t, "GET", "/v1/groups/eu-prod/schedule", "If-None-Match", jsonTag)
		if r.code != 200 || r.header.Get("ETag") == jsonTag {
			t.Errorf("windows moved: %d ETag %s, want 200 and a new ETag", r.code, r.header.Get("ETag"))
		}
	})

	t.Run("a revision id unfit for a header is hashed", func(t *testing.T) {
		b.snap.Store(reconcile.BuildSnapshot(testState(t), "bad \"rev\"", buildTime))
		tag := s.do(t, "GET", "/v1/channels").header.Get("ETag")
		if !regexp.MustCompile(`^"h[0-9a-f]{12}"$`).MatchString(tag) {
			t.Errorf("ETag %q", tag)
		}
	})
}

func sign(secret []byte, body string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhook(t *testing.T) {
	secret := []byte("hook-secret")
	const push = `{"ref":"refs/heads/main","after":"0123"}`
	cases := []struct {
		scenario     string
		secret       []byte // configured on the server
		method       string
		event        string
		body         string
		signature    string
		code         int
		wantTriggers int32
	}{
		{scenario: "a signed push triggers a sync", secret: secret, event: "push", body: push, signature: sign(secret, push), code: 202, wantTriggers: 1},
		{scenario: "a signed event without an event header triggers a sync", secret: secret, body: push, signature: sign(secret, push), code: 202, wantTriggers: 1},
		{scenario: "a signed ping is answered without a sync", secret: secret, event: "ping", body: `{"zen":"x"}`, signature: sign(secret, `{"zen":"x"}`), code: 200},
		{scenario: "an unsigned push is refused", secret: secret, event: "push", body: push, code: 401},
		{scenario: "an unsigned ping is refused", secret: secret, event: "ping", body: `{}`, code: 401},
		{scenario: "a push signed with another secret is refused", secret: secret, event: "push", body: push, signature: sign([]byte("wrong"), push), code: 401},
		{scenario: "a signature of another body is refused", secret: secret, event: "push", body: push, signature: sign(secret, push+" "), code: 401},
		{scenario: "a signature that is not hex is refused", secret: secret, event: "push", body: push, signature: "sha256=zz", code: 401},
		{scenario: "a truncated signature is refused", secret: secret, event: "push", body: push, signature: sign(secret, push)[:40], code: 401},
		{scenario: "GitHub's old SHA-1 header form is refused", secret: secret, event: "push", body: push, signature: "sha1=" + sign(secret, push)[7:], code: 401},
		{scenario: "a body over 1 MiB is refused", secret: secret, event: "push", body: strings.Repeat("x", server.MaxWebhookBody+1), signature: "sha256=00", code: 413},
		{scenario: "a GET is 405", secret: secret, method: "GET", code: 405},
		{scenario: "without a secret the webhook does not exist", event: "push", body: push, signature: sign(secret, push), code: 404},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			b := serving(t, "rev1")
			s := start(t, b, tc.secret)
			method := tc.method
			if method == "" {
				method = "POST"
			}
			req, _ := http.NewRequest(method, s.URL+"/v1/hooks/git", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.event != "" {
				req.Header.Set("X-GitHub-Event", tc.event)
			}
			req.Header.Set("X-GitHub-Delivery", "d-1")
			if tc.signature != "" {
				req.Header.Set("X-Hub-Signature-256", tc.signature)
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d %q, want %d", resp.StatusCode, body, tc.code)
			}
			if got := b.triggers.Load(); got != tc.wantTriggers {
				t.Errorf("Trigger called %d times, want %d", got, tc.wantTriggers)
			}
			if strings.Contains(s.log.String(), string(secret)) {
				t.Errorf("the log holds the secret: %s", s.log.String())
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	b := serving(t, "rev1")
	s := start(t, b, nil)
	for range 3 {
		s.do(t, "GET", "/v1/stable/cloud/version")
	}
	s.do(t, "GET", "/v1/webapi/automaticupgrades/channel/stable/cloud/bogus")
	series := func() int {
		return strings.Count(s.do(t, "GET", "/metrics").body, "\nupkeep_http_requests_total{")
	}
	before := series()
	// Random paths must not add series: the route label is a fixed name.
	for i := range 20 {
		s.do(t, "GET", fmt.Sprintf("/random/%d", i))
		s.do(t, "GET", fmt.Sprintf("/v1/no/such/%d/version", i))
	}
	if after := series(); after != before {
		t.Errorf("random paths grew upkeep_http_requests_total from %d to %d series", before, after)
	}

	r := s.do(t, "GET", "/metrics")
	for _, want := range []string{
		`upkeep_http_requests_total{code="200",route="version"} 3`,
		`upkeep_http_requests_total{code="400",route="version"} 1`,
		`upkeep_http_requests_total{code="404",route="unmatched"} 20`,
		`upkeep_http_requests_total{code="404",route="version"} 20`,
		`upkeep_channel_info{channel="stable/cloud",control_plane="cloud",critical="false",version="17.3.0"} 1`,
		`upkeep_channel_info{channel="paused",control_plane="onprem",critical="false",version="none"} 1`,
		`upkeep_channel_info{channel="hotfix",control_plane="cloud",critical="true",version="17.4.1"} 1`,
		`upkeep_served_revision_info{revision="rev1"} 1`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The info series follow the snapshot being served at scrape time.
	st := testState(t)
	st.Channels[0].Version = "17.4.0"
	b.snap.Store(reconcile.BuildSnapshot(st, "rev2", buildTime))
	r = s.do(t, "GET", "/metrics")
	if !strings.Contains(r.body, `upkeep_channel_info{channel="stable/cloud",control_plane="cloud",critical="false",version="17.4.0"} 1`) ||
		!strings.Contains(r.body, `upkeep_served_revision_info{revision="rev2"} 1`) || strings.Contains(r.body, `revision="rev1"`) {
		t.Errorf("info series after a new snapshot:\n%s", grep(r.body, "_info"))
	}

	// Before any snapshot there are no info series, and scraping works.
	b.snap.Store(nil)
	if r := s.do(t, "GET", "/metrics"); r.code != 200 || strings.Contains(r.body, "upkeep_channel_info{") {
		t.Errorf("metrics without a snapshot: %d\n%s", r.code, grep(r.body, "_info"))
	}
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSnapshotSwapUnderLoad runs requests while the snapshot changes; with
// -race it checks the per-snapshot tables are shared safely.
func TestSnapshotSwapUnderLoad(t *testing.T) {
	b := serving(t, "rev1")
	s := start(t, b, nil)
	states := []*spec.State{testState(t), testState(t)}
	states[1].Channels[0].Version = "17.4.0"

	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := s.Client().Get(s.URL + "/v1/stable/cloud/version")
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if v := string(body); resp.StatusCode != 200 || (v != "v17.3.0" && v != "v17.4.0") {
					errs <- fmt.Errorf("%d %q", resp.StatusCode, v)
					return
				}
			}
		})
	}
	for i := range 200 {
		b.snap.Store(reconcile.BuildSnapshot(states[i%2], fmt.Sprintf("rev%d", i), buildTime))
		time.Sleep(200 * time.Microsecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNewHTTPServerIsBounded(t *testing.T) {
	b := serving(t, "rev1")
	srv := server.NewHTTPServer("127.0.0.1:0", server.New(b, server.Options{}))
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout, "BodyReadTimeout": server.BodyReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout,
	} {
		if d <= 0 || d > 5*time.Minute {
			t.Errorf("%s = %s, want set and at most 5m", name, d)
		}
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Errorf("MaxHeaderBytes = %d", srv.MaxHeaderBytes)
	}

	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/v1/stable/cloud/version")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "v17.3.0" {
		t.Errorf("served %q", body)
	}

	// Headers beyond MaxHeaderBytes are refused, not buffered.
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2*srv.MaxHeaderBytes))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("oversized headers: %d, want 431", resp.StatusCode)
		}
	}

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
}

func TestMetricsOnAPrivateRegistry(t *testing.T) {
	b := serving(t, "rev1")
	h := server.New(b, server.Options{}) // no registerer: metrics still served
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `upkeep_served_revision_info{revision="rev1"} 1`) {
		t.Errorf("/metrics on a private registry: %d", rec.Code)
	}
}
