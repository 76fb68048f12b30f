// Package health judges whether an agent is healthy, from checks the
// operator configures (an HTTP endpoint, a systemd unit, a command). A single
// reading (Checker.Probe) feeds the update decision; after an update,
// Checker.Settle watches the agent over a settle period, because a restart
// that returns 0 proves nothing and one good probe can hide a crash loop.
//
// # The settle rule
//
// Settle probes every check at once, then every interval, until the period
// has passed (a last probe at the end of the period), taking at least
// Consecutive probes (default 3) whatever the period. The agent is Healthy
// only if all of these hold:
//
//  1. the last probe passed every check;
//  2. the last Consecutive probes all passed every check (the agent is not
//     flapping as the period ends);
//  3. no systemd unit's NRestarts rose between the first and the last probe,
//     and its MainPID (when set) never changed: systemd restarted the agent
//     during the period, even if it is up at the end.
//
// Rule 3 cannot be undone by later probes, so Settle stops early and
// reports Unhealthy as soon as it sees a restart. A probe whose check could
// not run at all (systemctl missing, a command not found) is Unknown: it
// does not pass, and if the last probe is Unknown the result is Unknown, not
// Unhealthy. Without any check configured the result is Unknown.
package health

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"
)

// Default settle parameters.
const (
	DefaultSettlePeriod   = 30 * time.Second
	DefaultSettleInterval = 2 * time.Second
	DefaultConsecutive    = 3
)

// Status is a health verdict.
type Status int

const (
	// Unknown: health cannot be judged (no check configured, or a check
	// could not run). It is the zero value.
	Unknown Status = iota
	Healthy
	Unhealthy
)

func (s Status) String() string {
	switch s {
	case Unknown:
		return "Unknown"
	case Healthy:
		return "Healthy"
	case Unhealthy:
		return "Unhealthy"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// LogValue logs the name, not the number, in JSON logs too.
func (s Status) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Reasons of a Result, one word each, for logs, metrics and status pages.
const (
	ReasonHealthy      = "Healthy"      // every check passed
	ReasonNoChecks     = "NoChecks"     // no check configured
	ReasonCheckFailed  = "CheckFailed"  // a check failed (at the last probe)
	ReasonCheckUnknown = "CheckUnknown" // a check could not run
	ReasonFlapping     = "Flapping"     // the last probe passed, an earlier one of the last N did not
	ReasonRestarted    = "Restarted"    // a unit's restart count rose or its main PID changed
	ReasonCancelled    = "Cancelled"    // the context ended before the settle period
)

// Observation is one check's reading.
type Observation struct {
	Status Status
	// Detail is the check's last status or output, short and on one line,
	// e.g. "status 503 Service Unavailable, want 200" or "exit status 1: no
	// route to auth server".
	Detail string
	// Unit holds the unit's state for systemd checks (nil for others); its
	// restart count and main PID are compared across probes.
	Unit *UnitState
}

// Check is one way of looking at the agent.
type Check interface {
	// Name says what is checked, e.g. "http http://127.0.0.1:3000/readyz".
	Name() string
	// Probe reads the check once. It must return by ctx's deadline.
	Probe(ctx context.Context) Observation
}

// Result is a verdict with its reason, in the cert-manager style: Reason is
// one word, Message a sentence naming the check and its last output.
type Result struct {
	Status  Status
	Reason  string
	Message string
	// Check names the check that decided a non-healthy result ("" if none).
	Check string
	// Probes is how many times the checks were read.
	Probes int
}

func (r Result) String() string { return fmt.Sprintf("%s (%s): %s", r.Status, r.Reason, r.Message) }

// Checker combines the configured checks. The zero value has no checks and
// always answers Unknown. A Checker is safe for concurrent use.
type Checker struct {
	Checks []Check
	// Consecutive is how many final probes in a row must pass in Settle;
	// 0 means DefaultConsecutive.
	Consecutive int
	// Logger receives settle progress; nil means slog.Default().
	Logger *slog.Logger

	mu sync.Mutex
	// lastUnit remembers each unit check's last state, so that Probe can
	// see a crash loop between two single readings.
	lastUnit map[int]UnitState
}

// NewChecker returns a Checker over checks.
func NewChecker(checks ...Check) *Checker { return &Checker{Checks: checks} }

func (c *Checker) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// probe is one reading of every check.
type probe struct {
	at  time.Time
	obs []Observation
}

func (c *Checker) probeAll(ctx context.Context) probe {
	p := probe{at: time.Now(), obs: make([]Observation, len(c.Checks))}
	for i, ch := range c.Checks {
		p.obs[i] = ch.Probe(ctx)
	}
	return p
}

// Probe reads every check once: Unhealthy if any check fails, else Unknown
// if any check could not run, else Healthy; Unknown when no check is
// configured. A systemd unit whose restart count rose or whose main PID
// changed since the previous Probe (or Settle) of this Checker is Unhealthy
// even if it is active right now: a crash-looping agent is up for most
// single readings.
func (c *Checker) Probe(ctx context.Context) Result {
	if len(c.Checks) == 0 {
		return noChecks()
	}
	p := c.probeAll(ctx)
	c.mu.Lock()
	prev := maps.Clone(c.lastUnit) // remember overwrites the map
	c.remember(p)
	c.mu.Unlock()
	if prev != nil {
		base := probe{obs: make([]Observation, len(c.Checks))}
		for i, u := range prev {
			base.obs[i].Unit = &u
		}
		if r, restarted := c.restarts([]probe{base, p}, "since the previous reading"); restarted {
			r.Probes = 1
			return r
		}
	}
	r := c.verdict(p)
	r.Probes = 1
	return r
}

// remember stores the unit states of p; c.mu must be held.
func (c *Checker) remember(p probe) {
	if c.lastUnit == nil {
		c.lastUnit = make(map[int]UnitState)
	}
	for i, o := range p.obs {
		if o.Unit != nil {
			c.lastUnit[i] = *o.Unit
		}
	}
}

// verdict judges one probe.
func (c *Checker) verdict(p probe) Result {
	unknown := -1
	for i, o := range p.obs {
		switch o.Status {
		case Unhealthy:
			return Result{Status: Unhealthy, Reason: ReasonCheckFailed, Check: c.Checks[i].Name(),
				Message: fmt.Sprintf("%s failed: %s", c.Checks[i].Name(), o.Detail)}
		case Unknown:
			if unknown < 0 {
				unknown = i
			}
		}
	}
	if unknown >= 0 {
		return Result{Status: Unknown, Reason: ReasonCheckUnknown, Check: c.Checks[unknown].Name(),
			Message: fmt.Sprintf("%s could not be read: %s", c.Checks[unknown].Name(), p.obs[unknown].Detail)}
	}
	return Result{Status: Healthy, Reason: ReasonHealthy, Message: fmt.Sprintf("%d check(s) passed: %s", len(p.obs), c.names())}
}

func (c *Checker) names() string {
	names := make([]string, len(c.Checks))
	for i, ch := range c.Checks {
		names[i] = ch.Name()
	}
	return strings.Join(names, ", ")
}

func passed(p probe) bool {
	for _, o := range p.obs {
		if o.Status != Healthy {
			return false
		}
	}
	return true
}

// restarts looks for rule 3 across probes: a unit's NRestarts above its
// first reading, or two different non-zero main PIDs.
func (c *Checker) restarts(ps []probe, during string) (Result, bool) {
	for i := range c.Checks {
		var first *UnitState
		for _, p := range ps {
			u := p.obs[i].Unit
			if u == nil {
				continue
			}
			if first == nil {
				first = u
				continue
			}
			name := c.Checks[i].Name()
			if first.HasNRestarts && u.HasNRestarts && u.NRestarts > first.NRestarts {
				return Result{Status: Unhealthy, Reason: ReasonRestarted, Check: name, Message: fmt.Sprintf(
					"%s: systemd restarted the unit %d time(s) %s (NRestarts %d -> %d); now %s",
					name, u.NRestarts-first.NRestarts, during, first.NRestarts, u.NRestarts, u.Describe())}, true
			}
			if first.MainPID != 0 && u.MainPID != 0 && u.MainPID != first.MainPID {
				return Result{Status: Unhealthy, Reason: ReasonRestarted, Check: name, Message: fmt.Sprintf(
					"%s: the main process changed %s (MainPID %d -> %d), so the agent restarted; now %s",
					name, during, first.MainPID, u.MainPID, u.Describe())}, true
			}
			if first.MainPID == 0 && u.MainPID != 0 {
				first = u // the first PID seen is the baseline
			}
		}
	}
	return Result{}, false
}

// Settle watches the agent for period, probing every interval, and judges it
// by the package's settle rule. period and interval default to
// DefaultSettlePeriod and DefaultSettleInterval when not positive.
func (c *Checker) Settle(ctx context.Context, period, interval time.Duration) Result {
	if len(c.Checks) == 0 {
		return noChecks()
	}
	if period <= 0 {
		period = DefaultSettlePeriod
	}
	if interval <= 0 {
		interval = DefaultSettleInterval
	}
	need := c.Consecutive
	if need <= 0 {
		need = DefaultConsecutive
	}
	log := c.logger()
	log.Info("health: settling", "checks", c.names(), "period", period, "interval", interval, "consecutive", need)

	start := time.Now()
	deadline := start.Add(period)
	var ps []probe
	var lastStatus Status = -1
	timer := time.NewTimer(0)
	defer timer.Stop()
	for k := 1; ; k++ {
		select {
		case <-ctx.Done():
			r := Result{Status: Unknown, Reason: ReasonCancelled, Probes: len(ps),
				Message: fmt.Sprintf("settling stopped after %s and %d probe(s): %v", time.Since(start).Round(time.Millisecond), len(ps), ctx.Err())}
			if len(ps) > 0 {
				last := c.verdict(ps[len(ps)-1])
				r.Message += "; last reading: " + last.Message
			}
			return r
		case <-timer.C:
		}
		p := c.probeAll(ctx)
		if ctx.Err() != nil {
			continue // a probe cut short by cancellation is no reading
		}
		ps = append(ps, p)
		v := c.verdict(p)
		log.Debug("health: probe", "n", len(ps), "status", v.Status.String(), "message", v.Message)
		if v.Status != lastStatus {
			log.Info("health: agent is "+v.Status.String(), "probe", len(ps), "elapsed", time.Since(start).Round(time.Millisecond), "message", v.Message)
			lastStatus = v.Status
		}
		if r, restarted := c.restarts(ps, "during the settle period"); restarted {
			r.Probes = len(ps)
			c.finish(log, p, r)
			return r
		}
		now := time.Now()
		if !now.Before(deadline) && len(ps) >= need {
			break
		}
		// Ticks at start+k*interval, with one landing on the deadline.
		next := start.Add(time.Duration(k) * interval)
		if next.After(deadline) && now.Before(deadline) {
			next = deadline
		}
		timer.Reset(max(next.Sub(now), 0))
	}
	r := c.judge(ps, need, time.Since(start))
	c.finish(log, ps[len(ps)-1], r)
	return r
}

func (c *Checker) finish(log *slog.Logger, last probe, r Result) {
	c.mu.Lock()
	c.remember(last)
	c.mu.Unlock()
	log.Info("health: settled", "status", r.Status.String(), "reason", r.Reason, "probes", r.Probes, "message", r.Message)
}

// judge applies rules 1 and 2 to a complete settle run (rule 3 is checked
// as probes arrive).
func (c *Checker) judge(ps []probe, need int, took time.Duration) Result {
	last := c.verdict(ps[len(ps)-1])
	last.Probes = len(ps)
	if last.Status != Healthy {
		last.Message = fmt.Sprintf("at the end of the settle period: %s", last.Message)
		return last
	}
	tail := ps[len(ps)-min(need, len(ps)):]
	for j := len(tail) - 1; j >= 0; j-- {
		if passed(tail[j]) {
			continue
		}
		bad := c.verdict(tail[j])
		return Result{Status: Unhealthy, Reason: ReasonFlapping, Check: bad.Check, Probes: len(ps), Message: fmt.Sprintf(
			"the last probe passed, but probe %d of %d did not (%s); the last %d probes must all pass",
			len(ps)-len(tail)+j+1, len(ps), bad.Message, need)}
	}
	return Result{Status: Healthy, Reason: ReasonHealthy, Probes: len(ps), Message: fmt.Sprintf(
		"%d check(s) passed the last %d of %d probes over %s without a restart: %s",
		len(c.Checks), len(tail), len(ps), took.Round(time.Millisecond), c.names())}
}

func noChecks() Result {
	return Result{Status: Unknown, Reason: ReasonNoChecks, Message: "no health check is configured, so the agent's health is unknown"}
}
