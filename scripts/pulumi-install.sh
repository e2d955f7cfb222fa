#!/usr/bin/env bash
# Builds the Pulumi toolchain from Go modules at pinned versions and links it into
# .cache/pulumi/bin/ of this clone (npm run pulumi:install; host-setup.sh runs it):
#   pulumi                   the CLI                                 tools/pulumi/cli
#   pulumi-language-nodejs   our small Node.js language host         tools/pulumi/language-nodejs
#   pulumi-language-python   our small Python language host          tools/pulumi/language-python
#   pulumi-language-yaml     the YAML language host (pulumi-yaml)    tools/pulumi/language-yaml
#   pulumi-resource-docker   the Docker provider, bridged            tools/pulumi/docker
#   pulumi-resource-random   the random provider, bridged            tools/pulumi/random
# (the two hosts of our own share tools/pulumi/langhost.)
# Each tools/pulumi/<name>/go.mod pins what is built. Go's module and build caches and the
# binaries live outside the clone (~/.cache/devmachines, or $DEVMACHINES_CACHE), keyed by a
# stamp of the wrapper's files, so a fresh clone on the same machine only links them.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${DEVMACHINES_CACHE:-$HOME/.cache/devmachines}"
STORE="$CACHE/pulumi/bin"          # built binaries, shared by every clone on this machine
LINKS="$ROOT/.cache/pulumi/bin"    # what PATH gets (scripts/pulumi-env.sh)

# The CLI's version and @pulumi/pulumi's must be the same release (package.json pins it).
PULUMI_VERSION=3.276.0
# The docker plugin reports the version @pulumi/docker asks for (sdk/package.json).
DOCKER_VERSION=5.2.0
# The random plugin reports the version @pulumi/random asks for (sdk/package.json): DevMachine
# generates console tokens with it.
RANDOM_VERSION=4.21.2

export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build"
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log() { printf '[pulumi-install] %s\n' "$*"; }

command -v go >/dev/null || { echo "pulumi-install: Go is needed (go 1.26 or newer on PATH)" >&2; exit 1; }
mkdir -p "$STORE" "$LINKS" "$GOMODCACHE" "$GOCACHE"

# One build at a time per machine: a second clone waits, then finds the binaries built.
exec 9>"$CACHE/pulumi/.lock"
flock 9

# stamp NAME: what the binary was built from (wrapper files, the shared langhost module when
# the wrapper uses it, Go version, flags).
stamp() {
  local dirs=("$ROOT/tools/pulumi/$1")
  grep -q 'tools/pulumi/langhost' "${dirs[0]}/go.mod" && dirs+=("$ROOT/tools/pulumi/langhost")
  { for dir in "${dirs[@]}"; do
      (cd "$dir" && find . -type f \( -name '*.go' -o -name '*.py' -o -name 'go.mod' -o -name 'go.sum' \) | sort | xargs sha256sum)
    done
    go version; echo "$GOFLAGS $CGO_ENABLED $2"; } | sha256sum | cut -d' ' -f1
}

# build NAME BINARY PACKAGE LDFLAGS [TAGS]
build() {
  local name=$1 binary=$2 package=$3 ldflags=$4 tags=${5:-}
  local want; want=$(stamp "$name" "$ldflags $tags")
  if [ -x "$STORE/$binary" ] && [ "$(cat "$STORE/$binary.stamp" 2>/dev/null)" = "$want" ]; then
    log "$binary: up to date"
  else
    log "$binary: building $package (log: $CACHE/pulumi/$binary.log)"
    local start=$SECONDS
    # A cold build takes many minutes on two cores: say that it is still going.
    ( while sleep 60 >/dev/null 2>&1; do log "$binary: still building, $((SECONDS - start))s"; done ) &
    local ticker=$!
    if (cd "$ROOT/tools/pulumi/$name" && nice go build -tags "$tags" -ldflags "$ldflags" \
          -o "$STORE/$binary.tmp" "$package") >"$CACHE/pulumi/$binary.log" 2>&1; then
      kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
      mv -f "$STORE/$binary.tmp" "$STORE/$binary"
      echo "$want" >"$STORE/$binary.stamp"
      log "$binary: built in $((SECONDS - start))s"
    else
      kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
      echo "pulumi-install: building $binary failed; the last lines of $CACHE/pulumi/$binary.log:" >&2
      tail -20 "$CACHE/pulumi/$binary.log" >&2
      exit 1
    fi
  fi
  ln -sfn "$STORE/$binary" "$LINKS/$binary"
}

total=$SECONDS
build cli pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
  "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" osusergo,grpcnotrace
build language-nodejs pulumi-language-nodejs . "-X main.version=$PULUMI_VERSION"
# Its exec.py (embedded) runs programs on the pulumi Python SDK from PyPI, in their virtualenv.
build language-python pulumi-language-python . "-X main.version=$PULUMI_VERSION"
build language-yaml pulumi-language-yaml github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml \
  "-X github.com/pulumi/pulumi-yaml/pkg/version.Version=v1.25.0"
build docker pulumi-resource-docker . "-X main.version=$DOCKER_VERSION"
build random pulumi-resource-random . "-X main.version=$RANDOM_VERSION"
log "toolchain ready in $LINKS ($((SECONDS - total))s): $("$LINKS/pulumi" version)"
