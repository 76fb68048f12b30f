package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/installers/apt"
	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/hostupdater"
	"upkeep.dev/upkeep/reconcile/schedule"
)

// versionServer answers the channel stable/cloud with version (Teleport's
// wire, over real HTTP).
func versionServer(t *testing.T, version string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/webapi/automaticupgrades/channel/stable/cloud/version", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, version)
	})
	mux.HandleFunc("GET /v1/webapi/automaticupgrades/channel/stable/cloud/critical", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "no")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// aptRoot is an isolated apt root with no sources and nothing installed.
func aptRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := apt.InitRoot(root); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestAgentOnceExitStatus runs `upkeep agent --once` through the command
// line, one scenario per exit status docs/agent.md documents.
func TestAgentOnceExitStatus(t *testing.T) {
	requireTool(t, "dpkg-query")
	requireTool(t, "apt-get")
	tests := []struct {
		scenario string
		version  string                         // the channel's answer
		config   string                         // "" the default below
		prepare  func(t *testing.T, dir string) // the state directory
		args     []string
		code     int
		stdout   string // a substring
		stderr   string // a substring
	}{
		{scenario: "a pass with nothing to do exits 0",
			version: "none", code: 0, stdout: "decision: Nothing (UpToDate/NoVersionOffered)"},
		{scenario: "a dry run that would install exits 0 and lists the commands",
			version: "v17.4.0", args: []string{"--dry-run"}, code: 0, stdout: "apt-get install -y -q --allow-downgrades --no-remove"},
		{scenario: "a pass that cannot reach the server keeps the version and exits 0",
			config: "server: http://127.0.0.1:1\n", code: 0, stdout: "decision: Keep (TargetUnknown/TargetFetchFailed)"},
		{scenario: "a pass whose update cannot start (no repository offers the version) exits 1",
			version: "v17.4.0", code: 1, stdout: "error:    apt: package teleport: version not available"},
		{scenario: "a pass stopped before deciding exits 1 and says so, without empty fields",
			version: "v17.4.0", code: 1, stdout: "decision: none: the pass stopped before deciding",
			prepare: func(t *testing.T, dir string) {
				if err := os.WriteFile(apply.StatePath(dir), []byte("{not json"), 0o644); err != nil {
					t.Fatal(err)
				}
			}},
		{scenario: "a configuration error exits 2",
			config: "channel: \"\"\n", code: 2, stderr: "channel: required"},
		{scenario: "an unknown flag exits 2",
			version: "none", args: []string{"--no-such-flag"}, code: 2, stderr: "unknown flag"},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			dir := t.TempDir()
			if tc.prepare != nil {
				tc.prepare(t, dir)
			}
			server := "http://127.0.0.1:1"
			if tc.version != "" {
				server = versionServer(t, tc.version)
			}
			cfg := fmt.Sprintf("server: %s\nchannel: stable/cloud\npackage: teleport\ninstaller: apt\nroot: %s\nstateDir: %s\n"+
				"schedule:\n  source: none\nhealth:\n  systemd: false\n", server, aptRoot(t), dir)
			cfg = replaceKeys(cfg, tc.config)
			path := filepath.Join(t.TempDir(), "agent.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"agent", "--once", "--config", path, "--log-level", "error"}, tc.args...)
			code := runWith(args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stdout:\n%s\nstderr:\n%s\nwant stdout with %q and stderr with %q", stdout.String(), stderr.String(), tc.stdout, tc.stderr)
			}
			if strings.Contains(stdout.String(), " (/)") {
				t.Errorf("stdout prints empty decision fields:\n%s", stdout.String())
			}
		})
	}
}

// replaceKeys sets extra's top-level keys in the YAML text base.
func replaceKeys(base, extra string) string {
	if extra == "" {
		return base
	}
	var out []string
	for _, l := range strings.Split(base, "\n") {
		key, _, _ := strings.Cut(l, ":")
		if !strings.HasPrefix(l, " ") && strings.Contains(extra, key+":") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n" + extra
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
}

// TestAgentStatus prints the state a pass leaves: the window open now by
// its end and the next one by its start, a finished journal as the last
// update rather than an unfinished one.
func TestAgentStatus(t *testing.T) {
	now := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	cfg := &hostupdater.Config{Channel: "stable/cloud", Package: "teleport"}
	open := calendar.Interval{Start: now.Add(-time.Hour), End: now.Add(90 * time.Minute)}
	later := calendar.Interval{Start: now.Add(24 * time.Hour), End: now.Add(26 * time.Hour)}
	result := &apply.Result{Outcome: apply.Updated, From: "17.3.0", To: "17.4.0", Reason: "Healthy", Message: "healthy after 30s", Finished: now.Add(-time.Minute)}
	state := apply.State{LastDecision: &apply.DecisionRecord{At: now.Add(-2 * time.Minute), Action: "Update",
		Rule: reconcile.RuleInWindow, Reason: "InsideWindow", Message: "inside the window"}, LastResult: result}
	done := &apply.Journal{ID: "u1", From: "17.3.0", To: "17.4.0", Step: apply.StepDone, Outcome: apply.Updated}
	cut := &apply.Journal{ID: "u2", From: "17.3.0", To: "17.4.0", Step: apply.StepSettling}
	loaded := func(ws ...calendar.Interval) schedule.Schedule {
		return schedule.Schedule{State: schedule.Usable, Windows: ws, Message: "test schedule"}
	}
	tests := []struct {
		scenario string
		journal  *apply.Journal
		sched    schedule.Schedule
		want     []string
		not      []string
		json     map[string]any
	}{
		{scenario: "inside a window the status shows its end and the next window's start",
			journal: done, sched: loaded(open, later),
			want: []string{"window:   open now, until 2026-12-03T15:30:00Z (1h30m0s left)", "next window: 2026-12-04T14:00:00Z to 2026-12-04T16:00:00Z",
				"update:   Updated 17.3.0 → 17.4.0 (Healthy)"},
			not:  []string{"unfinished", "2026-12-03T13:00:00Z"},
			json: map[string]any{"windowOpenUntil": "2026-12-03T15:30:00Z", "nextWindow": "2026-12-04T14:00:00Z"}},
		{scenario: "outside windows the status shows the next one only",
			sched: loaded(later),
			want:  []string{"next window: 2026-12-04T14:00:00Z to 2026-12-04T16:00:00Z"}, not: []string{"open now"},
			json: map[string]any{"nextWindow": "2026-12-04T14:00:00Z"}},
		{scenario: "an update cut short is shown as unfinished at its step",
			journal: cut, sched: loaded(),
			want: []string{"unfinished update: 17.3.0 → 17.4.0 at step settling", "next window: none (Usable: test schedule)"},
			json: map[string]any{"unfinishedUpdate": map[string]any{}}},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			var b bytes.Buffer
			if err := printAgentStatus(&b, "text", cfg, state, tc.journal, tc.sched, now); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("status does not contain %q:\n%s", w, b.String())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("status contains %q:\n%s", n, b.String())
				}
			}
			b.Reset()
			if err := printAgentStatus(&b, "json", cfg, state, tc.journal, tc.sched, now); err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"windowOpenUntil", "nextWindow", "unfinishedUpdate"} {
				want, wanted := tc.json[key]
				v, ok := got[key]
				if ok != wanted {
					t.Errorf("JSON key %s present %v, want %v: %s", key, ok, wanted, b.String())
				} else if s, isStr := want.(string); isStr && v != s {
					t.Errorf("JSON %s = %v, want %s", key, v, s)
				}
			}
		})
	}
}
