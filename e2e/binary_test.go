package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHostBinaryIsLean checks that the binary installed on hosts links neither
// Kubernetes' client nor cosign: they belong to the kube-updater build (tag
// kube) only, and would multiply the host binary's size and start-up cost.
func TestHostBinaryIsLean(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/upkeep")
	cmd.Dir = repoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/client-go", "sigs.k8s.io/controller-runtime", "github.com/sigstore/cosign", "github.com/google/go-containerregistry"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the host binary links %s", dep)
			}
		}
	}
	st, err := os.Stat(upkeepBin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("host binary: %.1f MB (unstripped test build)", float64(st.Size())/(1<<20))
}
