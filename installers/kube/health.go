package kube

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"upkeep.dev/upkeep/reconcile"
)

// DefaultGrace is how long a pod may be not Ready before it makes its
// workload unhealthy: long enough for a normal start, short enough that a
// crash-looping agent is updated the same hour.
const DefaultGrace = 5 * time.Minute

// PodHealth is the verdict on a workload's pods.
type PodHealth struct {
	Health  reconcile.Health
	Message string
	Pods    int      // pods counted (terminating pods are not)
	Ready   int      // of those, Ready
	Bad     []string // names of pods not Ready for longer than the grace period
}

// JudgePods judges a workload by its pods: no pod at all, or a pod not Ready
// for longer than grace, is unhealthy. Terminating pods are ignored (they
// are on their way out, Ready or not). A pod still within its grace period
// counts as neither: it may be starting.
func JudgePods(pods []corev1.Pod, now time.Time, grace time.Duration) PodHealth {
	var h PodHealth
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		h.Pods++
		if podReady(p) {
			h.Ready++
			continue
		}
		if bad, _ := PodUnhealthy(p, now, grace); bad {
			h.Bad = append(h.Bad, p.Name)
		}
	}
	sort.Strings(h.Bad)
	switch {
	case h.Pods == 0:
		h.Health = reconcile.Unhealthy
		h.Message = "no pods are running"
	case len(h.Bad) > 0:
		h.Health = reconcile.Unhealthy
		h.Message = fmt.Sprintf("%d of %d pods not Ready for longer than %s: %s", len(h.Bad), h.Pods, grace, strings.Join(h.Bad, ", "))
	default:
		h.Health = reconcile.Healthy
		h.Message = fmt.Sprintf("%d of %d pods Ready", h.Ready, h.Pods)
	}
	return h
}

// PodUnhealthy reports whether a pod has been not Ready for longer than
// grace: since its Ready condition last changed, or since it was created
// when it has no Ready condition yet (stuck Pending). A failed pod is
// unhealthy at once. Terminating pods are never unhealthy.
func PodUnhealthy(p *corev1.Pod, now time.Time, grace time.Duration) (bool, string) {
	if p.DeletionTimestamp != nil {
		return false, "terminating"
	}
	if p.Status.Phase == corev1.PodFailed {
		return true, "phase Failed"
	}
	if podReady(p) {
		return false, "Ready"
	}
	since := p.CreationTimestamp.Time
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && !c.LastTransitionTime.IsZero() {
			since = c.LastTransitionTime.Time
		}
	}
	if since.IsZero() || now.Sub(since) > grace {
		return true, fmt.Sprintf("not Ready since %s", stamp(since))
	}
	return false, fmt.Sprintf("not Ready since %s, within the grace period of %s", stamp(since), grace)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}
