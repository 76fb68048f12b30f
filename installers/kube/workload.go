package kube

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kinds of workload the updater manages.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
)

// workload is a Deployment or a StatefulSet seen through what the updater
// needs: its pod template, selector and rollout progress.
type workload struct {
	kind string
	obj  client.Object
	dep  *appsv1.Deployment
	sts  *appsv1.StatefulSet
}

func newObject(kind string) client.Object {
	if kind == KindStatefulSet {
		return &appsv1.StatefulSet{}
	}
	return &appsv1.Deployment{}
}

func wrap(obj client.Object) *workload {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &workload{kind: KindDeployment, obj: o, dep: o}
	case *appsv1.StatefulSet:
		return &workload{kind: KindStatefulSet, obj: o, sts: o}
	}
	panic(fmt.Sprintf("kube: unsupported workload %T", obj))
}

func (w *workload) template() *corev1.PodTemplateSpec {
	if w.dep != nil {
		return &w.dep.Spec.Template
	}
	return &w.sts.Spec.Template
}

func (w *workload) selector() *metav1.LabelSelector {
	if w.dep != nil {
		return w.dep.Spec.Selector
	}
	return w.sts.Spec.Selector
}

// id is "<namespace>/<kind>/<name>", the report's workload.
func (w *workload) id() string {
	return w.obj.GetNamespace() + "/" + w.kind + "/" + w.obj.GetName()
}

func (w *workload) image(container int) string {
	cs := w.template().Spec.Containers
	if container < 0 || container >= len(cs) {
		return ""
	}
	return cs[container].Image
}

// Progress is how far a rollout has come.
type Progress struct {
	Done    bool
	Failed  bool // the workload controller gave up (Deployment progress deadline)
	Message string
}

// RolloutProgress judges a rollout from the workload's status, as
// "kubectl rollout status" does: the controller has seen the new
// generation, every replica runs the new template and is available (ready,
// for a StatefulSet), and no old replica is left.
func RolloutProgress(obj client.Object) Progress {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return deploymentProgress(o)
	case *appsv1.StatefulSet:
		return statefulSetProgress(o)
	}
	return Progress{Message: fmt.Sprintf("unsupported workload %T", obj)}
}

func deploymentProgress(d *appsv1.Deployment) Progress {
	st := &d.Status
	if st.ObservedGeneration < d.Generation {
		return Progress{Message: fmt.Sprintf("waiting for the Deployment controller to observe generation %d (it has seen %d)", d.Generation, st.ObservedGeneration)}
	}
	for _, c := range st.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return Progress{Failed: true, Message: fmt.Sprintf("the Deployment exceeded its progress deadline: %s", c.Message)}
		}
	}
	want := replicas(d.Spec.Replicas)
	switch {
	case st.UpdatedReplicas < want:
		return Progress{Message: fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)}
	case st.Replicas > st.UpdatedReplicas:
		return Progress{Message: fmt.Sprintf("%d old replicas pending termination", st.Replicas-st.UpdatedReplicas)}
	case st.AvailableReplicas < st.UpdatedReplicas:
		return Progress{Message: fmt.Sprintf("%d of %d updated replicas available", st.AvailableReplicas, st.UpdatedReplicas)}
	}
	return Progress{Done: true, Message: fmt.Sprintf("%d of %d replicas updated and available", st.UpdatedReplicas, want)}
}

func statefulSetProgress(s *appsv1.StatefulSet) Progress {
	st := &s.Status
	if st.ObservedGeneration < s.Generation {
		return Progress{Message: fmt.Sprintf("waiting for the StatefulSet controller to observe generation %d (it has seen %d)", s.Generation, st.ObservedGeneration)}
	}
	want := replicas(s.Spec.Replicas)
	partition := int32(0)
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		partition = min(*ru.Partition, want)
	}
	switch {
	case st.UpdatedReplicas < want-partition:
		return Progress{Message: fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want-partition)}
	case st.ReadyReplicas < want:
		return Progress{Message: fmt.Sprintf("%d of %d replicas ready", st.ReadyReplicas, want)}
	case partition == 0 && st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision:
		return Progress{Message: fmt.Sprintf("current revision %s is not yet the update revision %s", st.CurrentRevision, st.UpdateRevision)}
	}
	return Progress{Done: true, Message: fmt.Sprintf("%d of %d replicas updated and ready", st.UpdatedReplicas, want)}
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// StuckPods are the pods that block a StatefulSet's rolling update: with
// the default OrderedReady policy the controller waits for every pod to be
// Ready before it replaces the next one, so a pod of the old revision that
// will never be Ready stops the rollout that would fix it (kubernetes
// issue 67250). Only pods that are unhealthy (not Ready past grace) and not
// at the update revision are returned; nothing is returned until the
// controller has observed the current generation, because until then the
// update revision names the old template.
func StuckPods(s *appsv1.StatefulSet, pods []corev1.Pod, now time.Time, grace time.Duration) []*corev1.Pod {
	if s.Status.ObservedGeneration < s.Generation || s.Status.UpdateRevision == "" {
		return nil
	}
	var out []*corev1.Pod
	for i := range pods {
		p := &pods[i]
		if p.Labels[appsv1.ControllerRevisionHashLabelKey] == s.Status.UpdateRevision {
			continue
		}
		if bad, _ := PodUnhealthy(p, now, grace); bad {
			out = append(out, p)
		}
	}
	return out
}

// CheckRollable says why the updater cannot roll the workload out, or nil: a
// paused Deployment or an OnDelete StatefulSet would never replace its pods,
// so every update would time out and be rolled back.
func CheckRollable(obj client.Object) error {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if o.Spec.Paused {
			return &ConfigError{Msg: "the Deployment is paused (spec.paused), so an image change would never roll out; resume it (kubectl rollout resume) or set upkeep.dev/skip-reconcile: \"true\""}
		}
	case *appsv1.StatefulSet:
		if o.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
			return &ConfigError{Msg: "the StatefulSet's updateStrategy is OnDelete, so an image change would never roll out; use RollingUpdate"}
		}
	}
	return nil
}
