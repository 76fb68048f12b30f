package health

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestParseUnitShow(t *testing.T) {
	tests := []struct {
		scenario string
		out      string
		want     UnitState
		healthy  bool
		err      string
	}{
		{"a running service is healthy",
			"LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=0\nMainPID=4242\n",
			UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running", HasNRestarts: true, MainPID: 4242}, true, ""},
		{"properties come in any order and unknown ones are ignored",
			"MainPID=7\nNRestarts=2\nSubState=running\nActiveState=active\nLoadState=loaded\nId=teleport.service\n",
			UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running", NRestarts: 2, HasNRestarts: true, MainPID: 7}, true, ""},
		{"a oneshot that exited successfully is active",
			"LoadState=loaded\nActiveState=active\nSubState=exited\nNRestarts=0\nMainPID=0\n",
			UnitState{LoadState: "loaded", ActiveState: "active", SubState: "exited", HasNRestarts: true}, true, ""},
		{"a failed unit is unhealthy",
			"LoadState=loaded\nActiveState=failed\nSubState=failed\nNRestarts=5\nMainPID=0\n",
			UnitState{LoadState: "loaded", ActiveState: "failed", SubState: "failed", NRestarts: 5, HasNRestarts: true}, false, ""},
		{"a unit waiting to restart after a crash is unhealthy",
			"LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nNRestarts=3\nMainPID=0\n",
			UnitState{LoadState: "loaded", ActiveState: "activating", SubState: "auto-restart", NRestarts: 3, HasNRestarts: true}, false, ""},
		{"a stopped unit is unhealthy",
			"LoadState=loaded\nActiveState=inactive\nSubState=dead\nNRestarts=0\nMainPID=0\n",
			UnitState{LoadState: "loaded", ActiveState: "inactive", SubState: "dead", HasNRestarts: true}, false, ""},
		{"a unit that does not exist is unhealthy",
			"LoadState=not-found\nActiveState=inactive\nSubState=dead\nNRestarts=0\nMainPID=0\n",
			UnitState{LoadState: "not-found", ActiveState: "inactive", SubState: "dead", HasNRestarts: true}, false, ""},
		{"old systemd without NRestarts is read without a count",
			"LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=12\n",
			UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 12}, true, ""},
		{"CRLF line ends and blank lines are tolerated",
			"\r\nActiveState=active\r\nSubState=running\r\n\r\n",
			UnitState{ActiveState: "active", SubState: "running"}, true, ""},
		{"a line without = is an error naming the line", "ActiveState=active\nwarning: something\n", UnitState{}, false, `line 2: want Key=Value, got "warning: something"`},
		{"a non-numeric NRestarts is an error", "ActiveState=active\nNRestarts=[not set]\n", UnitState{}, false, `NRestarts: "[not set]" is not a count`},
		{"a negative MainPID is an error", "ActiveState=active\nMainPID=-1\n", UnitState{}, false, "MainPID"},
		{"output without ActiveState is an error", "LoadState=loaded\nSubState=running\n", UnitState{}, false, "no ActiveState"},
		{"empty output is an error", "", UnitState{}, false, "no ActiveState"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			got, err := ParseUnitShow([]byte(tt.out))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.Healthy() != tt.healthy {
				t.Errorf("Healthy() = %v, want %v", got.Healthy(), tt.healthy)
			}
		})
	}
}

// canned is a Runner that answers from a list of outputs, one per call
// (the last repeats), and records the command lines it was given.
type canned struct {
	outs  []string
	err   error
	calls [][]string
}

func (c *canned) run(_ context.Context, argv []string) ([]byte, []byte, error) {
	c.calls = append(c.calls, argv)
	if c.err != nil {
		return nil, []byte("Failed to connect to bus: Host is down\n"), c.err
	}
	i := min(len(c.calls), len(c.outs)) - 1
	return []byte(c.outs[i]), nil, nil
}

func TestUnitCheckProbe(t *testing.T) {
	tests := []struct {
		scenario string
		run      *canned
		status   Status
		detail   string
	}{
		{"an active unit is healthy", &canned{outs: []string{"LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=0\nMainPID=9\n"}},
			Healthy, "active/running, NRestarts=0, MainPID=9"},
		{"a failed unit is unhealthy with its state", &canned{outs: []string{"LoadState=loaded\nActiveState=failed\nSubState=failed\nNRestarts=4\nMainPID=0\n"}},
			Unhealthy, "failed/failed, NRestarts=4, MainPID=0"},
		{"a missing unit says to check the name", &canned{outs: []string{"LoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\n"}},
			Unhealthy, "does not exist (LoadState=not-found); check the unit name"},
		{"a unit in its restart delay says it crashed", &canned{outs: []string{"LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nNRestarts=2\nMainPID=0\n"}},
			Unhealthy, "waiting to be restarted after a crash"},
		{"systemctl failing is unknown with its message", &canned{err: &ExitError{Argv: []string{"systemctl"}, Code: 1}},
			Unknown, `systemctl: exit status 1: "Failed to connect to bus: Host is down"`},
		{"unreadable systemctl output is unknown", &canned{outs: []string{"garbage"}}, Unknown, "want Key=Value"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			c, err := NewUnitCheck("teleport", tt.run.run)
			if err != nil {
				t.Fatal(err)
			}
			o := c.Probe(t.Context())
			if o.Status != tt.status || !strings.Contains(o.Detail, tt.detail) {
				t.Errorf("got %v %q, want %v containing %q", o.Status, o.Detail, tt.status, tt.detail)
			}
			want := []string{"systemctl", "show", "--property=LoadState,ActiveState,SubState,NRestarts,MainPID", "teleport.service"}
			if len(tt.run.calls) != 1 || !slices.Equal(tt.run.calls[0], want) {
				t.Errorf("ran %q, want %q", tt.run.calls, want)
			}
			if c.Name() != "unit teleport.service" {
				t.Errorf("Name() = %q", c.Name())
			}
		})
	}
}

func TestNewUnitCheck(t *testing.T) {
	for _, tt := range []struct {
		scenario, name, want, err string
	}{
		{"a bare name gets .service", "teleport", "teleport.service", ""},
		{"a full name is kept", "teleport.service", "teleport.service", ""},
		{"a template instance is kept", "agent@eu.service", "agent@eu.service", ""},
		{"an empty name is refused", "", "", "empty"},
		{"a name that looks like an option is refused", "--all", "", "not a systemd unit name"},
		{"a name with a space is refused", "tele port", "", "not a systemd unit name"},
		{"a path is refused", "/etc/systemd/system/x.service", "", "not a systemd unit name"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			c, err := NewUnitCheck(tt.name, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || c.Unit != tt.want {
				t.Fatalf("got %+v, %v; want unit %q", c, err, tt.want)
			}
		})
	}
}

// TestUnitCheckWithRealSystemctl runs the real systemctl through Exec. On a
// machine without systemd as PID 1 (a build container) systemctl fails and
// the check is Unknown; with systemd, an absent unit is not-found. The e2e
// suite drives a real systemd in a container.
func TestUnitCheckWithRealSystemctl(t *testing.T) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		t.Skip("no systemctl on this machine")
	}
	c, err := NewUnitCheck("upkeep-test-no-such-unit-7f3a", nil)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Probe(t.Context())
	switch o.Status {
	case Unknown:
		var ee *ExitError
		_, _, runErr := Exec(t.Context(), SystemctlShowArgv(c.Unit))
		if !errors.As(runErr, &ee) || !strings.Contains(o.Detail, "systemctl show upkeep-test-no-such-unit-7f3a.service") {
			t.Errorf("unknown for the wrong reason: %q (run error %v)", o.Detail, runErr)
		}
	case Unhealthy:
		if !strings.Contains(o.Detail, "does not exist") {
			t.Errorf("detail %q", o.Detail)
		}
	default:
		t.Errorf("an absent unit is %v: %q", o.Status, o.Detail)
	}
	t.Logf("real systemctl: %v %s", o.Status, o.Detail)
}

func BenchmarkParseUnitShow(b *testing.B) {
	out := []byte("LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=0\nMainPID=4242\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseUnitShow(out); err != nil {
			b.Fatal(err)
		}
	}
}
