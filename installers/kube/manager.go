package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// DefaultLeaderElectionID names the Lease the updater's replicas compete for.
const DefaultLeaderElectionID = "upkeep-kube-updater"

// ManagerOptions configure the updater's controller-runtime manager.
type ManagerOptions struct {
	Options
	// Namespace limits the updater to one namespace; "" watches all.
	Namespace string
	// Server answers channels and group schedules (required).
	Server VersionServer
	// Verifier resolves and verifies images (required).
	Verifier ImageVerifier
	// Reporter sends reports; nil sends none.
	Reporter Reporter
	// Leases, when set, is asked for a concurrency lease before an image
	// change (given back when the rollout completes or is rolled back);
	// nil changes images without one.
	Leases LeaseServer
	// Logger receives the updater's and controller-runtime's logs.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	MetricsBindAddress     string // "0" disables
	HealthProbeBindAddress string // "0" disables
	LeaderElection         bool
	LeaderElectionID       string // default DefaultLeaderElectionID
	// LeaderElectionNamespace holds the Lease; in a pod it defaults to the
	// pod's namespace, outside one it is required.
	LeaderElectionNamespace string
	LeaseDuration           time.Duration // 0: controller-runtime's default (15s)
	RenewDeadline           time.Duration // 0: default (10s)
	RetryPeriod             time.Duration // 0: default (2s)
	MaxConcurrentReconciles int           // default 4
}

// NewManager builds the manager with the updater's two controllers
// (Deployments and StatefulSets) and its channel poller. The cache holds
// only what the updater manages: Deployments, StatefulSets and ConfigMaps
// labelled upkeep.dev/managed=true, in the one namespace or in all. Pods
// and Secrets are read from the API server when needed (see doc.go).
func NewManager(cfg *rest.Config, o ManagerOptions) (manager.Manager, *Reconciler, error) {
	if o.Server == nil || o.Verifier == nil {
		return nil, nil, errors.New("kube: a version server and an image verifier are required")
	}
	o.Options.defaults()
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LeaderElectionID == "" {
		o.LeaderElectionID = DefaultLeaderElectionID
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = 4
	}
	registerMetrics()

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, nil, err
	}
	managed := labels.SelectorFromSet(labels.Set{LabelManaged: "true"})
	cacheOpts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}:  {Label: managed},
			&appsv1.StatefulSet{}: {Label: managed},
			&corev1.ConfigMap{}:   {Label: managed},
		},
	}
	if o.Namespace != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{o.Namespace: {}}
	}
	mopts := manager.Options{
		Scheme: scheme,
		Logger: logr.FromSlogHandler(o.Logger.Handler()),
		Cache:  cacheOpts,
		Client: client.Options{Cache: &client.CacheOptions{
			// Never start an informer for these by accident through the
			// cached client: they are read with the API reader.
			DisableFor: []client.Object{&corev1.Pod{}, &corev1.Secret{}},
		}},
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: ptr(true)},
	}
	if o.LeaseDuration > 0 {
		mopts.LeaseDuration = &o.LeaseDuration
	}
	if o.RenewDeadline > 0 {
		mopts.RenewDeadline = &o.RenewDeadline
	}
	if o.RetryPeriod > 0 {
		mopts.RetryPeriod = &o.RetryPeriod
	}
	mgr, err := manager.New(cfg, mopts)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the manager: %w", err)
	}

	r := &Reconciler{
		client:   mgr.GetClient(),
		direct:   mgr.GetAPIReader(),
		recorder: mgr.GetEventRecorder(FieldManager),
		server:   newServerCache(o.Server, o.PollInterval, o.Now),
		verifier: newVerifyCache(o.Verifier, o.VerifyCacheTTL, o.Now),
		reporter: o.Reporter,
		leases:   o.Leases,
		opts:     o.Options,
		now:      o.Now,
		log:      o.Logger,
		reported: map[string]time.Time{},
	}
	p := &poller{client: mgr.GetClient(), server: r.server, interval: o.PollInterval,
		forget: max(10*o.Interval, time.Hour), log: o.Logger,
		events: map[string]chan event.GenericEvent{
			KindDeployment:  make(chan event.GenericEvent, 256),
			KindStatefulSet: make(chan event.GenericEvent, 256),
		}}
	for _, kind := range []string{KindDeployment, KindStatefulSet} {
		err := builder.ControllerManagedBy(mgr).
			Named("upkeep-"+strings.ToLower(kind)).
			For(newObject(kind), builder.WithPredicates(ignoreOwnWrites{})).
			WatchesRawSource(source.Channel(p.events[kind], &handler.EnqueueRequestForObject{})).
			WithOptions(controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles}).
			Complete(kindReconciler{r: r, kind: kind})
		if err != nil {
			return nil, nil, fmt.Errorf("creating the %s controller: %w", kind, err)
		}
	}
	if err := mgr.Add(p); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddHealthzCheck("ping", func(*http.Request) error { return nil }); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddReadyzCheck("cache", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), 100*time.Millisecond)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the cache has not synced yet")
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	return mgr, r, nil
}

// ignoreOwnWrites drops update events that change nothing but the
// updater's state annotations (and the resourceVersion that comes with
// them): the updater's own bookkeeping must not trigger another pass, or a
// pass that records "checked again" would reconcile forever.
type ignoreOwnWrites struct {
	predicate.Funcs
}

func (ignoreOwnWrites) Update(e event.UpdateEvent) bool {
	o, n := e.ObjectOld, e.ObjectNew
	if o == nil || n == nil {
		return true
	}
	if o.GetGeneration() != n.GetGeneration() || !reflect.DeepEqual(o.GetLabels(), n.GetLabels()) ||
		!reflect.DeepEqual(userAnnotations(o), userAnnotations(n)) || o.GetDeletionTimestamp() != n.GetDeletionTimestamp() {
		return true
	}
	switch oo := o.(type) {
	case *appsv1.Deployment:
		nn, ok := n.(*appsv1.Deployment)
		return !ok || !reflect.DeepEqual(oo.Status, nn.Status)
	case *appsv1.StatefulSet:
		nn, ok := n.(*appsv1.StatefulSet)
		return !ok || !reflect.DeepEqual(oo.Status, nn.Status)
	}
	return true
}

func (ignoreOwnWrites) Create(event.CreateEvent) bool   { return true }
func (ignoreOwnWrites) Delete(event.DeleteEvent) bool   { return false }
func (ignoreOwnWrites) Generic(event.GenericEvent) bool { return true }

func userAnnotations(o client.Object) map[string]string {
	out := map[string]string{}
	for k, v := range o.GetAnnotations() {
		if !strings.HasPrefix(k, statusPrefix) {
			out[k] = v
		}
	}
	return out
}

// poller asks the version server about every channel and group in use once
// per interval and enqueues the workloads that follow one whose answer
// changed: a channel change reaches every workload within one interval,
// without each workload polling the server. It runs on the leader only.
type poller struct {
	client   client.Client
	server   *serverCache
	interval time.Duration
	forget   time.Duration
	log      *slog.Logger
	events   map[string]chan event.GenericEvent
}

func (p *poller) NeedLeaderElection() bool { return true }

func (p *poller) Start(ctx context.Context) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		channels, groups := p.server.Refresh(ctx, p.forget)
		if len(channels) == 0 && len(groups) == 0 {
			continue
		}
		metricServerChanges.WithLabelValues("channel").Add(float64(len(channels)))
		metricServerChanges.WithLabelValues("group").Add(float64(len(groups)))
		p.log.Info("the server's answer changed; enqueueing the workloads that follow it", "channels", channels, "groups", groups)
		if err := p.enqueue(ctx, channels, groups); err != nil && ctx.Err() == nil {
			p.log.Warn("cannot enqueue workloads", "error", err)
		}
	}
}

func (p *poller) enqueue(ctx context.Context, channels, groups []string) error {
	in := func(list []string, v string) bool {
		for _, s := range list {
			if s == v {
				return true
			}
		}
		return false
	}
	send := func(kind string, obj client.Object) error {
		ann := obj.GetAnnotations()
		if !in(channels, strings.TrimSpace(ann[AnnotationChannel])) && !in(groups, strings.TrimSpace(ann[AnnotationGroup])) {
			return nil
		}
		select {
		case p.events[kind] <- event.GenericEvent{Object: obj}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var deps appsv1.DeploymentList
	if err := p.client.List(ctx, &deps, client.MatchingLabels{LabelManaged: "true"}); err != nil {
		return err
	}
	for i := range deps.Items {
		if err := send(KindDeployment, &deps.Items[i]); err != nil {
			return err
		}
	}
	var sets appsv1.StatefulSetList
	if err := p.client.List(ctx, &sets, client.MatchingLabels{LabelManaged: "true"}); err != nil {
		return err
	}
	for i := range sets.Items {
		if err := send(KindStatefulSet, &sets.Items[i]); err != nil {
			return err
		}
	}
	return nil
}
