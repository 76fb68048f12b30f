//go:build !kube

package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestKubeUpdaterMissingFromTheHostBuild: the default build answers
// kube-updater with how to get it, exit 2, whatever flags follow.
func TestKubeUpdaterMissingFromTheHostBuild(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runWith([]string{"kube-updater", "--namespace", "agents"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "lacks the Kubernetes updater") || !strings.Contains(stderr.String(), "make build-kube") {
		t.Errorf("exit %d, stderr %q; want 2 and how to build it", code, stderr.String())
	}
}
