package report

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Store defaults.
const (
	// DefaultMaxAgents bounds the store: a report is at most a few KiB, so
	// a full store stays within a few hundred MiB even with every field at
	// its limit (typically ~1 KiB per agent).
	DefaultMaxAgents = 100_000
	// DefaultStaleAfter: an agent not heard from for this long is shown
	// stale. Updaters report every pass (minutes apart), so three missed
	// passes is a real silence, not jitter.
	DefaultStaleAfter = 15 * time.Minute
	// DefaultForgetAfter: when the store is full, agents silent for this
	// long are dropped to make room for new ones (decommissioned hosts,
	// deleted workloads).
	DefaultForgetAfter = 7 * 24 * time.Hour
	// DefaultMaxSeries bounds the upkeep_agents series (see Store.Series).
	DefaultMaxSeries = 2000
)

// ErrFull is wrapped by Put's error when a new agent id does not fit.
var ErrFull = errors.New("the report store is full")

// pruneEvery rate-limits the scan for forgettable agents when the store is
// full, so a flood of new ids cannot make every Put walk the whole map.
const pruneEvery = time.Minute

// StoreOptions configure a Store; zero values take the defaults.
type StoreOptions struct {
	MaxAgents   int
	StaleAfter  time.Duration
	ForgetAfter time.Duration
	// Now is the clock; tests inject a fake one. Default time.Now.
	Now func() time.Time
}

// Store keeps the latest report of each agent in memory. It is safe for
// concurrent use. Staleness is judged by the time the server received a
// report, not by the report's own time: an agent's clock may be wrong, and
// "when did we last hear from it" is the question an operator asks.
// Reports replace each other in arrival order; updaters send one at a time.
type Store struct {
	maxAgents   int
	staleAfter  time.Duration
	forgetAfter time.Duration
	now         func() time.Time

	mu        sync.RWMutex
	agents    map[string]*entry
	lastPrune time.Time
}

// entry is immutable once stored: Put replaces the pointer, so readers can
// use entries after releasing the lock.
type entry struct {
	r        Report
	received time.Time
}

// NewStore returns an empty store.
func NewStore(o StoreOptions) *Store {
	s := &Store{
		maxAgents: cmp.Or(o.MaxAgents, DefaultMaxAgents), staleAfter: cmp.Or(o.StaleAfter, DefaultStaleAfter),
		forgetAfter: cmp.Or(o.ForgetAfter, DefaultForgetAfter), now: o.Now,
		agents: make(map[string]*entry),
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// StaleAfter is how long an agent may stay silent before it is shown stale.
func (s *Store) StaleAfter() time.Duration { return s.staleAfter }

// MaxAgents is the most agents the store holds.
func (s *Store) MaxAgents() int { return s.maxAgents }

// Len is the number of agents held.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.agents)
}

// Put validates r and records it as its agent's latest report, with
// versions in canonical form. isNew says the agent was not known. A new
// agent that does not fit gets an error wrapping ErrFull; a known agent is
// always updated.
func (s *Store) Put(r Report) (isNew bool, err error) {
	if err := r.Validate(); err != nil {
		return false, err
	}
	r.CurrentVersion = CanonicalVersion(r.CurrentVersion)
	r.TargetVersion = CanonicalVersion(r.TargetVersion)
	if r.NextWindow != nil {
		t := *r.NextWindow // not the caller's pointer
		r.NextWindow = &t
	}
	now := s.now()

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.agents[r.AgentID]; ok {
		s.agents[r.AgentID] = &entry{r: r, received: now}
		return false, nil
	}
	if len(s.agents) >= s.maxAgents && now.Sub(s.lastPrune) >= pruneEvery {
		s.lastPrune = now
		for id, e := range s.agents {
			if now.Sub(e.received) > s.forgetAfter {
				delete(s.agents, id)
			}
		}
	}
	if len(s.agents) >= s.maxAgents {
		return false, fmt.Errorf("%w: it holds the latest report of %d agents, its limit, so agent %s is not recorded; "+
			"agents silent for over %s are forgotten to make room. If the fleet is not that large, look for an updater "+
			"that makes up a new agent id on every run", ErrFull, s.maxAgents, quote(r.AgentID), s.forgetAfter)
	}
	s.agents[r.AgentID] = &entry{r: r, received: now}
	return true, nil
}

// Agent is an agent's latest report as the store shows it.
type Agent struct {
	Report
	// ReceivedAt is when the server got the report, by its own clock.
	ReceivedAt time.Time `json:"receivedAt"`
	// Stale is true when nothing was received for longer than StaleAfter.
	Stale bool `json:"stale"`
}

// EffectiveHealth is the agent's health for counts and metrics:
// HealthStale when stale, else what it reported.
func (a *Agent) EffectiveHealth() string {
	if a.Stale {
		return HealthStale
	}
	return a.Health
}

// Get returns one agent's latest report.
func (s *Store) Get(id string) (Agent, bool) {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.agents[id]
	if !ok {
		return Agent{}, false
	}
	return s.agent(e, now), true
}

func (s *Store) agent(e *entry, now time.Time) Agent {
	return Agent{Report: e.r, ReceivedAt: e.received, Stale: s.stale(e, now)}
}

func (s *Store) stale(e *entry, now time.Time) bool { return now.Sub(e.received) > s.staleAfter }

func (s *Store) health(e *entry, now time.Time) string {
	if s.stale(e, now) {
		return HealthStale
	}
	return e.r.Health
}

// Keys of Counts for values that are absent.
const (
	UnknownVersion = "unknown"    // ByVersion: the agent did not know its version
	NoDecision     = "NoDecision" // ByAction: the pass failed before deciding
	// NoGroup is the group of an agent that reports none (a Kubernetes
	// workload on its Teleport agent's schedule) in ByGroup, the metrics'
	// group label and a Filter.
	NoGroup = "_none"
)

// Counts summarise a set of agents. ByHealth counts EffectiveHealth, so a
// silent agent counts as "stale", not as the health it last reported.
type Counts struct {
	Agents    int            `json:"agents"`
	Stale     int            `json:"stale"`
	ByGroup   map[string]int `json:"byGroup"`
	ByVersion map[string]int `json:"byVersion"`
	ByHealth  map[string]int `json:"byHealth"`
	ByAction  map[string]int `json:"byAction"`
}

func (c *Counts) add(a *Agent) {
	c.Agents++
	if a.Stale {
		c.Stale++
	}
	c.ByGroup[cmp.Or(a.Group, NoGroup)]++
	c.ByVersion[cmp.Or(a.CurrentVersion, UnknownVersion)]++
	c.ByHealth[a.EffectiveHealth()]++
	c.ByAction[cmp.Or(a.Action, NoDecision)]++
}

// Filter selects agents; empty fields match all.
type Filter struct {
	Group string
	// Health matches EffectiveHealth, so "stale" selects the silent agents.
	Health string
}

// Fleet is the state of the fleet as GET /v1/fleet shows it.
type Fleet struct {
	Time time.Time `json:"time"`
	// StaleAfter is the store's stale period, as a Go duration ("15m0s").
	StaleAfter string `json:"staleAfter"`
	// Agents are sorted by group, then agent id.
	Agents []Agent `json:"agents"`
	// Counts are over Agents.
	Counts Counts `json:"counts"`
}

// Fleet returns the agents f selects and their counts.
func (s *Store) Fleet(f Filter) Fleet {
	now := s.now()
	out := Fleet{
		Time: now.UTC(), StaleAfter: s.staleAfter.String(),
		Counts: Counts{ByGroup: map[string]int{}, ByVersion: map[string]int{}, ByHealth: map[string]int{}, ByAction: map[string]int{}},
	}
	// Select and sort small keyed records, and copy the reports last: a
	// report is a few hundred bytes, too big to move around while sorting,
	// and keys beside the pointer spare a memory load per comparison.
	type selected struct {
		group, id string
		e         *entry // immutable, so usable after RUnlock
	}
	s.mu.RLock()
	sel := make([]selected, 0, len(s.agents))
	for _, e := range s.agents {
		if (f.Group == "" || cmp.Or(e.r.Group, NoGroup) == f.Group) && (f.Health == "" || s.health(e, now) == f.Health) {
			sel = append(sel, selected{e.r.Group, e.r.AgentID, e})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(sel, func(a, b selected) int {
		if c := strings.Compare(a.group, b.group); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	out.Agents = make([]Agent, len(sel))
	for i, x := range sel {
		out.Agents[i] = s.agent(x.e, now)
		out.Counts.add(&out.Agents[i])
	}
	return out
}

// Series is one upkeep_agents series: how many agents of a group run a
// version with a health.
type Series struct {
	Group, Version, Health string
	Agents                 int
}

// OtherLabel stands for the group and version of series folded together
// by Series.
const OtherLabel = "_other"

// Series counts agents by group, current version (UnknownVersion when
// empty) and effective health, sorted by those labels. Groups and versions
// come from the fleet repository, so there are few; but reports are only
// as honest as their senders, so beyond max combinations the smallest are
// folded into one series per health with group and version OtherLabel:
// never more than max plus four series.
func (s *Store) Series(max int) []Series {
	type key struct{ group, version, health string }
	now := s.now()
	counts := make(map[key]int)
	s.mu.RLock()
	for _, e := range s.agents {
		counts[key{cmp.Or(e.r.Group, NoGroup), cmp.Or(e.r.CurrentVersion, UnknownVersion), s.health(e, now)}]++
	}
	s.mu.RUnlock()

	out := make([]Series, 0, len(counts))
	for k, n := range counts {
		out = append(out, Series{Group: k.group, Version: k.version, Health: k.health, Agents: n})
	}
	byLabels := func(a, b Series) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Version, b.Version), cmp.Compare(a.Health, b.Health))
	}
	if max > 0 && len(out) > max {
		slices.SortFunc(out, func(a, b Series) int { return cmp.Or(cmp.Compare(b.Agents, a.Agents), byLabels(a, b)) })
		folded := map[string]int{}
		for _, sr := range out[max:] {
			folded[sr.Health] += sr.Agents
		}
		out = out[:max]
		for h, n := range folded {
			out = append(out, Series{Group: OtherLabel, Version: OtherLabel, Health: h, Agents: n})
		}
	}
	slices.SortFunc(out, byLabels)
	return out
}
