package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/diff"
)

// diffNow is Monday 23 November 2026, 22:00 UTC.
var diffNow = time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC)

const controlPlanesYAML = `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: cloud
spec:
  version: 17.4.2
`

func channelsYAML(version string) string {
	return `apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: stable/cloud
spec:
  controlPlane: cloud
  version: ` + version + `
---
apiVersion: upkeep.dev/v1alpha1
kind: Channel
metadata:
  name: stable/rolling
spec:
  controlPlane: cloud
  follow: controlPlane
`
}

func groupYAML(start string) string {
	return `apiVersion: upkeep.dev/v1alpha1
kind: Group
metadata:
  name: eu-prod
spec:
  channel: stable/cloud
  timezone: Europe/Berlin
  windows:
    - days: [Tue, Thu]
      start: "` + start + `"
      duration: 4h
`
}

// fleetRepo creates a Git repository with the git CLI: a first commit with
// stable/cloud at 17.3.0, a second raising it to 17.4.0, and an uncommitted
// edit that moves eu-prod's window to 03:00.
func fleetRepo(t *testing.T) string {
	t.Helper()
	requireGit(t)
	dir := t.TempDir()
	gitRun(t, dir, "init", "-q", "-b", "main")
	writeFile(t, dir, "control-planes.yaml", controlPlanesYAML)
	writeFile(t, dir, "channels/stable.yaml", channelsYAML("17.3.0"))
	writeFile(t, dir, "groups/eu-prod.yaml", groupYAML("02:00"))
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "commit", "-q", "-m", "fleet: first")
	writeFile(t, dir, "channels/stable.yaml", channelsYAML("17.4.0"))
	gitRun(t, dir, "commit", "-q", "-am", "stable/cloud: roll out 17.4.0")
	writeFile(t, dir, "groups/eu-prod.yaml", groupYAML("03:00"))
	return dir
}

// requireGit skips a test that needs the git CLI when it is missing, and
// fails it under CI=true, where every tool must be installed.
func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git is not installed, and CI=true requires it (apt-get install git)")
		}
		t.Skip("git is not installed")
	}
}

func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		// Fixed dates give the same commit ids every run, for the goldens.
		"GIT_AUTHOR_DATE=2026-11-23T12:00:00Z", "GIT_COMMITTER_DATE=2026-11-23T12:00:00Z")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runDiffCmd runs `upkeep diff args...` and returns its output and the
// process exit code main would return.
func runDiffCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := newDiffCmdAt(func() time.Time { return diffNow })
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	code := 0
	if err != nil {
		var coded *exitCodeError
		switch {
		case errors.As(err, &coded):
			code = coded.Code
		case isUsageError(err):
			code = 2
		default:
			code = 1
		}
		t.Logf("upkeep diff %s: exit %d: %v", strings.Join(args, " "), code, err)
	}
	return out.String(), code
}

func TestDiffCommand(t *testing.T) {
	repo := fleetRepo(t)
	head := gitRun(t, repo, "rev-parse", "HEAD")

	t.Run("base HEAD~1 against head HEAD shows the committed upgrade only", func(t *testing.T) {
		out, code := runDiffCmd(t, "--repo", repo, "--base", "HEAD~1", "--head", "HEAD")
		if code != 0 {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
		for _, want := range []string{
			"upkeep diff: HEAD~1 (",
			"→ HEAD (" + head[:12] + ")",
			"1 channel changed (1 upgrade)",
			"~ stable/cloud: 17.3.0 → 17.4.0 (upgrade; pin changed)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "Groups:") || strings.Contains(out, "03:00") {
			t.Errorf("the uncommitted window edit is not part of HEAD:\n%s", out)
		}
	})

	t.Run("the default head is the work tree with its uncommitted edit", func(t *testing.T) {
		out, code := runDiffCmd(t, "--repo", repo)
		if code != 0 {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
		for _, want := range []string{
			"→ work tree",
			"1 group changed",
			"windows: Tue,Thu 02:00 for 4h → Tue,Thu 03:00 for 4h",
			"Tue 2026-11-24 02:00–06:00 CET (01:00–05:00 UTC)",
			"Tue 2026-11-24 03:00–07:00 CET (02:00–06:00 UTC)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "stable/cloud") {
			t.Errorf("the committed upgrade is in base HEAD already:\n%s", out)
		}
	})

	t.Run("json output parses and carries the summary", func(t *testing.T) {
		out, code := runDiffCmd(t, "--repo", repo, "--base", "HEAD~1", "--output", "json")
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		var r struct {
			Summary struct {
				Upgrades, GroupsModified int
			}
			Channels []struct{ Name, Movement string }
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v in:\n%s", err, out)
		}
		if r.Summary.Upgrades != 1 || r.Summary.GroupsModified != 1 || len(r.Channels) != 1 || r.Channels[0].Movement != "upgrade" {
			t.Errorf("got %+v", r)
		}
	})

	t.Run("markdown output is a pull-request comment", func(t *testing.T) {
		out, code := runDiffCmd(t, "--repo", repo, "--base", "HEAD~1", "--output", "markdown")
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if !strings.HasPrefix(out, "### upkeep diff: HEAD\\~1 (") || !strings.Contains(out, "| `stable/cloud` | modified | 17.3.0 → 17.4.0 | upgrade |") {
			t.Errorf("got:\n%s", out)
		}
	})

	t.Run("an invalid work tree exits 1 and lists its errors with file and line", func(t *testing.T) {
		bad := fleetRepo(t)
		writeFile(t, bad, "channels/stable.yaml", channelsYAML("17.9.0"))
		out, code := runDiffCmd(t, "--repo", bad)
		if code != 1 {
			t.Fatalf("exit %d, want 1; output:\n%s", code, out)
		}
		for _, want := range []string{"head is invalid: ", "Errors in head (", "channels/stable.yaml:7:"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("an invalid base is still compared and said to be invalid", func(t *testing.T) {
		r := fleetRepo(t)
		writeFile(t, r, "channels/stable.yaml", channelsYAML("17.9.0"))
		gitRun(t, r, "commit", "-q", "-am", "broken")
		writeFile(t, r, "channels/stable.yaml", channelsYAML("17.4.1"))
		out, code := runDiffCmd(t, "--repo", r, "--head", "HEAD~1", "--base", "HEAD")
		if code != 0 {
			t.Fatalf("exit %d, want 0 (head is valid); output:\n%s", code, out)
		}
		if !strings.Contains(out, "note: base is itself invalid (1 error); compared anyway") ||
			!strings.Contains(out, "stable/cloud: 17.9.0 → 17.4.0 (downgrade; pin changed)") {
			t.Errorf("got:\n%s", out)
		}
	})

	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{
			{"--repo", repo, "--output", "yaml"},
			{"--repo", repo, "--no-such-flag"},
			{"--repo", repo, "extra-argument"},
		} {
			if _, code := runDiffCmd(t, args...); code != 2 {
				t.Errorf("upkeep diff %v: exit %d, want 2", args, code)
			}
		}
	})

	t.Run("an unknown base revision exits 1 naming it", func(t *testing.T) {
		_, code := runDiffCmd(t, "--repo", repo, "--base", "no-such-branch")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	})
}

// fleetDiffRepo is a Git repository whose HEAD is fleetRepoFiles with
// stable/cloud at 17.3.0 (what the server serves), and whose work tree
// raises it to 17.4.0, rolled out in stages.
func fleetDiffRepo(t *testing.T) (dir string, base map[string]string) {
	t.Helper()
	requireGit(t)
	base = map[string]string{}
	for name, content := range fleetRepoFiles {
		base[name] = content
	}
	base["channels/stable.yaml"] = strings.Replace(fleetRepoFiles["channels/stable.yaml"], "version: 17.4.0", "version: 17.3.0", 1)
	dir = t.TempDir()
	gitRun(t, dir, "init", "-q", "-b", "main")
	for name, content := range base {
		writeFile(t, dir, name, content)
	}
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "commit", "-q", "-m", "fleet: 17.3.0")
	writeFile(t, dir, "channels/stable.yaml", fleetRepoFiles["channels/stable.yaml"])
	return dir, base
}

func TestDiffWithServer(t *testing.T) {
	repo, base := fleetDiffRepo(t)
	s := startFleetServer(t, base)
	s.seed(t, append(fleetAgents, agent{"k-1", "", "stable/cloud", "17.3.0", "healthy", 0}))
	auth := []string{"--server", s.URL, "--token-file", s.TokenFile}

	for _, format := range []struct{ output, golden string }{
		{"text", "diff-server.txt"},
		{"markdown", "diff-server.md"},
		{"json", "diff-server.json"},
	} {
		t.Run("the "+format.output+" report starts with the agents merging moves and lists them by stage", func(t *testing.T) {
			out, code := runDiffCmd(t, append([]string{"--repo", repo, "--output", format.output}, auth...)...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			golden(t, format.golden, s.stable(out))
		})
	}

	t.Run("the summary counts each moving agent once and names the earliest window in its group's zone", func(t *testing.T) {
		out, _ := runDiffCmd(t, append([]string{"--repo", repo}, auth...)...)
		lines := strings.Split(out, "\n")
		// Moving: c-2 (17.2.0), e-1..e-3, a-1 and the ungrouped k-1; c-1
		// runs 17.4.0 already. eu-prod's window opens first, but its stage
		// waits for the canary stage's group.
		const want = "Merging this moves 6 agents in 3 groups, first window Tue 01:00 America/New_York"
		if len(lines) < 2 || lines[1] != want {
			t.Errorf("second line is not %q:\n%s", want, out)
		}
		for _, w := range []string{
			"stage 0 (1 canary, bake 2h):",
			"us-east-canary: 2 agents (17.2.0 ×1, 17.4.0 ×1), 1 moves; first usable window Tue 01:00 America/New_York: Tue 2026-11-24 01:00–04:00 EST",
			"eu-prod: 3 agents (17.3.0 ×3), 3 move; first usable window Tue 02:00 Europe/Berlin: Tue 2026-11-24 02:00–06:00 CET (01:00–05:00 UTC); moves only after the earlier stages",
			"stage 2 (implicit: the channel's other groups):",
			"without a group: 1 agent (17.3.0 ×1), 1 moves",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})

	t.Run("without --server the report is the same as before, with no fleet part", func(t *testing.T) {
		out, code := runDiffCmd(t, "--repo", repo, "--output", "json")
		if code != 0 || strings.Contains(out, `"fleet"`) {
			t.Errorf("exit %d:\n%s", code, out)
		}
		with, _ := runDiffCmd(t, append([]string{"--repo", repo}, auth...)...)
		without, _ := runDiffCmd(t, "--repo", repo)
		if !strings.HasPrefix(without, "upkeep diff: HEAD (") || strings.Contains(without, "Agents (from") || !strings.Contains(with, strings.SplitN(without, "\n", 2)[0]) {
			t.Errorf("without --server:\n%s\nwith:\n%s", without, with)
		}
	})

	t.Run("counting from the whole fleet, as for many groups, gives the same report as asking group by group", func(t *testing.T) {
		perGroup, _ := runDiffCmd(t, append([]string{"--repo", repo, "--output", "json"}, auth...)...)
		defer func(n int) { maxGroupRequests = n }(maxGroupRequests)
		maxGroupRequests = 0
		whole, _ := runDiffCmd(t, append([]string{"--repo", repo, "--output", "json"}, auth...)...)
		if whole != perGroup || !strings.Contains(whole, `"moving": 6`) {
			t.Errorf("reading the whole fleet:\n%s\ngroup by group:\n%s", whole, perGroup)
		}
	})

	t.Run("a server that refuses the token fails the diff naming --server", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "token")
		writeFile(t, filepath.Dir(wrong), "token", "ffffffffffffffffffffffffffffffff\n")
		_, code := runDiffCmd(t, "--repo", repo, "--server", s.URL, "--token-file", wrong)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	})
}

// agreeFiles is a fleet at diffNow, inside long freezes: head makes
// stable/cloud critical (eu-prod's freeze forbids critical updates,
// eu-lab's allows them) and edge moves, with edge-hosts frozen past the
// horizon and lab without windows.
func agreeFiles(head bool) map[string]string {
	stableVersion, critical, edgeVersion := "17.3.0", "false", "17.4.1"
	if head {
		stableVersion, critical, edgeVersion = "17.4.0", "true", "17.4.2"
	}
	group := func(name, channel, tz, windows, freeze string) string {
		return "apiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata: {name: " + name + "}\nspec:\n  channel: " + channel +
			"\n  timezone: " + tz + "\n" + windows + freeze
	}
	tueThu := "  windows:\n    - {days: [Tue, Thu], start: \"02:00\", duration: 4h}\n"
	files := map[string]string{
		"control-planes.yaml": controlPlanesYAML,
		"channels.yaml": "apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: stable/cloud}\nspec:\n  controlPlane: cloud\n  version: " +
			stableVersion + "\n  critical: " + critical + "\n---\napiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata: {name: edge}\nspec:\n  controlPlane: cloud\n  version: " + edgeVersion + "\n",
		"groups/eu-prod.yaml": group("eu-prod", "stable/cloud", "Europe/Berlin", tueThu,
			"  freezes:\n    - {name: change-freeze, start: \"2026-11-20T00:00:00+01:00\", end: \"2027-01-12T00:00:00+01:00\", allowCritical: false}\n"),
		"groups/eu-lab.yaml": group("eu-lab", "stable/cloud", "Europe/Berlin", tueThu,
			"  freezes:\n    - {name: quiet, start: \"2026-11-20T00:00:00+01:00\", end: \"2026-12-10T00:00:00+01:00\", allowCritical: true}\n"),
		"groups/edge-hosts.yaml": group("edge-hosts", "edge", "UTC", "  windows:\n    - {start: \"00:00\", duration: 4h}\n", ""),
	}
	if head {
		files["groups/edge-hosts.yaml"] = group("edge-hosts", "edge", "UTC", "  windows:\n    - {start: \"00:00\", duration: 4h}\n",
			"  freezes:\n    - {name: long, start: \"2026-11-01T00:00:00Z\", end: \"2026-12-31T02:00:00Z\", allowCritical: true}\n")
		files["groups/lab.yaml"] = group("lab", "edge", "UTC", "", "")
	}
	return files
}

// TestDiffAgreesWithTheServer checks the diff's windows and critical holds
// against a real version server serving head at the same clock: the next
// window of each group (GET /v1/groups/<g>), its first usable window, and
// the group-scoped critical answer with its Upkeep-Freeze header.
func TestDiffAgreesWithTheServer(t *testing.T) {
	requireGit(t)
	repo := t.TempDir()
	gitRun(t, repo, "init", "-q", "-b", "main")
	for name, content := range agreeFiles(false) {
		writeFile(t, repo, name, content)
	}
	gitRun(t, repo, "add", "-A")
	gitRun(t, repo, "commit", "-q", "-m", "fleet: base")
	for name, content := range agreeFiles(true) {
		writeFile(t, repo, name, content)
	}
	s := startFleetServer(t, agreeFiles(true))
	s.seed(t, []agent{
		{"e-1", "eu-prod", "stable/cloud", "17.3.0", "healthy", 0},
		{"l-1", "eu-lab", "stable/cloud", "17.3.0", "healthy", 0},
		{"x-1", "edge-hosts", "edge", "17.4.1", "healthy", 0},
		{"y-1", "lab", "edge", "17.4.1", "healthy", 0},
	})
	out, code := runDiffCmd(t, "--repo", repo, "--output", "json", "--server", s.URL, "--token-file", s.TokenFile)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	var r diff.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Fleet == nil {
		t.Fatalf("no fleet part:\n%s", out)
	}

	type groupDoc struct {
		Next, Open, NextUsable *calendar.Interval
	}
	served := func(t *testing.T, g string) groupDoc {
		t.Helper()
		var d groupDoc
		if err := json.Unmarshal([]byte(httpGet(t, s.URL+"/v1/groups/"+g, nil)), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	same := func(a, b *calendar.Interval) bool {
		return a == nil && b == nil || a != nil && b != nil && a.Start.Equal(b.Start) && a.End.Equal(b.End)
	}

	t.Run("each group's next windows after the merge start with the window the server names next", func(t *testing.T) {
		checked := 0
		for _, g := range r.Groups {
			if g.Head == nil {
				continue
			}
			d := served(t, g.Name)
			want := cmp.Or(d.Open, d.Next)
			var got *calendar.Interval
			if len(g.NextAfter) > 0 {
				got = &g.NextAfter[0]
			}
			if !same(got, want) {
				t.Errorf("%s: diff %v, server %v", g.Name, got, want)
			}
			checked++
		}
		rules := map[string]string{}
		for _, g := range r.Groups {
			if g.AfterRule != nil {
				rules[g.Name] = g.AfterRule.Rule
			}
		}
		if checked != 2 || rules["edge-hosts"] != "FirstWindowAfterFreeze" || rules["lab"] != "NothingOpen" {
			t.Errorf("checked %d groups, rules %v; want edge-hosts after the freeze and lab never open", checked, rules)
		}
	})

	t.Run("each group's first usable window and critical hold are what the server answers", func(t *testing.T) {
		when := map[string]string{}
		for _, c := range r.Fleet.Channels {
			for _, st := range c.Stages {
				for _, g := range st.Groups {
					when[g.Name] = g.When
					var hdr http.Header
					answer := httpGet(t, s.URL+"/v1/webapi/automaticupgrades/channel/group/"+g.Name+"/critical", &hdr)
					switch g.When {
					case "critical":
						if answer != "yes" {
							t.Errorf("%s: diff says at once, the server answers critical %q", g.Name, answer)
						}
					case "held":
						until := "until=" + g.HeldUntil.UTC().Format(time.RFC3339)
						if answer != "no" || !strings.Contains(hdr.Get("Upkeep-Freeze"), until) {
							t.Errorf("%s: diff says held (%s), the server answers %q, Upkeep-Freeze %q", g.Name, until, answer, hdr.Get("Upkeep-Freeze"))
						}
					default:
						var got *calendar.Interval
						if g.Window != nil {
							got = &g.Window.Interval
						}
						if want := served(t, g.Name).NextUsable; !same(got, want) {
							t.Errorf("%s: diff's first usable window %v, server's nextUsable %v", g.Name, got, want)
						}
					}
				}
			}
		}
		want := map[string]string{"eu-prod": "held", "eu-lab": "critical", "edge-hosts": "window", "lab": "none"}
		if !maps.Equal(when, want) {
			t.Errorf("when %v, want %v", when, want)
		}
	})
}

// httpGet returns the body of a GET on loopback, bounded, and its header.
func httpGet(t *testing.T, url string, hdr *http.Header) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v: %s", url, resp.StatusCode, err, b)
	}
	if hdr != nil {
		*hdr = resp.Header
	}
	return string(b)
}
