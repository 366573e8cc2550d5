#!/usr/bin/env bash
# Builds a real etcd and kube-apiserver from the Go module proxy for the cluster tests, once:
# binaries are cached outside the clone so a second run reuses them. Prints the cache directory.
# Usage: hack/kube-testenv/build.sh   (honours KUBE_VERSION, ETCD_VERSION, XDG_CACHE_HOME)
set -euo pipefail
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
staging=v0.${KUBE_VERSION#v1.}
cache=${IMAGEHOOK_KUBE_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/imagehook/kube/$KUBE_VERSION}
mkdir -p "$cache"
log() { echo "kube-testenv: $*" >&2; }

if [ ! -x "$cache/kube-apiserver" ]; then
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  log "building kube-apiserver $KUBE_VERSION (first run only, ~8 min)"
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  {
    echo "module imagehook.local/kubeapiserver"
    grep -E '^(go|godebug) ' "$gomod" || true
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo "replace ("
    # staging modules that kubernetes both replaces with ./staging and requires at v0.0.0
    for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod"); do
      case "$m" in k8s.io/sample-cli-plugin|k8s.io/sample-controller) continue;; esac
      if grep -qE "^[[:space:]]*$m v0\.0\.0" "$gomod"; then echo "  $m => $m $staging"; fi
    done
    echo ")"
  } > "$work/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > "$work/tools.go"
  (cd "$work" && go mod tidy >/dev/null 2>&1 && CGO_ENABLED=0 go build -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" -o "$cache/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$cache/kube-apiserver.tmp" "$cache/kube-apiserver"
  rm -rf "$work"; trap - EXIT
fi

if [ ! -x "$cache/etcd" ]; then
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  log "building etcd $ETCD_VERSION (first run only, ~1 min)"
  gomod=$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  {
    echo "module imagehook.local/etcd"
    grep -E '^go ' "$gomod" || true
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  } > "$work/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$work/tools.go"
  (cd "$work" && go mod tidy >/dev/null 2>&1 && CGO_ENABLED=0 go build -ldflags "-s -w" -o "$cache/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$cache/etcd.tmp" "$cache/etcd"
  rm -rf "$work"; trap - EXIT
fi
echo "$cache"
