#!/usr/bin/env bash
# Builds the kube-apiserver and etcd that envtest runs, from the Go module proxy
# (setup-envtest downloads from outside and cannot work here; Debian has no
# kube-apiserver). The module in tools/ pins both; its go.sum names the exact
# sources, so the binaries are cached in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/upkeep/envtest/<sha256 of tools/go.sum>/
# and a cache hit builds nothing. The last line on stdout is that directory
# (use it as KUBEBUILDER_ASSETS); progress goes to stderr.
#
# Cold: about 5 minutes on 2 cores and 2.3 GB of RAM; warm: instant.
# Concurrent callers wait on a lock and share one build. The binaries are
# built and checked in a temporary directory beside the cache entry and renamed
# into place, so an interrupted build never leaves a half-filled entry.
#
# Usage: build-envtest.sh [--cached-only]
#   --cached-only  build nothing: print the directory if it is complete,
#                  otherwise exit 3 (for `go test -short`).
set -euo pipefail

cached_only=false
case "${1-}" in
  "") ;;
  --cached-only) cached_only=true ;;
  *) echo "usage: build-envtest.sh [--cached-only]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
tools=$here/tools
[ -f "$tools/go.sum" ] || { echo "build-envtest.sh: $tools/go.sum is missing; run tools/gen-gomod.sh and go mod tidy there" >&2; exit 1; }
command -v go >/dev/null || { echo "build-envtest.sh: go is not on PATH; install Go 1.26 or later" >&2; exit 1; }

hash=$(sha256sum "$tools/go.sum" | cut -d' ' -f1)
root=${XDG_CACHE_HOME:-$HOME/.cache}/upkeep/envtest
dir=$root/$hash

complete() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]; }

if complete "$dir"; then
  echo "$dir"
  exit 0
fi
if $cached_only; then
  echo "build-envtest.sh: $dir is not built yet; run $0 (about 5 minutes)" >&2
  exit 3
fi

mkdir -p "$root"
# One build at a time: test packages that start envtest run in parallel, and
# two cold builds at once would need twice the memory for the same result.
exec 9>"$root/.lock"
if ! flock -n 9; then
  echo "build-envtest.sh: another build holds $root/.lock; waiting for it" >&2
  flock 9
fi
if complete "$dir"; then
  echo "$dir"
  exit 0
fi

# Never trust the caller's module settings: go.sum is the cache key, so it
# must be read, not rewritten; a go.work above us must not leak in.
export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
cd "$tools"
kube=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
[[ $kube =~ ^v1\.([0-9]+)\. ]] || { echo "build-envtest.sh: unexpected k8s.io/kubernetes version $kube in $tools/go.mod" >&2; exit 1; }
minor=${BASH_REMATCH[1]}

# Under the lock, any .build-* directory is what a killed build left behind,
# and an incomplete entry was damaged after its build: both go.
rm -rf "$root"/.build-* "$dir"
tmp=$(mktemp -d "$root/.build-$hash.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
echo "build-envtest.sh: building kube-apiserver $kube and etcd $etcd into $dir (cold: about 5 minutes, 2.3 GB RAM)" >&2
# gitVersion and friends make /version report the release, as client-go and
# controller-runtime expect; without them the apiserver claims v0.0.0.
v=k8s.io/component-base/version
go build -trimpath -o "$tmp/kube-apiserver" \
  -ldflags "-s -w -X $v.gitVersion=$kube -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
  k8s.io/kubernetes/cmd/kube-apiserver
echo "build-envtest.sh: kube-apiserver built after $((SECONDS - start))s" >&2
go build -trimpath -o "$tmp/etcd" -ldflags "-s -w" go.etcd.io/etcd/server/v3
echo "build-envtest.sh: etcd built after $((SECONDS - start))s" >&2

# A build that exits 0 proves little: ask each binary for its version.
got=$("$tmp/kube-apiserver" --version)
[ "$got" = "Kubernetes $kube" ] || { echo "build-envtest.sh: kube-apiserver --version says \"$got\", want \"Kubernetes $kube\"" >&2; exit 1; }
got=$("$tmp/etcd" --version | head -n1)
[ "$got" = "etcd Version: ${etcd#v}" ] || { echo "build-envtest.sh: etcd --version says \"$got\", want \"etcd Version: ${etcd#v}\"" >&2; exit 1; }

# rename(2) of a directory is atomic: readers see no entry or a whole one.
chmod 755 "$tmp"
mv -T "$tmp" "$dir"
trap - EXIT
echo "build-envtest.sh: done in $((SECONDS - start))s" >&2
echo "$dir"
