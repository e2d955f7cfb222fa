#!/usr/bin/env bash
# Prepares a Debian host (as root) for building and testing DevMachines:
# installs the Debian packages the images and tests need, and starts dockerd
# when no Docker Engine answers. Safe to run again: it skips what is done.
set -euo pipefail

PACKAGES=(
  docker.io docker-compose          # the engine, and compose v1 for the compose example
  qemu-system-x86 qemu-utils        # QEMU for the supervisor tests; qemu-img for disk tests
  genisoimage                       # cloud-init seed ISOs in tests
  iproute2 socat openssh-client     # network namespaces, sockets, SSH into guests
  debootstrap                       # building the base image and the guest offline
  chromium                          # the consoles' browser tests (driven by playwright-core)
  fdisk grub-pc-bin grub2-common e2fsprogs dosfstools  # partitioning and booting the guest disk
  qemu-user-static binfmt-support mtools  # the arm64 guest: foreign debootstrap, its EFI partition
  python3 python3-venv python3-pip  # Pulumi Python programs: a virtualenv per project, pip from PyPI (cache in ~/.cache/pip)
  ca-certificates
)

log() { printf '[host-setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "host-setup: run as root (sudo $0): it installs Debian packages and starts dockerd" >&2
  exit 1
fi

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
else
  log "Debian packages already installed"
fi

# The arm64 guest's build runs arm64 programs through binfmt_misc and qemu-user-static. The
# package registers them, but only where binfmt_misc is mounted (a container or a minimal VM
# may not have it mounted at install time): mount it and enable the registration.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || log "warning: cannot mount binfmt_misc: the arm64 guest cannot be built here"
fi
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 || log "warning: could not register qemu-aarch64 with binfmt_misc"
fi
if grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
  log "binfmt_misc runs arm64 programs (qemu-aarch64)"
fi

# Node.js 20 or newer runs the launcher, the tests and the Pulumi components. Debian 13 ships 20;
# older releases ship older ones, so a missing or old Node.js is a clear stop, not a guess.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  candidate=$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}' | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/')
  if [ -n "$candidate" ] && [ "$candidate" -ge 20 ] 2>/dev/null; then
    log "installing Debian's nodejs $candidate and npm"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
  else
    echo "host-setup: Node.js 20 or newer is needed (found: ${node_major/#0/none}); install it from your distribution or nodejs.org" >&2
    exit 1
  fi
fi
command -v npm >/dev/null || { echo "host-setup: npm is missing (it comes with Node.js)" >&2; exit 1; }
log "Node.js $(node --version), npm $(npm --version)"

if docker info >/dev/null 2>&1; then
  log "Docker Engine is running"
else
  log "starting dockerd (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for second in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      log "Docker Engine answered after ${second}s"
      break
    fi
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "host-setup: dockerd did not start; see /var/log/dockerd.log" >&2; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi

# The Pulumi toolchain (CLI, language hosts, docker provider), built from Go modules once per
# machine into ~/.cache/devmachines and linked into this clone's .cache/pulumi/bin.
bash "$(dirname "$0")/pulumi-install.sh"
