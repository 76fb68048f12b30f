package kube

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// BenchmarkJudgePods judges a workload of 50 pods, one of them broken: the
// per-pass health cost once the pods are listed.
func BenchmarkJudgePods(b *testing.B) {
	pods := make([]corev1.Pod, 50)
	for i := range pods {
		pods[i] = pod(fmt.Sprintf("agent-%d", i), i != 7, t0.Add(-time.Hour))
	}
	b.ReportAllocs()
	for b.Loop() {
		if h := JudgePods(pods, t0, DefaultGrace); len(h.Bad) != 1 {
			b.Fatal(h.Message)
		}
	}
}

// BenchmarkReadConfigAndState reads a workload's annotations and state, as
// every pass does before deciding.
func BenchmarkReadConfigAndState(b *testing.B) {
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "registry.example.com/agent:1.0.0@" + dgst}}}
	ann := map[string]string{
		AnnotationChannel: "stable/cloud", AnnotationGroup: "eu-prod",
		AnnotationLastDecision: mustJSON(Status{Action: "Wait", Rule: "WaitForWindow", Reason: "OutsideWindow", Current: "1.0.0", Target: "1.1.0", Since: t0}),
		AnnotationSkipped:      `[{"version":"1.3.0","since":"2026-03-28T12:00:00Z","reason":"RolloutTimedOut","message":"m"}]`,
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadConfig("agent", ann, spec); err != nil {
			b.Fatal(err)
		}
		if _, err := ReadState(ann); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIgnoreOwnWrites is the predicate every Deployment update event
// goes through.
func BenchmarkIgnoreOwnWrites(b *testing.B) {
	old := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "a", Generation: 1,
		Annotations: map[string]string{AnnotationChannel: "stable", AnnotationLastDecision: "{}"}}}
	n := old.DeepCopy()
	n.Annotations[AnnotationLastDecision] = `{"action":"Wait"}`
	e := event.UpdateEvent{ObjectOld: old, ObjectNew: n}
	b.ReportAllocs()
	for b.Loop() {
		if (ignoreOwnWrites{}).Update(e) {
			b.Fatal("own write not ignored")
		}
	}
}
