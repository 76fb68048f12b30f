// Package fleet is the observed state of the fleet that every `upkeep
// serve` replica shares: updaters' reports and their history, rollouts and
// their transitions, concurrency leases, and which replica leads. Store is
// the one interface; reconcile/fleet/sqlstore implements it on SQLite and
// PostgreSQL. Desired state stays in Git; nothing here is configuration.
package fleet

import (
	"context"
	"errors"
	"time"

	"upkeep.dev/upkeep/reconcile/report"
)

// Errors wrapped by Store methods.
var (
	// ErrConflict: a compare-and-swap write found another generation; the
	// caller re-reads and decides again.
	ErrConflict = errors.New("the record changed since it was read")
	// ErrFull: a new agent does not fit under Options.MaxAgents.
	ErrFull = report.ErrFull
)

// Options configure a store; zero values take the defaults.
type Options struct {
	// StaleAfter: an agent not heard from for this long is shown stale
	// (report.DefaultStaleAfter). Stale agents are kept, never deleted silently.
	StaleAfter time.Duration
	// HistoryPerAgent bounds each agent's report history (DefaultHistoryPerAgent).
	HistoryPerAgent int
	// MaxAgents bounds the agents table (report.DefaultMaxAgents).
	MaxAgents int
}

// DefaultHistoryPerAgent is how many past reports an agent keeps.
const DefaultHistoryPerAgent = 20

// MaxPage bounds one page of Fleet.
const MaxPage = 10_000

// Page selects a slice of the agents, in (group, agent id) order.
type Page struct {
	report.Filter
	// Search, when set, selects the agents whose id contains it, ignoring
	// ASCII case (ids are ASCII); the counts are over that selection too.
	Search string
	// After is the cursor: the last (group, agent id) of the previous page,
	// as Fleet returned it in Next; zero for the first page.
	After Cursor
	Limit int // ≤ MaxPage; 0 means MaxPage
}

// Cursor is a position in the (group, agent id) order.
type Cursor struct {
	Group   string `json:"group"`
	AgentID string `json:"agentId"`
}

// FleetPage is one page of agents with counts over every agent the filter selects.
type FleetPage struct {
	report.Fleet
	// Next is the cursor of the next page; nil on the last one.
	Next *Cursor `json:"next,omitempty"`
}

// AgentState is what the rollout engine needs of an agent.
type AgentState struct {
	AgentID        string
	Group          string // "" for none
	Channel        string
	CurrentVersion string // canonical, "" unknown
	Health         string // report.Health*, report.HealthStale when stale
	Outcome        string // the latest report's outcome
	// FailedVersion is the version of the latest update that ended in
	// rolledBack or failed, "" when none.
	FailedVersion string
	ReceivedAt    time.Time
}

// Rollout states.
const (
	StatePending    = "Pending"
	StateCanary     = "Canary"
	StateActive     = "Active"
	StateBaking     = "Baking"
	StateDone       = "Done"
	StateHalted     = "Halted"
	StateSuperseded = "Superseded"
)

// Steps within a stage.
const (
	StepCanary = "canary"
	StepAll    = "all"
)

// Rollout is the current rollout of one channel.
type Rollout struct {
	Channel string `json:"channel"`
	Version string `json:"version"` // the version rolling out, canonical semver
	// FromVersion is what agents not yet allowed are answered: the last
	// version whose rollout reached Done ("" when there is none yet).
	FromVersion string `json:"fromVersion"`
	State       string `json:"state"`
	Stage       int    `json:"stage"` // index into the channel's stages
	Step        string `json:"step"`  // StepCanary or StepAll
	// Canaries are the agent ids chosen as the current stage's canaries.
	Canaries  []string  `json:"canaries,omitempty"`
	Critical  bool      `json:"critical"`
	Revision  string    `json:"revision"` // the Git revision that started it
	StartedAt time.Time `json:"startedAt"`
	Since     time.Time `json:"since"`              // when State was entered
	BakeUntil time.Time `json:"bakeUntil,omitzero"` // while Baking
	HaltedAt  time.Time `json:"haltedAt,omitzero"`  // while Halted
	Rule      string    `json:"rule"`               // of the last transition
	Reason    string    `json:"reason"`             // CamelCase
	Message   string    `json:"message"`            // human sentence
	// Generation increases with every write; SaveRollout compares it.
	Generation int64 `json:"generation"`
}

// Transition is one recorded step of a rollout.
type Transition struct {
	Channel string    `json:"channel"`
	Version string    `json:"version"`
	From    string    `json:"from"` // state before ("" for a new rollout)
	To      string    `json:"to"`
	Stage   int       `json:"stage"`
	Step    string    `json:"step"`
	Rule    string    `json:"rule"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Actor   string    `json:"actor"` // the leader's holder id, or "operator:<token name>"
	At      time.Time `json:"at"`
}

// LeaseRequest asks for a place among a group's updating agents.
type LeaseRequest struct {
	Group   string // "" counts as report.NoGroup
	AgentID string
	Channel string
	Version string
	// Max is the group's maxConcurrent; 0 means unlimited.
	Max int
	TTL time.Duration
}

// Lease is a granted place.
type Lease struct {
	Group      string    `json:"group"`
	AgentID    string    `json:"agentId"`
	Channel    string    `json:"channel"`
	Version    string    `json:"version"`
	AcquiredAt time.Time `json:"acquiredAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// LeaseGrant is AcquireLease's answer.
type LeaseGrant struct {
	Granted bool
	Lease   Lease // when granted (a renewal keeps AcquiredAt)
	// Holders are the unexpired leases of the group after the request.
	Holders int
	// RetryAfter is when the earliest holder's lease expires, when refused.
	RetryAfter time.Time
}

// Lease log events.
const (
	LeaseAcquired = "acquired"
	LeaseRenewed  = "renewed"
	LeaseReleased = "released"
	LeaseExpired  = "expired"
)

// LeaseEvent is one entry of the lease log.
type LeaseEvent struct {
	Group   string    `json:"group"`
	AgentID string    `json:"agentId"`
	Event   string    `json:"event"`
	At      time.Time `json:"at"`
}

// Store is the fleet's observed state. Every method is safe for
// concurrent use, from any number of processes sharing the same database.
// Times are passed in (the callers' clock) so tests use a fake one.
type Store interface {
	// PutReport validates r and records it as its agent's latest report
	// (and in its bounded history), received at the given time.
	PutReport(ctx context.Context, r report.Report, received time.Time) (isNew bool, err error)
	// Agent is one agent's latest report; ok false when unknown.
	Agent(ctx context.Context, id string, now time.Time) (a report.Agent, ok bool, err error)
	// History is an agent's past reports, newest first, at most limit.
	History(ctx context.Context, id string, limit int) ([]report.Agent, error)
	// Fleet is one page of agents and the counts over all that match.
	Fleet(ctx context.Context, p Page, now time.Time) (FleetPage, error)
	// Series counts agents by group, version and effective health, as
	// report.Store.Series does (at most max plus four series).
	Series(ctx context.Context, max int, now time.Time) ([]report.Series, error)
	// AgentStates is the rollout engine's view of the agents of channel
	// (their latest report names it) or of groups.
	AgentStates(ctx context.Context, channel string, groups []string, now time.Time) ([]AgentState, error)

	// Rollouts are the current rollouts of every channel.
	Rollouts(ctx context.Context) ([]Rollout, error)
	Rollout(ctx context.Context, channel string) (Rollout, bool, error)
	// SaveRollout writes r if the stored generation equals r.Generation
	// (0: no row yet) and appends t, in one transaction; it returns r with
	// its new generation, or an error wrapping ErrConflict.
	SaveRollout(ctx context.Context, r Rollout, t Transition) (Rollout, error)
	// Transitions of a channel's rollouts, newest first, at most limit.
	Transitions(ctx context.Context, channel string, limit int) ([]Transition, error)

	// AcquireLease grants a place when the group has fewer than Max
	// unexpired leases (or renews the agent's own); expired ones are
	// logged LeaseExpired and dropped first. Atomic across replicas.
	AcquireLease(ctx context.Context, req LeaseRequest, now time.Time) (LeaseGrant, error)
	// ReleaseLease drops the agent's lease; false when it held none.
	ReleaseLease(ctx context.Context, group, agentID string, now time.Time) (bool, error)
	// Leases are a group's unexpired leases ("" for every group).
	Leases(ctx context.Context, group string, now time.Time) ([]Lease, error)
	// LeaseLog is a group's lease events, oldest first ("" for every group).
	LeaseLog(ctx context.Context, group string) ([]LeaseEvent, error)

	// Lead takes or renews the named leader lease for holder until
	// now+ttl; true when holder leads. Another holder's unexpired lease
	// wins.
	Lead(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error)
	// Resign gives the lease up at once, if holder has it.
	Resign(ctx context.Context, name, holder string) error

	// Engine is "sqlite" or "postgres", for logs and metrics.
	Engine() string
	Close() error
}
