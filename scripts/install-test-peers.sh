#!/usr/bin/env bash
# Installs the real programs Cairn's tests and benchmarks talk to (Debian 12 packages). Needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  qemu-utils qemu-system-x86 libnbd-bin nbdkit fuse3 libfuse2 e2fsprogs dosfstools ntfs-3g fdisk gdisk
  util-linux mount mtools restic fio zstd python3 make g++ time lvm2 attr faketime
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# FUSE and loop devices: the tests mount images read-only through loop devices.
modprobe fuse 2>/dev/null || true
modprobe loop 2>/dev/null || true
[ -e /dev/fuse ] || { echo "install-test-peers: /dev/fuse is missing" >&2; exit 1; }
