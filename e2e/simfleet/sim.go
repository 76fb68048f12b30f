package simfleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Agent is one simulated updater's identity.
type Agent struct {
	ID, Group string
}

// Config describes a simulation. Zero durations take the defaults.
type Config struct {
	// URLs are the replicas' roots; agent i asks URLs[i%len(URLs)] first
	// and fails over to the next when it cannot reach it.
	URLs    []string
	Token   string
	Channel string
	Agents  []Agent
	// Start is the version every agent runs at first.
	Start string
	// Broken versions fail their install: the agent rolls back to what it
	// ran, reports outcome rolledBack and never tries that version again.
	Broken []string
	// Poll is the time between passes (jittered ±25%); default 400ms.
	Poll time.Duration
	// Install is how long an install holds its lease; default 100ms.
	Install time.Duration
	// Heartbeat: a pass that changes nothing still reports this often;
	// default 5s.
	Heartbeat time.Duration
	// Duration bounds the simulation; default 2m.
	Duration time.Duration
}

// Event kinds of the log.
const (
	EvAnswer       = "answer"       // a version answer that differs from the agent's previous one
	EvLeaseGranted = "leaseGranted" // POST /v1/leases answered 200
	EvLeaseRefused = "leaseRefused" // answered 409
	EvInstalled    = "installed"    // the new version runs, healthy
	EvRolledBack   = "rolledBack"   // the install failed; the old version runs again
	EvReleased     = "released"     // DELETE /v1/leases answered
	EvReported     = "reported"     // POST /v1/reports answered 2xx
	EvError        = "error"        // a call failed; Err says how
)

// Event is one entry of the simulation's log.
type Event struct {
	At      time.Time // when the answer was received, or the step done
	Agent   string
	Group   string
	Kind    string
	Version string // answered, leased, installed or reported current version
	Rollout string // the Upkeep-Rollout header of an answer
	Outcome string // of a report
	Err     string
}

// maxEvents bounds the log; beyond it the simulation counts what it drops.
const maxEvents = 1 << 20

// Sim is a running simulation.
type Sim struct {
	cfg    Config
	client *Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	events     []Event
	dropped    int
	current    map[string]string // agent → version it runs
	installing map[string]int    // group → agents between lease granted and released
	maxInst    map[string]int
}

// Start validates cfg and starts one goroutine per agent. Stop ends them;
// they also end by themselves after cfg.Duration or when ctx is done.
func Start(ctx context.Context, cfg Config) (*Sim, error) {
	if len(cfg.URLs) == 0 || cfg.Channel == "" || len(cfg.Agents) == 0 || cfg.Start == "" {
		return nil, errors.New("simfleet: URLs, Channel, Agents and Start are required")
	}
	seen := map[string]bool{}
	for _, a := range cfg.Agents {
		if seen[a.ID] {
			return nil, fmt.Errorf("simfleet: agent id %q is used twice", a.ID)
		}
		seen[a.ID] = true
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 400 * time.Millisecond
	}
	if cfg.Install <= 0 {
		cfg.Install = 100 * time.Millisecond
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	s := &Sim{
		cfg: cfg, client: NewClient(cfg.Token, len(cfg.Agents)), cancel: cancel,
		current: map[string]string{}, installing: map[string]int{}, maxInst: map[string]int{},
	}
	for i, a := range cfg.Agents {
		s.current[a.ID] = cfg.Start
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(ctx, i, a)
		}()
	}
	return s, nil
}

// Stop ends every agent and waits for them.
func (s *Sim) Stop() {
	s.cancel()
	s.wg.Wait()
}

// Client is the simulation's HTTP client, for the test's own calls.
func (s *Sim) Client() *Client { return s.client }

func (s *Sim) log(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) >= maxEvents {
		s.dropped++
		return
	}
	s.events = append(s.events, e)
}

// Events is a copy of the log, in the order it was written.
func (s *Sim) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// Filter is the events of kind (and version, if not "").
func (s *Sim) Filter(kind, version string) []Event {
	var out []Event
	for _, e := range s.Events() {
		if e.Kind == kind && (version == "" || e.Version == version) {
			out = append(out, e)
		}
	}
	return out
}

// Current is the version each agent runs.
func (s *Sim) Current() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]string, len(s.current))
	for k, v := range s.current {
		m[k] = v
	}
	return m
}

// CountOn is how many agents run version.
func (s *Sim) CountOn(version string) int {
	n := 0
	for _, v := range s.Current() {
		if v == version {
			n++
		}
	}
	return n
}

// MaxInstalling is, per group, the most agents the simulation saw holding
// a granted lease at once (a lower bound of the server's count: an agent
// counts itself after the grant arrives and stops before it releases).
func (s *Sim) MaxInstalling() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.maxInst))
	for k, v := range s.maxInst {
		m[k] = v
	}
	return m
}

// Errors are the logged failures, at most limit of them, and how many in all.
func (s *Sim) Errors(limit int) ([]string, int) {
	var out []string
	n := 0
	for _, e := range s.Events() {
		if e.Kind == EvError {
			n++
			if len(out) < limit {
				out = append(out, fmt.Sprintf("%s %s: %s", e.At.Format("15:04:05.000"), e.Agent, e.Err))
			}
		}
	}
	return out, n
}

func jitter(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// call runs f against the agent's replicas in order until one answers.
func (s *Sim) call(i int, f func(base string) error) error {
	var err error
	for k := range s.cfg.URLs {
		base := s.cfg.URLs[(i+k)%len(s.cfg.URLs)]
		if err = f(base); !isDown(err) {
			return err
		}
	}
	return err
}

// run is one updater's loop: ask, lease, install, release, report.
func (s *Sim) run(ctx context.Context, i int, a Agent) {
	current := s.cfg.Start
	failed := map[string]bool{}
	lastAnswer := ""
	var lastReport time.Time
	fail := func(err error) {
		if ctx.Err() == nil {
			s.log(Event{At: time.Now(), Agent: a.ID, Group: a.Group, Kind: EvError, Err: err.Error()})
		}
	}
	report := func(target, action, rule, reason, outcome string) {
		r := Report{
			AgentID: a.ID, Group: a.Group, Channel: s.cfg.Channel, Kind: "host", Hostname: a.ID,
			CurrentVersion: current, TargetVersion: target, Health: "healthy",
			Action: action, Rule: rule, Reason: reason, Message: "simulated pass",
			Outcome: outcome, UpdaterVersion: "simfleet", Time: time.Now().UTC(),
		}
		err := s.call(i, func(base string) error { return s.client.Report(ctx, base, r) })
		if err != nil {
			fail(err)
			return
		}
		lastReport = time.Now()
		s.log(Event{At: lastReport, Agent: a.ID, Group: a.Group, Kind: EvReported, Version: current, Outcome: outcome})
	}

	report(current, "Nothing", "UpToDate", "UpToDate", "")
	for sleep(ctx, jitter(s.cfg.Poll)) {
		var ans Answer
		err := s.call(i, func(base string) (err error) {
			ans, err = s.client.Version(ctx, base, s.cfg.Channel, a.ID, a.Group)
			return err
		})
		if err != nil {
			fail(err)
			continue
		}
		if ans.Version != lastAnswer {
			lastAnswer = ans.Version
			s.log(Event{At: time.Now(), Agent: a.ID, Group: a.Group, Kind: EvAnswer, Version: ans.Version, Rollout: ans.Rollout})
		}
		if ans.Version == current || ans.Version == "none" || failed[ans.Version] {
			if time.Since(lastReport) > s.cfg.Heartbeat {
				report(ans.Version, "Nothing", "UpToDate", "UpToDate", "")
			}
			continue
		}
		if !s.update(ctx, i, a, ans.Version, &current, failed, fail, report) {
			continue
		}
	}
}

// update takes a lease, simulates the install, releases the lease and
// reports; false when no lease was granted.
func (s *Sim) update(ctx context.Context, i int, a Agent, version string, current *string, failed map[string]bool,
	fail func(error), report func(target, action, rule, reason, outcome string)) bool {
	req := LeaseRequest{AgentID: a.ID, Group: a.Group, Channel: s.cfg.Channel, Version: version}
	var grant LeaseAnswer
	err := s.call(i, func(base string) (err error) {
		grant, err = s.client.AcquireLease(ctx, base, req)
		return err
	})
	if err != nil {
		fail(err)
		return false
	}
	if !grant.Granted {
		s.log(Event{At: time.Now(), Agent: a.ID, Group: a.Group, Kind: EvLeaseRefused, Version: version})
		return false
	}
	s.mu.Lock()
	s.installing[a.Group]++
	s.maxInst[a.Group] = max(s.maxInst[a.Group], s.installing[a.Group])
	s.mu.Unlock()
	s.log(Event{At: time.Now(), Agent: a.ID, Group: a.Group, Kind: EvLeaseGranted, Version: version})

	sleep(ctx, s.cfg.Install)
	outcome := OutcomeUpdated
	if slices.Contains(s.cfg.Broken, version) {
		failed[version] = true
		outcome = OutcomeRolledBack
		s.log(Event{At: time.Now(), Agent: a.ID, Group: a.Group, Kind: EvRolledBack, Version: version})
	} else {
		*current = version
		s.mu.Lock()
		s.current[a.ID] = version
		s.mu.Unlock()
		s.log(Event{At: time.Now(), Agent: a.ID, Group: a.Group, Kind: EvInstalled, Version: version})
	}

	s.mu.Lock()
	s.installing[a.Group]--
	s.mu.Unlock()
	// Release even when the simulation is ending, so no lease outlives it.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = s.call(i, func(base string) error {
		_, err := s.client.ReleaseLease(rctx, base, a.Group, a.ID)
		return err
	})
	if err != nil {
		fail(err)
	} else {
		s.log(Event{At: time.Now(), Agent: a.ID, Group: a.Group, Kind: EvReleased, Version: version})
	}
	reason := "WindowOpen"
	report(version, "Update", "InWindow", reason, outcome)
	return true
}
