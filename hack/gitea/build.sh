#!/usr/bin/env bash
# Builds Gitea for the pull-request tests, once: the binary is cached outside the clone so a second
# run reuses it. Prints its path. Gitea's go.mod has replace directives, which `go install` refuses,
# so it is built through a wrapper module that requires Gitea and repeats them. SQLite needs cgo (gcc).
# Usage: hack/gitea/build.sh   (honours GITEA_VERSION, XDG_CACHE_HOME)
set -euo pipefail
GITEA_VERSION=${GITEA_VERSION:-v1.26.0}
cache=${IMAGEHOOK_GITEA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagehook/gitea/$GITEA_VERSION}
if [ ! -x "$cache/gitea" ]; then
  echo "gitea: building Gitea $GITEA_VERSION with SQLite (first run only, ~5 min)" >&2
  mkdir -p "$cache"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  cat >go.mod <<MOD
module imagehook.test/gitea-build

go 1.26.0

require code.gitea.io/gitea $GITEA_VERSION
MOD
  src=$(go mod download -json "code.gitea.io/gitea@$GITEA_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  [ -d "$src" ] || { echo "gitea: could not download code.gitea.io/gitea@$GITEA_VERSION" >&2; exit 1; }
  # The replace lines, single or in a block, copied as they are.
  awk '/^replace \(/{b=1; print; next} b&&/^\)/{b=0; print; next} b||/^replace /{print}' "$src/go.mod" >>go.mod
  echo 'package main' >tools.go
  echo 'import _ "code.gitea.io/gitea"' >>tools.go
  GOFLAGS=-mod=mod CGO_ENABLED=1 go build -trimpath -tags "sqlite sqlite_unlock_notify" -ldflags "-s -w" \
    -o "$cache/gitea.tmp" code.gitea.io/gitea >&2
  mv "$cache/gitea.tmp" "$cache/gitea"
  # Templates and options are read from the module (no bindata): remember where it is.
  echo "$src" >"$cache/static-root"
fi
echo "$cache/gitea"
