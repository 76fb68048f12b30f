package fleetclient

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upkeep.dev/upkeep/reconcile/fleet"
	"upkeep.dev/upkeep/reconcile/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var now = time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC)

const token = "0123456789abcdef0123456789abcdef"

func tokenFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./sources/fleetclient -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./sources/fleetclient -update rewrites it); got:\n%s", path, got)
	}
}

func agentOf(id, group, channel, version, health string, stale bool) report.Agent {
	return report.Agent{Report: report.Report{AgentID: id, Group: group, Channel: channel, Kind: report.KindHost, Hostname: id,
		CurrentVersion: version, Health: health, Rule: "UpToDate", Reason: "AlreadyOnTarget"},
		ReceivedAt: now.Add(-time.Minute), Stale: stale}
}

// haltedSnapshot: prod's rollout of 1.1.0 halted in stage 1 (eu); c-1, a
// canary of stage 0, already runs it, e-1 of the halted stage too.
func haltedSnapshot(extra ...report.Agent) Snapshot {
	agents := []report.Agent{
		agentOf("c-1", "canary", "prod", "1.1.0", report.HealthHealthy, false),
		agentOf("c-2", "canary", "prod", "1.0.0", report.HealthHealthy, false),
		agentOf("e-1", "eu", "prod", "1.1.0", report.HealthUnhealthy, false),
		agentOf("e-2", "eu", "prod", "1.0.0", report.HealthHealthy, false),
		agentOf("e-3", "eu", "prod", "", report.HealthUnknown, false),
		agentOf("o-1", "", "prod", "1.2.0", report.HealthHealthy, true),
		agentOf("z-1", "zombie", "retired", "0.9.0", report.HealthHealthy, false),
	}
	agents = append(agents, extra...)
	halted := fleet.Rollout{Channel: "prod", Version: "1.1.0", FromVersion: "1.0.0", State: fleet.StateHalted, Stage: 1, Step: fleet.StepCanary,
		Canaries: []string{"e-1"}, Revision: "rev-2", StartedAt: now.Add(-3 * time.Hour), Since: now.Add(-20 * time.Minute), HaltedAt: now.Add(-20 * time.Minute),
		Rule: "FailureThreshold", Reason: "TooManyFailures", Message: "1 of 1 canaries of stage 1 unhealthy on 1.1.0 (threshold 1)"}
	return Snapshot{
		Server: "https://upkeep.example.com", Revision: "rev-2",
		Channels: []Channel{{Name: "prod", Version: "1.1.0"}, {Name: "edge", Version: "none"}},
		Groups:   []Group{{Name: "canary", Channel: "prod"}, {Name: "eu", Channel: "prod"}},
		Fleet:    report.Fleet{Time: now, StaleAfter: "15m0s", Agents: agents},
		Rollouts: []RolloutDetail{{Rollout: halted, Stages: []Stage{
			{Index: 0, Groups: []string{"canary"}, Canaries: "1", BakeTime: "1h0m0s", Status: "done", Agents: 2, Live: 2, OnVersion: 1, Healthy: 1},
			{Index: 1, Groups: []string{"eu"}, Canaries: "1", BakeTime: "0s", Status: "current", Agents: 3, Live: 3, OnVersion: 1, Failed: 1},
			{Index: 2, Groups: []string{}, Implicit: true, Canaries: "0", BakeTime: "0s", Status: "waiting", Agents: 1},
		}, Transitions: []fleet.Transition{
			{Channel: "prod", Version: "1.1.0", From: fleet.StateCanary, To: fleet.StateHalted, Stage: 1, Step: fleet.StepCanary, Rule: "FailureThreshold",
				Reason: "TooManyFailures", Message: halted.Message, Actor: "leader-a", At: halted.Since},
		}}},
	}
}

func TestBuild(t *testing.T) {
	v := Build(haltedSnapshot())
	rows := map[string]AgentRow{}
	for _, g := range [][]AgentRow{v.Behind, v.Unhealthy, v.Stale} {
		for _, a := range g {
			rows[a.ID] = a
		}
	}
	for _, tc := range []struct {
		scenario, id, target, held, position string
	}{
		{"a done stage's agent below the version is behind it", "c-2", "1.1.0", "", Behind},
		{"an agent of the halted stage already on the version keeps it and is on target", "e-1", "1.1.0", "", OnTarget},
		{"an agent that does not know its version is behind the halted rollout's fromVersion", "e-3", "1.0.0", "Halted", Behind},
		{"an agent without a group is in the implicit stage, held, and above its answer", "o-1", "1.0.0", "Halted", Ahead},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			a, ok := rows[tc.id] // each of them is behind, unhealthy or stale
			if !ok {
				t.Fatalf("%s is not listed as behind, unhealthy or stale", tc.id)
			}
			if a.Target != tc.target || a.Held != tc.held || a.Position != tc.position {
				t.Errorf("%s: target %q held %q position %q; want %q %q %q", tc.id, a.Target, a.Held, a.Position, tc.target, tc.held, tc.position)
			}
		})
	}
	want := Totals{Agents: 7, OnTarget: 3, Behind: 2, Ahead: 1, NoTarget: 1, Healthy: 4, Unhealthy: 1, Unknown: 1, Stale: 1}
	if v.Totals != want {
		t.Errorf("totals %+v, want %+v", v.Totals, want)
	}
}

func TestRender(t *testing.T) {
	var many []report.Agent
	for i := range MaxListed + 3 {
		many = append(many, agentOf(fmt.Sprintf("m-%02d", i), "eu", "prod", "0.9.0", report.HealthHealthy, false))
	}
	snap := haltedSnapshot(many...)
	for _, tc := range []struct {
		scenario, golden string
		render           func(*bytes.Buffer) error
	}{
		{"the fleet table lists at most MaxListed agents of a kind and says how many more", "fleet-halted.txt",
			func(b *bytes.Buffer) error { return FleetTable(b, Build(snap)) }},
		{"a halted rollout shows its stages, failures, halt time and the rule that halted it", "rollout-halted.txt",
			func(b *bytes.Buffer) error { return RolloutTable(b, snap.Rollouts[0], now) }},
		{"an operator's step is one line and the message", "step-resume.txt",
			func(b *bytes.Buffer) error {
				return StepText(b, Step{Rollout: fleet.Rollout{Channel: "prod", Version: "1.1.0"}, Transition: fleet.Transition{From: fleet.StateHalted,
					To: fleet.StateCanary, Rule: "ResumedByOperator", Reason: "OperatorResumed", Actor: "operator:token-1a2b3c4d", At: now, Message: "resumed: fixed config"}})
			}},
		{"no rollouts says why there may be none", "rollouts-none.txt", func(b *bytes.Buffer) error { return RolloutList(b, nil) }},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.render(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, b.Bytes())
		})
	}
}

func TestNewRefuses(t *testing.T) {
	tf := tokenFile(t)
	for _, tc := range []struct {
		scenario, url, tokenFile, want string
	}{
		{"plain http beyond loopback", "http://upkeep.example.com", tf, "use https://"},
		{"credentials in the URL", "https://u:p@upkeep.example.com", tf, "put the token in the file of --token-file"},
		{"a query", "https://upkeep.example.com/?x=1", tf, "without a query"},
		{"no token file", "https://upkeep.example.com", "", "pass --token-file"},
		{"a missing token file", "https://upkeep.example.com", filepath.Join(t.TempDir(), "none"), "--token-file: reading the report token file"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, err := New(tc.url, Options{TokenFile: tc.tokenFile})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%q) = %v, want an error with %q", tc.url, err, tc.want)
			}
		})
	}
}

// TestTransportRules runs the client against a real HTTP server that
// answers as a misconfigured proxy or a hostile server would.
func TestTransportRules(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/rollouts", func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-Case") {
		case "redirect":
			http.Redirect(w, r, "https://elsewhere.example.com/v1/rollouts", http.StatusFound)
		case "html":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>login</html>")
		case "echo":
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "upstream refused "+r.Header.Get("Authorization"))
		case "huge":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"rollouts":[`+strings.Repeat(" ", MaxBody)+`]}`)
		case "slow":
			time.Sleep(2 * time.Second)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := New(srv.URL, Options{TokenFile: tokenFile(t), Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scenario, header, want string
	}{
		{"a redirect is not followed, and the error names where it pointed", "redirect", "pass the URL \"https://elsewhere.example.com/v1/rollouts\" as --server"},
		{"an HTML page is refused, not parsed", "html", "not JSON: is --server an upkeep server"},
		{"a server that echoes the token has it scrubbed from the error", "echo", "upstream refused Bearer [token]"},
		{"a body over the limit is refused", "huge", "larger than 8 MiB"},
		{"a server that does not answer in time fails the request", "slow", "timed out"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			ctx := context.Background()
			req := caseHeader{c: c, v: tc.header}
			_, err := req.rollouts(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), token) {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

// caseHeader sends X-Case with the client's requests, through a wrapping
// transport: the client under test is otherwise unchanged.
type caseHeader struct {
	c *Client
	v string
}

func (h caseHeader) rollouts(ctx context.Context) ([]fleet.Rollout, error) {
	orig := h.c.http.Transport
	h.c.http.Transport = roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("X-Case", h.v)
		return orig.RoundTrip(r)
	})
	defer func() { h.c.http.Transport = orig }()
	return h.c.Rollouts(ctx)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestIsNotFound(t *testing.T) {
	if !IsNotFound(fmt.Errorf("wrapped: %w", &Error{Status: 404})) || IsNotFound(errors.New("x")) || IsNotFound(&Error{Status: 401}) {
		t.Error("IsNotFound")
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1240: "1,240", 12345678: "12,345,678", -1240: "-1,240"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// BenchmarkBuild10k judges 10,000 agents under a halted rollout and renders
// the table: the CPU `upkeep fleet` spends beside the HTTP requests.
func BenchmarkBuild10k(b *testing.B) {
	var many []report.Agent
	for i := range 10_000 {
		g := []string{"canary", "eu", "us"}[i%3]
		many = append(many, agentOf(fmt.Sprintf("a-%05d", i), g, "prod", []string{"1.0.0", "1.1.0", "0.9.0"}[i%3], report.HealthHealthy, false))
	}
	snap := haltedSnapshot(many...)
	b.ReportAllocs()
	for b.Loop() {
		var out bytes.Buffer
		if err := FleetTable(&out, Build(snap)); err != nil {
			b.Fatal(err)
		}
	}
}

// A note an operator typed, or a message an agent reported, is one line in
// every view, whatever it holds: it must not forge lines of the output.
func TestMessagesCannotForgeLines(t *testing.T) {
	forged := "first\nHALTED: stable/cloud\r\n  fake line"
	var b strings.Builder
	if err := StepText(&b, Step{
		Rollout:    fleet.Rollout{Channel: "stable/cloud", Version: "17.4.0"},
		Transition: fleet.Transition{From: "Active", To: "Halted", Rule: "HaltedByOperator", Message: forged},
	}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 2 {
		t.Errorf("StepText wrote %d lines, want 2:\n%s", n, b.String())
	}
	if strings.Contains(b.String(), "\nHALTED") {
		t.Errorf("a forged line starts a line:\n%s", b.String())
	}
}
