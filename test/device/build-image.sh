#!/usr/bin/env bash
# Build the device test bed's disk image: a Debian 12 system booted with
# systemd, for one architecture, cached in <repo>/.cache/device/ARCH/.
#
#   test/device/build-image.sh amd64|arm64
#
# No package's maintainer scripts run on this machine (it may have no
# binfmt_misc, and amd64 is built the same way as arm64): debootstrap
# --foreign downloads and unpacks the packages, mkfs.ext4 -d makes the
# image from that directory (no mount, no loop device), and the guest's
# first boot runs debootstrap's second stage (every maintainer script)
# as PID 1, then powers off. The configured image is what the tests boot,
# each through a copy-on-write overlay of its own (test/device/run.sh).
#
# Files in .cache/device/ARCH/:
#   root.img        the configured raw ext4 image (sparse)
#   vmlinuz         the guest kernel; its modules are inside the image
#   initramfs.cpio  busybox + the modules to mount the image's root (virtio
#                   block, ext4), then switch_root to systemd
#   stamp           what the image was built from; rebuilt when it changes
# Quiet on success but for one line with the time taken.
set -euo pipefail

arch=${1:?usage: build-image.sh amd64|arm64}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$repo/test/device"
cache="$repo/.cache/device/$arch"
die() { echo "build-image: $*" >&2; exit 1; }

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What a device needs for the test bed: systemd as init with udev and
# networkd, Debian's containerd and runc, iptables (Kanto's default bridge
# network), can-utils and iproute2 (the owner's tools and the checks), jq
# (the checks read JSON), kmod.
packages=systemd-sysv,udev,dbus,kmod,iproute2,iptables,can-utils,containerd,runc,jq,procps,busybox-static
case $arch in
amd64)
	kname=6.1
	kdir="$repo/.cache/vm/$kname"
	[[ -s $kdir/kernel-version ]] || die "no guest kernel in .cache/vm/$kname: run test/vm/setup-host.sh $kname first"
	kver=$(cat "$kdir/kernel-version")
	;;
arm64)
	# The kernel is Debian's package, installed in the image like any other.
	packages+=,linux-image-arm64
	;;
*) die "unknown architecture '$arch': amd64 or arm64" ;;
esac

stamp=$( { echo "$arch $packages ${kver:-}"; sha256sum "${BASH_SOURCE[0]}" "$here/devtest-agent.service"; } | sha256sum | cut -c1-32)
if [[ -s $cache/root.img && -s $cache/vmlinuz && -s $cache/initramfs.cpio && $(cat "$cache/stamp" 2>/dev/null) == "$stamp" ]]; then
	exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap not found: run test/vm/setup-host.sh"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found: run test/vm/setup-host.sh"
start=$SECONDS
mkdir -p "$cache"
rm -f "$cache/stamp"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log="$work/log"

# 1. Download and unpack (no maintainer script runs).
root="$work/root"
if ! debootstrap --foreign --arch="$arch" --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$log" 2>&1; then
	cat "$log" >&2
	die "debootstrap --foreign failed"
fi
# debootstrap --foreign leaves /proc a link to the host's /proc.
[[ ! -L $root/proc ]] || { rm "$root/proc" && mkdir -m 0555 "$root/proc"; }
debs="$root/var/cache/apt/archives"
deb() { # PACKAGE: the one .deb of that name debootstrap fetched
	local f=("$debs/$1"_*.deb)
	[[ -f ${f[0]} ]] || die "debootstrap fetched no $1"
	echo "${f[0]}"
}

# 2. The kernel and its modules; the initramfs's busybox is the image's own.
ktree="$work/kernel"
mkdir -p "$ktree"
case $arch in
amd64)
	# Debian's 6.1 of the other guests, its modules inside the image.
	mkdir -p "$root/lib/modules"
	cp -a "$kdir/root/lib/modules/$kver" "$root/lib/modules/"
	cp -a "$kdir/root/boot/vmlinuz-$kver" "$work/vmlinuz"
	cp -a "$kdir/root/." "$ktree/"
	;;
arm64)
	imgpkg=$(basename "$(ls "$debs"/linux-image-6.*-arm64_*.deb | head -n1)")
	[[ -n $imgpkg ]] || die "debootstrap fetched no linux-image-6.*-arm64"
	dpkg-deb -x "$debs/$imgpkg" "$ktree"
	kver=$(ls "$ktree/lib/modules" | head -n1)
	cp -a "$ktree/boot/vmlinuz-$kver" "$work/vmlinuz"
	;;
esac
depmod -b "$ktree" "$kver"
dpkg-deb -x "$(deb busybox-static)" "$work/bb"

# Stage 1 init: mount the image's root and hand over to its init.
ird="$work/initramfs"
mkdir -p "$ird/bin" "$ird/modules" "$ird/proc" "$ird/sys" "$ird/dev" "$ird/newroot"
cp "$work/bb/bin/busybox" "$ird/bin/busybox"
cat >"$ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "devtest-initramfs: $*"; echo o >/proc/sysrq-trigger; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
init=/lib/systemd/systemd
for arg in $(cat /proc/cmdline); do
	case $arg in devtest.init=*) init=${arg#devtest.init=} ;; esac
done
while read -r m; do insmod "/modules/$m" || fail "insmod $m"; done </modules/load
# virtio_blk probes while insmod runs: /dev/vda is there now.
mount -t ext4 -o rw /dev/vda /newroot || fail "cannot mount /dev/vda"
umount /proc /sys /dev
exec switch_root /newroot "$init"
INIT
chmod 0755 "$ird/init"
for m in virtio_pci virtio_blk ext4 crc32c_generic; do
	modprobe -d "$ktree" -S "$kver" --show-depends "$m" 2>/dev/null || true
done | awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++' | while read -r ko; do
	base=$(basename "$ko")
	case $ko in
	*.ko) cp "$ko" "$ird/modules/$base" ;;
	*.ko.xz) xz -dc "$ko" >"$ird/modules/${base%.xz}"; base=${base%.xz} ;;
	*) die "unexpected module file $ko" ;;
	esac
	echo "$base" >>"$ird/modules/load"
done
grep -q '^virtio_blk' "$ird/modules/load" || die "no virtio_blk module in kernel $kver"
(cd "$ird" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$work/initramfs.cpio"

# 3. What the first boot runs, and the test bed's agent (a unit of the
# test bed, not of the device: it runs test/device/guest.sh from the
# host's share when the kernel command line asks for it).
cp "$here/devtest-agent.service" "$root/etc/systemd/system/devtest-agent.service"
cat >"$root/devtest-firstboot" <<'FIRST'
#!/bin/sh
# The image's first boot, as PID 1: debootstrap's second stage runs every
# package's maintainer scripts here, natively; then the system's own set-up.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# Power off (QEMU runs with -no-reboot: if sysrq fails, PID 1's exit
# panics the kernel, which reboots, which ends QEMU).
done_() { sync; mount -o remount,ro / 2>/dev/null; sync; echo o >/proc/sysrq-trigger; exit 1; }
fail() { echo "DEVTEST-FIRSTBOOT failed: $*"; done_; }
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
echo "DEVTEST-FIRSTBOOT second stage"
if ! /debootstrap/debootstrap --second-stage >/second-stage.log 2>&1; then
	tail -n 40 /second-stage.log
	tail -n 40 /debootstrap/debootstrap.log 2>/dev/null
	fail "debootstrap --second-stage"
fi
rm -f /second-stage.log
# The second stage unmounts what it found mounted.
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
echo devbed >/etc/hostname
echo "127.0.1.1 devbed" >>/etc/hosts
echo "/dev/vda / ext4 defaults 0 1" >/etc/fstab
# A fixed machine id: each test's first boot is the image's first boot.
systemd-machine-id-setup >/dev/null || fail "systemd-machine-id-setup"
systemctl enable systemd-networkd.service devtest-agent.service >/dev/null 2>&1 || fail "systemctl enable"
apt-get clean
rm -f /devtest-firstboot
echo "DEVTEST-FIRSTBOOT ok"
umount /run /tmp /dev/pts 2>/dev/null
done_
FIRST
chmod 0755 "$root/devtest-firstboot"

# 4. The image: an ext4 file system made from the directory, sparse.
size=${DEVTEST_IMAGE_SIZE:-4G}
mkfs.ext4 -q -F -L devroot -d "$root" "$work/root.img" "$size" >"$log" 2>&1 || { cat "$log" >&2; die "mkfs.ext4 -d failed"; }
rm -rf "$root"

# 5. First boot: the second stage in the guest (the image is written in place).
mods_note="first boot of the $arch image (debootstrap --second-stage in the guest)"
"$here/qemu.sh" "$arch" --kernel "$work/vmlinuz" --initrd "$work/initramfs.cpio" --disk "$work/root.img" --raw --no-reboot \
	--append "devtest.init=/devtest-firstboot" --timeout "${DEVTEST_FIRSTBOOT_TIMEOUT:-2400}" >"$log" 2>&1 || true
if ! grep -q '^DEVTEST-FIRSTBOOT ok' "$log"; then
	cat "$log" >&2
	die "$mods_note failed"
fi
mv "$work/vmlinuz" "$cache/vmlinuz"
mv "$work/initramfs.cpio" "$cache/initramfs.cpio"
mv "$work/root.img" "$cache/root.img"
echo "$kver" >"$cache/kernel-version"
echo "$stamp" >"$cache/stamp"
echo "build-image: $arch image built in $((SECONDS - start)) s ($(du -h "$cache/root.img" | cut -f1) used of $size)"
