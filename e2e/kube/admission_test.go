package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"upkeep.dev/upkeep/installers/kube"
)

// Messages of examples/kubernetes/updater/admission/managed-only.yaml.
const (
	unmanagedRefusal = `upkeep-kube-updater may only change workloads labelled upkeep.dev/managed: "true"`
	unlabelRefusal   = "upkeep-kube-updater may not remove the upkeep.dev/managed label"
)

// checkAdmissionPolicy shows what RBAC cannot: with the ValidatingAdmissionPolicy
// installed, the updater's service account may change only workloads
// labelled upkeep.dev/managed, while everyone else is unaffected.
func checkAdmissionPolicy(t *testing.T, c *cluster) {
	unmanaged := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "unmanaged", Namespace: agentsNS, Labels: map[string]string{"app.kubernetes.io/name": "unmanaged"}},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "unmanaged"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": "unmanaged"}},
				Spec:       restrictedPodSpec("app", "registry.example.com/app:1.0.0"),
			},
		},
	}
	if _, err := c.kube.AppsV1().Deployments(agentsNS).Create(ctx(t), unmanaged, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := c.as(t, agentsNS, updaterSA).kube.AppsV1().Deployments(agentsNS)
	setImage := func(ctx context.Context, name, container, image string) error {
		p := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`, container, image)
		_, err := sa.Patch(ctx, name, types.StrategicMergePatchType, []byte(p), metav1.PatchOptions{FieldManager: kube.FieldManager})
		return err
	}

	// The apiserver loads a new policy asynchronously: wait until it bites.
	waitFor(t, 30*time.Second, "the policy refuses the updater's change to an unmanaged Deployment", func() error {
		err := setImage(ctx(t), "unmanaged", "app", "registry.example.com/app:2.0.0")
		if err == nil {
			return fmt.Errorf("the change went through")
		}
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), unmanagedRefusal) {
			return fmt.Errorf("refused, but not by the policy: %v", err)
		}
		return nil
	})

	if err := setImage(ctx(t), "edge-agent", "agent", "ghcr.io/upkeep-dev/demo-agent:17.3.1"); err != nil {
		t.Errorf("the updater may no longer change a managed Deployment: %v", err)
	}
	_, err := sa.Patch(ctx(t), "edge-agent", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"upkeep.dev/managed":null}}}`), metav1.PatchOptions{FieldManager: kube.FieldManager})
	if err == nil || !strings.Contains(err.Error(), unlabelRefusal) {
		t.Errorf("removing the managed label as the updater: got %v, want the policy's refusal", err)
	}
	// Other users are not affected: the admin changes the unmanaged one.
	p := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example.com/app:2.0.0"}]}}}}`
	if _, err := c.kube.AppsV1().Deployments(agentsNS).Patch(ctx(t), "unmanaged", types.StrategicMergePatchType, []byte(p), metav1.PatchOptions{}); err != nil {
		t.Errorf("the policy stops the admin too: %v", err)
	}
}

// restrictedPodSpec is a one-container pod spec that meets the restricted
// Pod Security Standard.
func restrictedPodSpec(name, image string) corev1.PodSpec {
	no, yes := false, true
	return corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   &yes,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name: name, Image: image,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no,
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
}
