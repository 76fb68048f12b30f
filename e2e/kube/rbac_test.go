package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"upkeep.dev/upkeep/installers/kube"
)

// wantGrants is everything the updater's Role adds to what any service
// account may do, one "verb group/resource[:name]" per grant ("core" is the
// core group). A change to role.yaml must change this list too.
var wantGrants = []string{
	"get apps/deployments", "list apps/deployments", "watch apps/deployments", "patch apps/deployments",
	"get apps/statefulsets", "list apps/statefulsets", "watch apps/statefulsets", "patch apps/statefulsets",
	"list core/pods", "delete core/pods",
	"create core/events", "patch core/events",
	"create events.k8s.io/events", "patch events.k8s.io/events",
	"create coordination.k8s.io/leases",
	"get coordination.k8s.io/leases:upkeep-kube-updater",
	"update coordination.k8s.io/leases:upkeep-kube-updater",
	"get core/secrets:upkeep-cosign-public-key",
	"get core/secrets:db-agent-shared-state",
	"list core/configmaps", "watch core/configmaps", "create core/configmaps",
	"patch core/configmaps:upkeep-schedule-eu-prod",
}

// checkRoleIsExact asks the apiserver which rules apply to the updater's
// service account in ns (a SelfSubjectRulesReview, impersonating it), takes
// away what a service account without any binding gets, and compares.
func checkRoleIsExact(t *testing.T, c *cluster, ns string) {
	got := grants(t, c.as(t, ns, updaterSA), ns)
	baseline := grants(t, c.as(t, ns, "no-bindings"), ns)
	var extra []string
	for _, g := range got {
		if !slices.Contains(baseline, g) {
			extra = append(extra, g)
		}
	}
	want := slices.Sorted(slices.Values(wantGrants))
	for _, g := range extra {
		if !slices.Contains(want, g) {
			t.Errorf("the updater may %s, which it does not need", g)
		}
	}
	for _, g := range want {
		if !slices.Contains(extra, g) {
			t.Errorf("the updater may not %s, which it needs", g)
		}
	}
}

// grants flattens the rules the apiserver reports for the caller in ns.
func grants(t *testing.T, c *cluster, ns string) []string {
	t.Helper()
	rr, err := c.kube.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx(t),
		&authorizationv1.SelfSubjectRulesReview{Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectRulesReview: %v", err)
	}
	if rr.Status.Incomplete {
		t.Fatalf("SelfSubjectRulesReview is incomplete: %s", rr.Status.EvaluationError)
	}
	var out []string
	for _, r := range rr.Status.ResourceRules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			if g == "" {
				g = "core"
			}
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					for _, n := range names {
						s := v + " " + g + "/" + res
						if n != "" {
							s += ":" + n
						}
						out = append(out, s)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// access is one question to the authorizer.
type access struct {
	verb, group, resource, namespace, name string
}

func (a access) String() string {
	s := a.verb + " " + a.group + "/" + a.resource
	if a.name != "" {
		s += " " + a.name
	}
	if a.namespace != "" {
		s += " in " + a.namespace
	}
	return s
}

// accessReview asks the apiserver whether user (a service account of
// saNamespace) may do a (a SubjectAccessReview, as the admin).
func accessReview(t *testing.T, c *cluster, user, saNamespace string, a access) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: serviceAccountGroups(saNamespace),
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: a.namespace, Verb: a.verb, Group: a.group, Resource: a.resource, Name: a.name,
		},
	}}
	// "pods/exec" is resource pods, subresource exec.
	if res, sub, ok := strings.Cut(a.resource, "/"); ok {
		sar.Spec.ResourceAttributes.Resource, sar.Spec.ResourceAttributes.Subresource = res, sub
	}
	got, err := c.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx(t), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview %s: %v", a, err)
	}
	return got.Status.Allowed
}

func checkAccessReviews(t *testing.T, c *cluster) {
	user := serviceAccountUser(agentsNS, updaterSA)
	for _, tc := range []struct {
		scenario string
		access   access
		allowed  bool
	}{
		{"it patches a managed Deployment's image", access{"patch", "apps", "deployments", agentsNS, "edge-agent"}, true},
		{"it patches a managed StatefulSet's image", access{"patch", "apps", "statefulsets", agentsNS, "db-agent"}, true},
		{"it watches Deployments", access{"watch", "apps", "deployments", agentsNS, ""}, true},
		{"it lists a workload's pods", access{"list", "", "pods", agentsNS, ""}, true},
		{"it deletes a pod stuck on a broken revision", access{"delete", "", "pods", agentsNS, "db-agent-0"}, true},
		{"it reads the cosign public key", access{"get", "", "secrets", agentsNS, publicKeySecret}, true},
		{"it reads a Teleport agent's schedule", access{"get", "", "secrets", agentsNS, "db-agent-shared-state"}, true},
		{"it saves a group's schedule", access{"patch", "", "configmaps", agentsNS, "upkeep-schedule-eu-prod"}, true},
		{"it records events", access{"create", "events.k8s.io", "events", agentsNS, ""}, true},
		{"it renews its Lease", access{"update", "coordination.k8s.io", "leases", agentsNS, updaterName}, true},

		{"it may not replace a Deployment (it patches)", access{"update", "apps", "deployments", agentsNS, "edge-agent"}, false},
		{"it may not delete a Deployment", access{"delete", "apps", "deployments", agentsNS, "edge-agent"}, false},
		{"it may not create a Deployment", access{"create", "apps", "deployments", agentsNS, ""}, false},
		{"it may not delete a StatefulSet", access{"delete", "apps", "statefulsets", agentsNS, "db-agent"}, false},
		{"it may not scale a Deployment", access{"patch", "apps", "deployments/scale", agentsNS, "edge-agent"}, false},
		{"it may not write a Deployment's status", access{"patch", "apps", "deployments/status", agentsNS, "edge-agent"}, false},
		{"it may not read another Secret", access{"get", "", "secrets", agentsNS, "other"}, false},
		{"it may not list Secrets", access{"list", "", "secrets", agentsNS, ""}, false},
		{"it may not watch Secrets", access{"watch", "", "secrets", agentsNS, ""}, false},
		{"it may not change the public key", access{"patch", "", "secrets", agentsNS, publicKeySecret}, false},
		{"it may not create pods", access{"create", "", "pods", agentsNS, ""}, false},
		{"it may not read a pod", access{"get", "", "pods", agentsNS, "db-agent-0"}, false},
		{"it may not exec into pods", access{"create", "", "pods/exec", agentsNS, "db-agent-0"}, false},
		{"it may not change another ConfigMap", access{"patch", "", "configmaps", agentsNS, "upkeep-server-ca"}, false},
		{"it may not delete a saved schedule", access{"delete", "", "configmaps", agentsNS, "upkeep-schedule-eu-prod"}, false},
		{"it may not update another Lease", access{"update", "coordination.k8s.io", "leases", agentsNS, "other"}, false},
		{"it may not delete its Lease", access{"delete", "coordination.k8s.io", "leases", agentsNS, updaterName}, false},
		{"it may not patch Deployments in another namespace", access{"patch", "apps", "deployments", "default", "edge-agent"}, false},
		{"it may not touch the version server", access{"patch", "apps", "deployments", "upkeep", "upkeep-server"}, false},
		{"it may not list namespaces", access{"list", "", "namespaces", "", ""}, false},
		{"it may not bind roles", access{"create", "rbac.authorization.k8s.io", "rolebindings", agentsNS, ""}, false},
		{"it may not change its own Role", access{"patch", "rbac.authorization.k8s.io", "roles", agentsNS, updaterName}, false},
	} {
		a := tc.access
		if got := accessReview(t, c, user, agentsNS, a); got != tc.allowed {
			t.Errorf("%s: %s allowed = %v, want %v", tc.scenario, a, got, tc.allowed)
		}
	}
}

// checkActionsAsServiceAccount makes real calls as the updater's service
// account: what the Role allows succeeds, the rest is Forbidden.
func checkActionsAsServiceAccount(t *testing.T, c *cluster) {
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: agentsNS},
			StringData: map[string]string{"password": "not for the updater"}},
	} {
		if _, err := c.kube.CoreV1().Secrets(agentsNS).Create(ctx(t), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sa := c.as(t, agentsNS, updaterSA)
	secrets := sa.kube.CoreV1().Secrets(agentsNS)
	deployments := sa.kube.AppsV1().Deployments(agentsNS)
	imagePatch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"agent","image":"ghcr.io/upkeep-dev/demo-agent@sha256:` + strings.Repeat("ab", 32) + `"}]}}}}`)

	for _, tc := range []struct {
		scenario  string
		call      func(context.Context) error
		forbidden bool
	}{
		{"reading the public key works", func(ctx context.Context) error {
			_, err := secrets.Get(ctx, publicKeySecret, metav1.GetOptions{})
			return err
		}, false},
		{"reading a Teleport agent's schedule works", func(ctx context.Context) error {
			_, err := secrets.Get(ctx, "db-agent-shared-state", metav1.GetOptions{})
			return err
		}, false},
		{"setting a managed Deployment's image works", func(ctx context.Context) error {
			_, err := deployments.Patch(ctx, "edge-agent", types.StrategicMergePatchType, imagePatch, metav1.PatchOptions{FieldManager: kube.FieldManager})
			return err
		}, false},
		{"reading another Secret is forbidden", func(ctx context.Context) error {
			_, err := secrets.Get(ctx, "unrelated", metav1.GetOptions{})
			return err
		}, true},
		{"listing Secrets is forbidden", func(ctx context.Context) error {
			_, err := secrets.List(ctx, metav1.ListOptions{})
			return err
		}, true},
		{"replacing a Deployment is forbidden", func(ctx context.Context) error {
			d, err := c.kube.AppsV1().Deployments(agentsNS).Get(ctx, "edge-agent", metav1.GetOptions{}) // as the admin
			if err != nil {
				return fmt.Errorf("admin: %w", err)
			}
			_, err = deployments.Update(ctx, d, metav1.UpdateOptions{})
			return err
		}, true},
		{"deleting a Deployment is forbidden", func(ctx context.Context) error {
			return deployments.Delete(ctx, "edge-agent", metav1.DeleteOptions{})
		}, true},
		{"creating a pod is forbidden", func(ctx context.Context) error {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "sneaky"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
			_, err := sa.kube.CoreV1().Pods(agentsNS).Create(ctx, pod, metav1.CreateOptions{})
			return err
		}, true},
		{"taking over another Lease is forbidden", func(ctx context.Context) error {
			l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "someone-else"}}
			created, err := c.kube.CoordinationV1().Leases(agentsNS).Create(ctx, l, metav1.CreateOptions{}) // as the admin
			if err != nil {
				return fmt.Errorf("admin: %w", err)
			}
			holder := "upkeep"
			created.Spec.HolderIdentity = &holder
			_, err = sa.kube.CoordinationV1().Leases(agentsNS).Update(ctx, created, metav1.UpdateOptions{})
			return err
		}, true},
	} {
		err := tc.call(ctx(t))
		switch {
		case tc.forbidden && !apierrors.IsForbidden(err):
			t.Errorf("%s: got %v, want Forbidden", tc.scenario, err)
		case !tc.forbidden && err != nil:
			t.Errorf("%s: %v", tc.scenario, err)
		}
	}
}

func toTyped(t *testing.T, m map[string]any, out any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, out); err != nil {
		t.Fatal(err)
	}
}
