package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"upkeep.dev/upkeep/reconcile"
	"upkeep.dev/upkeep/reconcile/calendar"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/sources/versionclient"
)

const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseImage(t *testing.T) {
	tests := []struct {
		scenario, ref string
		want          Image
		version       string
		err           string
	}{
		{"a plain semver tag is the version", "agent:1.2.3", Image{Repo: "agent", Tag: "1.2.3"}, "1.2.3", ""},
		{"a v-prefixed tag is the version without v", "ghcr.io/o/agent:v17.2.3", Image{Repo: "ghcr.io/o/agent", Tag: "v17.2.3"}, "17.2.3", ""},
		{"a registry port is not a tag", "127.0.0.1:5000/agent", Image{Repo: "127.0.0.1:5000/agent"}, "", ""},
		{"tag and digest both kept", "127.0.0.1:5000/a/agent:1.0.0@" + dgst, Image{Repo: "127.0.0.1:5000/a/agent", Tag: "1.0.0", Digest: dgst}, "1.0.0", ""},
		{"digest-only image has an unknown version", "agent@" + dgst, Image{Repo: "agent", Digest: dgst}, "", ""},
		{"latest is not a version", "agent:latest", Image{Repo: "agent", Tag: "latest"}, "", ""},
		{"a partial version is not a version", "agent:17.2", Image{Repo: "agent", Tag: "17.2"}, "", ""},
		{"a prerelease is a version", "agent:1.0.0-rc.1", Image{Repo: "agent", Tag: "1.0.0-rc.1"}, "1.0.0-rc.1", ""},
		{"an empty reference is refused", "", Image{}, "", "empty"},
		{"a short digest is refused", "agent@sha256:abc", Image{}, "", "64 hex"},
		{"an unknown digest algorithm is refused", "agent@md5:abc", Image{}, "", "sha256"},
		{"an empty tag is refused", "agent:", Image{}, "", "empty tag"},
		{"white space is refused", "agent :1", Image{}, "", "white space"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			got, err := ParseImage(tt.ref)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if v := got.Version(); v != tt.version {
				t.Fatalf("version %q, want %q", v, tt.version)
			}
			if got.String() != tt.ref {
				t.Fatalf("String() = %q, want %q", got.String(), tt.ref)
			}
		})
	}
}

func TestTagFor(t *testing.T) {
	for _, tt := range []struct{ scenario, current, version, want string }{
		{"a v-tagged image keeps its convention", "agent:v1.0.0", "1.1.0", "v1.1.0"},
		{"a plain-tagged image stays plain", "agent:1.0.0", "v1.1.0", "1.1.0"},
		{"an unknown current version gets a plain tag", "agent:latest", "1.1.0", "1.1.0"},
		{"a digest-only image gets a plain tag", "agent@" + dgst, "1.1.0", "1.1.0"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			if got := mustImage(tt.current).TagFor(tt.version); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	if got := Pinned("r/agent", "1.1.0", dgst); got != "r/agent:1.1.0@"+dgst {
		t.Fatalf("Pinned = %q", got)
	}
}

var t0 = time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)

func pod(name string, ready bool, since time.Time, mods ...func(*corev1.Pod)) corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(since.Add(-time.Hour))},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.NewTime(since)}}},
	}
	for _, m := range mods {
		m(&p)
	}
	return p
}

func terminating(p *corev1.Pod) { p.DeletionTimestamp = ptr(metav1.NewTime(t0)) }

func TestJudgePods(t *testing.T) {
	grace := 5 * time.Minute
	tests := []struct {
		scenario string
		pods     []corev1.Pod
		want     reconcile.Health
		bad      string
	}{
		{"no pods is unhealthy", nil, reconcile.Unhealthy, ""},
		{"only terminating pods count as no pods", []corev1.Pod{pod("a", true, t0.Add(-time.Hour), terminating)}, reconcile.Unhealthy, ""},
		{"all Ready is healthy", []corev1.Pod{pod("a", true, t0.Add(-time.Hour)), pod("b", true, t0)}, reconcile.Healthy, ""},
		{"a pod not Ready within the grace is still healthy", []corev1.Pod{pod("a", true, t0), pod("b", false, t0.Add(-4*time.Minute))}, reconcile.Healthy, ""},
		{"a pod not Ready past the grace is unhealthy", []corev1.Pod{pod("a", true, t0), pod("b", false, t0.Add(-6*time.Minute))}, reconcile.Unhealthy, "b"},
		{"a terminating pod not Ready is ignored", []corev1.Pod{pod("a", true, t0), pod("b", false, t0.Add(-time.Hour), terminating)}, reconcile.Healthy, ""},
		{"a pod with no Ready condition counts from its creation", []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: metav1.NewTime(t0.Add(-10 * time.Minute))}, Status: corev1.PodStatus{Phase: corev1.PodPending}}}, reconcile.Unhealthy, "p"},
		{"a failed pod is unhealthy at once", []corev1.Pod{pod("f", false, t0, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })}, reconcile.Unhealthy, "f"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			h := JudgePods(tt.pods, t0, grace)
			if h.Health != tt.want {
				t.Fatalf("health %v (%s), want %v", h.Health, h.Message, tt.want)
			}
			if got := strings.Join(h.Bad, ","); got != tt.bad {
				t.Fatalf("bad pods %q, want %q", got, tt.bad)
			}
		})
	}
}

func TestReadConfig(t *testing.T) {
	spec := &corev1.PodSpec{Containers: []corev1.Container{
		{Name: "sidecar", Image: "busybox:1.36"},
		{Name: "agent", Image: "127.0.0.1:5000/agent:v1.0.0"},
	}}
	tests := []struct {
		scenario string
		ann      map[string]string
		check    func(t *testing.T, c Config)
		err      string
	}{
		{"defaults: the first container, its repository, the agent schedule named after the workload",
			map[string]string{AnnotationChannel: "stable/cloud"}, func(t *testing.T, c Config) {
				if c.Container != "sidecar" || c.Repo != "busybox" || c.Schedule != ScheduleFromAgent || c.Agent != "teleport" {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"a group makes the schedule come from the server",
			map[string]string{AnnotationChannel: "stable", AnnotationGroup: "eu-prod", AnnotationContainer: "agent"}, func(t *testing.T, c Config) {
				if c.Container != "agent" || c.ContainerIndex != 1 || c.Schedule != ScheduleFromGroup || c.Image.Version() != "1.0.0" {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"an image annotation overrides the repository",
			map[string]string{AnnotationChannel: "stable", AnnotationImage: "mirror.example/agent", AnnotationUpdateDuration: "20m"}, func(t *testing.T, c Config) {
				if c.Repo != "mirror.example/agent" || c.UpdateDuration != 20*time.Minute {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"a group alone is enough: the channel is left for the group's, the schedule is the group's",
			map[string]string{AnnotationGroup: "eu-prod"}, func(t *testing.T, c Config) {
				if c.Channel != "" || c.Group != "eu-prod" || c.Schedule != ScheduleFromGroup {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"neither channel nor group says to set one", map[string]string{}, nil, "set upkeep.dev/channel (the release channel to follow, e.g. stable/cloud) or upkeep.dev/group"},
		{"a group alone with a bad name is refused", map[string]string{AnnotationGroup: "EU"}, nil, "annotation upkeep.dev/group"},
		{"a bad channel name is named", map[string]string{AnnotationChannel: "Stable"}, nil, "not a channel name"},
		{"a group with a slash is refused", map[string]string{AnnotationChannel: "s", AnnotationGroup: "eu/prod"}, nil, "not a group name"},
		{"an unknown container lists the containers", map[string]string{AnnotationChannel: "s", AnnotationContainer: "nope"}, nil, "containers: sidecar, agent"},
		{"an image annotation with a tag is refused", map[string]string{AnnotationChannel: "s", AnnotationImage: "r/agent:1.0.0"}, nil, "repository only"},
		{"a group schedule without a group is refused", map[string]string{AnnotationChannel: "s", AnnotationSchedule: "group"}, nil, "upkeep.dev/group"},
		{"an unknown schedule source is refused", map[string]string{AnnotationChannel: "s", AnnotationSchedule: "cron"}, nil, `want "group", "agent" or "none"`},
		{"a bad update duration is refused", map[string]string{AnnotationChannel: "s", AnnotationUpdateDuration: "forever"}, nil, "update-duration"},
		{"an agent name that makes no Secret name is refused", map[string]string{AnnotationChannel: "s", AnnotationAgent: "Bad_Name"}, nil, "upkeep.dev/agent"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			c, err := ReadConfig("teleport", tt.ann, spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestReadState(t *testing.T) {
	st, err := ReadState(map[string]string{
		AnnotationSkipped:      `[{"version":"1.1.0","since":"2026-03-28T12:00:00Z","reason":"RolloutTimedOut","message":"m"}]`,
		AnnotationLastDecision: `not json`,
		AnnotationRollout:      `{"version":"1.1.0","image":"a:1.1.0@` + dgst + `","previousImage":"a:1.0.0","started":"2026-03-28T12:00:00Z"}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Skipped) != 1 || st.Skipped[0].Version != "1.1.0" || st.Last != nil || st.Rollout == nil || st.Rollout.PreviousImage != "a:1.0.0" {
		t.Fatalf("%+v", st)
	}
	if _, err := ReadState(map[string]string{AnnotationSkipped: `[{`}); err == nil || !strings.Contains(err.Error(), "remove the annotation") {
		t.Fatalf("a broken skip list: err = %v", err)
	}
	if _, err := ReadState(map[string]string{AnnotationRollout: `{"version":"1"}`}); err == nil || !strings.Contains(err.Error(), "previousImage") {
		t.Fatalf("an incomplete rollout: err = %v", err)
	}
}

func TestStatusSameDecision(t *testing.T) {
	w := t0.Add(time.Hour)
	a := Status{Action: "Wait", Rule: "WaitForWindow", Reason: "OutsideWindow", Current: "1.0.0", Target: "1.1.0", NextWindow: &w, Message: "x", Since: t0}
	b := a
	b.Message, b.Since, b.RecheckAt = "y", t0.Add(time.Minute), &w
	if !a.sameDecision(&b) {
		t.Fatal("a different message or time must not count as a new decision")
	}
	w2 := w.Add(24 * time.Hour)
	b.NextWindow = &w2
	if a.sameDecision(&b) {
		t.Fatal("a different next window is a new decision")
	}
	if a.sameDecision(nil) {
		t.Fatal("no last decision is a new decision")
	}
}

func TestRolloutProgress(t *testing.T) {
	three := int32(3)
	dep := func(gen, observed int64, updated, total, avail int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Spec: appsv1.DeploymentSpec{Replicas: &three},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, UpdatedReplicas: updated, Replicas: total, AvailableReplicas: avail, Conditions: conds}}
	}
	sts := func(gen, observed int64, updated, ready int32, cur, upd string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Spec: appsv1.StatefulSetSpec{Replicas: &three},
			Status: appsv1.StatefulSetStatus{ObservedGeneration: observed, UpdatedReplicas: updated, ReadyReplicas: ready, CurrentRevision: cur, UpdateRevision: upd}}
	}
	tests := []struct {
		scenario string
		obj      any
		done     bool
		failed   bool
		msg      string
	}{
		{"a Deployment whose new generation is not observed is not done", dep(2, 1, 3, 3, 3), false, false, "observe generation 2"},
		{"a Deployment with old replicas left is not done", dep(2, 2, 3, 4, 3), false, false, "1 old replicas"},
		{"a Deployment with unavailable updated replicas is not done", dep(2, 2, 3, 3, 2), false, false, "2 of 3 updated replicas available"},
		{"a Deployment fully updated and available is done", dep(2, 2, 3, 3, 3), true, false, ""},
		{"a Deployment past its progress deadline failed", dep(2, 2, 1, 3, 1, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded", Message: "too slow"}), false, true, "too slow"},
		{"a StatefulSet not at its update revision is not done", sts(2, 2, 3, 3, "old", "new"), false, false, "not yet the update revision"},
		{"a StatefulSet with a pod not ready is not done", sts(2, 2, 3, 2, "new", "new"), false, false, "2 of 3 replicas ready"},
		{"a StatefulSet updated and ready is done", sts(2, 2, 3, 3, "new", "new"), true, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			var p Progress
			switch o := tt.obj.(type) {
			case *appsv1.Deployment:
				p = RolloutProgress(o)
			case *appsv1.StatefulSet:
				p = RolloutProgress(o)
			}
			if p.Done != tt.done || p.Failed != tt.failed || !strings.Contains(p.Message, tt.msg) {
				t.Fatalf("got %+v, want done=%v failed=%v message containing %q", p, tt.done, tt.failed, tt.msg)
			}
		})
	}
}

func TestStuckPods(t *testing.T) {
	grace := 5 * time.Minute
	rev := func(r string) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Labels = map[string]string{appsv1.ControllerRevisionHashLabelKey: r} }
	}
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Generation: 2},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 2, UpdateRevision: "new", CurrentRevision: "old"}}
	pods := []corev1.Pod{
		pod("web-0", true, t0.Add(-time.Hour), rev("new")),
		pod("web-1", false, t0.Add(-time.Hour), rev("old")),              // stuck: unhealthy, old revision
		pod("web-2", false, t0.Add(-time.Minute), rev("old")),            // within the grace
		pod("web-3", false, t0.Add(-time.Hour), rev("new")),              // unhealthy but at the update revision
		pod("web-4", true, t0.Add(-time.Hour), rev("old")),               // healthy old pod: the controller's job
		pod("web-5", false, t0.Add(-time.Hour), rev("old"), terminating), // already going
	}
	var names []string
	for _, p := range StuckPods(s, pods, t0, grace) {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "web-1" {
		t.Fatalf("stuck pods %v, want only web-1", names)
	}
	s.Generation = 3 // the controller has not seen the change yet: its revisions are stale
	if got := StuckPods(s, pods, t0, grace); len(got) != 0 {
		t.Fatalf("with an unobserved generation, got %d pods, want none", len(got))
	}
}

func TestIgnoreOwnWrites(t *testing.T) {
	base := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "a", Generation: 1, ResourceVersion: "1",
		Annotations: map[string]string{AnnotationChannel: "stable"}}}
	tests := []struct {
		scenario string
		mutate   func(d *appsv1.Deployment)
		want     bool
	}{
		{"a change of only the updater's state annotations is dropped", func(d *appsv1.Deployment) {
			d.Annotations[AnnotationLastDecision] = "{}"
		}, false},
		{"a channel change is kept", func(d *appsv1.Deployment) { d.Annotations[AnnotationChannel] = "edge" }, true},
		{"a spec change is kept", func(d *appsv1.Deployment) { d.Generation = 2 }, true},
		{"a status change is kept", func(d *appsv1.Deployment) { d.Status.ReadyReplicas = 1 }, true},
		{"the skip annotation is kept", func(d *appsv1.Deployment) { d.Annotations[AnnotationSkipReconcile] = "true" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			n := base.DeepCopy()
			n.ResourceVersion = "2"
			tt.mutate(n)
			if got := (ignoreOwnWrites{}).Update(event.UpdateEvent{ObjectOld: base, ObjectNew: n}); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// countingServer is a version server in memory: the cache's logic is pure,
// so a fake is allowed here; the envtest scenarios use a real HTTP server.
type countingServer struct {
	version  atomic.Value
	channel  atomic.Value // the group's channel
	hold     atomic.Pointer[reconcile.RolloutHold]
	canary   atomic.Value // the agent id answered the rollout's version, not held
	requests atomic.Int64
	targets  atomic.Int64
	fail     atomic.Bool
}

func (s *countingServer) TargetAs(_ context.Context, _ string, id versionclient.Identity) (versionclient.Target, error) {
	s.requests.Add(1)
	s.targets.Add(1)
	if s.fail.Load() {
		return versionclient.Target{}, errors.New("down")
	}
	if h := s.hold.Load(); h != nil {
		if c, _ := s.canary.Load().(string); c == id.AgentID {
			return versionclient.Target{Version: h.Version}, nil
		}
		return versionclient.Target{Version: s.version.Load().(string), Held: h}, nil
	}
	return versionclient.Target{Version: s.version.Load().(string)}, nil
}
func (s *countingServer) CriticalAnswerAs(context.Context, string, versionclient.Identity) (versionclient.Critical, error) {
	s.requests.Add(1)
	return versionclient.Critical{}, nil
}
func (s *countingServer) Schedule(context.Context, string) ([]calendar.Interval, error) {
	s.requests.Add(1)
	return nil, nil
}
func (s *countingServer) GroupChannel(context.Context, string) (string, error) {
	s.requests.Add(1)
	if s.fail.Load() {
		return "", errors.New("down")
	}
	ch, _ := s.channel.Load().(string)
	return ch, nil
}

func TestServerCacheGroupChannel(t *testing.T) {
	srv := &countingServer{}
	srv.version.Store("1.0.0")
	srv.channel.Store("stable/cloud")
	now := t0
	c := newServerCache(srv, 30*time.Second, func() time.Time { return now })
	ctx := context.Background()
	for range 200 {
		if got := c.GroupChannel(ctx, "eu-prod"); got.Err != nil || got.Channel != "stable/cloud" {
			t.Fatalf("group channel %+v", got)
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("200 workloads of one group made %d requests for its channel, want 1", n)
	}
	now = now.Add(10 * time.Second)
	if _, groups := c.Refresh(ctx, time.Hour); len(groups) != 0 {
		t.Fatalf("an unchanged group channel reported as changed: %v", groups)
	}
	srv.channel.Store("edge")
	if _, groups := c.Refresh(ctx, time.Hour); len(groups) != 1 || groups[0] != "eu-prod" {
		t.Fatalf("groups changed = %v, want [eu-prod]: its workloads must follow the new channel", groups)
	}
	if got := c.GroupChannel(ctx, "eu-prod").Channel; got != "edge" {
		t.Fatalf("after a refresh the group follows %q, want edge", got)
	}
	srv.fail.Store(true)
	if _, groups := c.Refresh(ctx, time.Hour); len(groups) != 1 {
		t.Fatal("a server going down is a change (the channel becomes unknown)")
	}
	now = now.Add(2 * time.Hour)
	if _, _, gc := c.live(now, time.Hour); len(gc) != 0 {
		t.Fatalf("a group nobody asked for in an hour is still polled: %v", gc)
	}
}

func TestServerCache(t *testing.T) {
	srv := &countingServer{}
	srv.version.Store("1.0.0")
	now := t0
	c := newServerCache(srv, 30*time.Second, func() time.Time { return now })
	ctx := context.Background()
	me := versionclient.Identity{AgentID: "uid-1", Group: "eu-prod"}
	for range 200 {
		if got := c.Channel(ctx, "stable", me).Text; got != "1.0.0" {
			t.Fatalf("target %q", got)
		}
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("200 passes of one workload made %d requests, want 2 (version and critical)", n)
	}
	// A rollout answers each agent on its own: one target per workload,
	// one critical flag per channel.
	for i := range 200 {
		c.Channel(ctx, "stable", versionclient.Identity{AgentID: fmt.Sprintf("uid-%d", i), Group: "eu-prod"})
	}
	if n := srv.requests.Load(); n != 2+199 {
		t.Fatalf("200 workloads on one channel made %d requests, want 201 (a version each, the critical flag once)", n)
	}
	srv.requests.Store(0)
	srv.version.Store("1.1.0")
	now = now.Add(10 * time.Second)
	changed, _ := c.Refresh(ctx, time.Hour)
	if len(changed) != 1 || changed[0] != "stable" {
		t.Fatalf("changed = %v, want [stable]", changed)
	}
	if n := srv.requests.Load(); n != 201 {
		t.Fatalf("a refresh of 200 workloads made %d requests, want 201", n)
	}
	if got := c.Channel(ctx, "stable", me).Text; got != "1.1.0" {
		t.Fatalf("after a refresh the target is %q", got)
	}
	// A hold appearing (or lifting) is a change, though the version is not.
	srv.hold.Store(&reconcile.RolloutHold{Version: "1.2.0", State: "Canary", Stage: 0, Reason: "NotCanary"})
	srv.canary.Store("uid-7")
	if changed, _ := c.Refresh(ctx, time.Hour); len(changed) != 1 {
		t.Fatalf("a new hold did not count as a change: %v", changed)
	}
	if got := c.Channel(ctx, "stable", me); got.Text != "1.1.0" || got.Target.Held == nil || got.Target.Held.Version != "1.2.0" {
		t.Fatalf("a held workload: %+v", got)
	}
	if got := c.Channel(ctx, "stable", versionclient.Identity{AgentID: "uid-7", Group: "eu-prod"}); got.Text != "1.2.0" || got.Target.Held != nil {
		t.Fatalf("the canary: %+v", got)
	}
	if changed, _ := c.Refresh(ctx, time.Hour); len(changed) != 0 {
		t.Fatalf("an unchanged answer reported as changed: %v", changed)
	}
	srv.fail.Store(true)
	if changed, _ := c.Refresh(ctx, time.Hour); len(changed) != 1 {
		t.Fatal("a server going down is a change (the target becomes unknown)")
	}
	now = now.Add(2 * time.Hour)
	if ch, _, _ := c.live(now, time.Hour); len(ch) != 0 {
		t.Fatalf("a channel nobody asked for in an hour is still polled: %v", ch)
	}
}

func TestPassReportValidates(t *testing.T) {
	next := t0.Add(time.Hour)
	cfg := Config{Channel: "stable/cloud", Group: "eu-prod"}
	tests := []struct {
		scenario string
		pass     Pass
		check    func(t *testing.T, r report.Report)
	}{
		{"a decision is reported with its rule and next window", Pass{
			Decision: reconcile.Decision{Action: reconcile.ActionWait, Rule: reconcile.RuleWaitForWindow, Reason: "OutsideWindow", Message: "waiting"},
			Status:   Status{Current: "1.0.0", Target: "1.1.0", Health: "Healthy", NextWindow: &next},
		}, func(t *testing.T, r report.Report) {
			if r.Health != report.HealthHealthy || r.Rule != reconcile.RuleWaitForWindow || r.NextWindow == nil {
				t.Fatalf("%+v", r)
			}
		}},
		{"a refusal is reported as the pass's error", Pass{
			Decision: reconcile.Decision{Action: reconcile.ActionUpdate, Rule: reconcile.RuleInWindow, Reason: "InsideWindow", Message: "m"},
			Status:   Status{Current: "", Target: "1.1.0", Health: "Unhealthy", Outcome: OutcomeRefused, OutcomeReason: "ImageUnsigned", OutcomeMessage: strings.Repeat("é", 3000)},
		}, func(t *testing.T, r report.Report) {
			if !strings.HasPrefix(r.LastError, "Refused (ImageUnsigned)") || r.Health != report.HealthUnhealthy {
				t.Fatalf("%+v", r.LastError[:40])
			}
		}},
		{"a workload on a Teleport Secret schedule without a group is reported with no group", Pass{
			Config:   Config{Channel: "stable/cloud", Schedule: ScheduleFromAgent},
			Decision: reconcile.Decision{Action: reconcile.ActionWait, Rule: reconcile.RuleWaitForWindow, Reason: "OutsideWindow", Message: "waiting"},
			Status:   Status{Current: "1.0.0", Target: "1.1.0", Health: "Healthy"},
		}, func(t *testing.T, r report.Report) {
			if r.Group != "" || r.Channel != "stable/cloud" {
				t.Fatalf("%+v", r)
			}
		}},
		{"a rolled-back rollout is reported with outcome rolledBack", Pass{
			Decision: reconcile.Decision{Action: reconcile.ActionUpdate, Rule: reconcile.RuleUnhealthy, Reason: "AgentUnhealthy", Message: "m"},
			Status:   Status{Current: "1.0.0", Target: "1.1.0", Health: "Unhealthy", Outcome: OutcomeRolledBack, OutcomeReason: "RolloutTimedOut", OutcomeMessage: "not healthy"},
		}, func(t *testing.T, r report.Report) {
			if r.Outcome != report.OutcomeRolledBack || !strings.HasPrefix(r.LastError, "RolledBack (RolloutTimedOut)") {
				t.Fatalf("%+v", r)
			}
		}},
		{"a finished rollout is reported updated, one in progress with no outcome yet", Pass{
			Decision: reconcile.Decision{Action: reconcile.ActionUpdate, Rule: reconcile.RuleInWindow, Reason: "InsideWindow", Message: "m"},
			Status:   Status{Current: "1.1.0", Target: "1.1.0", Health: "Healthy", Outcome: OutcomeUpdated},
		}, func(t *testing.T, r report.Report) {
			if r.Outcome != report.OutcomeUpdated {
				t.Fatalf("%+v", r)
			}
			if got := reportOutcome(OutcomeUpdating); got != "" {
				t.Fatalf("a rollout in progress reports outcome %q", got)
			}
		}},
		{"an image that failed verification is a failed update", Pass{
			Decision: reconcile.Decision{Action: reconcile.ActionUpdate, Rule: reconcile.RuleInWindow, Reason: "InsideWindow", Message: "m"},
			Status:   Status{Current: "1.0.0", Target: "1.1.0", Health: "Healthy", Outcome: OutcomeRefused, OutcomeReason: "ImageUnsigned", OutcomeMessage: "m"},
		}, func(t *testing.T, r report.Report) {
			if r.Outcome != report.OutcomeFailed {
				t.Fatalf("%+v", r)
			}
		}},
		{"a wait by the concurrency limit is reported with its rule", Pass{
			Decision: reconcile.Decision{Action: reconcile.ActionWait, Rule: reconcile.RuleConcurrencyLimit, Reason: "MaxConcurrentReached", Message: "m"},
			Status:   Status{Current: "1.0.0", Target: "1.1.0", Health: "Healthy"},
		}, func(t *testing.T, r report.Report) {
			if r.Rule != reconcile.RuleConcurrencyLimit || r.Outcome != "" {
				t.Fatalf("%+v", r)
			}
		}},
		{"a pass that failed before deciding reports only its error", Pass{
			Status: Status{Outcome: OutcomeFailed, OutcomeReason: "InvalidConfig", OutcomeMessage: "annotation upkeep.dev/channel: required"},
		}, func(t *testing.T, r report.Report) {
			if r.Action != "" || !strings.Contains(r.LastError, "upkeep.dev/channel") {
				t.Fatalf("%+v", r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			p := tt.pass
			p.At, p.UID, p.Workload = t0, "6a0e2c5e-1d1e-4a43-9b55-2d8a3e3f4c11", "ns/Deployment/agent"
			if p.Config.Channel == "" {
				p.Config = cfg
			}
			r := p.Report("1.0.0")
			if err := r.Validate(); err != nil {
				t.Fatalf("the report does not validate: %v", err)
			}
			tt.check(t, r)
		})
	}
}

func TestCheckRollable(t *testing.T) {
	for _, tt := range []struct {
		scenario string
		obj      interface{ DeepCopyObject() runtime.Object }
		err      string
	}{
		{"a running Deployment can be rolled out", &appsv1.Deployment{}, ""},
		{"a paused Deployment cannot", &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Paused: true}}, "paused"},
		{"a RollingUpdate StatefulSet can", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}}}, ""},
		{"an OnDelete StatefulSet cannot", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}}}, "OnDelete"},
	} {
		t.Run(tt.scenario, func(t *testing.T) {
			err := CheckRollable(tt.obj.(client.Object))
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}
