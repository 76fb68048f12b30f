package kube

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"upkeep.dev/upkeep/e2e/kube/envtest"
	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/reconcile/report/leasetest"
	"upkeep.dev/upkeep/sources/versionclient"
)

// pinnedVerifier resolves every tag to one digest. Image verification has
// its own tests (installers/oci, e2e/kube); the lease flow is under test here.
type pinnedVerifier struct{}

func (pinnedVerifier) Verify(_ context.Context, ref string) (Verified, error) {
	return Verified{Ref: ref, Digest: dgst, KeyID: "test-key"}, nil
}

// sentReports keeps what the reconciler reports.
type sentReports struct {
	mu   sync.Mutex
	sent []report.Report
}

func (s *sentReports) Send(_ context.Context, r report.Report) error {
	if err := r.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, r)
	return nil
}

func (s *sentReports) last() report.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[len(s.sent)-1]
}

// TestLeaseAroundTheRollout runs the reconciler against a real API server
// and a real HTTP version server with the lease wire: with the group's only
// place held by another agent the image is not changed (ConcurrencyLimit);
// once the place is free the lease is taken, the image changed, and the
// lease given back when the rollout completes, reported as updated. The
// version request carries the workload's identity.
func TestLeaseAroundTheRollout(t *testing.T) {
	cfg := envtest.Config(t)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	const token = "kube-lease-token"
	leases := leasetest.New(map[string]int{"eu-prod": 1})
	leases.Token = token
	var identMu sync.Mutex
	var idents []string
	served := "1.1.0"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/webapi/automaticupgrades/channel/stable/cloud/version", func(w http.ResponseWriter, r *http.Request) {
		identMu.Lock()
		idents = append(idents, r.Header.Get(versionclient.HeaderAgentID)+"/"+r.Header.Get(versionclient.HeaderGroup))
		identMu.Unlock()
		identMu.Lock()
		v := served
		identMu.Unlock()
		fmt.Fprintln(w, "v"+v)
	})
	mux.HandleFunc("GET /v1/webapi/automaticupgrades/channel/stable/cloud/critical", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "no")
	})
	leases.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	vc, err := versionclient.New(srv.URL, versionclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	lc, err := report.NewClient(srv.URL, report.ClientOptions{TokenFile: tf})
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	clock := func() time.Time { return now }
	opts := Options{}
	opts.defaults()
	registerMetrics()
	reports := &sentReports{}
	r := &Reconciler{client: c, direct: c, recorder: events.NewFakeRecorder(100),
		server: newServerCache(vc, time.Nanosecond, clock), verifier: newVerifyCache(pinnedVerifier{}, -1, clock),
		reporter: reports, leases: lc, opts: opts, now: clock, log: slog.New(slog.DiscardHandler), reported: map[string]time.Time{}}

	one := int32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "agent", Labels: map[string]string{LabelManaged: "true"},
			Annotations: map[string]string{AnnotationChannel: "stable/cloud", AnnotationGroup: "eu-prod", AnnotationSchedule: ScheduleNone}},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "r/agent:1.0.0"}}}}},
	}
	if err := c.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	nn := types.NamespacedName{Namespace: "default", Name: "agent"}
	uid := string(d.UID)
	get := func() *appsv1.Deployment {
		var got appsv1.Deployment
		if err := c.Get(ctx, nn, &got); err != nil {
			t.Fatal(err)
		}
		return &got
	}
	status := func() Status {
		st, err := ReadState(get().Annotations)
		if err != nil || st.Last == nil {
			t.Fatalf("state: %+v, %v", st, err)
		}
		return *st.Last
	}

	// No pods: the workload is unhealthy, so the chain says Update at once;
	// the group's only place is another agent's.
	leases.Hold("eu-prod", "other-agent", now.Add(20*time.Minute))
	if _, err := r.Reconcile(ctx, KindDeployment, nn); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.Rule != reconcile.RuleConcurrencyLimit || st.Reason != "MaxConcurrentReached" || st.RecheckAt == nil ||
		!strings.Contains(st.Message, `group "eu-prod" has 1 of 1 agents updating`) {
		t.Fatalf("with the place taken: %+v, want ConcurrencyLimit with a recheck time", st)
	}
	if img := get().Spec.Template.Spec.Containers[0].Image; img != "r/agent:1.0.0" {
		t.Fatalf("the image changed without a lease: %s", img)
	}
	if rep := reports.last(); rep.Rule != reconcile.RuleConcurrencyLimit || rep.Outcome != "" {
		t.Errorf("report %+v: want ConcurrencyLimit and no outcome", rep)
	}

	// The other agent's lease ends: this one takes the place and updates.
	if err := lc.Release(ctx, "eu-prod", "other-agent"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if _, err := r.Reconcile(ctx, KindDeployment, nn); err != nil {
		t.Fatal(err)
	}
	dep := get()
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "r/agent:1.1.0@"+dgst {
		t.Fatalf("with a lease the image is %s, want 1.1.0 pinned", img)
	}
	if h := leases.Holders("eu-prod"); len(h) != 1 || h[0] != uid {
		t.Fatalf("during the rollout the group's leases are %v, want the workload's UID %s", h, uid)
	}

	// The Deployment controller (absent from envtest) reports the rollout done.
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}
	if err := c.Status().Update(ctx, dep); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if _, err := r.Reconcile(ctx, KindDeployment, nn); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.Outcome != OutcomeUpdated {
		t.Fatalf("after the rollout: %+v, want Updated", st)
	}
	if h := leases.Holders("eu-prod"); len(h) != 0 {
		t.Errorf("after the rollout the group's leases are %v, want none", h)
	}
	if got := leases.Events(uid); got != "refused acquired released" {
		t.Errorf("the workload's lease log: %q, want refused acquired released", got)
	}
	if leases.MaxSeen("eu-prod") > 1 {
		t.Errorf("eu-prod had %d leases at once, maxConcurrent is 1", leases.MaxSeen("eu-prod"))
	}
	if rep := reports.last(); rep.Outcome != report.OutcomeUpdated {
		t.Errorf("the completing pass reports outcome %q, want updated", rep.Outcome)
	}
	identMu.Lock()
	if len(idents) == 0 || idents[0] != uid+"/eu-prod" {
		t.Errorf("version requests carried %v, want the workload's UID and group", idents)
	}
	served = "1.2.0"
	identMu.Unlock()

	// A bad version: the lease is taken, the rollout fails, the previous
	// image comes back and the lease is given back, reported rolledBack.
	// Still no pods (envtest runs no kubelet): the workload counts as
	// unhealthy, so the chain says Update at once; the second pass follows
	// the rollout.
	now = now.Add(time.Minute)
	if _, err := r.Reconcile(ctx, KindDeployment, nn); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := r.Reconcile(ctx, KindDeployment, nn); err != nil {
		t.Fatal(err)
	}
	dep = get()
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "r/agent:1.2.0@"+dgst {
		t.Fatalf("the image is %s, want 1.2.0 pinned (last decision %+v)", img, status())
	}
	if h := leases.Holders("eu-prod"); len(h) != 1 {
		t.Fatalf("during the second rollout the group's leases are %v", h)
	}
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 0,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet has timed out progressing"}}}
	if err := c.Status().Update(ctx, dep); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if _, err := r.Reconcile(ctx, KindDeployment, nn); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.Outcome != OutcomeRolledBack {
		t.Fatalf("after the failed rollout: %+v, want RolledBack", st)
	}
	if img := get().Spec.Template.Spec.Containers[0].Image; img != "r/agent:1.1.0@"+dgst {
		t.Errorf("after the rollback the image is %s", img)
	}
	if got := leases.Events(uid); got != "refused acquired released acquired released" {
		t.Errorf("the workload's lease log: %q, want the second lease given back after the rollback", got)
	}
	if rep := reports.last(); rep.Outcome != report.OutcomeRolledBack {
		t.Errorf("the rolling-back pass reports outcome %q, want rolledBack", rep.Outcome)
	}
}
