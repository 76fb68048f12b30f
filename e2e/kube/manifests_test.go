package kube

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"upkeep.dev/upkeep/installers/kube"
	"upkeep.dev/upkeep/spec"
)

// The updater's names, as the examples define them.
const (
	agentsNS        = "agents"      // examples/kubernetes/updater/base and ../agent
	agentsProdNS    = "agents-prod" // overlays/production
	updaterSA       = "upkeep-kube-updater"
	updaterName     = "upkeep-kube-updater"
	publicKeySecret = "upkeep-cosign-public-key"
)

// kustomizations are every kustomization this package applies; the updater's
// are all of examples/kubernetes/updater (TestEveryUpdaterManifestIsApplied).
var kustomizations = []string{
	"server",
	"agent",
	"updater/base",
	"updater/overlays/production",
	"updater/admission",
}

// TestManifestsOnARealAPIServer applies every example manifest to a real
// kube-apiserver and then checks, on that apiserver, what the updater's
// service account may and may not do. The subtests share the apiserver and
// run in order.
func TestManifestsOnARealAPIServer(t *testing.T) {
	c := startCluster(t)

	rendered := map[string][]*unstructured.Unstructured{}
	for _, k := range kustomizations {
		rendered[k] = render(t, examplePath(k))
	}

	t.Run("every manifest is accepted with strict field validation and no warning", func(t *testing.T) {
		// The production namespace belongs to the production agents, which
		// this repository does not ship; create it as they would.
		c.applyAll(t, []*unstructured.Unstructured{restrictedNamespace(agentsProdNS)})
		for _, k := range kustomizations {
			c.applyAll(t, rendered[k])
			for _, w := range c.warnings.take() {
				t.Errorf("%s: the apiserver warned: %s", k, w)
			}
		}
		// Read each object back: accepted means stored.
		for _, k := range kustomizations {
			for _, o := range rendered[k] {
				ri, err := c.resource(o)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ri.Get(ctx(t), o.GetName(), metav1.GetOptions{}); err != nil {
					t.Errorf("%s: %s %s/%s not stored: %v", k, o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
			}
		}
	})
	if t.Failed() {
		return
	}
	// What a Teleport agent writes beside itself: db-agent's schedule, a
	// window every day from now on.
	start := time.Now().UTC().Truncate(time.Hour)
	mustCreate(t, c, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: kube.TeleportSecretName("db-agent"), Namespace: agentsNS},
		StringData: map[string]string{kube.TeleportScheduleKey: fmt.Sprintf(`{"windows":[{"start":%q,"stop":%q}]}`,
			start.Format(time.RFC3339), start.Add(4*time.Hour).Format(time.RFC3339))},
	})

	t.Run("every pod template passes the restricted Pod Security Standard", func(t *testing.T) {
		for _, k := range kustomizations {
			for _, o := range rendered[k] {
				if o.GetKind() != "Deployment" && o.GetKind() != "StatefulSet" {
					continue
				}
				pod, err := podFromTemplate(o)
				if err != nil {
					t.Fatalf("%s: %s %s: %v", k, o.GetKind(), o.GetName(), err)
				}
				// Admission, Pod Security included, runs on a dry run; the
				// namespaces enforce "restricted".
				ns := pod.GetNamespace()
				if lbl := nsLabel(t, c, ns, "pod-security.kubernetes.io/enforce"); lbl != "restricted" {
					t.Fatalf("%s: namespace %s enforces %q, want restricted", k, ns, lbl)
				}
				_, err = c.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "pods"}).Namespace(ns).
					Create(ctx(t), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict})
				if err != nil {
					t.Errorf("%s: a pod of %s %s/%s is refused: %v", k, o.GetKind(), ns, o.GetName(), err)
				}
			}
		}
	})

	t.Run("the updater's Role grants exactly what the updater needs", func(t *testing.T) {
		checkRoleIsExact(t, c, agentsNS)
	})
	t.Run("the service account may do what the updater does, and no more", func(t *testing.T) {
		checkAccessReviews(t, c)
	})
	t.Run("the production overlay binds its own service account only", func(t *testing.T) {
		for _, tc := range []struct {
			saNS, targetNS string
			allowed        bool
		}{
			{agentsProdNS, agentsProdNS, true},
			{agentsProdNS, agentsNS, false},
			{agentsNS, agentsProdNS, false},
		} {
			got := accessReview(t, c, serviceAccountUser(tc.saNS, updaterSA), tc.saNS, access{"patch", "apps", "deployments", tc.targetNS, ""})
			if got != tc.allowed {
				t.Errorf("the updater of %s may patch Deployments in %s: %v, want %v", tc.saNS, tc.targetNS, got, tc.allowed)
			}
		}
	})
	// Before anything changes the agents: their tags match the channel.
	t.Run("the example Deployment's updater runs with its service account's token", func(t *testing.T) {
		checkUpdaterRuns(t, c, find(t, rendered["updater/base"], "Deployment", updaterName))
	})
	t.Run("as its service account, the updater reads its Secrets, patches images and nothing else", func(t *testing.T) {
		checkActionsAsServiceAccount(t, c)
	})
	t.Run("the admission policy confines the updater to managed workloads", func(t *testing.T) {
		checkAdmissionPolicy(t, c)
	})
	t.Run("the apiserver records the updater as the owner of the image it set", func(t *testing.T) {
		checkImageOwnership(t, c, find(t, rendered["agent"], "Deployment", "edge-agent"))
	})
}

func restrictedNamespace(name string) *unstructured.Unstructured {
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	ns.SetLabels(map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	})
	return ns
}

func nsLabel(t *testing.T, c *cluster, ns, key string) string {
	t.Helper()
	got, err := c.kube.CoreV1().Namespaces().Get(ctx(t), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace %s: %v", ns, err)
	}
	return got.Labels[key]
}

// podFromTemplate is the pod a workload controller would create from o.
func podFromTemplate(o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	tmpl, ok, err := unstructured.NestedMap(o.Object, "spec", "template")
	if err != nil || !ok {
		return nil, fmt.Errorf("no spec.template: %v", err)
	}
	spec, _ := tmpl["spec"].(map[string]any)
	if spec == nil {
		return nil, fmt.Errorf("no spec.template.spec")
	}
	// A StatefulSet's claims become volumes of its pods.
	claims, _, _ := unstructured.NestedSlice(o.Object, "spec", "volumeClaimTemplates")
	for _, cl := range claims {
		name, _, _ := unstructured.NestedString(cl.(map[string]any), "metadata", "name")
		vols, _ := spec["volumes"].([]any)
		spec["volumes"] = append(vols, map[string]any{
			"name":                  name,
			"persistentVolumeClaim": map[string]any{"claimName": name + "-" + o.GetName() + "-0"},
		})
	}
	pod := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod", "spec": spec}}
	if md, ok := tmpl["metadata"].(map[string]any); ok {
		pod.Object["metadata"] = md
	}
	pod.SetName(o.GetName() + "-0")
	pod.SetNamespace(o.GetNamespace())
	return pod, nil
}

// TestUpdaterManifestsAgreeWithEachOther checks what the apiserver cannot:
// the updater's arguments, ports, probes and Role name the same things, and
// the overlay changes only what it says.
func TestUpdaterManifestsAgreeWithEachOther(t *testing.T) {
	base := render(t, examplePath("updater", "base"))
	prod := render(t, examplePath("updater", "overlays", "production"))
	agents := render(t, examplePath("agent"))

	baseDep := find(t, base, "Deployment", updaterName)
	args := containerArgs(t, baseDep, "updater")
	role := find(t, base, "Role", updaterName)

	t.Run("two replicas with leader election", func(t *testing.T) {
		if r, _, _ := unstructured.NestedInt64(baseDep.Object, "spec", "replicas"); r != 2 {
			t.Errorf("replicas = %d, want 2", r)
		}
		if !slices.Contains(args, "--leader-elect") {
			t.Errorf("args %q lack --leader-elect", args)
		}
	})
	t.Run("the Role names the lease and the public key the arguments name", func(t *testing.T) {
		if id := flagValue(t, args, "--leader-election-id"); !slices.Contains(ruleNames(role, "coordination.k8s.io", "leases", "update"), id) {
			t.Errorf("the Role may not update Lease %q (--leader-election-id)", id)
		}
		ns, key, _ := strings.Cut(flagValue(t, args, "--public-key-secret"), "/")
		if ns != "$(POD_NAMESPACE)" || key != publicKeySecret {
			t.Errorf("--public-key-secret=%s/%s, want $(POD_NAMESPACE)/%s (the example Secret, beside the updater)", ns, key, publicKeySecret)
		}
		if !slices.Contains(ruleNames(role, "", "secrets", "get"), key) {
			t.Errorf("the Role may not get Secret %q (--public-key-secret)", key)
		}
	})
	t.Run("probes and ports match the manager's bind addresses", func(t *testing.T) {
		ports := containerPorts(t, baseDep, "updater")
		for flag, portName := range map[string]string{"--health-probe-bind-address": "health", "--metrics-bind-address": "metrics"} {
			_, port, err := net.SplitHostPort(flagValue(t, args, flag))
			if err != nil {
				t.Fatalf("%s: %v", flag, err)
			}
			if got := fmt.Sprint(ports[portName]); got != port {
				t.Errorf("container port %q is %s, but %s listens on %s", portName, got, flag, port)
			}
		}
		for _, probe := range []string{"readinessProbe", "livenessProbe"} {
			port, _, _ := unstructured.NestedString(container(t, baseDep, "updater"), probe, "httpGet", "port")
			if port != "health" {
				t.Errorf("%s probes port %q, want the health port", probe, port)
			}
		}
	})
	t.Run("the updater accepts every managed agent and may read its schedule", func(t *testing.T) {
		fleet, errs := spec.LoadDir(filepath.Join(repoRoot(), "examples", "fleet"))
		if errs != nil {
			t.Fatalf("examples/fleet: %v", errs)
		}
		managed := 0
		for _, o := range agents {
			if o.GetLabels()[kube.LabelManaged] != "true" {
				continue
			}
			managed++
			var pod corev1.PodTemplateSpec
			tmpl, _, _ := unstructured.NestedMap(o.Object, "spec", "template")
			toTyped(t, tmpl, &pod)
			cfg, err := kube.ReadConfig(o.GetName(), o.GetAnnotations(), &pod.Spec)
			if err != nil {
				t.Errorf("%s %s: the updater refuses its annotations: %v", o.GetKind(), o.GetName(), err)
				continue
			}
			if fleet.Channel(cfg.Channel) == nil {
				t.Errorf("%s %s: channel %q is not in examples/fleet", o.GetKind(), o.GetName(), cfg.Channel)
			}
			if cfg.Group != "" {
				if g := fleet.Group(cfg.Group); g == nil || g.Channel != cfg.Channel {
					t.Errorf("%s %s: group %q is not in examples/fleet on channel %q", o.GetKind(), o.GetName(), cfg.Group, cfg.Channel)
				}
			}
			switch cfg.Schedule {
			case kube.ScheduleFromGroup:
				if cm := kube.ScheduleConfigMapName(cfg.Group); !slices.Contains(ruleNames(role, "", "configmaps", "patch"), cm) {
					t.Errorf("%s %s: the Role may not patch ConfigMap %s, where the updater saves group %s's schedule", o.GetKind(), o.GetName(), cm, cfg.Group)
				}
			case kube.ScheduleFromAgent:
				if s := kube.TeleportSecretName(cfg.Agent); !slices.Contains(ruleNames(role, "", "secrets", "get"), s) {
					t.Errorf("%s %s: the Role may not get Secret %s, the agent's schedule", o.GetKind(), o.GetName(), s)
				}
			}
		}
		if managed != 2 {
			t.Errorf("%d managed agents in examples/kubernetes/agent, want the Deployment and the StatefulSet", managed)
		}
	})
	t.Run("the production overlay changes namespace, replicas, server and image only", func(t *testing.T) {
		for _, o := range prod {
			if o.GetNamespace() != agentsProdNS {
				t.Errorf("%s %s is in namespace %q, want %s", o.GetKind(), o.GetName(), o.GetNamespace(), agentsProdNS)
			}
		}
		dep := find(t, prod, "Deployment", updaterName)
		if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r != 3 {
			t.Errorf("replicas = %d, want 3", r)
		}
		if got := containerEnv(t, dep, "updater")["UPKEEP_SERVER"]; got != "https://upkeep.prod.example.com" {
			t.Errorf("UPKEEP_SERVER = %q", got)
		}
		if got, base := containerEnv(t, dep, "updater")["UPKEEP_SERVER"], containerEnv(t, baseDep, "updater")["UPKEEP_SERVER"]; got == base {
			t.Errorf("the overlay keeps the base's server %q", base)
		}
		if got := containerArgs(t, dep, "updater"); !slices.Equal(got, args) {
			t.Errorf("the overlay changed the arguments:\n got %q\nwant %q", got, args)
		}
		img, _, _ := unstructured.NestedString(container(t, dep, "updater"), "image")
		if img != "registry.example.com/platform/upkeep-kube:v0.1.0" {
			t.Errorf("image = %q", img)
		}
		// A subject's namespace, when set, is not moved by the overlay; unset,
		// it is the binding's (the apiserver check is in
		// TestManifestsOnARealAPIServer).
		rb := find(t, prod, "RoleBinding", updaterName)
		subjects, _, _ := unstructured.NestedSlice(rb.Object, "subjects")
		if len(subjects) != 1 {
			t.Fatalf("RoleBinding subjects = %v, want the one service account", subjects)
		}
		if ns, ok := subjects[0].(map[string]any)["namespace"]; ok && ns != agentsProdNS {
			t.Errorf("RoleBinding subject namespace %v, want %s or none", ns, agentsProdNS)
		}
	})
}

func container(t *testing.T, o *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		if m := c.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("%s %s has no container %q", o.GetKind(), o.GetName(), name)
	return nil
}

func containerArgs(t *testing.T, o *unstructured.Unstructured, name string) []string {
	t.Helper()
	args, _, _ := unstructured.NestedStringSlice(container(t, o, name), "args")
	return args
}

func containerPorts(t *testing.T, o *unstructured.Unstructured, name string) map[string]int64 {
	t.Helper()
	var c corev1.Container
	toTyped(t, container(t, o, name), &c)
	ports := map[string]int64{}
	for _, p := range c.Ports {
		ports[p.Name] = int64(p.ContainerPort)
	}
	return ports
}

func containerEnv(t *testing.T, o *unstructured.Unstructured, name string) map[string]string {
	t.Helper()
	var c corev1.Container
	toTyped(t, container(t, o, name), &c)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// flagValue is the value of --name=value in args.
func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	t.Fatalf("args %q have no %s=", args, name)
	return ""
}

// ruleNames lists the resourceNames of the Role's rules that grant verb on
// group/resource.
func ruleNames(role *unstructured.Unstructured, group, resource, verb string) []string {
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	var names []string
	for _, r := range rules {
		m := r.(map[string]any)
		groups, _, _ := unstructured.NestedStringSlice(m, "apiGroups")
		resources, _, _ := unstructured.NestedStringSlice(m, "resources")
		verbs, _, _ := unstructured.NestedStringSlice(m, "verbs")
		if slices.Contains(groups, group) && slices.Contains(resources, resource) && slices.Contains(verbs, verb) {
			n, _, _ := unstructured.NestedStringSlice(m, "resourceNames")
			names = append(names, n...)
		}
	}
	return names
}
