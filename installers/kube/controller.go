package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrl "sigs.k8s.io/controller-runtime/pkg/reconcile"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/sources/versionclient"
	"upkeep.dev/upkeep/spec"
)

// FieldManager names the updater in managedFields and audit logs.
const FieldManager = "upkeep-kube-updater"

// Defaults of Options.
const (
	DefaultInterval        = 5 * time.Minute
	DefaultPollInterval    = 30 * time.Second
	DefaultRolloutDeadline = 10 * time.Minute
	DefaultRolloutCheck    = 10 * time.Second
	DefaultVerifyCacheTTL  = time.Minute
	// minRequeue keeps a decision whose recheck time has just passed from
	// spinning: the next look is at least this far away.
	minRequeue = time.Second
)

// Event reasons.
const (
	EventUpdating          = "Updating"
	EventUpdated           = "Updated"
	EventRolledBack        = "RolledBack"
	EventRefused           = "Refused"
	EventUnblocked         = "UnblockedRollout"
	EventRolloutSuperseded = "RolloutSuperseded"
	EventInvalidConfig     = "InvalidConfig"
)

// Options tune the updater; zero values mean the defaults.
type Options struct {
	// Interval bounds how long a workload goes without a look (default 5m);
	// a decision asks for an earlier look at a window's start.
	Interval time.Duration
	// PollInterval is how often channels and group schedules are asked
	// again (default 30s); a change enqueues every workload that follows it.
	PollInterval time.Duration
	// Grace is how long a pod may be not Ready before the workload counts
	// as unhealthy (default 5m).
	Grace time.Duration
	// RolloutDeadline is how long a rollout may take before the previous
	// image is restored (default 10m).
	RolloutDeadline time.Duration
	// RolloutCheck is how often a rollout in progress is looked at besides
	// the workload's own status events (default 10s).
	RolloutCheck time.Duration
	// UpdateDuration is how long an update needs inside a window (default
	// spec.DefaultUpdateDuration); the workload's annotation overrides it.
	UpdateDuration time.Duration
	// UnusableThreshold and ScheduleRecheck: see reconcile.DecisionInput.
	UnusableThreshold int
	ScheduleRecheck   time.Duration
	// VerifyCacheTTL keeps verification results (default 1m; negative: off).
	VerifyCacheTTL time.Duration
	// UpdaterVersion is upkeep's version, sent in reports.
	UpdaterVersion string
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.Interval, DefaultInterval)
	def(&o.PollInterval, DefaultPollInterval)
	def(&o.Grace, DefaultGrace)
	def(&o.RolloutDeadline, DefaultRolloutDeadline)
	def(&o.RolloutCheck, DefaultRolloutCheck)
	def(&o.UpdateDuration, spec.DefaultUpdateDuration)
	def(&o.VerifyCacheTTL, DefaultVerifyCacheTTL)
	if o.UpdaterVersion == "" {
		o.UpdaterVersion = "devel"
	}
}

// Reconciler decides and acts for one workload per call. It holds no
// per-workload state in memory that matters across restarts: the skip list,
// the rollout in progress and the last decision live in annotations.
type Reconciler struct {
	client   client.Client // reads from the cache (workloads, schedule ConfigMaps)
	direct   client.Reader // reads from the API server (pods, Secrets, conflict retries)
	recorder events.EventRecorder
	server   *serverCache
	verifier *verifyCache
	reporter Reporter
	leases   LeaseServer
	opts     Options
	now      func() time.Time
	log      *slog.Logger

	reconciles atomic.Int64 // passes that got as far as reading a workload
	reportMu   sync.Mutex
	reported   map[string]time.Time
}

// Reconciles counts passes over existing workloads (for tests and debugging).
func (r *Reconciler) Reconciles() int64 { return r.reconciles.Load() }

// kindReconciler adapts the Reconciler to one kind's controller.
type kindReconciler struct {
	r    *Reconciler
	kind string
}

func (k kindReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return k.r.Reconcile(ctx, k.kind, req.NamespacedName)
}

// Reconcile runs one pass over the workload of kind named nn.
func (r *Reconciler) Reconcile(ctx context.Context, kind string, nn types.NamespacedName) (ctrl.Result, error) {
	obj := newObject(kind)
	if err := r.client.Get(ctx, nn, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if obj.GetLabels()[LabelManaged] != "true" || obj.GetDeletionTimestamp() != nil {
		return ctrl.Result{}, nil
	}
	r.reconciles.Add(1)
	w := wrap(obj)
	log := r.log.With("workload", w.id())
	if obj.GetAnnotations()[AnnotationSkipReconcile] == "true" {
		metricSkippedReconciles.Inc()
		log.Debug("left alone", "annotation", AnnotationSkipReconcile)
		return ctrl.Result{}, nil
	}
	p := &Pass{At: r.now(), Kind: kind, Workload: w.id(), UID: string(obj.GetUID())}
	res, err := r.pass(ctx, w, p, log)
	if err != nil {
		p.Err = err
		if errors.Is(err, errWorkloadChanged) {
			// Someone changed the workload while we acted; look again soon.
			return ctrl.Result{RequeueAfter: minRequeue}, nil
		}
		log.Error("pass failed", "error", err)
	}
	r.sendReport(ctx, p, log)
	return res, err
}

var errWorkloadChanged = errors.New("the workload changed while the updater acted on it")

func (r *Reconciler) pass(ctx context.Context, w *workload, p *Pass, log *slog.Logger) (ctrl.Result, error) {
	ann := w.obj.GetAnnotations()
	st, stErr := ReadState(ann)
	cfg, cfgErr := ReadConfig(w.obj.GetName(), ann, &w.template().Spec)
	p.Config = cfg
	if err := errors.Join(cfgErr, stErr, CheckRollable(w.obj)); err != nil {
		// An operator must fix an annotation; a watch event brings us back.
		p.Status = Status{Current: cfg.Image.Version(), Outcome: OutcomeFailed, OutcomeReason: "InvalidConfig", OutcomeMessage: err.Error()}
		if r.writeStatus(ctx, w, p.At, st.Last, &p.Status, nil) {
			r.event(w.obj, nil, corev1.EventTypeWarning, EventInvalidConfig, "Decide", "%s", err.Error())
			metricOutcomes.WithLabelValues(w.kind, OutcomeFailed, "InvalidConfig").Inc()
		}
		log.Warn("cannot act on the workload", "error", err)
		return ctrl.Result{RequeueAfter: r.opts.Interval}, nil
	}
	chErr := r.resolveChannel(ctx, &cfg)
	p.Config = cfg
	if st.Rollout != nil {
		return r.followRollout(ctx, w, cfg, st, p, log)
	}
	return r.decide(ctx, w, cfg, chErr, st, p, log)
}

// resolveChannel fills in the channel of a workload annotated with a group
// alone: the group's channel as the server answers it, cached per poll like
// the channels themselves, so a group moved to another channel in the fleet
// repository takes its workloads along at the next poll.
func (r *Reconciler) resolveChannel(ctx context.Context, cfg *Config) error {
	if cfg.Channel != "" {
		return nil
	}
	gc := r.server.GroupChannel(ctx, cfg.Group)
	if gc.Err != nil {
		return fmt.Errorf("the channel of group %q (annotation %s, no %s): %w", cfg.Group, AnnotationGroup, AnnotationChannel, gc.Err)
	}
	cfg.Channel = gc.Channel
	return nil
}

// decide assembles the chain's inputs, decides, and updates when the chain says so.
// chErr says why the channel of a group-only workload is unknown; the
// target is then unknown too.
func (r *Reconciler) decide(ctx context.Context, w *workload, cfg Config, chErr error, st State, p *Pass, log *slog.Logger) (ctrl.Result, error) {
	now := p.At
	need := cfg.UpdateDuration
	if need == 0 {
		need = r.opts.UpdateDuration
	}
	in := reconcile.DecisionInput{
		Now:               now,
		Current:           cfg.Image.Version(),
		UpdateDuration:    need,
		UnusableThreshold: r.opts.UnusableThreshold,
		ScheduleRecheck:   r.opts.ScheduleRecheck,
	}
	var ch ChannelInfo
	if chErr != nil {
		ch = ChannelInfo{Target: reconcile.Target{Err: chErr}, Critical: reconcile.CriticalUnknown}
	} else {
		ch = r.server.Channel(ctx, cfg.Channel, r.identity(p, cfg))
	}
	in.Target, in.Critical, in.CriticalHold = ch.Target, ch.Critical, ch.CriticalHold
	if ch.Target.Err != nil {
		log.Warn("target unknown", "channel", cfg.Channel, "error", ch.Target.Err)
	}

	sch := r.loadSchedule(ctx, w, cfg, now, log)
	in.Schedule = decisionSchedule(sch)
	unusable := 0
	if _, bad := in.Schedule.Unusable(now, need); bad {
		if st.Last != nil {
			in.UnusableChecks = st.Last.UnusableChecks
			// A pass sooner than the recheck interval after the last counted
			// check (a watch event) is the same check again, not another:
			// the threshold is meant to span time, as on a host.
			recheck := r.opts.ScheduleRecheck
			if recheck <= 0 {
				recheck = reconcile.DefaultScheduleRecheck
			}
			if in.UnusableChecks > 0 && now.Sub(st.Last.Since) < recheck {
				in.UnusableChecks--
			}
		}
		unusable = in.UnusableChecks + 1
	}

	pods, err := r.pods(ctx, w)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("listing pods: %w", err)
	}
	ph := JudgePods(pods, now, r.opts.Grace)
	in.Health = ph.Health

	skipped, dropped := apply.PruneSkipped(st.Skipped, ch.Text)
	for _, s := range skipped {
		in.Skipped = append(in.Skipped, s.Version)
	}

	d := reconcile.Decide(in)
	// The lease is asked only when the chain says Update, then the chain
	// decides again with the answer: a refusal becomes ConcurrencyLimit.
	var lease reconcile.Lease
	if d.Action == reconcile.ActionUpdate && r.leases != nil {
		lease = r.acquireLease(ctx, p, cfg, ch.Text, log)
		in.Lease = lease
		d = reconcile.Decide(in)
	}
	p.Decision = d
	metricDecisions.WithLabelValues(w.kind, string(d.Action), d.Rule).Inc()
	status := Status{
		Action: string(d.Action), Rule: d.Rule, Reason: d.Reason, Message: d.Message,
		Current: in.Current, Target: ch.Text, Critical: ch.Critical == reconcile.CriticalYes,
		Health: healthText(ph.Health), Pods: ph.Message, Schedule: sch.String(),
		UnusableChecks: unusable,
	}
	if fit, ok := calendar.FirstFit(in.Schedule.Windows, now, need); ok && in.Schedule.State == reconcile.ScheduleLoaded {
		if !fit.Start.After(now) {
			// Open now: its start is past, so the next window is the one after it.
			fit, ok = calendar.FirstFit(in.Schedule.Windows, fit.End, need)
		}
		if ok {
			t := fit.Start.UTC()
			status.NextWindow = &t
		}
	}
	if !d.RecheckAt.IsZero() {
		t := d.RecheckAt.UTC()
		status.RecheckAt = &t
	}
	log.Debug("decision", "decision", d, "current", in.Current, "target", ch.Text, "health", ph.Message, "schedule", sch.String())

	var newSkipped []apply.Skip
	if len(dropped) > 0 {
		newSkipped = skipped
		if newSkipped == nil {
			newSkipped = []apply.Skip{}
		}
	}
	if d.Action == reconcile.ActionUpdate {
		res, err := r.update(ctx, w, cfg, st, ch.Text, &status, newSkipped, p, log)
		if lease.State == reconcile.LeaseGranted && (err != nil || status.Outcome != OutcomeUpdating) {
			// No rollout to follow (refused, or the write failed): the
			// place goes back now.
			r.releaseLease(ctx, p, cfg, log)
		}
		return res, err
	}
	if r.writeStatus(ctx, w, p.At, st.Last, &status, newSkipped) {
		log.Info("decision", "decision", d, "current", in.Current, "target", ch.Text)
	}
	p.Status = status
	return ctrl.Result{RequeueAfter: r.requeue(now, d.RecheckAt)}, nil
}

// identity is who the workload is to the version server and the leases:
// the agent id its reports carry (the workload's UID) and its group.
func (r *Reconciler) identity(p *Pass, cfg Config) versionclient.Identity {
	return versionclient.Identity{AgentID: p.UID, Group: cfg.Group}
}

// acquireLease asks for a place among the group's updating agents before
// the image changes.
func (r *Reconciler) acquireLease(ctx context.Context, p *Pass, cfg Config, version string, log *slog.Logger) reconcile.Lease {
	a, err := r.leases.Acquire(ctx, report.LeaseRequest{AgentID: p.UID, Group: cfg.Group, Channel: cfg.Channel, Version: version})
	l := report.LeaseInput(cfg.Group, a, err)
	switch l.State {
	case reconcile.LeaseGranted:
		log.Info("lease granted", "group", cfg.Group, "expiresAt", a.ExpiresAt)
	case reconcile.LeaseUnsupported:
		log.Info("updating without a lease: the server keeps none", "reason", err)
	case reconcile.LeaseRefused:
		log.Info("lease refused", "group", cfg.Group, "holders", a.Holders, "max", a.Max, "retryAfter", a.RetryAfter)
	case reconcile.LeaseFailed:
		log.Warn("lease could not be asked", "group", cfg.Group, "error", err)
	}
	return l
}

// releaseLeaseTimeout bounds giving a lease back; one left behind holds its
// place until the server's TTL.
const releaseLeaseTimeout = 10 * time.Second

// releaseLease gives the workload's lease back once its rollout is over.
func (r *Reconciler) releaseLease(ctx context.Context, p *Pass, cfg Config, log *slog.Logger) {
	if r.leases == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseLeaseTimeout)
	defer cancel()
	if err := r.leases.Release(ctx, cfg.Group, p.UID); err != nil {
		log.Warn("lease not given back; it frees its place when it expires", "group", cfg.Group, "error", err)
	}
}

// requeue is when to look again: the decision's recheck time, bounded by
// the interval and never sooner than minRequeue.
func (r *Reconciler) requeue(now, at time.Time) time.Duration {
	wait := r.opts.Interval
	if !at.IsZero() {
		if until := at.Sub(now); until < wait {
			wait = until
		}
	}
	return max(wait, minRequeue)
}

// update verifies the target image and writes it, pinned to the verified digest.
func (r *Reconciler) update(ctx context.Context, w *workload, cfg Config, st State, target string, status *Status, skipped []apply.Skip, p *Pass, log *slog.Logger) (ctrl.Result, error) {
	tag := cfg.Image.TagFor(target)
	ref := cfg.Repo + ":" + tag
	ver, err := r.verifier.VerifyFor(ctx, ref, cfg.TrustScope())
	if err != nil {
		if ctx.Err() != nil {
			return ctrl.Result{}, ctx.Err()
		}
		reason := VerifyReason(err)
		status.Outcome, status.OutcomeReason = OutcomeRefused, reason
		status.OutcomeMessage = fmt.Sprintf("image %s failed verification: %v; the workload keeps %s", ref, err, cfg.Image)
		wrote := r.writeStatus(ctx, w, p.At, st.Last, status, skipped)
		p.Status = *status
		if wrote {
			r.event(w.obj, nil, corev1.EventTypeWarning, EventRefused, "Verify", "%s: %s", reason, status.OutcomeMessage)
			metricOutcomes.WithLabelValues(w.kind, OutcomeRefused, reason).Inc()
			log.Warn("update refused", "image", ref, "reason", reason, "error", err)
		}
		return ctrl.Result{RequeueAfter: r.opts.Interval}, nil
	}

	pinned := Pinned(cfg.Repo, tag, ver.Digest)
	previous := cfg.Image.String()
	ro := Rollout{Version: target, Image: pinned, PreviousImage: previous, From: cfg.Image.Version(), Started: p.At.UTC(), KeyID: ver.KeyID}
	// The reason stays RolloutInProgress until the rollout ends, so the
	// passes that follow it write nothing.
	status.Outcome, status.OutcomeReason = OutcomeUpdating, "RolloutInProgress"
	status.OutcomeMessage = fmt.Sprintf("image changed from %s to %s (signature verified with key %s); following the rollout for up to %s",
		previous, pinned, ver.KeyID, r.opts.RolloutDeadline)
	status.Since = p.At.UTC()
	p.Status = *status
	err = r.patchWorkload(ctx, w, cfg.ContainerIndex, previous, func(obj client.Object, tmpl *corev1.PodTemplateSpec) {
		tmpl.Spec.Containers[cfg.ContainerIndex].Image = pinned
		setAnnotations(obj, map[string]*string{
			AnnotationPreviousImage: &previous,
			AnnotationRollout:       ptr(mustJSON(ro)),
			AnnotationLastDecision:  ptr(mustJSON(status)),
		})
		switch {
		case skipped == nil: // unchanged
		case len(skipped) == 0:
			setAnnotations(obj, map[string]*string{AnnotationSkipped: nil})
		default:
			setAnnotations(obj, map[string]*string{AnnotationSkipped: ptr(mustJSON(skipped))})
		}
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	metricOutcomes.WithLabelValues(w.kind, OutcomeUpdating, p.Decision.Reason).Inc()
	r.event(w.obj, nil, corev1.EventTypeNormal, EventUpdating, "Update", "%s: %s; %s", p.Decision.Reason, p.Decision.Message, status.OutcomeMessage)
	log.Info("updating", "from", previous, "to", pinned, "keyId", ver.KeyID, "decision", p.Decision)
	return ctrl.Result{RequeueAfter: r.opts.RolloutCheck}, nil
}

// followRollout watches an image change until it is done, rolled back
// after the deadline, or replaced by someone else's change.
func (r *Reconciler) followRollout(ctx context.Context, w *workload, cfg Config, st State, p *Pass, log *slog.Logger) (ctrl.Result, error) {
	ro := st.Rollout
	now := p.At
	status := Status{Current: cfg.Image.Version(), Target: ro.Version, Since: now.UTC()}
	if st.Last != nil {
		status = *st.Last
		// The decision that started the rollout is the pass's decision.
		p.Decision = reconcile.Decision{Action: reconcile.Action(st.Last.Action), Rule: st.Last.Rule, Reason: st.Last.Reason, Message: st.Last.Message}
	}
	status.Current = cfg.Image.Version()
	cur := w.image(cfg.ContainerIndex)
	if cur != ro.Image {
		// Someone else changed the image (an operator, a GitOps sync): stop
		// following ours and decide afresh.
		status.Outcome, status.OutcomeReason = OutcomeNone, EventRolloutSuperseded
		status.OutcomeMessage = fmt.Sprintf("the image was changed to %s while the rollout of %s was followed; no longer following it", cur, ro.Image)
		p.Status = status
		if err := r.patchAnnotations(ctx, w, map[string]*string{AnnotationRollout: nil, AnnotationLastDecision: ptr(mustJSON(status))}); err != nil {
			return ctrl.Result{}, err
		}
		r.releaseLease(ctx, p, cfg, log)
		r.event(w.obj, nil, corev1.EventTypeNormal, EventRolloutSuperseded, "Follow", "%s", status.OutcomeMessage)
		return ctrl.Result{RequeueAfter: minRequeue}, nil
	}

	prog := RolloutProgress(w.obj)
	deadline := ro.Started.Add(r.opts.RolloutDeadline)
	switch {
	case prog.Done:
		status.Outcome, status.OutcomeReason = OutcomeUpdated, "RolloutComplete"
		status.OutcomeMessage = fmt.Sprintf("%s is rolled out: %s", ro.Image, prog.Message)
		status.Since = now.UTC()
		p.Status = status
		if err := r.patchAnnotations(ctx, w, map[string]*string{AnnotationRollout: nil, AnnotationLastDecision: ptr(mustJSON(status))}); err != nil {
			return ctrl.Result{}, err
		}
		r.releaseLease(ctx, p, cfg, log)
		metricOutcomes.WithLabelValues(w.kind, OutcomeUpdated, "RolloutComplete").Inc()
		r.event(w.obj, nil, corev1.EventTypeNormal, EventUpdated, "Update", "%s", status.OutcomeMessage)
		log.Info("rollout complete", "image", ro.Image, "progress", prog.Message)
		return ctrl.Result{RequeueAfter: r.opts.Interval}, nil
	case prog.Failed || !now.Before(deadline):
		reason := "RolloutTimedOut"
		msg := fmt.Sprintf("the rollout of %s was not healthy within %s (%s)", ro.Image, r.opts.RolloutDeadline, prog.Message)
		if prog.Failed {
			reason, msg = "ProgressDeadlineExceeded", fmt.Sprintf("the rollout of %s failed: %s", ro.Image, prog.Message)
		}
		return r.rollBack(ctx, w, cfg, st, reason, msg, p, log)
	}

	if w.sts != nil {
		if err := r.unblock(ctx, w, now, log); err != nil {
			return ctrl.Result{}, err
		}
	}
	status.Outcome, status.OutcomeReason = OutcomeUpdating, "RolloutInProgress"
	status.OutcomeMessage = fmt.Sprintf("rolling out %s: %s; deadline %s", ro.Image, prog.Message, stamp(deadline))
	r.writeStatus(ctx, w, p.At, st.Last, &status, nil)
	p.Status = status
	return ctrl.Result{RequeueAfter: max(min(r.opts.RolloutCheck, deadline.Sub(now)), minRequeue)}, nil
}

// rollBack restores the previous image and skips the version.
func (r *Reconciler) rollBack(ctx context.Context, w *workload, cfg Config, st State, reason, msg string, p *Pass, log *slog.Logger) (ctrl.Result, error) {
	ro := st.Rollout
	skipped := append([]apply.Skip(nil), st.Skipped...)
	skipped = append(skipped, apply.Skip{Version: ro.Version, Since: p.At.UTC(), From: ro.From, Reason: reason, Message: msg})
	status := Status{Current: ro.From, Target: ro.Version, Since: p.At.UTC()}
	if st.Last != nil {
		status.Action, status.Rule, status.Reason, status.Message = st.Last.Action, st.Last.Rule, st.Last.Reason, st.Last.Message
		status.Critical, status.NextWindow = st.Last.Critical, st.Last.NextWindow
	}
	status.Current = mustImage(ro.PreviousImage).Version()
	status.Outcome, status.OutcomeReason = OutcomeRolledBack, reason
	status.OutcomeMessage = fmt.Sprintf("%s; restored %s and skipped %s until the channel offers another version", msg, ro.PreviousImage, ro.Version)
	p.Status = status
	err := r.patchWorkload(ctx, w, cfg.ContainerIndex, ro.Image, func(obj client.Object, tmpl *corev1.PodTemplateSpec) {
		tmpl.Spec.Containers[cfg.ContainerIndex].Image = ro.PreviousImage
		setAnnotations(obj, map[string]*string{
			AnnotationRollout:      nil,
			AnnotationSkipped:      ptr(mustJSON(skipped)),
			AnnotationLastDecision: ptr(mustJSON(status)),
		})
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	r.releaseLease(ctx, p, cfg, log)
	metricOutcomes.WithLabelValues(w.kind, OutcomeRolledBack, reason).Inc()
	r.event(w.obj, nil, corev1.EventTypeWarning, EventRolledBack, "RollBack", "%s: %s", reason, status.OutcomeMessage)
	log.Warn("rolled back", "reason", reason, "message", status.OutcomeMessage)
	return ctrl.Result{RequeueAfter: r.opts.RolloutCheck}, nil
}

// unblock deletes the pods that keep a StatefulSet's rollout from moving.
func (r *Reconciler) unblock(ctx context.Context, w *workload, now time.Time, log *slog.Logger) error {
	pods, err := r.pods(ctx, w)
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	for _, pod := range StuckPods(w.sts, pods, now, r.opts.Grace) {
		_, why := PodUnhealthy(pod, now, r.opts.Grace)
		err := r.client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID, ResourceVersion: &pod.ResourceVersion})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting stuck pod %s: %w", pod.Name, err)
		}
		if err != nil {
			continue // gone or changed meanwhile: the next look judges it again
		}
		metricPodsDeleted.Inc()
		r.event(w.obj, pod, corev1.EventTypeNormal, EventUnblocked, "DeletePod",
			"deleted pod %s of revision %s (%s) so the rollout to revision %s can proceed",
			pod.Name, pod.Labels[appsv1.ControllerRevisionHashLabelKey], why, w.sts.Status.UpdateRevision)
		log.Info("deleted a stuck pod", "pod", pod.Name, "why", why)
	}
	return nil
}

// pods lists the workload's pods straight from the API server: pods are
// not cached, because they carry none of upkeep's labels and caching every
// pod of the watched namespaces would cost far more than one list per pass.
func (r *Reconciler) pods(ctx context.Context, w *workload) ([]corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(w.selector())
	if err != nil {
		return nil, fmt.Errorf("the workload's selector: %w", err)
	}
	var list corev1.PodList
	if err := r.direct.List(ctx, &list, client.InNamespace(w.obj.GetNamespace()), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// patchWorkload changes the workload's pod template and annotations with a
// strategic merge patch carrying the resourceVersion it was computed from
// (optimistic concurrency): a concurrent change makes the API server answer
// Conflict, and the change is recomputed from a fresh read, unless the
// container's image is no longer expectImage (then someone else acted and
// the pass starts over).
func (r *Reconciler) patchWorkload(ctx context.Context, w *workload, container int, expectImage string, mutate func(client.Object, *corev1.PodTemplateSpec)) error {
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj := w.obj
		if !first {
			obj = newObject(w.kind)
			if err := r.direct.Get(ctx, client.ObjectKeyFromObject(w.obj), obj); err != nil {
				return err
			}
			fresh := wrap(obj)
			if fresh.image(container) != expectImage {
				return errWorkloadChanged
			}
			w.obj, w.dep, w.sts = fresh.obj, fresh.dep, fresh.sts
		}
		first = false
		orig := obj.DeepCopyObject().(client.Object)
		mutate(obj, wrap(obj).template())
		return r.client.Patch(ctx, obj, client.StrategicMergeFrom(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager))
	})
}

// patchAnnotations sets (or with nil removes) state annotations with a merge
// patch of just those keys: no other field is touched, so no lock is needed.
func (r *Reconciler) patchAnnotations(ctx context.Context, w *workload, set map[string]*string) error {
	orig := w.obj.DeepCopyObject().(client.Object)
	setAnnotations(w.obj, set)
	return r.client.Patch(ctx, w.obj, client.MergeFrom(orig), client.FieldOwner(FieldManager))
}

// writeStatus records status (and a changed skip list) when the decision
// differs from the last one recorded; it reports whether it wrote. Writing
// only on change keeps a steady workload at zero writes per pass.
func (r *Reconciler) writeStatus(ctx context.Context, w *workload, at time.Time, last *Status, status *Status, skipped []apply.Skip) bool {
	if status.sameDecision(last) && skipped == nil {
		status.Since = last.Since
		return false
	}
	status.Since = at.UTC()
	set := map[string]*string{AnnotationLastDecision: ptr(mustJSON(status))}
	if skipped != nil {
		set[AnnotationSkipped] = ptr(mustJSON(skipped))
		if len(skipped) == 0 {
			set[AnnotationSkipped] = nil
		}
	}
	if err := r.patchAnnotations(ctx, w, set); err != nil {
		r.log.Warn("cannot record the decision", "workload", w.id(), "error", err)
		return false
	}
	return true
}

// sendReport reports the pass when what it decided changed, or when the
// workload has not been reported for an interval.
func (r *Reconciler) sendReport(ctx context.Context, p *Pass, log *slog.Logger) {
	if r.reporter == nil {
		return
	}
	if p.Config.Channel == "" {
		// The report document requires a channel; a workload whose group's
		// channel could not be asked is logged and its event recorded, and
		// reported once the server answers.
		return
	}
	uid := p.UID
	r.reportMu.Lock()
	last, seen := r.reported[uid]
	due := !seen || p.At.Sub(last) >= r.opts.Interval || p.Status.Since.Equal(p.At.UTC()) || p.Err != nil
	if due {
		r.reported[uid] = p.At
	}
	r.reportMu.Unlock()
	if !due {
		return
	}
	rep := p.Report(r.opts.UpdaterVersion)
	if err := r.reporter.Send(ctx, rep); err != nil {
		metricReportErrors.Inc()
		log.Warn("report not sent", "error", err)
	}
}

// loadSchedule reads the workload's maintenance schedule from where its
// annotations say.
func (r *Reconciler) loadSchedule(ctx context.Context, w *workload, cfg Config, now time.Time, log *slog.Logger) schedule.Schedule {
	switch cfg.Schedule {
	case ScheduleNone:
		return schedule.Schedule{State: schedule.Missing, Message: fmt.Sprintf("annotation %s says %q", AnnotationSchedule, ScheduleNone)}
	case ScheduleFromAgent:
		return r.agentSchedule(ctx, w.obj.GetNamespace(), cfg.Agent, now)
	}
	return r.groupSchedule(ctx, w.obj.GetNamespace(), cfg.Group, now, log)
}

// agentSchedule reads the schedule a Teleport agent keeps in its Secret.
// The Secret is read from the API server: Secrets are not cached (the
// updater would otherwise hold every Secret of the watched namespaces).
func (r *Reconciler) agentSchedule(ctx context.Context, ns, agent string, now time.Time) schedule.Schedule {
	name := TeleportSecretName(agent)
	var sec corev1.Secret
	err := r.direct.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &sec)
	if apierrors.IsNotFound(err) {
		return schedule.Schedule{State: schedule.Missing, Message: fmt.Sprintf("no Secret %s/%s", ns, name)}
	}
	if err != nil {
		e := fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
		return schedule.Schedule{State: schedule.Unreadable, Err: e, Message: e.Error()}
	}
	return judgeSaved(sec.Data[TeleportScheduleKey], fmt.Sprintf("Secret %s/%s key %s", ns, name, TeleportScheduleKey), now)
}

// groupSchedule asks the server for the group's windows and keeps the answer
// in a ConfigMap beside the workload; when the server cannot answer, the
// saved copy is used.
func (r *Reconciler) groupSchedule(ctx context.Context, ns, group string, now time.Time, log *slog.Logger) schedule.Schedule {
	name := ScheduleConfigMapName(group)
	where := fmt.Sprintf("ConfigMap %s/%s", ns, name)
	var cm corev1.ConfigMap
	cmErr := r.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &cm)
	if cmErr != nil && !apierrors.IsNotFound(cmErr) {
		log.Warn("cannot read the saved schedule", "configMap", where, "error", cmErr)
	}
	g := r.server.Group(ctx, group)
	if g.Err == nil {
		sch := schedule.Evaluate(g.Windows, now)
		sch.Message = fmt.Sprintf("group %q from the server: %s", group, sch.Message)
		data, err := schedule.FormatJSON(g.Windows)
		if err == nil && (cmErr != nil || cm.Data[ScheduleConfigMapKey] != string(data)) {
			if err := r.saveSchedule(ctx, ns, name, group, data, cmErr == nil, &cm); err != nil {
				log.Warn("cannot save the group's schedule", "configMap", where, "error", err)
			}
		}
		return sch
	}
	fetchErr := fmt.Errorf("fetching the schedule of group %q: %w", group, g.Err)
	var saved schedule.Schedule
	if cmErr != nil {
		saved = schedule.Schedule{State: schedule.Missing, Message: "no saved copy in " + where}
	} else {
		saved = judgeSaved([]byte(cm.Data[ScheduleConfigMapKey]), where, now)
	}
	if saved.State == schedule.Unreadable {
		saved.Err = fmt.Errorf("%w; and the saved copy: %w", fetchErr, saved.Err)
	} else {
		saved.Err = fetchErr
	}
	saved.Message = fmt.Sprintf("%v; using the saved copy: %s", fetchErr, saved.Message)
	return saved
}

func (r *Reconciler) saveSchedule(ctx context.Context, ns, name, group string, data []byte, exists bool, cm *corev1.ConfigMap) error {
	if !exists {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{LabelManaged: "true"},
			Annotations: map[string]string{AnnotationGroup: group,
				"upkeep.dev/description": "maintenance windows of group " + group + ", saved by upkeep kube-updater"}},
			Data: map[string]string{ScheduleConfigMapKey: string(data)}}
		err := r.client.Create(ctx, cm, client.FieldOwner(FieldManager))
		if apierrors.IsAlreadyExists(err) {
			return nil // another pass saved it; the next pass compares again
		}
		return err
	}
	orig := cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[ScheduleConfigMapKey] = string(data)
	return r.client.Patch(ctx, cm, client.MergeFrom(orig), client.FieldOwner(FieldManager))
}

// judgeSaved reads a saved schedule in Teleport's JSON form; blank means missing.
func judgeSaved(data []byte, where string, now time.Time) schedule.Schedule {
	if len(strings.TrimSpace(string(data))) == 0 {
		return schedule.Schedule{State: schedule.Missing, Message: where + " is missing or empty"}
	}
	if len(data) > schedule.MaxFileSize {
		err := fmt.Errorf("%s is larger than %d bytes", where, schedule.MaxFileSize)
		return schedule.Schedule{State: schedule.Unreadable, Err: err, Message: err.Error()}
	}
	ws, err := schedule.ParseJSON(data)
	if err != nil {
		err = fmt.Errorf("%s: %w", where, err)
		return schedule.Schedule{State: schedule.Unreadable, Err: err, Message: err.Error()}
	}
	sch := schedule.Evaluate(ws, now)
	sch.Message = where + ": " + sch.Message
	return sch
}

func decisionSchedule(s schedule.Schedule) reconcile.Schedule {
	switch s.State {
	case schedule.Missing:
		return reconcile.Schedule{State: reconcile.ScheduleMissing}
	case schedule.Unreadable:
		return reconcile.Schedule{State: reconcile.ScheduleUnreadable, Err: s.Err}
	}
	return reconcile.Schedule{State: reconcile.ScheduleLoaded, Windows: s.Windows}
}

func setAnnotations(obj client.Object, set map[string]*string) {
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	for k, v := range set {
		if v == nil {
			delete(ann, k)
		} else {
			ann[k] = *v
		}
	}
	obj.SetAnnotations(ann)
}

func ptr[T any](v T) *T { return &v }

func mustImage(s string) Image {
	img, _ := ParseImage(s)
	return img
}

// maxEventNote is the API server's limit on an events.k8s.io/v1 Event's note
// (1 kB); a longer note would make the Event fail validation and vanish.
const maxEventNote = 1024

// event emits an Event, its note cut to what the API server accepts.
func (r *Reconciler) event(regarding, related runtime.Object, eventType, reason, action, format string, args ...any) {
	note := truncate(fmt.Sprintf(format, args...), maxEventNote)
	r.recorder.Eventf(regarding, related, eventType, reason, action, "%s", note)
}

// truncate cuts s to at most n bytes at a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = " …"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
