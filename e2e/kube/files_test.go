package kube

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestEveryUpdaterManifestIsApplied guards the claim that the e2e applies all
// of examples/kubernetes/updater and ../agent: each YAML file there must be
// a resource or patch of a kustomization that TestManifestsOnARealAPIServer
// renders, or it would never meet the apiserver.
func TestEveryUpdaterManifestIsApplied(t *testing.T) {
	used := map[string]bool{}
	for _, k := range kustomizations {
		dir := examplePath(k)
		data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var kz struct {
			Resources []string `json:"resources"`
			Patches   []struct {
				Path string `json:"path"`
			} `json:"patches"`
		}
		if err := yaml.Unmarshal(data, &kz); err != nil {
			t.Fatalf("%s/kustomization.yaml: %v", rel(dir), err)
		}
		used[filepath.Join(dir, "kustomization.yaml")] = true
		for _, r := range kz.Resources {
			used[filepath.Join(dir, r)] = true
		}
		for _, p := range kz.Patches {
			if p.Path != "" {
				used[filepath.Join(dir, p.Path)] = true
			}
		}
	}
	for _, root := range []string{examplePath("updater"), examplePath("agent")} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if ext := filepath.Ext(path); (ext == ".yaml" || ext == ".yml") && !used[path] {
				t.Errorf("%s is in no kustomization the e2e applies: add it to one (or to kustomizations in this package)", rel(path))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// And the list itself names every kustomization there is.
	var found []string
	_ = filepath.WalkDir(examplePath(), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "kustomization.yaml" {
			found = append(found, filepath.ToSlash(strings.TrimPrefix(filepath.Dir(path), examplePath()+string(filepath.Separator))))
		}
		return nil
	})
	for _, f := range found {
		if !slices.Contains(kustomizations, f) {
			t.Errorf("examples/kubernetes/%s/kustomization.yaml is never applied: add it to kustomizations", f)
		}
	}
}
