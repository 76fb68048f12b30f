package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultUnitTimeout bounds one systemctl call.
const DefaultUnitTimeout = 5 * time.Second

// unitProperties are the properties a unit check reads. LoadState is read
// beside the four that judge health, to tell a unit that does not exist
// from one that is stopped.
const unitProperties = "LoadState,ActiveState,SubState,NRestarts,MainPID"

// UnitState is what `systemctl show` says about a unit.
type UnitState struct {
	LoadState   string // loaded, not-found, masked, ...; "" if not reported
	ActiveState string // active, activating, deactivating, failed, inactive, reloading
	SubState    string // running, auto-restart, exited, dead, ...
	// NRestarts counts systemd's automatic restarts of the unit (Restart=);
	// HasNRestarts is false on systemd versions without the property.
	NRestarts    int64
	HasNRestarts bool
	MainPID      int // 0 when no main process runs
}

// Healthy reports whether the unit is up right now: loaded and active.
// Restarts are judged across readings, not here.
func (u UnitState) Healthy() bool {
	return u.ActiveState == "active" && (u.LoadState == "" || u.LoadState == "loaded")
}

// Describe is a short summary, e.g. "active/running, NRestarts=0, MainPID=42".
func (u UnitState) Describe() string {
	var b strings.Builder
	b.WriteString(u.ActiveState)
	if u.SubState != "" {
		b.WriteString("/" + u.SubState)
	}
	if u.LoadState != "" && u.LoadState != "loaded" {
		b.WriteString(", LoadState=" + u.LoadState)
	}
	if u.HasNRestarts {
		b.WriteString(", NRestarts=" + strconv.FormatInt(u.NRestarts, 10))
	}
	b.WriteString(", MainPID=" + strconv.Itoa(u.MainPID))
	return b.String()
}

// SystemctlShowArgv is the command line that reads unit's state.
func SystemctlShowArgv(unit string) []string {
	return []string{"systemctl", "show", "--property=" + unitProperties, unit}
}

// ParseUnitShow reads the output of `systemctl show --property=...`: one
// Key=Value per line. Unknown keys are ignored; ActiveState must be present,
// and NRestarts and MainPID, when present, must be integers.
func ParseUnitShow(out []byte) (UnitState, error) {
	var u UnitState
	seenActive := false
	for n, line := range bytes.Split(out, []byte{'\n'}) {
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		key, val, ok := bytes.Cut(line, []byte{'='})
		if !ok {
			return UnitState{}, fmt.Errorf("systemctl show output line %d: want Key=Value, got %+q", n+1, truncate(string(line), 60))
		}
		switch string(key) {
		case "LoadState":
			u.LoadState = string(val)
		case "ActiveState":
			u.ActiveState = string(val)
			seenActive = true
		case "SubState":
			u.SubState = string(val)
		case "NRestarts":
			v, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil || v < 0 {
				return UnitState{}, fmt.Errorf("systemctl show output line %d: NRestarts: %+q is not a count", n+1, truncate(string(val), 30))
			}
			u.NRestarts, u.HasNRestarts = v, true
		case "MainPID":
			v, err := strconv.Atoi(string(val))
			if err != nil || v < 0 {
				return UnitState{}, fmt.Errorf("systemctl show output line %d: MainPID: %+q is not a process id", n+1, truncate(string(val), 30))
			}
			u.MainPID = v
		}
	}
	if !seenActive || u.ActiveState == "" {
		return UnitState{}, errors.New("systemctl show output has no ActiveState")
	}
	return u, nil
}

// UnitCheck reads a systemd unit's state with systemctl.
type UnitCheck struct {
	Unit string
	// Run runs systemctl; nil means Exec.
	Run Runner
	// Timeout bounds the systemctl call; 0 means DefaultUnitTimeout.
	Timeout time.Duration
}

// NewUnitCheck checks the unit name (no spaces, control characters or
// slashes, not starting with "-") and returns its check. A name without a
// type suffix gets ".service", as systemctl assumes.
func NewUnitCheck(unit string, run Runner) (*UnitCheck, error) {
	if unit == "" {
		return nil, errors.New("health unit check: the unit name is empty")
	}
	if strings.HasPrefix(unit, "-") || strings.ContainsAny(unit, "/ \t\n\r\x00") {
		return nil, fmt.Errorf("health unit check: %+q is not a systemd unit name", unit)
	}
	if !strings.Contains(unit, ".") {
		unit += ".service"
	}
	return &UnitCheck{Unit: unit, Run: run}, nil
}

// Name is "unit <name>".
func (c *UnitCheck) Name() string { return "unit " + c.Unit }

// Probe runs systemctl show and judges the unit: healthy when loaded and
// active; Unknown when systemctl cannot run or its output cannot be read.
func (c *UnitCheck) Probe(ctx context.Context) Observation {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultUnitTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	run := c.Run
	if run == nil {
		run = Exec
	}
	stdout, stderr, err := run(ctx, SystemctlShowArgv(c.Unit))
	if err != nil {
		return Observation{Status: Unknown, Detail: fmt.Sprintf("systemctl show %s: %v%s", c.Unit, err, lastLineSuffix(stderr))}
	}
	u, err := ParseUnitShow(stdout)
	if err != nil {
		return Observation{Status: Unknown, Detail: err.Error()}
	}
	o := Observation{Status: Unhealthy, Unit: &u, Detail: u.Describe()}
	switch {
	case u.Healthy():
		o.Status = Healthy
	case u.LoadState == "not-found":
		o.Detail = fmt.Sprintf("unit %s does not exist (LoadState=not-found); check the unit name", c.Unit)
	case u.ActiveState == "activating" && u.SubState == "auto-restart":
		o.Detail = fmt.Sprintf("the unit is waiting to be restarted after a crash (%s)", u.Describe())
	}
	return o
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
