// Package kube runs upkeep's Kubernetes updater against a real kube-apiserver
// and etcd (envtest), a real version server (reconcile/server over a fleet
// folder, on 127.0.0.1) and an in-process OCI registry holding images signed
// with cosign keys made in the test. envtest runs no controllers and no
// kubelet: pods and workload status are written by the test, as the
// Deployment and StatefulSet controllers would write them.
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"upkeep.dev/upkeep/e2e/kube/envtest"
	"upkeep.dev/upkeep/installers/kube"
	"upkeep.dev/upkeep/installers/oci"
	"upkeep.dev/upkeep/installers/oci/ocitest"
	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/apply"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/schedule"
	"upkeep.dev/upkeep/reconcile/server"
	"upkeep.dev/upkeep/sources"
	"upkeep.dev/upkeep/sources/versionclient"
)

// fleet is a real version server over a fleet folder the test rewrites.
type fleet struct {
	dir      string
	rec      *reconcile.Reconciler
	srv      *httptest.Server
	store    reportStore
	token    string // file holding the report token
	requests atomic.Int64

	mu       sync.Mutex
	channels map[string]string // name -> Channel document
	groups   map[string]string
}

const controlPlane = `apiVersion: upkeep.dev/v1alpha1
kind: ControlPlane
metadata:
  name: cp
spec:
  version: 2.0.0
`

func startFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{dir: t.TempDir(), channels: map[string]string{}, groups: map[string]string{}}
	if err := os.WriteFile(filepath.Join(f.dir, "cp.yaml"), []byte(controlPlane), 0o644); err != nil {
		t.Fatal(err)
	}
	f.rec = reconcile.New(sources.NewFolder(f.dir), reconcile.Options{Logger: quietLog()})
	if err := f.rec.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("report-token-e2e-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := report.LoadTokens(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	f.token = tokenFile
	f.store = openReportStore(t)
	h := server.New(f.rec, server.Options{Logger: quietLog(), ReportTokens: tokens, Store: f.store})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != report.ReportsPath {
			f.requests.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// setChannel writes a channel pinned to version (critical or not) and syncs.
func (f *fleet) setChannel(t *testing.T, name, version string, critical bool) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.channels[name] = fmt.Sprintf("apiVersion: upkeep.dev/v1alpha1\nkind: Channel\nmetadata:\n  name: %s\nspec:\n  controlPlane: cp\n  version: %s\n  critical: %v\n", name, version, critical)
	f.writeLocked(t)
}

// setGroup writes a group on channel with one daily window, in UTC,
// starting offset from now (negative: already open) and lasting dur.
func (f *fleet) setGroup(t *testing.T, name, channel string, offset, dur time.Duration) {
	t.Helper()
	start := time.Now().UTC().Add(offset)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups[name] = fmt.Sprintf("apiVersion: upkeep.dev/v1alpha1\nkind: Group\nmetadata:\n  name: %s\nspec:\n  channel: %s\n  timezone: UTC\n  updateDuration: 15m\n  windows:\n    - start: %q\n      duration: %s\n",
		name, channel, start.Format("15:04"), dur)
	f.writeLocked(t)
}

func (f *fleet) writeLocked(t *testing.T) {
	var docs []string
	for _, d := range f.channels {
		docs = append(docs, d)
	}
	for _, d := range f.groups {
		docs = append(docs, d)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "fleet.yaml"), []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.rec.Sync(context.Background()); err != nil {
		t.Fatalf("syncing the fleet: %v", err)
	}
	if st := f.rec.Status(); st.LastError != nil {
		t.Fatalf("the fleet is invalid: %+v", st.LastError)
	}
}

// images holds an in-process registry with agent images.
type images struct {
	reg        *ocitest.Registry
	trusted    *ocitest.KeyPair
	other      *ocitest.KeyPair
	repo       string
	digests    map[string]name.Digest // version -> digest
	verifier   *oci.Verifier
	verifyReqs atomic.Int64
}

// Versions in the registry and how each is signed.
const (
	vOld      = "1.0.0" // signed by the trusted key
	vNew      = "1.1.0" // signed by the trusted key
	vNewer    = "1.2.0" // signed by the trusted key
	vBad      = "1.3.0" // signed by the trusted key; its rollout is made to fail
	vUnsigned = "1.4.0" // no signature
	vWrongKey = "1.5.0" // signed by another key
	vReplayed = "1.6.0" // carries 1.1.0's signature, copied onto its digest
)

func startImages(t *testing.T) *images {
	t.Helper()
	im := &images{reg: ocitest.StartRegistry(t), trusted: ocitest.NewKeyPair(t), other: ocitest.NewKeyPair(t), digests: map[string]name.Digest{}}
	im.repo = im.reg.Host + "/agent"
	for _, v := range []string{vOld, vNew, vNewer, vBad, vUnsigned, vWrongKey, vReplayed} {
		im.digests[v] = ocitest.PushImage(t, im.repo+":"+v)
	}
	for _, v := range []string{vOld, vNew, vNewer, vBad} {
		ocitest.Sign(t, im.digests[v], im.trusted)
	}
	ocitest.Sign(t, im.digests[vWrongKey], im.other)
	ocitest.ReplaySignature(t, im.digests[vNew], im.digests[vReplayed])
	v, err := oci.NewVerifier([][]byte{im.trusted.PublicPEM}, oci.Options{AllowLoopbackHTTP: true, KeyNames: []string{"trusted test key"}})
	if err != nil {
		t.Fatal(err)
	}
	im.verifier = v
	return im
}

// pinned is the image the updater must write for version.
func (im *images) pinned(version string) string {
	return im.repo + ":" + version + "@" + im.digests[version].DigestStr()
}

// Verify adapts installers/oci to kube.ImageVerifier, as cmd/upkeep does.
func (im *images) Verify(ctx context.Context, image string) (kube.Verified, error) {
	im.verifyReqs.Add(1)
	r, err := im.verifier.Verify(ctx, image)
	if err != nil {
		return kube.Verified{}, err
	}
	return kube.Verified{Ref: r.Ref, Digest: r.Digest, KeyID: r.KeyID}, nil
}

// env is one apiserver, one fleet server, one registry.
type env struct {
	cfg    *rest.Config
	c      client.Client
	fleet  *fleet
	images *images
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := envtest.Config(t)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &env{cfg: cfg, c: c, fleet: startFleet(t), images: startImages(t)}
}

// options are the manager options of the scenarios: short waits so a test
// sees a rollout deadline pass, the real defaults for grace and thresholds.
func (e *env) options(t *testing.T) kube.ManagerOptions {
	vc, err := versionclient.New(e.fleet.srv.URL, versionclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := report.NewClient(e.fleet.srv.URL, report.ClientOptions{TokenFile: e.fleet.token})
	if err != nil {
		t.Fatal(err)
	}
	return kube.ManagerOptions{
		Options: kube.Options{
			Interval:        30 * time.Second,
			PollInterval:    time.Second,
			RolloutDeadline: 8 * time.Second,
			RolloutCheck:    500 * time.Millisecond,
			ScheduleRecheck: time.Second,
			UpdaterVersion:  "e2e",
		},
		Server: vc, Verifier: e.images, Reporter: rc, Logger: testLog(t),
		MetricsBindAddress: "0", HealthProbeBindAddress: "0",
	}
}

// start runs a manager until the test ends or stop is called.
func (e *env) start(t *testing.T, cfg *rest.Config, o kube.ManagerOptions) (r *kube.Reconciler, stop func()) {
	t.Helper()
	mgr, r, err := kube.NewManager(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

func (e *env) namespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

// workload describes a Deployment or StatefulSet the test creates.
type workload struct {
	ns, name    string
	sts         bool
	version     string // image tag; the image is im.repo:version
	image       string // overrides version
	replicas    int32
	annotations map[string]string
	labels      map[string]string // default: upkeep.dev/managed=true
}

func (e *env) create(t *testing.T, w workload) client.Object {
	t.Helper()
	img := w.image
	if img == "" {
		img = e.images.repo + ":" + w.version
	}
	replicas := w.replicas
	if replicas == 0 {
		replicas = 1
	}
	sel := map[string]string{"app": w.name}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: sel},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: img}}},
	}
	labels := w.labels
	if labels == nil {
		labels = map[string]string{kube.LabelManaged: "true"}
	}
	meta := metav1.ObjectMeta{Namespace: w.ns, Name: w.name, Labels: labels, Annotations: w.annotations}
	var obj client.Object
	if w.sts {
		obj = &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel}, Template: tmpl, ServiceName: w.name}}
	} else {
		obj = &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel}, Template: tmpl}}
	}
	if err := e.c.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// pod creates a pod of the workload, Ready or not since since.
func (e *env) pod(t *testing.T, ns, workloadName, podName string, ready bool, since time.Time, labels map[string]string) {
	t.Helper()
	l := map[string]string{"app": workloadName}
	for k, v := range labels {
		l[k] = v
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: podName, Labels: l},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "agent"}}}}
	ctx := context.Background()
	if err := e.c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(since)}}}
	if err := e.c.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// healthy gives a workload one Ready pod.
func (e *env) healthy(t *testing.T, ns, name string) {
	e.pod(t, ns, name, name+"-0", true, time.Now().Add(-time.Hour), nil)
}

func (e *env) deployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func image(obj client.Object) string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Spec.Template.Spec.Containers[0].Image
	case *appsv1.StatefulSet:
		return o.Spec.Template.Spec.Containers[0].Image
	}
	return ""
}

func lastDecision(t *testing.T, obj client.Object) *kube.Status {
	s := obj.GetAnnotations()[kube.AnnotationLastDecision]
	if s == "" {
		return nil
	}
	st, err := kube.ReadState(obj.GetAnnotations())
	if err != nil {
		t.Fatal(err)
	}
	return st.Last
}

// eventually polls cond every 100ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s; last seen: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getObj reads a workload fresh.
func (e *env) getObj(t *testing.T, ns, name string, sts bool) client.Object {
	t.Helper()
	var obj client.Object = &appsv1.Deployment{}
	if sts {
		obj = &appsv1.StatefulSet{}
	}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// modify changes a workload with retries on conflict: the updater writes
// its annotations concurrently.
func (e *env) modify(t *testing.T, ns, name string, sts bool, change func(client.Object)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj := e.getObj(t, ns, name, sts)
		change(obj)
		return e.c.Update(context.Background(), obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitImage waits until the workload's image is want.
func (e *env) waitImage(t *testing.T, ns, name string, sts bool, want string, timeout time.Duration) client.Object {
	t.Helper()
	var obj client.Object
	eventually(t, timeout, fmt.Sprintf("%s/%s image is %s", ns, name, want), func() (bool, string) {
		obj = e.getObj(t, ns, name, sts)
		return image(obj) == want, fmt.Sprintf("image %s, decision %s", image(obj), obj.GetAnnotations()[kube.AnnotationLastDecision])
	})
	return obj
}

// waitDecision waits until the last decision satisfies ok.
func (e *env) waitDecision(t *testing.T, ns, name string, sts bool, timeout time.Duration, what string, ok func(*kube.Status) bool) client.Object {
	t.Helper()
	var obj client.Object
	eventually(t, timeout, what, func() (bool, string) {
		obj = e.getObj(t, ns, name, sts)
		st := lastDecision(t, obj)
		return st != nil && ok(st), obj.GetAnnotations()[kube.AnnotationLastDecision]
	})
	return obj
}

// event waits for an Event about the workload with reason, whose note
// contains want, and returns its note.
func (e *env) event(t *testing.T, ns, name, reason, want string, timeout time.Duration) string {
	t.Helper()
	note := ""
	eventually(t, timeout, fmt.Sprintf("an Event %s on %s/%s mentioning %q", reason, ns, name, want), func() (bool, string) {
		var list eventsv1.EventList
		if err := e.c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, ev := range list.Items {
			if ev.Regarding.Name != name {
				continue
			}
			seen = append(seen, ev.Reason+": "+ev.Note)
			if ev.Reason == reason && strings.Contains(ev.Note, want) {
				note = ev.Note
				return true, ""
			}
		}
		return false, strings.Join(seen, " | ")
	})
	return note
}

// simulateControllers plays the Deployment and StatefulSet controllers for
// workloads in namespaces: once a new generation appears it reports the
// rollout done, unless the workload is labelled e2e.upkeep.dev/rollout=hang.
// StatefulSets labelled e2e.upkeep.dev/rollout=stuck behave as OrderedReady
// does: no progress while a pod of an older revision is not Ready.
func (e *env) simulateControllers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			e.stepDeployments(ctx)
			e.stepStatefulSets(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

const labelRollout = "e2e.upkeep.dev/rollout"

func (e *env) stepDeployments(ctx context.Context) {
	var list appsv1.DeploymentList
	if err := e.c.List(ctx, &list); err != nil {
		return
	}
	for i := range list.Items {
		d := &list.Items[i]
		if d.Status.ObservedGeneration >= d.Generation || d.Labels[labelRollout] == "hang" {
			continue
		}
		n := *d.Spec.Replicas
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		_ = e.c.Status().Update(ctx, d)
	}
}

func (e *env) stepStatefulSets(ctx context.Context) {
	var list appsv1.StatefulSetList
	if err := e.c.List(ctx, &list); err != nil {
		return
	}
	for i := range list.Items {
		s := &list.Items[i]
		n := *s.Spec.Replicas
		rev := fmt.Sprintf("rev-%d", s.Generation)
		if s.Labels[labelRollout] != "stuck" {
			if s.Status.ObservedGeneration < s.Generation {
				s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, CurrentReplicas: n, CurrentRevision: rev, UpdateRevision: rev}
				_ = e.c.Status().Update(ctx, s)
			}
			continue
		}
		// OrderedReady: the controller waits while any pod is not Ready, so
		// a broken pod of the old revision blocks the update for good.
		var pods corev1.PodList
		if err := e.c.List(ctx, &pods, client.InNamespace(s.Namespace), client.MatchingLabels(s.Spec.Selector.MatchLabels)); err != nil {
			continue
		}
		blocked := false
		for _, p := range pods.Items {
			if p.Labels[appsv1.ControllerRevisionHashLabelKey] != rev && !podReady(&p) {
				blocked = true
			}
		}
		want := appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: n, ReadyReplicas: n - 1, CurrentRevision: "rev-1", UpdateRevision: rev}
		if s.Generation == 1 {
			want.UpdateRevision = "rev-1"
		} else if !blocked {
			want = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, CurrentReplicas: n, CurrentRevision: rev, UpdateRevision: rev}
		}
		if !reflect.DeepEqual(s.Status, want) {
			s.Status = want
			_ = e.c.Status().Update(ctx, s)
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testLog sends the updater's logs to the test log at info and above
// (UPKEEP_E2E_DEBUG=1: debug), so a failure shows what the updater decided.
func testLog(t *testing.T) *slog.Logger {
	lv := slog.LevelInfo
	if os.Getenv("UPKEEP_E2E_DEBUG") != "" {
		lv = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: lv}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended must not panic
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Windows of the scenarios' groups, daily in UTC.
const (
	open   = -time.Hour    // opened an hour ago ...
	openD  = 6 * time.Hour // ... for six hours
	closed = 3 * time.Hour // opens in three hours ...
	shut   = time.Hour     // ... for one
)

const waitLong = 45 * time.Second // a loaded 2-core machine runs every scenario at once

// TestUpdater runs the updater's scenarios against one apiserver, each in its
// own namespace, channel and group, all at once under one manager.
func TestUpdater(t *testing.T) {
	e := newEnv(t)
	e.simulateControllers(t)
	e.start(t, e.cfg, e.options(t))

	// setup makes the scenario's namespace, and its channel and group.
	setup := func(t *testing.T, name, version string, critical bool, offset, dur time.Duration) (ns, channel, group string) {
		t.Parallel()
		ns, channel, group = e.namespace(t, "s-"+name), "c-"+name, "g-"+name
		e.fleet.setChannel(t, channel, version, critical)
		e.fleet.setGroup(t, group, channel, offset, dur)
		return ns, channel, group
	}
	ann := func(channel, group string) map[string]string {
		return map[string]string{kube.AnnotationChannel: channel, kube.AnnotationGroup: group}
	}
	im := e.images

	t.Run("outside the window a healthy workload is left unchanged and told when its window opens", func(t *testing.T) {
		ns, ch, gr := setup(t, "outside", vNew, false, closed, shut)
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: ann(ch, gr)})
		obj := e.waitDecision(t, ns, "agent", false, waitLong, "a Wait decision", func(s *kube.Status) bool {
			return s.Action == string(reconcile.ActionWait) && s.Reason == "OutsideWindow"
		})
		st := lastDecision(t, obj)
		if st.NextWindow == nil || !st.NextWindow.After(time.Now()) || st.Target != vNew || st.Current != vOld {
			t.Fatalf("the decision should name the next window, current and target: %+v", st)
		}
		if got := image(obj); got != im.repo+":"+vOld {
			t.Fatalf("image changed outside the window: %s", got)
		}
		// The group's schedule is saved beside the workload, in Teleport's format.
		var cm corev1.ConfigMap
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: kube.ScheduleConfigMapName(gr)}, &cm); err != nil {
			t.Fatalf("the schedule was not saved: %v", err)
		}
		ws, err := schedule.ParseJSON([]byte(cm.Data[kube.ScheduleConfigMapKey]))
		if err != nil || len(ws) == 0 {
			t.Fatalf("saved schedule %q: %v", cm.Data[kube.ScheduleConfigMapKey], err)
		}
		if _, ok := calendar.Open(ws, time.Now()); ok {
			t.Fatal("the saved schedule says a window is open now")
		}
	})

	t.Run("inside the window the workload is updated to the signed digest, followed and reported", func(t *testing.T) {
		ns, ch, gr := setup(t, "inside", vNew, false, open, openD)
		// The Ready pod first: a pass between the two would see no pods and
		// update for AgentUnhealthy instead.
		e.healthy(t, ns, "agent")
		obj := e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: ann(ch, gr)})
		e.waitImage(t, ns, "agent", false, im.pinned(vNew), waitLong)
		note := e.event(t, ns, "agent", kube.EventUpdating, "InsideWindow", waitLong)
		if !strings.Contains(note, im.pinned(vNew)) {
			t.Fatalf("the Updating event does not name the pinned image: %s", note)
		}
		obj = e.waitDecision(t, ns, "agent", false, waitLong, "the rollout followed to its end", func(s *kube.Status) bool {
			return s.Outcome == kube.OutcomeUpdated || s.Reason == "AlreadyOnTarget" && s.Current == vNew
		})
		if prev := obj.GetAnnotations()[kube.AnnotationPreviousImage]; prev != im.repo+":"+vOld {
			t.Fatalf("previous image %q", prev)
		}
		e.event(t, ns, "agent", kube.EventUpdated, "rolled out", waitLong)
		eventually(t, waitLong, "a report from the workload", func() (bool, string) {
			a, ok := e.fleet.store.Get(string(obj.GetUID()))
			if !ok {
				return false, "none"
			}
			return a.Workload == ns+"/Deployment/agent" && a.Kind == "kubernetes" && a.Channel == ch, a.Workload
		})
	})

	t.Run("a critical update is applied outside the window", func(t *testing.T) {
		ns, ch, gr := setup(t, "critical", vNew, true, closed, shut)
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: ann(ch, gr)})
		e.waitImage(t, ns, "agent", false, im.pinned(vNew), waitLong)
		e.event(t, ns, "agent", kube.EventUpdating, "CriticalUpdate", waitLong)
	})

	t.Run("a workload without pods is updated outside the window", func(t *testing.T) {
		ns, ch, gr := setup(t, "nopods", vNew, false, closed, shut)
		e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: ann(ch, gr)})
		e.waitImage(t, ns, "agent", false, im.pinned(vNew), waitLong)
		e.event(t, ns, "agent", kube.EventUpdating, "AgentUnhealthy", waitLong)
	})

	t.Run("a pod not Ready past the grace period makes an update at once; within it, not", func(t *testing.T) {
		ns, ch, gr := setup(t, "notready", vNew, false, closed, shut)
		// Pods before workloads, so that no pass sees a workload without pods.
		e.pod(t, ns, "broken", "broken-a", true, time.Now().Add(-time.Hour), nil)
		e.pod(t, ns, "broken", "broken-b", false, time.Now().Add(-10*time.Minute), nil)
		e.create(t, workload{ns: ns, name: "broken", version: vOld, replicas: 2, annotations: ann(ch, gr)})
		e.pod(t, ns, "starting", "starting-a", true, time.Now().Add(-time.Hour), nil)
		e.pod(t, ns, "starting", "starting-b", false, time.Now().Add(-time.Minute), nil)
		e.create(t, workload{ns: ns, name: "starting", version: vOld, replicas: 2, annotations: ann(ch, gr)})
		e.waitImage(t, ns, "broken", false, im.pinned(vNew), waitLong)
		obj := e.waitDecision(t, ns, "starting", false, waitLong, "the starting workload waits", func(s *kube.Status) bool {
			return s.Reason == "OutsideWindow"
		})
		if image(obj) != im.repo+":"+vOld {
			t.Fatalf("a pod within its grace period made an update: %s", image(obj))
		}
	})

	t.Run("a missing schedule Secret makes an update; a Teleport schedule in the Secret is obeyed", func(t *testing.T) {
		ns, ch, _ := setup(t, "agentsched", vNew, false, closed, shut)
		only := map[string]string{kube.AnnotationChannel: ch}
		// Pods and the Secret before the workloads, so that no pass sees a
		// workload without pods or the Teleport one without its schedule.
		e.healthy(t, ns, "nosecret")
		e.healthy(t, ns, "teleport")
		later := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)
		data, err := schedule.FormatJSON([]calendar.Interval{{Start: later, End: later.Add(time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: kube.TeleportSecretName("teleport")},
			Data: map[string][]byte{kube.TeleportScheduleKey: data}}
		if err := e.c.Create(context.Background(), sec); err != nil {
			t.Fatal(err)
		}
		e.create(t, workload{ns: ns, name: "nosecret", version: vOld, annotations: only})
		e.create(t, workload{ns: ns, name: "teleport", version: vOld, annotations: only})
		e.waitImage(t, ns, "nosecret", false, im.pinned(vNew), waitLong)
		e.event(t, ns, "nosecret", kube.EventUpdating, "ScheduleMissing", waitLong)
		obj := e.waitDecision(t, ns, "teleport", false, waitLong, "the Teleport-scheduled workload waits", func(s *kube.Status) bool {
			return s.Reason == "OutsideWindow" && s.NextWindow != nil && s.NextWindow.Equal(later)
		})
		if image(obj) != im.repo+":"+vOld {
			t.Fatalf("updated outside the Teleport schedule's window: %s", image(obj))
		}
	})

	refused := []struct{ name, scenario, version, reason string }{
		{"unsigned", "an unsigned image is refused", vUnsigned, oci.ReasonUnsigned},
		{"wrongkey", "an image signed by another key is refused", vWrongKey, oci.ReasonNoMatchingSignature},
		{"replayed", "a signature replayed from another digest is refused", vReplayed, oci.ReasonNoMatchingSignature},
	}
	for _, tt := range refused {
		t.Run(tt.scenario+", the workload unchanged, an Event emitted", func(t *testing.T) {
			ns, ch, gr := setup(t, tt.name, tt.version, false, open, openD)
			e.healthy(t, ns, "agent")
			e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: ann(ch, gr)})
			obj := e.waitDecision(t, ns, "agent", false, waitLong, "a refusal", func(s *kube.Status) bool {
				return s.Outcome == kube.OutcomeRefused
			})
			st := lastDecision(t, obj)
			if st.OutcomeReason != tt.reason || !strings.Contains(st.OutcomeMessage, tt.version) {
				t.Fatalf("refusal %s: %s, want reason %s naming %s", st.OutcomeReason, st.OutcomeMessage, tt.reason, tt.version)
			}
			e.event(t, ns, "agent", kube.EventRefused, tt.reason, waitLong)
			time.Sleep(2 * time.Second) // a few more passes must not change it either
			if got := image(e.getObj(t, ns, "agent", false)); got != im.repo+":"+vOld {
				t.Fatalf("the workload changed after a refusal: %s", got)
			}
		})
	}

	t.Run("lowering the channel downgrades the workload", func(t *testing.T) {
		ns, ch, gr := setup(t, "lowered", vNewer, false, open, openD)
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", image: im.pinned(vNewer), annotations: ann(ch, gr)})
		e.waitDecision(t, ns, "agent", false, waitLong, "on target", func(s *kube.Status) bool { return s.Reason == "AlreadyOnTarget" })
		e.fleet.setChannel(t, ch, vNew, false)
		e.waitImage(t, ns, "agent", false, im.pinned(vNew), waitLong)
	})

	t.Run("a failed rollout restores the previous image and skips the version; raising the channel rolls forward", func(t *testing.T) {
		ns, ch, gr := setup(t, "failed", vBad, false, open, openD)
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: ann(ch, gr),
			labels: map[string]string{kube.LabelManaged: "true", labelRollout: "hang"}})
		e.waitImage(t, ns, "agent", false, im.pinned(vBad), waitLong)
		obj := e.waitImage(t, ns, "agent", false, im.repo+":"+vOld, waitLong)
		var skipped []apply.Skip
		if err := json.Unmarshal([]byte(obj.GetAnnotations()[kube.AnnotationSkipped]), &skipped); err != nil || len(skipped) != 1 || skipped[0].Version != vBad {
			t.Fatalf("skip list %q: %v", obj.GetAnnotations()[kube.AnnotationSkipped], err)
		}
		e.event(t, ns, "agent", kube.EventRolledBack, "RolloutTimedOut", waitLong)
		e.waitDecision(t, ns, "agent", false, waitLong, "the skipped version is kept away", func(s *kube.Status) bool {
			return s.Reason == "TargetSkipped"
		})
		// Roll forward: the next version is taken, the skip list forgets 1.3.0.
		e.modify(t, ns, "agent", false, func(o client.Object) { o.SetLabels(map[string]string{kube.LabelManaged: "true"}) })
		e.fleet.setChannel(t, ch, vNewer, false)
		obj = e.waitImage(t, ns, "agent", false, im.pinned(vNewer), waitLong)
		if s := obj.GetAnnotations()[kube.AnnotationSkipped]; s != "" {
			t.Fatalf("the skip list still holds %s after the channel moved on", s)
		}
	})

	t.Run("a StatefulSet stuck on an unhealthy pod of the old revision is unblocked", func(t *testing.T) {
		ns, ch, gr := setup(t, "stuck", vNew, false, closed, shut)
		e.create(t, workload{ns: ns, name: "web", sts: true, version: vOld, replicas: 2, annotations: ann(ch, gr),
			labels: map[string]string{kube.LabelManaged: "true", labelRollout: "stuck"}})
		old := map[string]string{"controller-revision-hash": "rev-1"}
		e.pod(t, ns, "web", "web-0", true, time.Now().Add(-time.Hour), old)
		e.pod(t, ns, "web", "web-1", false, time.Now().Add(-time.Hour), old)
		e.waitImage(t, ns, "web", true, im.pinned(vNew), waitLong)
		e.event(t, ns, "web", kube.EventUnblocked, "web-1", waitLong)
		var p corev1.Pod
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "web-0"}, &p); err != nil {
			t.Fatalf("the healthy pod of the old revision was deleted too: %v", err)
		}
		e.event(t, ns, "web", kube.EventUpdated, "rolled out", waitLong)
	})

	t.Run("a workload with a group alone follows the group's channel and is updated inside its window", func(t *testing.T) {
		ns, ch, gr := setup(t, "grouponly", vNew, false, open, openD)
		// The Ready pod first, so that the first pass decides on the window,
		// not on a workload without pods.
		e.healthy(t, ns, "agent")
		obj := e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: map[string]string{kube.AnnotationGroup: gr}})
		e.waitImage(t, ns, "agent", false, im.pinned(vNew), waitLong)
		e.event(t, ns, "agent", kube.EventUpdating, "InsideWindow", waitLong)
		eventually(t, waitLong, "a report naming the group's channel", func() (bool, string) {
			a, ok := e.fleet.store.Get(string(obj.GetUID()))
			if !ok {
				return false, "none"
			}
			return a.Channel == ch && a.Group == gr, a.Channel + " " + a.Group
		})
	})

	t.Run("a workload with neither channel nor group is left alone and told which annotation to set", func(t *testing.T) {
		ns, _, _ := setup(t, "nochannel", vNew, false, open, openD)
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: map[string]string{kube.AnnotationContainer: "agent"}})
		e.event(t, ns, "agent", kube.EventInvalidConfig, "set "+kube.AnnotationChannel+" (the release channel to follow, e.g. stable/cloud) or "+kube.AnnotationGroup, waitLong)
		obj := e.waitDecision(t, ns, "agent", false, waitLong, "a failed pass recorded", func(s *kube.Status) bool {
			return s.Outcome == kube.OutcomeFailed && s.OutcomeReason == "InvalidConfig"
		})
		if image(obj) != im.repo+":"+vOld {
			t.Fatalf("a misconfigured workload was changed: %s", image(obj))
		}
	})

	t.Run("the skip-reconcile annotation leaves a workload alone", func(t *testing.T) {
		ns, ch, gr := setup(t, "skip", vNew, false, open, openD)
		a := ann(ch, gr)
		a[kube.AnnotationSkipReconcile] = "true"
		e.healthy(t, ns, "agent")
		e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: a})
		// A workload beside it, on the same channel, proves passes happen.
		e.healthy(t, ns, "control")
		e.create(t, workload{ns: ns, name: "control", version: vOld, annotations: ann(ch, gr)})
		e.waitImage(t, ns, "control", false, im.pinned(vNew), waitLong)
		time.Sleep(2 * time.Second)
		obj := e.getObj(t, ns, "agent", false)
		if image(obj) != im.repo+":"+vOld || obj.GetAnnotations()[kube.AnnotationLastDecision] != "" {
			t.Fatalf("a skipped workload was touched: image %s, annotations %v", image(obj), obj.GetAnnotations())
		}
		// Removing the annotation hands it back.
		e.modify(t, ns, "agent", false, func(o client.Object) {
			ann := o.GetAnnotations()
			delete(ann, kube.AnnotationSkipReconcile)
			o.SetAnnotations(ann)
		})
		e.waitImage(t, ns, "agent", false, im.pinned(vNew), waitLong)
	})
}

// TestTwoReplicasOneLeader runs two updaters with leader election: only the
// leader acts; when it stops, the other takes over.
func TestTwoReplicasOneLeader(t *testing.T) {
	e := newEnv(t)
	e.simulateControllers(t)
	ns := e.namespace(t, "leader")
	e.fleet.setChannel(t, "c-leader", vNew, false)
	e.fleet.setGroup(t, "g-leader", "c-leader", open, openD)
	o := e.options(t)
	o.LeaderElection, o.LeaderElectionNamespace, o.LeaderElectionID = true, ns, "upkeep-e2e"
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	o1 := o
	o1.MetricsBindAddress, o1.HealthProbeBindAddress = freeAddr(t), freeAddr(t)
	r1, stop1 := e.start(t, e.cfg, o1)
	r2, stop2 := e.start(t, e.cfg, o)
	for _, path := range []string{"/healthz", "/readyz"} {
		eventually(t, waitLong, "replica 1 answers "+path, func() (bool, string) {
			code, body := httpGet(t, "http://"+o1.HealthProbeBindAddress+path)
			return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
		})
	}

	e.healthy(t, ns, "agent")
	e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: map[string]string{kube.AnnotationChannel: "c-leader", kube.AnnotationGroup: "g-leader"}})
	e.waitImage(t, ns, "agent", false, e.images.pinned(vNew), waitLong)
	e.event(t, ns, "agent", kube.EventUpdated, "rolled out", waitLong)
	code, metrics := httpGet(t, "http://"+o1.MetricsBindAddress+"/metrics")
	for _, want := range []string{`upkeep_kube_outcomes_total{kind="Deployment",outcome="Updating",reason="InsideWindow"}`,
		`upkeep_kube_decisions_total{action="Update",kind="Deployment",rule="InWindow"}`, "controller_runtime_reconcile_total"} {
		if code != http.StatusOK || !strings.Contains(metrics, want) {
			t.Fatalf("/metrics (status %d) lacks %s", code, want)
		}
	}
	n1, n2 := r1.Reconciles(), r2.Reconciles()
	t.Logf("passes: replica 1 %d, replica 2 %d", n1, n2)
	if (n1 == 0) == (n2 == 0) {
		t.Fatalf("want exactly one replica acting, got passes %d and %d", n1, n2)
	}
	leader, stopLeader, follower := r1, stop1, r2
	if n1 == 0 {
		leader, stopLeader, follower = r2, stop2, r1
	}
	stopLeader() // releases the Lease on the way out
	before := leader.Reconciles()
	e.fleet.setChannel(t, "c-leader", vNewer, false)
	e.waitImage(t, ns, "agent", false, e.images.pinned(vNewer), waitLong)
	if follower.Reconciles() == 0 {
		t.Fatal("the follower never acted after the leader stopped")
	}
	if leader.Reconciles() != before {
		t.Fatal("the stopped leader kept acting")
	}
}

// TestCacheLimits checks that the updater sees only what it manages: an
// unlabelled Deployment carrying upkeep's annotations, and with --namespace a
// managed Deployment in another namespace, are left alone.
func TestCacheLimits(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t, "watched")
	other := e.namespace(t, "elsewhere")
	e.fleet.setChannel(t, "c-u", vNew, false)
	e.fleet.setGroup(t, "g-u", "c-u", open, openD)
	o := e.options(t)
	o.Namespace = ns
	e.start(t, e.cfg, o)
	a := map[string]string{kube.AnnotationChannel: "c-u", kube.AnnotationGroup: "g-u"}
	e.create(t, workload{ns: ns, name: "plain", version: vOld, annotations: a, labels: map[string]string{"app": "plain"}})
	e.create(t, workload{ns: other, name: "managed", version: vOld, annotations: a})
	e.create(t, workload{ns: ns, name: "managed", version: vOld, annotations: a})
	for _, w := range [][2]string{{ns, "plain"}, {ns, "managed"}, {other, "managed"}} {
		e.healthy(t, w[0], w[1])
	}
	e.waitImage(t, ns, "managed", false, e.images.pinned(vNew), waitLong)
	time.Sleep(time.Second)
	if got := image(e.getObj(t, ns, "plain", false)); got != e.images.repo+":"+vOld {
		t.Fatalf("an unlabelled Deployment was changed: %s", got)
	}
	if got := image(e.getObj(t, other, "managed", false)); got != e.images.repo+":"+vOld {
		t.Fatalf("a Deployment outside --namespace was changed: %s", got)
	}
}

// requestCounter counts the updater's requests to the API server by verb
// and resource, watches included (each is one request).
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		key := req.Method + " " + resourceOf(req.URL.Path)
		if req.URL.Query().Get("watch") == "true" {
			key = "WATCH " + resourceOf(req.URL.Path)
		}
		c.mu.Lock()
		c.counts[key]++
		c.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

func (c *requestCounter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.counts
	c.counts = map[string]int{}
	return old
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// resourceOf turns /apis/apps/v1/namespaces/ns/deployments/name into
// "deployments" (and .../status into "deployments/status").
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		if p == "namespaces" && i+2 < len(parts) {
			rest := parts[i+2:]
			if len(rest) == 3 {
				return rest[0] + "/" + rest[2]
			}
			return rest[0]
		}
	}
	if len(parts) > 0 {
		return parts[len(parts)-1]
	}
	return path
}

func total(m map[string]int, prefix string) int {
	n := 0
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func describe(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return b.String()
}

// TestConverge200 puts 200 managed Deployments on one channel with the window
// open, changes the channel, and measures how long until every one runs the
// new version's verified digest (and its rollout is done), and how many API
// requests each pass costs. The client runs at controller-runtime's
// production rate limits (20 QPS, burst 30); the poller asks every 5s.
func TestConverge200(t *testing.T) {
	const n = 200
	e := newEnv(t)
	e.simulateControllers(t)
	ns := e.namespace(t, "perf")
	e.fleet.setChannel(t, "c-perf", vOld, false)
	e.fleet.setGroup(t, "g-perf", "c-perf", open, openD)
	ann := map[string]string{kube.AnnotationChannel: "c-perf", kube.AnnotationGroup: "g-perf"}
	for i := range n {
		name := fmt.Sprintf("agent-%03d", i)
		e.healthy(t, ns, name)
		e.create(t, workload{ns: ns, name: name, image: e.images.pinned(vOld), annotations: ann})
	}

	counter := &requestCounter{counts: map[string]int{}}
	cfg := rest.CopyConfig(e.cfg)
	cfg.QPS, cfg.Burst = 20, 30
	cfg.WrapTransport = counter.wrap
	o := e.options(t)
	o.PollInterval = 5 * time.Second
	o.Interval = 10 * time.Minute // no timed passes during the measurement
	o.Logger = quietLog()
	r, _ := e.start(t, cfg, o)

	onTarget := func(image string) func() (bool, string) {
		return func() (bool, string) {
			var list appsv1.DeploymentList
			if err := e.c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
				return false, err.Error()
			}
			done := 0
			for i := range list.Items {
				d := &list.Items[i]
				st := lastDecision(t, d)
				if d.Spec.Template.Spec.Containers[0].Image == image && st != nil &&
					(st.Reason == "AlreadyOnTarget" || st.Outcome == kube.OutcomeUpdated) {
					done++
				}
			}
			return done == n, fmt.Sprintf("%d of %d done", done, n)
		}
	}
	began := time.Now()
	eventually(t, 2*time.Minute, "all workloads settle on the first version", onTarget(e.images.pinned(vOld)))
	settle := time.Since(began)
	first := counter.reset()
	firstPasses := r.Reconciles()
	t.Logf("initial sync: %d passes over %d workloads in %s; API requests: %s", firstPasses, n, settle.Round(time.Millisecond), describe(first))

	serverBefore, verifyBefore := e.fleet.requests.Load(), e.images.verifyReqs.Load()
	passesBefore := r.Reconciles()
	changed := time.Now()
	e.fleet.setChannel(t, "c-perf", vNew, false)
	eventually(t, 3*time.Minute, "all workloads updated to the new digest", onTarget(e.images.pinned(vNew)))
	took := time.Since(changed)
	counts := counter.reset()
	passes := r.Reconciles() - passesBefore
	reqs := total(counts, "") - total(counts, "WATCH")
	figures := fmt.Sprintf("%d Deployments converged %s after the channel change (poll interval %s); "+
		"%d passes; API requests %d (%.2f per pass, %.2f per workload): %s; version-server requests %d; verifications %d",
		n, took.Round(100*time.Millisecond), o.PollInterval, passes, reqs, float64(reqs)/float64(passes), float64(reqs)/n,
		describe(counts), e.fleet.requests.Load()-serverBefore, e.images.verifyReqs.Load()-verifyBefore)
	t.Log(figures)
	// A pass with nothing to do: touch every Deployment with an annotation
	// of no meaning to upkeep (the test's writes are not counted) and count
	// what the passes that follow cost. The first round still records the
	// end of each rollout (one write per workload); the second is the
	// steady state.
	var idle map[string]int
	var idlePasses int64
	for round := range 2 {
		time.Sleep(2 * time.Second) // let earlier passes drain
		counter.reset()
		passesBefore = r.Reconciles()
		for i := range n {
			e.modify(t, ns, fmt.Sprintf("agent-%03d", i), false, func(o client.Object) {
				ann := o.GetAnnotations()
				ann["e2e.upkeep.dev/touch"] = fmt.Sprint(round)
				o.SetAnnotations(ann)
			})
		}
		eventually(t, time.Minute, "a pass over every touched workload", func() (bool, string) {
			got := r.Reconciles() - passesBefore
			return got >= n, fmt.Sprintf("%d passes", got)
		})
		time.Sleep(time.Second)
		idle = counter.reset()
		idlePasses = r.Reconciles() - passesBefore
		t.Logf("touch round %d: %d passes, API requests: %s", round+1, idlePasses, describe(idle))
	}
	idleReqs := total(idle, "") - total(idle, "WATCH")
	steady := fmt.Sprintf("a pass with nothing to do costs %.2f API requests (%d requests over %d passes: %s)",
		float64(idleReqs)/float64(idlePasses), idleReqs, idlePasses, describe(idle))
	t.Log(steady)
	figures += "\n" + steady
	if out := os.Getenv("UPKEEP_PERF_OUT"); out != "" {
		_ = os.WriteFile(out, []byte(figures+"\n"), 0o644)
	}
	if took > 60*time.Second {
		t.Errorf("convergence took %s, over the 60s goal", took)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(body)
}

// TestSavedScheduleAfterRestart stops the updater and the server, starts a
// new updater, and checks that it judges the workload by the schedule saved
// beside it, keeping the current version while the target is unknown.
func TestSavedScheduleAfterRestart(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace(t, "restart")
	e.fleet.setChannel(t, "c-r", vNew, false)
	e.fleet.setGroup(t, "g-r", "c-r", closed, shut)
	o := e.options(t)
	_, stop := e.start(t, e.cfg, o)
	e.healthy(t, ns, "agent")
	e.create(t, workload{ns: ns, name: "agent", version: vOld, annotations: map[string]string{kube.AnnotationChannel: "c-r", kube.AnnotationGroup: "g-r"}})
	obj := e.waitDecision(t, ns, "agent", false, waitLong, "a Wait decision", func(s *kube.Status) bool { return s.Reason == "OutsideWindow" })
	next := lastDecision(t, obj).NextWindow
	stop()
	e.fleet.srv.Close()

	e.start(t, e.cfg, o)
	obj = e.waitDecision(t, ns, "agent", false, waitLong, "a decision from the saved schedule", func(s *kube.Status) bool {
		return s.Reason == "TargetFetchFailed" && strings.Contains(s.Schedule, "using the saved copy") &&
			s.NextWindow != nil && next != nil && s.NextWindow.Equal(*next)
	})
	if got := image(obj); got != e.images.repo+":"+vOld {
		t.Fatalf("the image changed while the server was down: %s", got)
	}
}
