package kube

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"upkeep.dev/upkeep/e2e/kube/envtest"
)

// TestPatchWorkloadConflicts runs the image change against a real API server
// from a stale copy of the workload: the optimistic lock makes the server
// refuse it, the change is made again from a fresh read and keeps the other
// writer's change; when the other writer changed the image itself, the
// updater backs off.
func TestPatchWorkloadConflicts(t *testing.T) {
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
	r := &Reconciler{client: c, direct: c, log: slog.New(slog.DiscardHandler)}
	one := int32(1)
	newDeployment := func(name string) *appsv1.Deployment {
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "r/agent:1.0.0"}}}}},
		}
		if err := c.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	setImage := func(img string) func(client.Object, *corev1.PodTemplateSpec) {
		return func(obj client.Object, tmpl *corev1.PodTemplateSpec) {
			tmpl.Spec.Containers[0].Image = img
			setAnnotations(obj, map[string]*string{AnnotationPreviousImage: ptr("r/agent:1.0.0")})
		}
	}

	t.Run("a concurrent change elsewhere is kept and the image change retried", func(t *testing.T) {
		stale := newDeployment("retried")
		live := stale.DeepCopy()
		live.Annotations = map[string]string{"team": "agents"}
		if err := c.Update(ctx, live); err != nil {
			t.Fatal(err)
		}
		w := wrap(stale.DeepCopy())
		if err := r.patchWorkload(ctx, w, 0, "r/agent:1.0.0", setImage("r/agent:1.1.0@"+dgst)); err != nil {
			t.Fatalf("the retry did not succeed: %v", err)
		}
		var got appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKeyFromObject(stale), &got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.Template.Spec.Containers[0].Image != "r/agent:1.1.0@"+dgst || got.Annotations["team"] != "agents" ||
			got.Annotations[AnnotationPreviousImage] != "r/agent:1.0.0" {
			t.Fatalf("image %s, annotations %v", got.Spec.Template.Spec.Containers[0].Image, got.Annotations)
		}
		if got.ManagedFields == nil {
			t.Fatal("no managed fields")
		}
		found := false
		for _, mf := range got.ManagedFields {
			found = found || mf.Manager == FieldManager
		}
		if !found {
			t.Fatalf("field manager %s not recorded", FieldManager)
		}
	})

	t.Run("an image changed by someone else stops the updater", func(t *testing.T) {
		stale := newDeployment("superseded")
		live := stale.DeepCopy()
		live.Spec.Template.Spec.Containers[0].Image = "r/agent:9.9.9"
		if err := c.Update(ctx, live); err != nil {
			t.Fatal(err)
		}
		err := r.patchWorkload(ctx, wrap(stale.DeepCopy()), 0, "r/agent:1.0.0", setImage("r/agent:1.1.0@"+dgst))
		if !errors.Is(err, errWorkloadChanged) {
			t.Fatalf("err = %v, want errWorkloadChanged", err)
		}
		var got appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKeyFromObject(stale), &got); err != nil {
			t.Fatal(err)
		}
		if img := got.Spec.Template.Spec.Containers[0].Image; img != "r/agent:9.9.9" {
			t.Fatalf("the other writer's image was overwritten: %s", img)
		}
	})
}
