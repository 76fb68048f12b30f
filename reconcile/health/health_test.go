package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// agentServer is a real HTTP health endpoint on 127.0.0.1 whose answer a
// test decides per request (n counts from 1; since is the time since the
// server started).
func agentServer(t *testing.T, healthy func(n int, since time.Duration) bool) string {
	t.Helper()
	var n atomic.Int32
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if healthy(int(n.Add(1)), time.Since(start)) {
			w.Write([]byte("ok"))
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/readyz"
}

func httpCheck(t *testing.T, url string) Check {
	t.Helper()
	c, err := NewHTTPCheck(url, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func cmdCheck(t *testing.T, argv ...string) Check {
	t.Helper()
	c, err := NewCommandCheck(argv, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func unitCheck(t *testing.T, run *canned) Check {
	t.Helper()
	c, err := NewUnitCheck("teleport", run.run)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func unitOut(active string, restarts, pid int) string {
	return fmt.Sprintf("LoadState=loaded\nActiveState=%s\nSubState=running\nNRestarts=%d\nMainPID=%d\n", active, restarts, pid)
}

func up(int, time.Duration) bool   { return true }
func down(int, time.Duration) bool { return false }

func TestProbe(t *testing.T) {
	tests := []struct {
		scenario string
		checks   func(t *testing.T) []Check
		status   Status
		reason   string
		check    string
		message  string
	}{
		{"no check configured is unknown", func(*testing.T) []Check { return nil }, Unknown, ReasonNoChecks, "", "no health check is configured"},
		{"every check passing is healthy", func(t *testing.T) []Check {
			return []Check{httpCheck(t, agentServer(t, up)), cmdCheck(t, "true")}
		}, Healthy, ReasonHealthy, "", "2 check(s) passed"},
		{"a failing command makes the agent unhealthy and is named", func(t *testing.T) []Check {
			return []Check{httpCheck(t, agentServer(t, up)), cmdCheck(t, "sh", "-c", "echo 'cannot reach auth' >&2; exit 1")}
		}, Unhealthy, ReasonCheckFailed, `command sh -c echo 'cannot reach auth' >&2; exit 1`, `exit status 1: "cannot reach auth"`},
		{"a failing endpoint makes the agent unhealthy", func(t *testing.T) []Check {
			return []Check{httpCheck(t, agentServer(t, down)), cmdCheck(t, "true")}
		}, Unhealthy, ReasonCheckFailed, "http http://127.0.0.1", "status 503 Service Unavailable, want 200"},
		{"a check that cannot run makes health unknown", func(t *testing.T) []Check {
			return []Check{cmdCheck(t, "true"), cmdCheck(t, "upkeep-no-such-command-4d1e")}
		}, Unknown, ReasonCheckUnknown, "command upkeep-no-such-command-4d1e", "cannot run"},
		{"a failure outweighs a check that cannot run", func(t *testing.T) []Check {
			return []Check{cmdCheck(t, "upkeep-no-such-command-4d1e"), cmdCheck(t, "false")}
		}, Unhealthy, ReasonCheckFailed, "command false", "exit status 1"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			c := &Checker{Checks: tt.checks(t), Logger: quiet}
			r := c.Probe(t.Context())
			if r.Status != tt.status || r.Reason != tt.reason || !strings.HasPrefix(r.Check, tt.check) || !strings.Contains(r.Message, tt.message) {
				t.Errorf("got %v %s check=%q %q\nwant %v %s check=%q... containing %q", r.Status, r.Reason, r.Check, r.Message, tt.status, tt.reason, tt.check, tt.message)
			}
			if tt.status != Unknown || tt.reason != ReasonNoChecks {
				if r.Probes != 1 {
					t.Errorf("Probes = %d", r.Probes)
				}
			}
		})
	}
}

func TestProbeSeesACrashLoopBetweenReadings(t *testing.T) {
	// A crash-looping unit is "active" at most single readings; only its
	// restart count or main PID gives it away.
	tests := []struct {
		scenario string
		outs     []string
		want     []Status
		message  string
	}{
		{"a rising restart count between readings is unhealthy, then the baseline moves",
			[]string{unitOut("active", 0, 10), unitOut("active", 1, 11), unitOut("active", 1, 11)},
			[]Status{Healthy, Unhealthy, Healthy}, "restarted the unit 1 time(s) since the previous reading (NRestarts 0 -> 1)"},
		{"a new main PID without NRestarts (old systemd) is unhealthy",
			[]string{"ActiveState=active\nMainPID=10\n", "ActiveState=active\nMainPID=12\n"},
			[]Status{Healthy, Unhealthy}, "MainPID 10 -> 12"},
		{"a steady unit stays healthy",
			[]string{unitOut("active", 2, 10)},
			[]Status{Healthy, Healthy, Healthy}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			c := &Checker{Checks: []Check{unitCheck(t, &canned{outs: tt.outs})}, Logger: quiet}
			var last Result
			for i, want := range tt.want {
				last = c.Probe(t.Context())
				if last.Status != want {
					t.Fatalf("reading %d: %v, want %v (%s)", i+1, last.Status, want, last.Message)
				}
				if want == Unhealthy {
					if last.Reason != ReasonRestarted || !strings.Contains(last.Message, tt.message) {
						t.Errorf("reading %d: %s %q, want Restarted containing %q", i+1, last.Reason, last.Message, tt.message)
					}
				}
			}
		})
	}
}

func TestSettle(t *testing.T) {
	const period, interval = 400 * time.Millisecond, 50 * time.Millisecond
	tests := []struct {
		scenario string
		checks   func(t *testing.T) []Check
		status   Status
		reason   string
		message  string
		minTime  time.Duration // Settle must have watched at least this long
		maxTime  time.Duration
	}{
		{"an agent healthy throughout settles healthy after the whole period",
			func(t *testing.T) []Check { return []Check{httpCheck(t, agentServer(t, up)), cmdCheck(t, "true")} },
			Healthy, ReasonHealthy, "passed the last 3 of", period, 5 * time.Second},
		{"an agent that comes up early and stays up settles healthy",
			func(t *testing.T) []Check {
				return []Check{httpCheck(t, agentServer(t, func(n int, _ time.Duration) bool { return n > 2 }))}
			},
			Healthy, ReasonHealthy, "without a restart", period, 5 * time.Second},
		{"an agent down throughout is unhealthy, with the last failure",
			func(t *testing.T) []Check { return []Check{httpCheck(t, agentServer(t, down))} },
			Unhealthy, ReasonCheckFailed, "at the end of the settle period: http http://127.0.0.1", period, 5 * time.Second},
		{"an agent that goes down before the end is unhealthy",
			func(t *testing.T) []Check {
				return []Check{httpCheck(t, agentServer(t, func(_ int, since time.Duration) bool { return since < period/2 }))}
			},
			Unhealthy, ReasonCheckFailed, "status 503", period, 5 * time.Second},
		{"a unit restarted by systemd during the period is unhealthy at once, though active",
			func(t *testing.T) []Check {
				return []Check{unitCheck(t, &canned{outs: []string{unitOut("active", 0, 10), unitOut("active", 0, 10), unitOut("active", 1, 11)}})}
			},
			Unhealthy, ReasonRestarted, "restarted the unit 1 time(s) during the settle period (NRestarts 0 -> 1)", 0, period},
		{"a unit whose main process changed is unhealthy",
			func(t *testing.T) []Check {
				return []Check{unitCheck(t, &canned{outs: []string{unitOut("active", 0, 10), unitOut("activating", 0, 0), unitOut("active", 0, 11)}})}
			},
			Unhealthy, ReasonRestarted, "MainPID 10 -> 11", 0, period},
		{"a check that cannot run at the end leaves health unknown",
			func(t *testing.T) []Check { return []Check{cmdCheck(t, "upkeep-no-such-command-4d1e")} },
			Unknown, ReasonCheckUnknown, "cannot run", period, 5 * time.Second},
		{"no check configured is unknown at once",
			func(*testing.T) []Check { return nil },
			Unknown, ReasonNoChecks, "no health check", 0, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			c := &Checker{Checks: tt.checks(t), Logger: quiet}
			start := time.Now()
			r := c.Settle(t.Context(), period, interval)
			took := time.Since(start)
			if r.Status != tt.status || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Errorf("got %v %s %q\nwant %v %s containing %q", r.Status, r.Reason, r.Message, tt.status, tt.reason, tt.message)
			}
			if took < tt.minTime || took > tt.maxTime {
				t.Errorf("Settle took %s, want %s..%s", took, tt.minTime, tt.maxTime)
			}
			if tt.minTime == period && r.Probes < 3 {
				t.Errorf("only %d probes over the period", r.Probes)
			}
		})
	}
}

func TestSettleTakesAtLeastConsecutiveProbes(t *testing.T) {
	c := &Checker{Checks: []Check{cmdCheck(t, "true")}, Consecutive: 4, Logger: quiet}
	r := c.Settle(t.Context(), time.Millisecond, 20*time.Millisecond)
	if r.Status != Healthy || r.Probes != 4 {
		t.Errorf("got %v after %d probes, want Healthy after 4", r.Status, r.Probes)
	}
}

func TestSettleStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	c := &Checker{Checks: []Check{cmdCheck(t, "true")}, Logger: quiet}
	start := time.Now()
	r := c.Settle(ctx, 10*time.Second, 20*time.Millisecond)
	if r.Status != Unknown || r.Reason != ReasonCancelled || !strings.Contains(r.Message, "last reading: 1 check(s) passed") {
		t.Errorf("got %v", r)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("cancelled Settle took %s", took)
	}
}

func TestSettleMovesTheProbeBaseline(t *testing.T) {
	// After a settle, Probe compares with the settle's last reading, not
	// with an older one.
	run := &canned{outs: []string{unitOut("active", 0, 10), unitOut("active", 0, 10), unitOut("active", 0, 10), unitOut("active", 0, 10)}}
	c := &Checker{Checks: []Check{unitCheck(t, run)}, Logger: quiet}
	c.Probe(t.Context()) // NRestarts 0
	run.outs = []string{unitOut("active", 5, 20)}
	run.calls = nil
	if r := c.Settle(t.Context(), 30*time.Millisecond, 10*time.Millisecond); r.Status != Healthy {
		t.Fatalf("settle: %v", r)
	}
	if r := c.Probe(t.Context()); r.Status != Healthy {
		t.Errorf("probe after settle: %v", r)
	}
}

// staticCheck is a named check for the pure judging tests; its readings are
// given directly in the probes.
type staticCheck string

func (s staticCheck) Name() string                      { return string(s) }
func (s staticCheck) Probe(context.Context) Observation { panic("not probed") }

func TestJudge(t *testing.T) {
	ok := Observation{Status: Healthy, Detail: "status 200 OK"}
	bad := Observation{Status: Unhealthy, Detail: "status 503"}
	unk := Observation{Status: Unknown, Detail: "cannot run"}
	seq := func(os ...Observation) []probe {
		ps := make([]probe, len(os))
		for i, o := range os {
			ps[i] = probe{obs: []Observation{o}}
		}
		return ps
	}
	tests := []struct {
		scenario string
		probes   []probe
		status   Status
		reason   string
		message  string
	}{
		{"all probes passing is healthy", seq(ok, ok, ok, ok, ok), Healthy, ReasonHealthy, "passed the last 3 of 5 probes"},
		{"early failures outside the last three do not count", seq(bad, bad, ok, ok, ok), Healthy, ReasonHealthy, "last 3 of 5"},
		{"a failing last probe is unhealthy", seq(ok, ok, ok, ok, bad), Unhealthy, ReasonCheckFailed, "at the end of the settle period: agent failed: status 503"},
		{"a failure just before the end is flapping", seq(ok, ok, ok, bad, ok), Unhealthy, ReasonFlapping, "probe 4 of 5 did not (agent failed: status 503); the last 3 probes must all pass"},
		{"a failure third from the end is flapping", seq(ok, ok, bad, ok, ok), Unhealthy, ReasonFlapping, "probe 3 of 5"},
		{"an unknown reading among the last three is flapping", seq(ok, ok, unk, ok, ok), Unhealthy, ReasonFlapping, "could not be read"},
		{"an unknown last reading is unknown", seq(ok, ok, ok, ok, unk), Unknown, ReasonCheckUnknown, "cannot run"},
		{"fewer probes than three all passing is healthy", seq(ok, ok), Healthy, ReasonHealthy, "last 2 of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			c := &Checker{Checks: []Check{staticCheck("agent")}}
			r := c.judge(tt.probes, 3, time.Second)
			if r.Status != tt.status || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Errorf("got %v %s %q\nwant %v %s containing %q", r.Status, r.Reason, r.Message, tt.status, tt.reason, tt.message)
			}
			if r.Probes != len(tt.probes) {
				t.Errorf("Probes = %d", r.Probes)
			}
		})
	}
}

func TestRestartRule(t *testing.T) {
	u := func(restarts int64, has bool, pid int) Observation {
		return Observation{Status: Healthy, Unit: &UnitState{ActiveState: "active", NRestarts: restarts, HasNRestarts: has, MainPID: pid}}
	}
	seq := func(os ...Observation) []probe {
		ps := make([]probe, len(os))
		for i, o := range os {
			ps[i] = probe{obs: []Observation{o}}
		}
		return ps
	}
	tests := []struct {
		scenario  string
		probes    []probe
		restarted bool
		message   string
	}{
		{"a steady count and PID is no restart", seq(u(3, true, 10), u(3, true, 10), u(3, true, 10)), false, ""},
		{"a count rising by two is a restart", seq(u(3, true, 10), u(5, true, 10)), true, "2 time(s) during x (NRestarts 3 -> 5)"},
		{"a count rising and falling back still rose", seq(u(0, true, 10), u(1, true, 10), u(0, true, 10)), true, "NRestarts 0 -> 1"},
		{"a count going down (reset) is no restart", seq(u(4, true, 10), u(0, true, 10)), false, ""},
		{"a process starting (PID 0 to 42) is no restart", seq(u(0, false, 0), u(0, false, 42), u(0, false, 42)), false, ""},
		{"the same PID after a gap is no restart", seq(u(0, false, 42), u(0, false, 0), u(0, false, 42)), false, ""},
		{"a different PID after a gap is a restart", seq(u(0, false, 42), u(0, false, 0), u(0, false, 43)), true, "MainPID 42 -> 43"},
		{"a count appearing where it was unknown is not compared", seq(u(0, false, 7), u(9, true, 7)), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			c := &Checker{Checks: []Check{staticCheck("unit x.service")}}
			r, restarted := c.restarts(tt.probes, "during x")
			if restarted != tt.restarted {
				t.Fatalf("restarted = %v (%s), want %v", restarted, r.Message, tt.restarted)
			}
			if restarted && (r.Status != Unhealthy || r.Reason != ReasonRestarted || r.Check != "unit x.service" || !strings.Contains(r.Message, tt.message)) {
				t.Errorf("got %v %s %q %q, want message containing %q", r.Status, r.Reason, r.Check, r.Message, tt.message)
			}
		})
	}
}

// BenchmarkProbe is one reading of an HTTP check against a loopback server.
func BenchmarkProbe(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	hc, err := NewHTTPCheck(srv.URL, 0, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	c := &Checker{Checks: []Check{hc}, Logger: quiet}
	b.ReportAllocs()
	for b.Loop() {
		if r := c.Probe(b.Context()); r.Status != Healthy {
			b.Fatal(r)
		}
	}
}
