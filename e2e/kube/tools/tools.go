//go:build tools

// Package tools pins the two programs envtest needs, kube-apiserver and etcd,
// so that go.mod and go.sum fix their exact dependency graph. build-envtest.sh
// builds them; the tag keeps this file out of every ordinary build.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
