package rollout

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upkeep.dev/upkeep/reconcile/fleet"
)

// Engine defaults.
const (
	DefaultTick     = 250 * time.Millisecond // a step follows its threshold within one tick
	DefaultLeaseTTL = 10 * time.Second       // a killed leader is replaced within about this
	DefaultRenew    = 2 * time.Second
	// DefaultLeaderName is the leader row the engine takes.
	DefaultLeaderName = "rollouts"
	// maxStepsPerPass bounds the steps one channel takes in one pass
	// (Superseded, RolloutStarted, CanariesChosen is the longest chain).
	maxStepsPerPass = 8
)

// Options configure an Engine; zero values take the defaults.
type Options struct {
	// Source is the desired state (required).
	Source Source
	// Registerer receives the engine's metrics; nil registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger // default slog.Default()
	Tick       time.Duration
	LeaseTTL   time.Duration
	Renew      time.Duration // how often the leader renews its lease; < LeaseTTL
	// Holder is this replica's id in the leader row and in transitions'
	// Actor; default hostname, pid and a random suffix.
	Holder     string
	LeaderName string
	Now        func() time.Time // default time.Now
}

// Engine evaluates rollouts while this replica holds the store's leader
// lease. Every write is compare-and-swap on the rollout's generation, so
// an engine that lost its lease without knowing it cannot take a second
// step: its write conflicts, it re-reads and decides again.
type Engine struct {
	store fleet.Store
	o     Options
	log   *slog.Logger

	mu         sync.Mutex
	leading    bool
	leaseUntil time.Time // as this replica's clock saw the lease begin
	lastLead   time.Time

	mTransitions *prometheus.CounterVec
	mLeader      prometheus.Gauge
	mPass        prometheus.Histogram
	mConflicts   prometheus.Counter
}

// NewEngine makes an engine over store; Run starts it.
func NewEngine(store fleet.Store, o Options) (*Engine, error) {
	if store == nil || o.Source == nil {
		return nil, errors.New("rollout engine: a store and a desired-state source are required")
	}
	o.Tick = cmp.Or(o.Tick, DefaultTick)
	o.LeaseTTL = cmp.Or(o.LeaseTTL, DefaultLeaseTTL)
	o.Renew = cmp.Or(o.Renew, DefaultRenew)
	o.LeaderName = cmp.Or(o.LeaderName, DefaultLeaderName)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Holder == "" {
		o.Holder = HolderID()
	}
	if o.Renew >= o.LeaseTTL || o.Tick <= 0 {
		return nil, fmt.Errorf("rollout engine: renew every %s must be shorter than the lease TTL %s, and the tick %s positive", o.Renew, o.LeaseTTL, o.Tick)
	}
	e := &Engine{
		store: store, o: o, log: cmp.Or(o.Logger, slog.Default()),
		mTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upkeep_rollout_transitions_total", Help: "Rollout transitions this replica wrote, by rule.",
		}, []string{"rule"}),
		mLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "upkeep_rollout_leader", Help: "1 while this replica holds the rollout leader lease.",
		}),
		mPass: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "upkeep_rollout_pass_seconds", Help: "Time of one evaluation pass over every channel.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		mConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "upkeep_rollout_conflicts_total", Help: "Rollout writes that lost a compare-and-swap and were decided again.",
		}),
	}
	for _, r := range Rules {
		e.mTransitions.WithLabelValues(r)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{e.mTransitions, e.mLeader, e.mPass, e.mConflicts} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("rollout engine metrics: %w", err)
			}
		}
	}
	return e, nil
}

// HolderID is a replica's leader id: hostname, pid and a random suffix,
// so two processes (or one restarted) never share one.
func HolderID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", cmp.Or(host, "unknown"), os.Getpid(), hex.EncodeToString(b))
}

// Holder is this engine's leader id.
func (e *Engine) Holder() string { return e.o.Holder }

// Leading says this replica holds the lease (as of its last renewal).
func (e *Engine) Leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading && e.o.Now().Before(e.leaseUntil)
}

// Run takes the lease and evaluates every tick until ctx ends. It does
// not resign: call Resign after it returns to hand over at once on a
// clean shutdown (a killed replica's lease simply expires).
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(e.o.Tick)
	defer t.Stop()
	for {
		if err := e.Pass(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("rollout engine pass failed; retrying next tick", "err", err)
		}
		select {
		case <-ctx.Done():
			e.setLeading(false, time.Time{})
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Resign gives the lease up, if this replica holds it.
func (e *Engine) Resign(ctx context.Context) error {
	e.setLeading(false, time.Time{})
	return e.store.Resign(ctx, e.o.LeaderName, e.o.Holder)
}

func (e *Engine) setLeading(ok bool, until time.Time) {
	e.mu.Lock()
	e.leading, e.leaseUntil = ok, until
	e.mu.Unlock()
	if ok {
		e.mLeader.Set(1)
	} else {
		e.mLeader.Set(0)
	}
}

// Pass is one tick: take or renew the lease when due (the leader every
// Renew, a follower every tick, so it takes over as soon as the lease
// expires), then evaluate every channel if this replica leads.
func (e *Engine) Pass(ctx context.Context) error {
	now := e.o.Now()
	e.mu.Lock()
	due := !e.leading || now.Sub(e.lastLead) >= e.o.Renew
	e.mu.Unlock()
	if due {
		ok, err := e.store.Lead(ctx, e.o.LeaderName, e.o.Holder, e.o.LeaseTTL, now)
		e.mu.Lock()
		was := e.leading
		e.mu.Unlock()
		switch {
		case err != nil:
			// Keep acting only while the lease taken before is still ours.
			e.log.Warn("rollout engine: cannot renew the leader lease", "holder", e.o.Holder, "err", err)
		case ok:
			e.mu.Lock()
			e.lastLead = now
			e.mu.Unlock()
			e.setLeading(true, now.Add(e.o.LeaseTTL))
			if !was {
				e.log.Info("rollout engine leads", "holder", e.o.Holder, "store", e.store.Engine())
			}
		default:
			e.setLeading(false, time.Time{})
			if was {
				e.log.Warn("rollout engine lost the leader lease", "holder", e.o.Holder)
			}
		}
	}
	if !e.Leading() {
		return nil
	}
	_, err := e.Evaluate(ctx)
	return err
}

// Evaluate takes every step due now on every channel of the desired
// state and returns how many it wrote. Only the leader should call it;
// the compare-and-swap keeps a stale leader from double-stepping anyway.
func (e *Engine) Evaluate(ctx context.Context) (int, error) {
	ds := e.o.Source()
	if ds == nil {
		return 0, nil
	}
	start := time.Now()
	defer func() { e.mPass.Observe(time.Since(start).Seconds()) }()
	rows, err := e.store.Rollouts(ctx)
	if err != nil {
		return 0, err
	}
	stored := make(map[string]*fleet.Rollout, len(rows))
	for i := range rows {
		stored[rows[i].Channel] = &rows[i]
	}
	steps := 0
	var errs []error
	for _, d := range ds {
		n, err := e.evaluate(ctx, d, stored[d.Channel])
		steps += n
		if err != nil {
			errs = append(errs, fmt.Errorf("channel %s: %w", d.Channel, err))
		}
	}
	return steps, errors.Join(errs...)
}

// evaluate steps one channel until nothing more is due. On a conflict it
// re-reads the row and decides again, once: another writer moved it.
func (e *Engine) evaluate(ctx context.Context, d Desired, cur *fleet.Rollout) (int, error) {
	now := e.o.Now()
	var agents []fleet.AgentState
	fetched, conflicts, steps := false, 0, 0
	for range maxStepsPerPass {
		if !fetched && needsAgents(d, cur) {
			var err error
			if agents, err = e.store.AgentStates(ctx, d.Channel, stageGroups(d), now); err != nil {
				return steps, err
			}
			fetched = true
		}
		next, t, ok := Next(d, cur, agents, now)
		if !ok {
			return steps, nil
		}
		t.Actor = e.o.Holder
		saved, err := e.store.SaveRollout(ctx, next, t)
		if errors.Is(err, fleet.ErrConflict) {
			e.mConflicts.Inc()
			if conflicts++; conflicts > 1 {
				return steps, err
			}
			r, found, err := e.store.Rollout(ctx, d.Channel)
			if err != nil {
				return steps, err
			}
			cur = nil
			if found {
				cur = &r
			}
			e.log.Info("rollout changed under the engine; deciding again", "channel", d.Channel, "holder", e.o.Holder)
			continue
		}
		if err != nil {
			return steps, err
		}
		steps++
		cur = &saved
		e.mTransitions.WithLabelValues(t.Rule).Inc()
		e.log.Info("rollout transition", "channel", t.Channel, "version", t.Version, "from", t.From, "to", t.To,
			"stage", t.Stage, "step", t.Step, "rule", t.Rule, "reason", t.Reason, "message", t.Message, "actor", t.Actor)
	}
	return steps, nil
}

// needsAgents says Next may look at the agents: only a rollout under way
// of the version Git names does.
func needsAgents(d Desired, cur *fleet.Rollout) bool {
	return cur != nil && cur.Version == d.Version && Running(cur.State) && len(d.Stages) > 0
}

// stageGroups are the groups of every stage.
func stageGroups(d Desired) []string {
	var gs []string
	for _, s := range d.Stages {
		gs = append(gs, s.Groups...)
	}
	return gs
}
