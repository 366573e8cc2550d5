#!/usr/bin/env bash
# Builds the CNCF distribution registry for the registry tests, once: the binary is cached outside
# the clone so a second run reuses it. Prints its path.
# Usage: hack/registry/build.sh   (honours REGISTRY_VERSION, XDG_CACHE_HOME)
set -euo pipefail
REGISTRY_VERSION=${REGISTRY_VERSION:-v3.1.2}
cache=${IMAGEHOOK_REGISTRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagehook/registry/$REGISTRY_VERSION}
if [ ! -x "$cache/registry" ]; then
  echo "registry: building distribution $REGISTRY_VERSION (first run only, ~2 min)" >&2
  mkdir -p "$cache"
  GOBIN="$cache" CGO_ENABLED=0 go install "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" >&2
fi
echo "$cache/registry"
