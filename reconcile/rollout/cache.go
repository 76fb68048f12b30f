package rollout

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upkeep.dev/upkeep/reconcile/fleet"
)

// DefaultRefresh is how often a Cache re-reads the rollouts.
const DefaultRefresh = 250 * time.Millisecond

// CacheOptions configure a Cache; zero values take the defaults.
type CacheOptions struct {
	Source Source // required
	Every  time.Duration
	// Registerer receives upkeep_rollout_state{channel,state}; nil registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

// Cache is the read side every replica runs: it re-reads the stored
// rollouts every CacheOptions.Every and publishes their answer tables
// with one atomic pointer swap, so every replica answers alike (within
// one refresh) whichever leads.
type Cache struct {
	store fleet.Store
	o     CacheOptions
	log   *slog.Logger
	cur   atomic.Pointer[Answers]

	mState *prometheus.GaugeVec
	mu     sync.Mutex
	shown  map[string]bool // channels with state series
}

// NewCache makes a cache over store; Refresh or Run fill it.
func NewCache(store fleet.Store, o CacheOptions) (*Cache, error) {
	if store == nil || o.Source == nil {
		return nil, errorf("rollout cache: a store and a desired-state source are required")
	}
	o.Every = cmp.Or(o.Every, DefaultRefresh)
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cache{store: store, o: o, log: cmp.Or(o.Logger, slog.Default()), shown: map[string]bool{},
		mState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upkeep_rollout_state", Help: "1 for the state each channel's rollout is in, 0 for the others.",
		}, []string{"channel", "state"}),
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(c.mState); err != nil {
			return nil, errorf("rollout cache metrics: %w", err)
		}
	}
	return c, nil
}

// Answers are the current tables; nil before the first refresh (then
// serve every channel's version as before).
func (c *Cache) Answers() *Answers { return c.cur.Load() }

// Run refreshes every Every until ctx ends; a failed read keeps the
// tables of the last good one.
func (c *Cache) Run(ctx context.Context) error {
	t := time.NewTicker(c.o.Every)
	defer t.Stop()
	for {
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("rollout cache: cannot read the rollouts; answering from the last good read", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Refresh reads the rollouts once and publishes their tables. Only a
// halted (or superseded) rollout reads its agents, to keep the ones
// already on the version where they are.
func (c *Cache) Refresh(ctx context.Context) error {
	ds := c.o.Source()
	if ds == nil {
		return nil
	}
	rows, err := c.store.Rollouts(ctx)
	if err != nil {
		return err
	}
	byChannel := make(map[string]*fleet.Rollout, len(rows))
	for i := range rows {
		byChannel[rows[i].Channel] = &rows[i]
	}
	now := c.o.Now()
	as := make([]*Answer, 0, len(ds))
	for _, d := range ds {
		r := byChannel[d.Channel]
		if r == nil {
			continue
		}
		var on []string
		if r.State == fleet.StateHalted || r.State == fleet.StateSuperseded {
			agents, err := c.store.AgentStates(ctx, d.Channel, stageGroups(d), now)
			if err != nil {
				return err
			}
			for _, a := range agents {
				if a.CurrentVersion == r.Version {
					on = append(on, a.AgentID)
				}
			}
		}
		as = append(as, NewAnswer(*r, d.Stages, on))
	}
	c.cur.Store(NewAnswers(as...))
	c.showStates(as)
	return nil
}

func (c *Cache) showStates(as []*Answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := map[string]bool{}
	for _, a := range as {
		now[a.Channel] = true
		for _, s := range States {
			v := 0.0
			if s == a.State {
				v = 1
			}
			c.mState.WithLabelValues(a.Channel, s).Set(v)
		}
	}
	for ch := range c.shown {
		if !now[ch] {
			c.mState.DeletePartialMatch(prometheus.Labels{"channel": ch})
		}
	}
	c.shown = now
}
