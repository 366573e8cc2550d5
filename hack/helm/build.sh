#!/usr/bin/env bash
# Builds helm for the chart's tests, once: the binary is cached outside the clone so a second run
# reuses it. Prints its path.
# Usage: hack/helm/build.sh   (honours HELM_VERSION, XDG_CACHE_HOME)
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.22.0}
cache=${IMAGEHOOK_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagehook/helm/$HELM_VERSION}
if [ ! -x "$cache/helm" ]; then
  echo "helm: building helm $HELM_VERSION (first run only, ~2 min)" >&2
  mkdir -p "$cache"
  GOBIN="$cache" CGO_ENABLED=0 go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
fi
echo "$cache/helm"
