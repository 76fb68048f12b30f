package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upkeep.dev/upkeep/sources"
	"upkeep.dev/upkeep/spec"
)

// Source is where the reconciler reads the fleet repository from.
type Source interface {
	Fetch(ctx context.Context) (sources.Revision, error)
	String() string
}

// LoadFunc reads and validates the files of one revision; spec.Load is the
// real one.
type LoadFunc func(fsys fs.FS) (*spec.State, spec.Errors)

// Reconciler keeps the newest valid revision of a source served as a
// Snapshot. A revision that fails validation never replaces the served
// snapshot; the failure shows in Status, the metrics and the log.
type Reconciler struct {
	src     Source
	load    LoadFunc
	now     func() time.Time
	log     *slog.Logger
	metrics *syncMetrics
	trigger chan struct{}

	snap atomic.Pointer[Snapshot]

	mu     sync.Mutex // guards the fields below; held for a whole sync
	status Status
	good   *spec.State // state of the served revision, rebuilt each sync so windows stay fresh
	bad    string      // revision id that last failed validation, not loaded again
	badErr *SyncError
}

// Options tunes a Reconciler; the zero value is usable.
type Options struct {
	Load       LoadFunc              // default spec.Load
	Now        func() time.Time      // default time.Now
	Logger     *slog.Logger          // default slog.Default()
	Registerer prometheus.Registerer // nil: no metrics
}

// New returns a Reconciler for src. Call Sync or Run to load it.
func New(src Source, o Options) *Reconciler {
	r := &Reconciler{
		src:     src,
		load:    o.Load,
		now:     o.Now,
		log:     o.Logger,
		trigger: make(chan struct{}, 1),
		metrics: newSyncMetrics(o.Registerer),
	}
	if r.load == nil {
		r.load = spec.Load
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.status.Source = src.String()
	return r
}

// Snapshot returns the snapshot being served, or nil before the first good sync.
func (r *Reconciler) Snapshot() *Snapshot { return r.snap.Load() }

// Status returns a copy of the reconciler's status.
func (r *Reconciler) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Trigger asks Run for a sync at once. It never blocks; triggers that arrive
// while one is pending are folded into it.
func (r *Reconciler) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Run syncs at once, then every interval and whenever Trigger is called,
// until ctx ends.
func (r *Reconciler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		// The error is already recorded in Status, the metrics and the log.
		_ = r.Sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.trigger:
			t.Reset(interval)
		}
	}
}

// Sync fetches the source once and serves its revision if it is valid.
// It returns the reason when the served snapshot was not replaced by the
// source's current revision.
func (r *Reconciler) Sync(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()

	start := r.now()
	r.status.LastSync = start
	defer func() { r.metrics.duration.Observe(r.now().Sub(start).Seconds()) }()

	rev, err := r.src.Fetch(ctx)
	if err != nil {
		r.refresh(start)
		return r.fail(&SyncError{Time: start, Message: fmt.Sprintf("reading %s: %v", r.src, err)}, "fetch_error")
	}

	if rev.ID == r.bad && r.badErr != nil {
		// Same invalid revision as last time: do not validate again, keep saying why.
		r.refresh(start)
		failed := *r.badErr
		failed.Time = start
		return r.fail(&failed, "invalid")
	}

	var state *spec.State
	if r.good != nil && rev.ID == r.status.Revision {
		state = r.good
	} else {
		st, errs := r.load(rev.Files)
		if errs != nil {
			r.refresh(start)
			r.bad = rev.ID
			r.badErr = &SyncError{
				Revision: rev.ID,
				Time:     start,
				Message:  fmt.Sprintf("revision %s is invalid (%d errors); still serving %s", short(rev.ID), len(errs), r.servedName()),
				Errors:   errs,
			}
			for _, e := range errs {
				r.log.Error("invalid fleet repository", "revision", rev.ID, "error", e.Error())
			}
			return r.fail(r.badErr, "invalid")
		}
		state = st
		if rev.ID != r.status.Revision {
			r.log.Info("serving new revision", "revision", rev.ID, "previous", r.status.Revision,
				"controlPlanes", len(st.ControlPlanes), "channels", len(st.Channels), "groups", len(st.Groups))
		}
	}

	r.good, r.bad, r.badErr = state, "", nil
	r.snap.Store(BuildSnapshot(state, rev.ID, start))
	r.status.Revision = rev.ID
	r.status.LastSuccess = start
	r.status.LastError = nil
	r.metrics.syncs.WithLabelValues("success").Inc()
	r.metrics.failing.Set(0)
	r.metrics.lastSuccess.Set(float64(start.Unix()))
	return nil
}

// refresh rebuilds the served snapshot from the last good state so that its
// windows move with time even while the source is unreadable or invalid.
func (r *Reconciler) refresh(now time.Time) {
	if r.good != nil {
		r.snap.Store(BuildSnapshot(r.good, r.status.Revision, now))
	}
}

func (r *Reconciler) fail(e *SyncError, result string) error {
	r.status.LastError = e
	r.metrics.syncs.WithLabelValues(result).Inc()
	r.metrics.failing.Set(1)
	if result == "fetch_error" {
		r.log.Error("sync failed", "source", r.src.String(), "error", e.Message)
	}
	return errors.New(e.Message)
}

func (r *Reconciler) servedName() string {
	if r.status.Revision == "" {
		return "nothing (no valid revision yet)"
	}
	return "revision " + short(r.status.Revision)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

type syncMetrics struct {
	syncs       *prometheus.CounterVec
	failing     prometheus.Gauge
	lastSuccess prometheus.Gauge
	duration    prometheus.Histogram
}

func newSyncMetrics(reg prometheus.Registerer) *syncMetrics {
	m := &syncMetrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upkeep_syncs_total",
			Help: "Syncs of the fleet repository by result: success, invalid (revision failed validation), fetch_error.",
		}, []string{"result"}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "upkeep_sync_failing",
			Help: "1 while the last sync did not serve the source's current revision.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "upkeep_last_successful_sync_timestamp_seconds",
			Help: "Unix time of the last sync that served the source's current revision.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "upkeep_sync_duration_seconds",
			Help:    "Time taken by one sync: fetch, validate, build the snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}),
	}
	for _, result := range []string{"success", "invalid", "fetch_error"} {
		m.syncs.WithLabelValues(result)
	}
	if reg != nil {
		reg.MustRegister(m.syncs, m.failing, m.lastSuccess, m.duration)
	}
	return m
}
