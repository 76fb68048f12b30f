package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	kubeenv "upkeep.dev/upkeep/e2e/kube/envtest"
)

// applyFieldManager is this test's own field manager, standing in for
// `kubectl apply --server-side` or a GitOps tool.
const applyFieldManager = "upkeep-e2e"

// callTimeout bounds every API call; the apiserver is on loopback.
const callTimeout = 30 * time.Second

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// examplePath is a path under examples/kubernetes.
func examplePath(parts ...string) string {
	return filepath.Join(append([]string{repoRoot(), "examples", "kubernetes"}, parts...)...)
}

// render builds a kustomization in-process, as `kubectl kustomize dir` does.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", rel(dir), err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range m.Resources() {
		// Through JSON: kustomize's maps hold Go ints, unstructured wants int64.
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", rel(dir), r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatalf("kustomize build %s: %s: %v", rel(dir), r.CurId(), err)
		}
		objs = append(objs, u)
	}
	return objs
}

func rel(path string) string {
	if r, err := filepath.Rel(repoRoot(), path); err == nil {
		return r
	}
	return path
}

// find returns the object of that kind and name, failing the test if absent.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q among the rendered objects", kind, name)
	return nil
}

// cluster is a client set for a running apiserver.
type cluster struct {
	cfg      *rest.Config
	kube     kubernetes.Interface
	dyn      dynamic.Interface
	mapper   meta.RESTMapper
	warnings *warningLog
}

func newCluster(t *testing.T, admin *rest.Config) *cluster {
	t.Helper()
	cfg := rest.CopyConfig(admin)
	w := &warningLog{}
	cfg.WarningHandler = w
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return &cluster{cfg: cfg, kube: kube, dyn: dyn, mapper: mapper, warnings: w}
}

// startCluster starts a real apiserver for the test.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	return newCluster(t, kubeenv.Start(t).Config)
}

// as is the same apiserver seen by a service account, through impersonation.
func (c *cluster) as(t *testing.T, namespace, serviceAccount string) *cluster {
	t.Helper()
	cfg := rest.CopyConfig(c.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: serviceAccountUser(namespace, serviceAccount),
		Groups:   serviceAccountGroups(namespace),
	}
	return newCluster(t, cfg)
}

func serviceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

func serviceAccountGroups(namespace string) []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return c
}

// resource is the dynamic client for obj's kind, in obj's namespace.
func (c *cluster) resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := obj.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s %s: the apiserver does not serve this kind: %w", gvk, obj.GetName(), err)
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		return c.dyn.Resource(m.Resource), nil
	}
	if obj.GetNamespace() == "" {
		return nil, fmt.Errorf("%s %s has no namespace (the kustomization must set one)", gvk.Kind, obj.GetName())
	}
	return c.dyn.Resource(m.Resource).Namespace(obj.GetNamespace()), nil
}

// apply server-side applies obj with strict field validation: an unknown or
// duplicated field is an error, not a warning.
func (c *cluster) apply(t *testing.T, obj *unstructured.Unstructured, manager string) (*unstructured.Unstructured, error) {
	t.Helper()
	ri, err := c.resource(obj)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	force := true
	return ri.Patch(ctx(t), obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
		FieldManager: manager, Force: &force, FieldValidation: metav1.FieldValidationStrict,
	})
}

// applyAll applies objects in dependency order: namespaces first.
func (c *cluster) applyAll(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ordered := append([]*unstructured.Unstructured(nil), objs...)
	sort.SliceStable(ordered, func(i, j int) bool {
		return ordered[i].GetKind() == "Namespace" && ordered[j].GetKind() != "Namespace"
	})
	for _, o := range ordered {
		if _, err := c.apply(t, o, applyFieldManager); err != nil {
			t.Errorf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// warningLog keeps the apiserver's Warning headers (deprecated APIs, Pod
// Security "warn" violations, fields it dropped).
type warningLog struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningLog) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// waitFor retries check until it returns nil or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
