#!/usr/bin/env bash
# Provide the base image `debian:trixie-slim` on a Docker host that cannot reach a registry.
#
# The Dockerfiles use a normal `FROM debian:trixie-slim`, which works on the internet.
# Here `docker pull` fails, so we build an equivalent image from Debian's packages
# (which are reachable): debootstrap --variant=minbase, then `docker import`.
# The rootfs tarball is cached under .cache/base/ so a second import takes seconds.
#
# Usage: images/base/bootstrap.sh [--force]
#   --force   rebuild the rootfs with debootstrap and re-import, even if the image exists
# Env: BASE_TAG (default debian:trixie-slim), DEBIAN_MIRROR (default http://deb.debian.org/debian)
# Host packages: debootstrap, docker.io (client + running engine). Must run as root.
set -euo pipefail

TAG="${BASE_TAG:-debian:trixie-slim}"
SUITE=trixie
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../debian-sources.sh
source "$ROOT/images/debian-sources.sh"
CACHE_DIR="$ROOT/.cache/base"
TARBALL="$CACHE_DIR/debian-$SUITE-minbase.tar.gz"
FORCE=0

for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bootstrap: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

START=$SECONDS
log() { printf '[base %3ds] %s\n' "$((SECONDS - START))" "$*"; }

if ! docker info >/dev/null 2>&1; then
  echo "bootstrap: Docker Engine is not reachable (is dockerd running? try: nohup dockerd > /var/log/dockerd.log 2>&1 &)" >&2
  exit 1
fi

if [[ $FORCE == 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG already present locally, nothing to do"
  exit 0
fi

if [[ $FORCE == 1 || ! -s "$TARBALL" ]]; then
  [[ $(id -u) == 0 ]] || { echo "bootstrap: debootstrap needs root" >&2; exit 1; }
  command -v debootstrap >/dev/null || { echo "bootstrap: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

  WORK="$(mktemp -d /tmp/devmachines-base.XXXXXX)"
  ROOTFS="$WORK/rootfs"
  cleanup() {
    # debootstrap mounts proc/sys while it runs; unmount before deleting if it died midway.
    for m in proc sys dev/pts; do mountpoint -q "$ROOTFS/$m" 2>/dev/null && umount -l "$ROOTFS/$m" || true; done
    rm -rf "$WORK"
  }
  trap cleanup EXIT

  log "debootstrap --variant=minbase $SUITE from $MIRROR (about a minute)"
  # debootstrap prints four lines per package; keep only its stage lines (and warnings/errors).
  if ! debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" 2>&1 \
      | { grep --line-buffered -E '^I: (Retrieving (InRelease|Packages)|Checking component|Installing core|Unpacking required|Configuring required|Unpacking the base|Base system)|^[WE]:' || true; }; then
    echo "bootstrap: debootstrap failed (see $ROOTFS/debootstrap/debootstrap.log if it exists)" >&2
    exit 1
  fi
  [[ -x "$ROOTFS/usr/bin/apt-get" ]] || { echo "bootstrap: debootstrap failed (no apt-get in rootfs)" >&2; exit 1; }

  log "configuring apt sources and slim-image defaults"
  write_debian_sources "$ROOTFS" "$MIRROR" "$SUITE"
  # Like the official slim image: no docs/man/locales from later installs, no package cache,
  # and no daemons started by maintainer scripts during `docker build`.
  cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
DPKG
  cat > "$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  printf 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n' > "$ROOTFS/etc/apt/apt.conf.d/docker-gzip-indexes"
  printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
  chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
  # Drop what debootstrap leaves behind and what the excludes above would not have installed.
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
         "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/* "$ROOTFS"/tmp/* \
         "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/*
  find "$ROOTFS/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
  : > "$ROOTFS/etc/machine-id"
  rm -f "$ROOTFS/etc/hostname" "$ROOTFS/etc/resolv.conf"

  mkdir -p "$CACHE_DIR"
  log "writing rootfs tarball $TARBALL"
  # /dev, /proc and /sys are provided by the container runtime; ship them empty.
  tar -C "$ROOTFS" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . \
    | gzip -1 > "$TARBALL.tmp"
  mv "$TARBALL.tmp" "$TARBALL"
  cleanup
  trap - EXIT
else
  log "using cached rootfs $TARBALL (pass --force to rebuild it)"
fi

log "docker import -> $TAG ($(du -h "$TARBALL" | cut -f1) compressed)"
docker import \
  --change 'CMD ["bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  --message "debootstrap --variant=minbase $SUITE (DevMachines images/base/bootstrap.sh)" \
  "$TARBALL" "$TAG" >/dev/null
log "done: $(docker image inspect -f '{{.Id}} {{.Size}}' "$TAG" | awk '{printf "%s, %.0f MB", substr($1,1,19), $2/1e6}')"
