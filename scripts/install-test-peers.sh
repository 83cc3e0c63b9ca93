#!/usr/bin/env bash
# Installs the real programs Cairn's tests and benchmarks talk to (Debian 12 packages). Needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  qemu-utils qemu-system-x86 libnbd-bin nbdkit fuse3 libfuse2 e2fsprogs dosfstools ntfs-3g fdisk gdisk
  util-linux mount mtools 7zip exfatprogs restic fio zstd python3 make g++ time lvm2 passwd attr faketime
  libvhdi-utils ceph-mon ceph-osd ceph-common qemu-block-extra btrfs-progs lzop xxhash
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
# Debian's udev rule (fuse3) gives /dev/fuse mode 0666 so that users mount with fusermount; machines
# without udev (containers, this CI) leave it 0600, and the unprivileged-user tests need the rule's mode.
chmod 0666 /dev/fuse
