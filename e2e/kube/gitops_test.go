package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"upkeep.dev/upkeep/installers/kube"
)

// The field managers of the GitOps tools' server-side applies.
const (
	argoCDFieldManager = "argocd-controller"
	fluxFieldManager   = "kustomize-controller"
)

// fluxSSAAnnotation tells Flux's kustomize-controller how to apply an object.
const fluxSSAAnnotation = "kustomize.toolkit.fluxcd.io/ssa"

// readDocuments parses every YAML document of a file strictly (duplicate
// keys are errors) into objects.
func readDocuments(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for i, doc := range bytes.Split(data, []byte("\n---\n")) {
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			t.Fatalf("%s: document %d: %v", rel(path), i+1, err)
		}
		if string(j) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			t.Fatalf("%s: document %d: %v", rel(path), i+1, err)
		}
		objs = append(objs, u)
	}
	return objs
}

// TestGitOpsExamplesKeepTheUpdatersImage checks examples/kubernetes/gitops
// without Argo CD or Flux (their CRDs are not installed): the manifests
// parse, point at the agents, and carry the settings docs/gitops.md
// describes; Flux's patch is run through kustomize, as Flux itself does.
func TestGitOpsExamplesKeepTheUpdatersImage(t *testing.T) {
	agents := render(t, examplePath("agent"))
	var managedKinds []string
	for _, o := range agents {
		if o.GetLabels()["upkeep.dev/managed"] == "true" && !slices.Contains(managedKinds, o.GetKind()) {
			managedKinds = append(managedKinds, o.GetKind())
		}
	}
	agentNS := find(t, agents, "Deployment", "edge-agent").GetNamespace()

	t.Run("Argo CD ignores and keeps what the updater owns", func(t *testing.T) {
		objs := readDocuments(t, examplePath("gitops", "argocd-application.yaml"))
		app := find(t, objs, "Application", "agents")
		if app.GetAPIVersion() != "argoproj.io/v1alpha1" {
			t.Errorf("apiVersion %q", app.GetAPIVersion())
		}
		path, _, _ := unstructured.NestedString(app.Object, "spec", "source", "path")
		checkKustomizationDir(t, path, examplePath("agent"))
		if ns, _, _ := unstructured.NestedString(app.Object, "spec", "destination", "namespace"); ns != agentNS {
			t.Errorf("destination namespace %q, want the agents' %q", ns, agentNS)
		}
		ignores, _, _ := unstructured.NestedSlice(app.Object, "spec", "ignoreDifferences")
		for _, kind := range managedKinds {
			ok := slices.ContainsFunc(ignores, func(i any) bool {
				m := i.(map[string]any)
				managers, _, _ := unstructured.NestedStringSlice(m, "managedFieldsManagers")
				return m["group"] == "apps" && m["kind"] == kind && slices.Contains(managers, kube.FieldManager)
			})
			if !ok {
				t.Errorf("no ignoreDifferences entry for apps %s with managedFieldsManagers [%s]", kind, kube.FieldManager)
			}
		}
		opts, _, _ := unstructured.NestedStringSlice(app.Object, "spec", "syncPolicy", "syncOptions")
		if !slices.Contains(opts, "RespectIgnoreDifferences=true") {
			t.Errorf("syncOptions %q lack RespectIgnoreDifferences=true: a sync would apply the image from Git again", opts)
		}
	})

	t.Run("Flux creates the managed workloads once and leaves them to the updater", func(t *testing.T) {
		objs := readDocuments(t, examplePath("gitops", "flux-kustomization.yaml"))
		ks := find(t, objs, "Kustomization", "agents")
		repo := find(t, objs, "GitRepository", "platform")
		if ks.GetAPIVersion() != "kustomize.toolkit.fluxcd.io/v1" || repo.GetAPIVersion() != "source.toolkit.fluxcd.io/v1" {
			t.Errorf("apiVersions %q and %q", ks.GetAPIVersion(), repo.GetAPIVersion())
		}
		if ref, _, _ := unstructured.NestedStringMap(ks.Object, "spec", "sourceRef"); ref["kind"] != "GitRepository" || ref["name"] != repo.GetName() {
			t.Errorf("sourceRef %v does not name GitRepository %s", ref, repo.GetName())
		}
		path, _, _ := unstructured.NestedString(ks.Object, "spec", "path")
		checkKustomizationDir(t, path, examplePath("agent"))
		if ns, _, _ := unstructured.NestedString(ks.Object, "spec", "targetNamespace"); ns != agentNS {
			t.Errorf("targetNamespace %q, want the agents' %q", ns, agentNS)
		}

		// kustomize-controller hands spec.patches to kustomize: do the same.
		patches, _, _ := unstructured.NestedSlice(ks.Object, "spec", "patches")
		if len(patches) == 0 {
			t.Fatal("no spec.patches")
		}
		dir := t.TempDir()
		agentDir, err := filepath.Rel(dir, examplePath("agent")) // kustomize refuses absolute paths
		if err != nil {
			t.Fatal(err)
		}
		k, err := json.Marshal(map[string]any{
			"apiVersion": "kustomize.config.k8s.io/v1beta1",
			"kind":       "Kustomization",
			"resources":  []string{agentDir},
			"patches":    patches,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), k, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, o := range render(t, dir) {
			managed := o.GetLabels()["upkeep.dev/managed"] == "true"
			got := o.GetAnnotations()[fluxSSAAnnotation]
			switch {
			case managed && got != "IfNotPresent":
				t.Errorf("managed %s %s: %s = %q, want IfNotPresent", o.GetKind(), o.GetName(), fluxSSAAnnotation, got)
			case !managed && got != "":
				t.Errorf("%s %s is not managed, yet Flux would stop syncing it (%s = %q)", o.GetKind(), o.GetName(), fluxSSAAnnotation, got)
			}
		}
	})
}

// checkKustomizationDir checks that a GitOps path (relative to the
// repository root) is the directory want.
func checkKustomizationDir(t *testing.T, path, want string) {
	t.Helper()
	got := filepath.Join(repoRoot(), filepath.FromSlash(strings.TrimPrefix(path, "./")))
	if got != want {
		t.Errorf("path %q is %s, want %s", path, rel(got), rel(want))
	}
	if _, err := os.Stat(filepath.Join(got, "kustomization.yaml")); err != nil {
		t.Errorf("path %q: %v", path, err)
	}
}

// checkImageOwnership shows on the apiserver what Argo CD's
// managedFieldsManagers relies on: a GitOps tool applies the agent
// server-side, the updater sets the image the way installers/kube does (a
// strategic merge patch with field manager kube.FieldManager), and the image
// then belongs to that field manager alone. A forced apply from Git, which
// is what Argo CD and Flux do on every sync, takes it back: the revert that
// docs/gitops.md prevents.
func checkImageOwnership(t *testing.T, c *cluster, agent *unstructured.Unstructured) {
	sa := c.as(t, agentsNS, updaterSA)
	digest := "ghcr.io/upkeep-dev/demo-agent:17.3.0@sha256:" + strings.Repeat("cd", 32)
	for _, gitops := range []string{argoCDFieldManager, fluxFieldManager} {
		t.Run(gitops, func(t *testing.T) {
			fromGit := agent.DeepCopy()
			fromGit.SetName("gitops-" + gitops)
			tag, _, _ := unstructured.NestedString(container(t, fromGit, "agent"), "image")
			if _, err := c.apply(t, fromGit, gitops); err != nil {
				t.Fatalf("%s applies: %v", gitops, err)
			}
			p := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"agent","image":%q}]}}}}`, digest)
			if _, err := sa.kube.AppsV1().Deployments(agentsNS).Patch(ctx(t), fromGit.GetName(), types.StrategicMergePatchType,
				[]byte(p), metav1.PatchOptions{FieldManager: kube.FieldManager}); err != nil {
				t.Fatalf("the updater sets the image: %v", err)
			}
			image, owners := imageAndOwners(t, c, fromGit.GetName())
			if image != digest || !slices.Equal(owners, []string{kube.FieldManager}) {
				t.Errorf("after the updater: image %q owned by %q, want %q owned by [%s]", image, owners, digest, kube.FieldManager)
			}

			if _, err := c.apply(t, fromGit, gitops); err != nil {
				t.Fatalf("%s applies again: %v", gitops, err)
			}
			image, owners = imageAndOwners(t, c, fromGit.GetName())
			if image != tag || !slices.Equal(owners, []string{gitops}) {
				t.Errorf("after a forced apply from Git: image %q owned by %q, want %q owned by [%s]", image, owners, tag, gitops)
			}
		})
	}
}

// imageAndOwners reads the agent container's image and the field managers
// that own it.
func imageAndOwners(t *testing.T, c *cluster, name string) (string, []string) {
	t.Helper()
	d, err := c.kube.AppsV1().Deployments(agentsNS).Get(ctx(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var image string
	for _, ct := range d.Spec.Template.Spec.Containers {
		if ct.Name == "agent" {
			image = ct.Image
		}
	}
	var owners []string
	for _, mf := range d.ManagedFields {
		if mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
			t.Fatal(err)
		}
		if hasPath(fields, "f:spec", "f:template", "f:spec", "f:containers", `k:{"name":"agent"}`, "f:image") {
			owners = append(owners, mf.Manager)
		}
	}
	return image, owners
}

func hasPath(m map[string]any, path ...string) bool {
	for _, p := range path {
		next, ok := m[p]
		if !ok {
			return false
		}
		m, _ = next.(map[string]any)
	}
	return true
}
