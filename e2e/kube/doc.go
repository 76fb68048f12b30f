// Package kube tests upkeep's Kubernetes manifests (examples/kubernetes)
// against a real kube-apiserver and etcd: they are rendered with kustomize,
// applied with server-side apply and strict field validation, checked against
// the "restricted" Pod Security Standard, and the updater's Role is shown to
// grant exactly what the updater needs. The GitOps examples are checked too.
//
// build-envtest.sh builds the apiserver and etcd (module tools/); package
// envtest starts them for a test.
package kube
