#!/usr/bin/env bash
# Boot the built guest image under TCG and check it the way the launcher will use it:
# qcow2 overlay (8G), NoCloud seed ISO, virtio disk/net, guest agent port.
#
# Usage: images/debian/boot-test.sh [dhcp|static] [IMAGE]
#   dhcp   (default) network-config v2: DHCP on the NIC matched by MAC
#   static network-config v2: 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3, MTU 1500,
#          matched by MAC (QEMU user networking's own addresses)
#   SSH_PORT=2222  host port forwarded (127.0.0.1 only) to the guest's port 22
#   BOOT_TIMEOUT=240  seconds to wait for SSH and the final_message
# Needs: qemu-system-x86 qemu-utils genisoimage openssh-client openssl socat.
# Prints seconds from QEMU start to SSH answering and to the final_message.
# The guest network uses restrict=on: it reaches nothing but the host forwards.
set -Eeuo pipefail

MODE=${1:-dhcp}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGE=$(readlink -f "${2:-$SCRIPT_DIR/../../.cache/images/debian-13.qcow2}")
SSH_PORT=${SSH_PORT:-2222}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-240}
MAC=52:54:00:de:4d:01
USER_NAME=dev
PASSWORD='s3cret pass'
READY=DEVMACHINES_READY

[[ -f $IMAGE ]] || { echo "no image at $IMAGE (run images/debian/build.sh)" >&2; exit 1; }
case $MODE in dhcp|static) ;; *) echo "mode must be dhcp or static" >&2; exit 2 ;; esac

T=$(mktemp -d /tmp/dm-boot-test.XXXXXX)
QEMU_PID=
cleanup() {
  if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  rm -rf "$T"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -f "$T/id" -C boot-test
HASH=$(openssl passwd -6 "$PASSWORD")

cat >"$T/meta-data" <<EOF
instance-id: iid-boot-test-$MODE-$$
local-hostname: dm-test
EOF
cat >"$T/user-data" <<EOF
#cloud-config
users:
  - name: $USER_NAME
    groups: [sudo]
    shell: /bin/bash
    sudo: "ALL=(ALL) ALL"
    lock_passwd: false
    hashed_passwd: "$HASH"
    ssh_authorized_keys:
      - "$(cat "$T/id.pub")"
ssh_pwauth: true
final_message: "$READY after \$UPTIME s"
EOF
if [[ $MODE == dhcp ]]; then
  cat >"$T/network-config" <<EOF
version: 2
ethernets:
  nic0:
    match:
      macaddress: "$MAC"
    dhcp4: true
EOF
else
  # cloud-init 25.1 (trixie) rejects "to: default" unless netplan renders the config
  # ("Address default is not a valid ip address"): write 0.0.0.0/0 instead.
  cat >"$T/network-config" <<EOF
version: 2
ethernets:
  nic0:
    match:
      macaddress: "$MAC"
    set-name: eth0
    addresses: [10.0.2.15/24]
    routes:
      - to: 0.0.0.0/0
        via: 10.0.2.2
    nameservers:
      addresses: [10.0.2.3]
    mtu: 1500
EOF
fi
genisoimage -quiet -output "$T/seed.iso" -volid cidata -joliet -rock \
  "$T/user-data" "$T/meta-data" "$T/network-config"
qemu-img create -q -f qcow2 -F qcow2 -b "$IMAGE" "$T/overlay.qcow2" 8G

START=$(date +%s.%N)
since() { awk -v s="$START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }'; }

qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -smp 2 -m 1024 \
  -display none -monitor none \
  -serial "file:$T/serial.log" \
  -qmp "unix:$T/qmp.sock,server=on,wait=off" \
  -drive "file=$T/overlay.qcow2,if=virtio,format=qcow2,discard=unmap" \
  -drive "file=$T/seed.iso,if=virtio,format=raw,media=cdrom,readonly=on" \
  -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22" \
  -device "virtio-net-pci,netdev=n0,mac=$MAC" \
  -chardev "socket,id=qga0,path=$T/qga.sock,server=on,wait=off" \
  -device virtio-serial -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
  &
QEMU_PID=$!
echo "boot-test[$MODE]: qemu pid $QEMU_PID, image $IMAGE"

SSH_AT= READY_AT=
while [[ -z $SSH_AT || -z $READY_AT ]]; do
  kill -0 "$QEMU_PID" 2>/dev/null || { echo "qemu exited early" >&2; tail -40 "$T/serial.log"; exit 1; }
  if [[ -z $SSH_AT ]] && timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT && head -c 4 <&3" 2>/dev/null | grep -q SSH-; then
    SSH_AT=$(since); echo "boot-test[$MODE]: SSH answered after ${SSH_AT}s"
  fi
  if [[ -z $READY_AT ]] && grep -saq "$READY after" "$T/serial.log"; then
    READY_AT=$(since); echo "boot-test[$MODE]: final_message after ${READY_AT}s: $(grep -a "$READY after" "$T/serial.log" | tr -d '\r')"
  fi
  if (( ${START%.*} + BOOT_TIMEOUT < $(date +%s) )); then
    cp "$T/serial.log" "/tmp/dm-boot-test-$MODE.serial.log"
    echo "timeout after ${BOOT_TIMEOUT}s; serial log kept in /tmp/dm-boot-test-$MODE.serial.log; tail:" >&2
    tail -60 "$T/serial.log" >&2; exit 1
  fi
  sleep 1
done

SSH=(ssh -q -i "$T/id" -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o ConnectTimeout=10 "$USER_NAME@127.0.0.1")
FAIL=0
check() { # check NAME COMMAND...: run on the guest over SSH, print result
  local name=$1; shift
  if out=$("${SSH[@]}" "$@" 2>&1); then echo "  ok   $name: $(echo "$out" | tr '\n' ' ' | cut -c1-160)"
  else echo "  FAIL $name: $out"; FAIL=1; fi
}
echo "boot-test[$MODE]: checks"
check "ssh key login" 'whoami'
check "sudo with password" "echo '$PASSWORD' | sudo -S -p '' whoami | grep -x root"
check "root fs grown to ~8G" 'df -B1G --output=size / | tail -1 | awk "{ exit !(\$1 >= 7) }" && df -h / | tail -1'
check "hostname + /etc/hosts" 'hostname | grep -x dm-test && grep dm-test /etc/hosts'
check "NIC matched by MAC has IPv4" "ip -br addr | grep -i -e UP && ip -o link | grep -qi '$MAC'"
if [[ $MODE == dhcp ]]; then
  check "DHCP lease (networkd)" 'networkctl status --no-pager 2>/dev/null | grep -i -e "DHCP4\|Address" | head -3; ls /etc/systemd/network/ && grep -h DHCP=ipv4 /etc/systemd/network/10-cloud-init-*.network'
else
  check "static address + gateway + dns + mtu" 'ip -br addr | grep 10.0.2.15/24 && ip route | grep "default via 10.0.2.2" && resolvectl dns | grep 10.0.2.3 && ip link | grep -q "mtu 1500"'
fi
check "gateway reachable (unprivileged ping)" 'ping -c1 -W2 10.0.2.2 >/dev/null && echo pong'
check "one network stack" '! dpkg -l ifupdown netplan.io network-manager 2>/dev/null | grep -q ^ii && echo networkd-only'
check "cloud-init done" 'cloud-init status --long | head -4'
check "ssh host keys made at first boot" 'ls /etc/ssh/ssh_host_ed25519_key.pub'
check "machine-id set" 'test -s /etc/machine-id && cat /etc/machine-id'
check "failed units" 'systemctl --failed --no-legend | tee /dev/stderr | wc -l | grep -x 0'
check "boot time" 'systemd-analyze 2>/dev/null | head -1'
"${SSH[@]}" 'systemd-analyze critical-chain --no-pager ssh.service cloud-final.service 2>/dev/null | grep -v "^The time"' 2>/dev/null | sed 's/^/       /' || true

# Guest agent: the launcher talks to it over this port. Keep the connection open a few
# seconds: under TCG the reply comes after socat would otherwise have hung up.
if (echo '{"execute":"guest-sync","arguments":{"id":4242}}'; sleep 6) |
    timeout 10 socat - "UNIX-CONNECT:$T/qga.sock" | grep -q '"return": 4242'; then
  echo "  ok   qemu-guest-agent answered guest-sync"
else
  echo "  FAIL qemu-guest-agent did not answer"; FAIL=1
fi

# ACPI power-down over QMP, as the launcher does on SIGTERM.
(printf '{"execute":"qmp_capabilities"}\n{"execute":"system_powerdown"}\n'; sleep 1) |
  timeout 5 socat - "UNIX-CONNECT:$T/qmp.sock" >/dev/null || true
DOWN_AT=$(date +%s)
for _ in $(seq 120); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 1; done
if kill -0 "$QEMU_PID" 2>/dev/null; then echo "  FAIL guest did not power off in 120s"; FAIL=1
else echo "  ok   guest powered off $(( $(date +%s) - DOWN_AT ))s after ACPI power-down"; fi
wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=

echo "boot-test[$MODE]: ssh=${SSH_AT}s final_message=${READY_AT}s result=$([[ $FAIL == 0 ]] && echo PASS || echo FAIL)"
exit "$FAIL"
