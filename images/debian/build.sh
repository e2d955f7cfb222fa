#!/usr/bin/env bash
# Build a DevMachines guest disk: Debian 13 "trixie", cloud-init (NoCloud),
# systemd-networkd, root ext4 on the last partition (growpart-friendly). One script for
# every architecture; what differs (kernel flavour, serial port, boot loader) is chosen below.
#   amd64: GRUB for BIOS (i386-pc), the default image.
#   arm64: GRUB for UEFI (arm64-efi, removable path EFI/BOOT/BOOTAA64.EFI) for QEMU's `virt`
#          machine; built on any host by a foreign debootstrap (qemu-user-static + binfmt_misc).
#
# Usage: sudo images/debian/build.sh [--force] [--arch amd64|arm64]
#   Output: .cache/images/debian-13.qcow2 (amd64) or .cache/images/debian-arm64-13.qcow2
#           (repo-root relative), plus a .stamp beside it.
#   --force           rebuild even when the stamp says the output is current
#   --arch ARCH       Debian architecture of the guest (default amd64)
#   DEBIAN_MIRROR=URL Debian mirror (default http://deb.debian.org/debian)
#   DISK_SIZE=SIZE    virtual disk size (default 2G; the launcher's overlay grows it)
#   CACHE_DIR=DIR     cache folder (default <repo>/.cache)
#   STAGE_CACHE_DIR=DIR  stage tarballs and the finished disk (default
#                     ~/.cache/devmachines/debian for amd64, ~/.cache/devmachines/debian-arm64
#                     for arm64: outside the clone, so a fresh CI clone on the same host copies
#                     the disk, mtime kept, and finds its machine image and capture current)
#
# Host needs (Debian packages): debootstrap qemu-utils fdisk grub-pc-bin grub2-common
# e2fsprogs util-linux; for arm64 also qemu-user-static binfmt-support dosfstools mtools.
# Runs as root (debootstrap, chroot, loop devices).
#
# Stages, each cached so that a script change only redoes what it must:
#   1. debootstrap --variant=minbase       -> <stages>/base-<key>.tar
#   2. kernel, cloud-init, ssh, ... (apt)  -> <stages>/pkgs-<key>.tar
#   3. configuration (always, cheap)
#   4. disk: GPT, mkfs.ext4 -d, boot loader, qemu-img convert -c -> output
set -Eeuo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO_ROOT=$(cd "$(dirname "$SCRIPT")/../.." && pwd)
# shellcheck source=../debian-sources.sh
source "$REPO_ROOT/images/debian-sources.sh"
CACHE=${CACHE_DIR:-$REPO_ROOT/.cache}
SUITE=trixie
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DISK_SIZE=${DISK_SIZE:-2G}
FORCE=0
ARCH=amd64

while [[ $# -gt 0 ]]; do
  case $1 in
    --force) FORCE=1 ;;
    --arch) [[ $# -ge 2 ]] || { echo "build.sh: --arch needs a value (amd64 or arm64)" >&2; exit 2; }
            ARCH=$2; shift ;;
    --arch=*) ARCH=${1#--arch=} ;;
    -h|--help) sed -n '2,31p' "$SCRIPT" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

# What differs between architectures. SERIAL_TTY is the first serial port of the machine the
# launcher plans (q35: 16550 ttyS0; virt: PL011 ttyAMA0). KERNEL_ARGS go on the kernel line.
case $ARCH in
  amd64)
    NAME=debian-13
    STAGES=${STAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/devmachines/debian}
    SERIAL_TTY=ttyS0
    # no_timer_check: on a loaded host a TCG guest's early check of the IO-APIC timer can
    # miss its ticks and panic ("IO-APIC + timer doesn't work", seen with load 24 on 2 cores);
    # the timer is QEMU's and works, so skip the check (cloud images do the same).
    KERNEL_ARGS="console=tty0 console=ttyS0,115200 quiet no_timer_check"
    # Boot loader files the build needs from the guest: none (the host's grub-pc-bin).
    ARCH_PACKAGES=()
    ;;
  arm64)
    NAME=debian-arm64-13
    STAGES=${STAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/devmachines/debian-arm64}
    SERIAL_TTY=ttyAMA0
    KERNEL_ARGS="console=ttyAMA0,115200 quiet"
    # GRUB's arm64-efi modules and grub-mkimage, run in the chroot (Debian ships the
    # arm64-efi modules only for arm64; the guest's own GRUB also matches its version).
    ARCH_PACKAGES=(grub-efi-arm64-bin)
    ;;
  *) echo "build.sh: --arch must be amd64 or arm64 (Debian names), got: $ARCH" >&2; exit 2 ;;
esac
OUT=$CACHE/images/$NAME.qcow2

# Packages on top of minbase. Exactly one network stack: systemd-networkd (with
# systemd-resolved for DNS); no ifupdown, no netplan, no NetworkManager.
PACKAGES=(
  "linux-image-cloud-$ARCH" initramfs-tools zstd
  systemd systemd-sysv systemd-resolved systemd-timesyncd udev dbus libpam-systemd
  linux-sysctl-defaults
  cloud-init cloud-guest-utils fdisk e2fsprogs
  openssh-server sudo qemu-guest-agent ca-certificates
  iproute2 iputils-ping netbase procps less curl
  "${ARCH_PACKAGES[@]}"
)

START=$SECONDS
step() { printf '[%s %4ds] %s\n' "$NAME" "$((SECONDS - START))" "$*"; }
die() { step "ERROR: $*" >&2; exit 1; }

# A heartbeat for steps that print nothing for a long time (mkfs, compression).
HEARTBEAT_PID=
heartbeat_start() {
  # The subshell must not inherit the cleanup traps (it would clean up on its kill).
  ( trap - EXIT INT TERM ERR; while sleep 15; do step "... still $1"; done ) &
  HEARTBEAT_PID=$!
}
heartbeat_stop() {
  if [[ -n $HEARTBEAT_PID ]]; then
    kill "$HEARTBEAT_PID" 2>/dev/null || true
    wait "$HEARTBEAT_PID" 2>/dev/null || true   # 143: killed, as intended
  fi
  HEARTBEAT_PID=
  return 0
}

[[ $EUID -eq 0 ]] || die "run as root (debootstrap, chroot and loop devices need it)"
for tool in debootstrap qemu-img sfdisk mkfs.ext4 losetup sha256sum; do
  command -v "$tool" >/dev/null || die "missing host tool: $tool"
done
if [[ $ARCH == amd64 ]]; then
  command -v grub-install >/dev/null || die "missing host tool: grub-install (install grub2-common)"
  [[ -d /usr/lib/grub/i386-pc ]] || die "missing /usr/lib/grub/i386-pc (install grub-pc-bin)"
else
  for tool in mkfs.fat mmd mcopy; do
    command -v "$tool" >/dev/null || die "missing host tool: $tool (install dosfstools mtools)"
  done
fi

# A guest of another architecture is built by running its programs under qemu-user through
# binfmt_misc. Debian 12 registers the interpreter without the F (fix binary) flag, so the
# kernel looks the interpreter up inside the chroot: binfmt_interp copies it there.
HOST_ARCH=$(dpkg --print-architecture)
BINFMT_INTERP=
if [[ $ARCH != "$HOST_ARCH" ]]; then
  case $ARCH in arm64) qemu_name=aarch64 ;; *) qemu_name=$ARCH ;; esac
  binfmt=/proc/sys/fs/binfmt_misc/qemu-$qemu_name
  [[ -f $binfmt ]] && grep -qx enabled "$binfmt" ||
    die "building $ARCH on $HOST_ARCH needs binfmt_misc for qemu-$qemu_name (install qemu-user-static binfmt-support: scripts/host-setup.sh)"
  BINFMT_INTERP=$(sed -n 's/^interpreter //p' "$binfmt")
  [[ -x $BINFMT_INTERP ]] || die "binfmt interpreter $BINFMT_INTERP is missing (reinstall qemu-user-static)"
fi
binfmt_interp() {
  [[ -n $BINFMT_INTERP ]] || return 0
  mkdir -p "$ROOTFS$(dirname "$BINFMT_INTERP")"
  cp -L "$BINFMT_INTERP" "$ROOTFS$BINFMT_INTERP"
}

# The stamp covers the script and every input that changes the result.
STAMP_VALUE=$( { cat "$SCRIPT" "$REPO_ROOT/images/debian-sources.sh"; echo "$SUITE $MIRROR $DISK_SIZE $ARCH"; } | sha256sum | cut -d' ' -f1)
if [[ $FORCE -eq 0 && -f $OUT && -f $OUT.stamp && $(cat "$OUT.stamp") == "$STAMP_VALUE" ]]; then
  step "up to date: $OUT (stamp $STAMP_VALUE; --force rebuilds)"
  exit 0
fi
# With the stages outside the clone (arm64's default), the finished disk is kept there too: a
# fresh clone then copies it (mtime kept, so `npm run images` also finds its machine image
# current) instead of building it again.
KEPT=
[[ $STAGES == "$CACHE"/* ]] || KEPT=$STAGES/$NAME.qcow2
if [[ $FORCE -eq 0 && -n $KEPT && -f $KEPT && -f $KEPT.stamp && $(cat "$KEPT.stamp") == "$STAMP_VALUE" ]]; then
  mkdir -p "$(dirname "$OUT")"
  cp -p --reflink=auto "$KEPT" "$OUT.tmp" && mv "$OUT.tmp" "$OUT" && cp -p "$KEPT.stamp" "$OUT.stamp"
  step "up to date: copied $KEPT (stamp $STAMP_VALUE; --force rebuilds)"
  exit 0
fi

mkdir -p "$STAGES" "$(dirname "$OUT")"
WORK=$(mktemp -d "$STAGES/work.XXXXXX")
ROOTFS=$WORK/rootfs
MOUNTS=()   # mount points to undo, newest last
LOOPS=()    # loop devices to detach

cleanup() {
  local rc=$?
  heartbeat_stop
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -l "${MOUNTS[i]}" 2>/dev/null || true
  done
  for ((i = ${#LOOPS[@]} - 1; i >= 0; i--)); do
    losetup -d "${LOOPS[i]}" 2>/dev/null || true
  done
  rm -rf --one-file-system "$WORK"
  rm -f "$OUT.tmp"
  [[ $rc -eq 0 ]] || step "FAILED (exit $rc); mounts, loop devices and temp files cleaned up" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# chroot with the pseudo filesystems apt and maintainer scripts expect.
chroot_mount() {
  local d
  for d in proc sys dev dev/pts; do
    case $d in
      proc) mount -t proc proc "$ROOTFS/proc" ;;
      sys) mount -t sysfs sys "$ROOTFS/sys" ;;
      dev) mount --bind /dev "$ROOTFS/dev" ;;
      dev/pts) mount -t devpts devpts "$ROOTFS/dev/pts" -o newinstance,ptmxmode=0666 ;;
    esac
    MOUNTS+=("$ROOTFS/$d")
  done
}
chroot_umount() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}"
  done
  MOUNTS=()
}
in_root() {
  chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"
}

# Stage caches are plain tarballs of the root tree. A stage's key hashes its parent's key
# and the stage function's own source, so editing a stage invalidates it and what follows.
stage_key() { { echo "$2 $SUITE $MIRROR $ARCH"; declare -f "$1"; } | sha256sum | cut -c1-16; }
restore_stage() {
  step "$(basename "$1"): cached, extracting"
  rm -rf "$ROOTFS"; mkdir -p "$ROOTFS"
  tar -C "$ROOTFS" --numeric-owner --xattrs --xattrs-include='*' -xpf "$1"
  binfmt_interp
}
save_stage() {
  step "$(basename "$1"): saving"
  tar -C "$ROOTFS" --numeric-owner --xattrs --xattrs-include='*' -cf "$1.tmp" .
  mv "$1.tmp" "$1"
  # Keep one version of each stage: older ones only fill the disk.
  local prefix; prefix=$(basename "$1" | cut -d- -f1)
  find "$STAGES" -maxdepth 1 -name "$prefix-*.tar" ! -name "$(basename "$1")" -delete
}

# ---- stage 1: debootstrap ----------------------------------------------------------
stage_base() {
  rm -rf "$ROOTFS"; mkdir -p "$ROOTFS"
  if [[ -z $BINFMT_INTERP ]]; then
    debootstrap --variant=minbase --arch="$ARCH" \
      --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
      "$SUITE" "$ROOTFS" "$MIRROR"
  else
    # Foreign: unpack on the host, then configure inside the chroot under qemu-user.
    debootstrap --foreign --variant=minbase --arch="$ARCH" \
      --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
      "$SUITE" "$ROOTFS" "$MIRROR"
    binfmt_interp
    chroot "$ROOTFS" /debootstrap/debootstrap --second-stage
  fi
}

# ---- stage 2: packages --------------------------------------------------------------
stage_packages() {
  # deb822 sources with updates and security, so the image starts patched.
  write_debian_sources "$ROOTFS" "$MIRROR" "$SUITE"
  # No recommends: keeps out ifupdown/netplan/NetworkManager and friends.
  cat >"$ROOTFS/etc/apt/apt.conf.d/90devmachines" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
  # Services must not start inside the build chroot.
  printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
  chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
  # Kernel symlinks in /boot (/boot/vmlinuz, /boot/initrd.img): grub.cfg points there,
  # so a kernel upgrade inside the guest keeps booting without grub in the guest.
  printf 'do_symlinks = yes\nlink_in_boot = yes\n' >"$ROOTFS/etc/kernel-img.conf"
  # Small initramfs, quick to unpack under TCG: only the disk drivers a QEMU guest
  # uses (virtio-blk, virtio-scsi, NVMe, AHCI); ext4 and virtio-pci are built in.
  mkdir -p "$ROOTFS/etc/initramfs-tools/conf.d"
  printf 'MODULES=list\nCOMPRESS=zstd\n' >"$ROOTFS/etc/initramfs-tools/conf.d/devmachines"
  printf '%s\n' virtio_blk virtio_scsi sd_mod sr_mod nvme ahci >>"$ROOTFS/etc/initramfs-tools/modules"
  # arm64's cloud kernel builds virtio-pci and ext4 as modules (amd64's has them built in).
  [[ $ARCH == amd64 ]] || printf '%s\n' virtio_pci virtio_mmio ext4 crc32c >>"$ROOTFS/etc/initramfs-tools/modules"

  chroot_mount
  # unsafe-io: no fsync per file; the tree is tarred afterwards, and every fsync is a slow
  # emulated system call in a foreign build.
  in_root apt-get update
  in_root apt-get -y -o DPkg::Options::=--force-unsafe-io dist-upgrade
  in_root apt-get -y -o DPkg::Options::=--force-unsafe-io install "${PACKAGES[@]}"
  in_root apt-get -y --purge autoremove
  in_root apt-get clean
  chroot_umount
  rm -f "$ROOTFS/usr/sbin/policy-rc.d"
  rm -rf "$ROOTFS"/var/lib/apt/lists/*
}

# ---- stage 3: configuration (always runs; cheap) -------------------------------------
configure() {
  local uuid=$1 r=$ROOTFS

  echo debian >"$r/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
  # fsck pass 0: a journaled ext4 needs no boot-time fsck, and it costs seconds under TCG.
  printf 'UUID=%s\t/\text4\tdefaults,discard,errors=remount-ro\t0\t0\n' "$uuid" >"$r/etc/fstab"
  # Already C.UTF-8, so cloud-init's locale module has nothing to regenerate.
  echo 'LANG=C.UTF-8' >"$r/etc/default/locale"

  # cloud-init: only the NoCloud seed (then None), never probe metadata services.
  # networkd is the only renderer and activator, so v2 configs (DHCP or static,
  # matched by MAC) become /etc/systemd/network/10-cloud-init-*.network files.
  cat >"$r/etc/cloud/cloud.cfg.d/90_devmachines.cfg" <<'EOF'
# DevMachines: the launcher always provides a NoCloud seed (cidata).
datasource_list: [ NoCloud, None ]
datasource:
  NoCloud:
    fs_label: cidata
# Keep /etc/hosts in step with the hostname from meta-data.
manage_etc_hosts: true
preserve_hostname: false
# RSA host keys take seconds to generate under TCG and no current client needs them;
# user-data may set ssh_genkeytypes to get them back.
ssh_genkeytypes: [ ed25519, ecdsa ]
system_info:
  network:
    renderers: [ networkd ]
    activators: [ networkd ]
EOF

  # GRUB: no menu, serial + screen, boot at once. The kernel symlinks in /boot are
  # maintained by the guest's kernel packages. Root is mounted rw at once (no fsck to
  # run first), which spares a slow remount under TCG. quiet: serial output is slow.
  # Under UEFI GRUB's own console is the firmware's, which QEMU's virt firmware sends to
  # the serial port: no serial commands there.
  local terminal=""
  [[ $ARCH != amd64 ]] || terminal=$'serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n'
  mkdir -p "$r/boot/grub"
  cat >"$r/boot/grub/grub.cfg" <<EOF
set default=0
set timeout=0
set timeout_style=hidden
${terminal}search --no-floppy --fs-uuid --set=root $uuid
menuentry 'Debian GNU/Linux 13 (trixie)' {
  linux /boot/vmlinuz root=UUID=$uuid rw $KERNEL_ARGS systemd.ssh_auto=no
  initrd /boot/initrd.img
}
EOF

  # networkd + resolved are the network stack; a serial getty makes the console usable.
  # qemu-guest-agent needs no enabling: its udev rule starts it as soon as the
  # org.qemu.guest_agent.0 virtio port appears (the check below keeps that true).
  systemctl --root="$r" --quiet enable "serial-getty@$SERIAL_TTY.service" \
    systemd-networkd.service systemd-resolved.service
  grep -q org.qemu.guest_agent.0 "$r/usr/lib/udev/rules.d/60-qemu-guest-agent.rules" ||
    die "qemu-guest-agent udev rule not found: enable the service another way"
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$r/etc/resolv.conf"
  # Lab machines find each other by single-label name (`ssh db`): Docker's embedded DNS
  # answers container names and network aliases without a domain. By default resolved
  # sends single-label names to LLMNR only, never to unicast DNS. /etc/hosts entries
  # resolve either way (nss files, and resolved reads the file too).
  mkdir -p "$r/etc/systemd/resolved.conf.d"
  cat >"$r/etc/systemd/resolved.conf.d/10-devmachines-single-label.conf" <<'EOF'
[Resolve]
ResolveUnicastSingleLabel=yes
EOF

  # cloud-init's local stage names each NIC in the networkd file by the name the device
  # has at that moment. Started before udev had probed and renamed the NIC, it wrote the
  # config key ("primary") instead of enp0s3, networkd left the NIC unmanaged, and the
  # guest booted without network (seen about once in ten boots). Waiting for udev to
  # settle first costs a second or two.
  mkdir -p "$r/etc/systemd/system/cloud-init-local.service.d"
  cat >"$r/etc/systemd/system/cloud-init-local.service.d/10-devmachines-udev-settle.conf" <<'EOF'
[Unit]
Wants=systemd-udev-settle.service
After=systemd-udev-settle.service
EOF

  # "Ready" must mean durable: host keys, users and seed files written by the earlier
  # cloud-init stages sat in the guest's page cache for up to 30 s, and a machine killed
  # (docker kill, docker rm -f) just after it was ready came back with zero-length host keys
  # and no sshd. Syncing before the final stage, which prints the ready marker, closes that.
  mkdir -p "$r/etc/systemd/system/cloud-final.service.d"
  cat >"$r/etc/systemd/system/cloud-final.service.d/10-devmachines-sync.conf" <<'EOF'
[Service]
ExecStartPre=/bin/sync
EOF

  # First-boot identity: cloud-init makes host keys, systemd makes the machine-id.
  rm -f "$r"/etc/ssh/ssh_host_*
  : >"$r/etc/machine-id"
  rm -f "$r/var/lib/dbus/machine-id"
  passwd -R "$r" -l root >/dev/null
  # The build's qemu-user interpreter (foreign builds) is no part of the guest.
  [[ -z $BINFMT_INTERP ]] || rm -f "$r$BINFMT_INTERP"
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb
  rm -rf "$r"/var/lib/cloud/* "$r"/var/log/*.log "$r"/tmp/* "$r"/var/tmp/*
}

# ---- main ---------------------------------------------------------------------------
step "building $OUT (suite $SUITE, mirror $MIRROR, disk $DISK_SIZE)"
BASE_TAR=$STAGES/base-$(stage_key stage_base none).tar
PKGS_TAR=$STAGES/pkgs-$(stage_key stage_packages "$BASE_TAR ${PACKAGES[*]}").tar
if [[ -f $PKGS_TAR ]]; then
  restore_stage "$PKGS_TAR"
else
  if [[ -f $BASE_TAR ]]; then
    restore_stage "$BASE_TAR"
  else
    step "debootstrap: $SUITE minbase from $MIRROR"
    stage_base
    save_stage "$BASE_TAR"
  fi
  step "packages: ${PACKAGES[*]}"
  stage_packages
  save_stage "$PKGS_TAR"
fi

UUID=$(cat /proc/sys/kernel/random/uuid)
step "configure: root fs UUID $UUID"
configure "$UUID"

# ---- stage 4: disk -------------------------------------------------------------------
# GPT, root last so growpart can extend it to the end of a bigger overlay. Partition 1 holds
# the boot loader: amd64: BIOS boot (GRUB core.img); arm64: the EFI system partition.
RAW=$WORK/disk.raw
truncate -s "$DISK_SIZE" "$RAW"
if [[ $ARCH == amd64 ]]; then
  step "partition: GPT, bios_grub + root on $DISK_SIZE"
  sfdisk --quiet --label gpt "$RAW" <<'EOF'
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name=bios
start=4096, type=0FC63DAF-8483-4772-8E3D-0DA4EC7FDE3B, name=root
EOF
else
  # 32 MiB ESP: it holds only GRUB's EFI image (the kernel stays on the root file system).
  step "partition: GPT, EFI system + root on $DISK_SIZE"
  sfdisk --quiet --label gpt "$RAW" <<'EOF'
start=2048, size=65536, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
start=67584, type=0FC63DAF-8483-4772-8E3D-0DA4EC7FDE3B, name=root
EOF
fi
read -r PART_START PART_SECTORS < <(sfdisk --dump "$RAW" |
  sed -n 's/.*start= *\([0-9]*\), *size= *\([0-9]*\), *type=0FC63DAF.*/\1 \2/p')
[[ -n ${PART_SECTORS:-} ]] || die "could not read the root partition from the partition table"

if [[ $ARCH == arm64 ]]; then
  # GRUB as one EFI binary on the removable-media path, which UEFI boots without NVRAM
  # entries (a fresh vars file has none). Its built-in config finds the root file system by
  # UUID and reads /boot/grub/grub.cfg there. Made by the guest's own grub-mkimage (under
  # qemu-user) so image and modules are one GRUB version.
  step "grub-mkimage: arm64-efi -> EFI/BOOT/BOOTAA64.EFI"
  printf 'search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n' "$UUID" >"$ROOTFS/tmp/early.cfg"
  binfmt_interp
  in_root grub-mkimage -O arm64-efi -o /tmp/BOOTAA64.EFI -p /boot/grub -c /tmp/early.cfg \
    part_gpt ext2 fat search search_fs_uuid normal linux configfile echo test gzio
  [[ -z $BINFMT_INTERP ]] || rm -f "$ROOTFS$BINFMT_INTERP"
  mv "$ROOTFS/tmp/BOOTAA64.EFI" "$WORK/BOOTAA64.EFI"; rm -f "$ROOTFS/tmp/early.cfg"
  ESP=$WORK/esp.img
  mkfs.fat -C -F 16 -n ESP "$ESP" $((65536 / 2)) >/dev/null
  # mtools writes into the FAT image without mounting it; it need not check the geometry.
  MTOOLS_SKIP_CHECK=1 mmd -i "$ESP" ::/EFI ::/EFI/BOOT
  MTOOLS_SKIP_CHECK=1 mcopy -i "$ESP" "$WORK/BOOTAA64.EFI" ::/EFI/BOOT/BOOTAA64.EFI
  dd if="$ESP" of="$RAW" bs=512 seek=2048 conv=notrunc status=none
fi

# mkfs.ext4 -d fills the filesystem from the directory straight into the image at the
# partition offset: no mount needed. metadata_csum_seed and orphan_file are switched off
# explicitly (newer mke2fs defaults) because older GRUB cannot read metadata_csum_seed.
step "mkfs.ext4: root filesystem from rootfs ($(du -sh "$ROOTFS" | cut -f1))"
heartbeat_start "writing the root filesystem"
mkfs.ext4 -q -F -L root -U "$UUID" -O ^orphan_file,^metadata_csum_seed \
  -E offset=$((PART_START * 512)),root_owner=0:0 -d "$ROOTFS" \
  "$RAW" "$((PART_SECTORS / 2))k"
heartbeat_stop

if [[ $ARCH == amd64 ]]; then
  # grub-install needs the whole disk as a block device and the filesystem mounted.
  # losetup -P makes no partition nodes here, so the partition gets its own loop device.
  step "grub-install: i386-pc into the bios_grub partition"
  DISK_LOOP=$(losetup --find --show "$RAW"); LOOPS+=("$DISK_LOOP")
  PART_LOOP=$(losetup --find --show --offset $((PART_START * 512)) \
    --sizelimit $((PART_SECTORS * 512)) "$RAW"); LOOPS+=("$PART_LOOP")
  MNT=$WORK/mnt; mkdir -p "$MNT"
  mount "$PART_LOOP" "$MNT"; MOUNTS+=("$MNT")
  grub-install --target=i386-pc --boot-directory="$MNT/boot" \
    --modules="part_gpt ext2 search_fs_uuid serial" --no-floppy "$DISK_LOOP"
  grep -q "$UUID" "$MNT/boot/grub/grub.cfg" || die "grub.cfg missing in the image"
  umount "$MNT"; MOUNTS=()
  losetup -d "$PART_LOOP"; losetup -d "$DISK_LOOP"; LOOPS=()
fi

step "qemu-img convert -c (zstd) -> $OUT"
heartbeat_start "compressing"
qemu-img convert -c -O qcow2 -o compression_type=zstd "$RAW" "$OUT.tmp"
heartbeat_stop
mv "$OUT.tmp" "$OUT"
echo "$STAMP_VALUE" >"$OUT.stamp"
if [[ -n $KEPT ]]; then
  cp -p --reflink=auto "$OUT" "$KEPT.tmp" && mv "$KEPT.tmp" "$KEPT" && cp -p "$OUT.stamp" "$KEPT.stamp"
fi
step "done: $OUT ($(du -h "$OUT" | cut -f1) on disk, virtual $DISK_SIZE)"
