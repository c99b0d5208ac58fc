#!/usr/bin/env bash
# Prepare this machine for the QEMU-based kernel tests (run as root; idempotent).
#  - installs the host tools the guest needs (the guest sees the host's root over 9p,
#    so every binary a test uses inside the guest must exist on the host);
#  - fetches Debian's guest kernels into <repo>/.cache/vm/<name>/ (the host kernel
#    may have no CAN support at all, the guest kernel has every CAN module);
#  - for an arm64 guest (6.1-arm64) also the guest's own root directory, made of
#    Debian's arm64 packages (the host's root is amd64).
#
#   test/vm/setup-host.sh [KERNEL...]   KERNEL: 6.1 (default), 6.1-rt, 6.12, 6.1-arm64, or all
# Quiet on success; prints a reason and exits non-zero on failure.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache="$repo/.cache/vm"

die() { echo "setup-host: $*" >&2; exit 1; }

# The guest kernels to fetch: names of the matrix (default 6.1), or "all".
all_kernels=(6.1 6.1-rt 6.12 6.1-arm64)
kernels=("$@")
[[ ${#kernels[@]} -gt 0 ]] || kernels=(6.1)
[[ ${kernels[*]} != all ]] || kernels=("${all_kernels[@]}")
for k in "${kernels[@]}"; do
	[[ " ${all_kernels[*]} " == *" $k "* ]] || die "unknown guest kernel '$k': one of ${all_kernels[*]} (or all)"
done

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages)"
command -v apt-get >/dev/null || die "apt-get not found: a Debian/Ubuntu host is required"

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Run quietly; on failure show what the command said.
quiet() {
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		die "failed: $*"
	fi
}

updated=0
apt_update_once() {
	if [[ $updated -eq 0 ]]; then
		quiet apt-get update
		updated=1
	fi
}

# Package -> a file it provides, so a present tool is not reinstalled.
declare -A want=(
	[qemu-system-x86]=/usr/bin/qemu-system-x86_64
	[can-utils]=/usr/bin/candump
	[busybox-static]=/bin/busybox
	[cpio]=/usr/bin/cpio
	[kmod]=/usr/bin/depmod
	[iproute2]=/usr/sbin/ip
	[util-linux]=/usr/bin/nsenter
	[containerd]=/usr/bin/containerd
	[runc]=/usr/sbin/runc
	[xz-utils]=/usr/bin/xz # newer Debian kernels ship .ko.xz modules
	[gcc]=/usr/bin/gcc     # cgo, for the race detector of make unit
	[libc6-dev]=/usr/include/stdio.h
	[systemd]=/lib/systemd/systemd # the daemon's unit under systemd in the guest (test/systemd)
	[mosquitto]=/usr/sbin/mosquitto           # the MQTT broker of the Ditto tests (test/ditto)
	[mosquitto-clients]=/usr/bin/mosquitto_sub # a witness on the broker in the Ditto tests
	[podman]=/usr/bin/podman                   # the engine of test/podman (its OCI hooks.d)
	[containernetworking-plugins]=/usr/lib/cni/bridge # bridge, host-local, loopback: podman's network backend (CNI: no netavark here) and pods through CRI (test/cni)
	[uidmap]=/usr/bin/newuidmap                # rootless podman, for the refusal of test/podman
	[docker.io]=/usr/sbin/dockerd              # the engine of test/docker (kanto-can as a runtime)
	[qemu-user-static]=/usr/bin/qemu-arm-static # make unit-arm: the host tests built for arm64 and arm, run by qemu-aarch64-static and qemu-arm-static
	[lintian]=/usr/bin/lintian                 # Debian's checks of make dist's packages (tools/dist)
	[man-db]=/usr/bin/man                      # tools/dist reads the packages' manual pages as a reader would
	[debootstrap]=/usr/sbin/debootstrap        # the device test bed's image (test/device/build-image.sh)
	[qemu-utils]=/usr/bin/qemu-img             # its per-run copy-on-write overlay
	[e2fsprogs]=/sbin/mkfs.ext4                # the image's file system, made from a directory
	[cmake]=/usr/bin/cmake                     # cannelloni, the peer of BenchmarkBridge (below)
	[g++]=/usr/bin/g++                         # the same
)
# The arm64 guest's machine, only when an arm64 kernel is asked for.
if [[ " ${kernels[*]} " == *-arm64" "* ]]; then
	want[qemu-system-arm]=/usr/bin/qemu-system-aarch64
fi
missing=()
for pkg in "${!want[@]}"; do
	# Installed according to dpkg, and the file is really there.
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed' ||
		[[ ! -e ${want[$pkg]} ]]; then
		missing+=("$pkg")
	fi
done
# (busybox-static replaces a dynamic busybox: the initramfs needs the static one.)
if [[ ${#missing[@]} -gt 0 ]]; then
	apt_update_once
	quiet apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The guest kernels. Each name of the matrix has its own cache directory,
# .cache/vm/<name>/ (root/ with the unpacked package, kernel-version), and
# is fetched once. The package name changes with Debian's updates: it is
# resolved now, through a meta package, and checked against the name.
#   6.1     linux-image-amd64 (Debian 12's kernel)
#   6.1-rt  linux-image-rt-amd64 (the same with PREEMPT_RT)
#   6.12    linux-image-6.12-amd64 (Debian 12's security archive carries
#           Debian 13's kernel), else linux-image-amd64 from
#           bookworm-backports (a source this script adds if it must)
#   6.1-arm64  linux-image-arm64:arm64 (Debian 12's kernel for arm64; the
#           root directory beside it is made of arm64 packages, below)
kernel_metas() {
	case $1 in
	6.1) echo linux-image-amd64 ;;
	6.1-rt) echo linux-image-rt-amd64 ;;
	6.12) echo linux-image-6.12-amd64 linux-image-amd64 ;;
	6.1-arm64) echo linux-image-arm64:arm64 ;;
	*) return 1 ;;
	esac
}
# The package's version (uname -r) must say it is that kernel.
kernel_matches() { # NAME VERSION
	case $1 in
	6.1) [[ $2 == 6.1.* && $2 != *-rt-* ]] ;;
	6.1-rt) [[ $2 == 6.1.*-rt-* ]] ;;
	6.12) [[ $2 == 6.12.* && $2 != *-rt-* && $2 != *-arm64 ]] ;;
	6.1-arm64) [[ $2 == 6.1.*-arm64 && $2 != *-rt-* ]] ;;
	esac
}
# The linux-image-<version> package a meta package depends on, from the
# candidate version; empty if apt knows no such package. [-t RELEASE] META
# (an arm64 META, linux-image-arm64:arm64, gives linux-image-X-arm64:arm64)
resolve_meta() {
	{ apt-cache "${@:1:$#-1}" depends "${@: -1}" 2>/dev/null || true; } |
		awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
# Debian 12 without a 6.12 kernel in its sources: add bookworm-backports,
# once (the file is left for the next run), and say so.
backports_list=/etc/apt/sources.list.d/kanto-can-bookworm-backports.list
add_backports() {
	[[ $(. /etc/os-release && echo "${VERSION_CODENAME:-}") == bookworm ]] || return 1
	if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		echo "setup-host: adding bookworm-backports to apt's sources ($backports_list) for the 6.12 guest kernel" >&2
		echo "deb http://deb.debian.org/debian bookworm-backports main" >"$backports_list"
	fi
	quiet apt-get update
	updated=1
}

# An arm64 guest cannot use the host's root (amd64): it boots into a root
# directory of its own, .cache/vm/NAME/root/, which holds the kernel package
# and these arm64 packages with their dependencies, unpacked with dpkg-deb -x.
# No maintainer script runs (this machine may have no binfmt_misc to run
# arm64 code): nothing in the guest needs one. What the guest runs: bash (the
# job script), coreutils, grep, mount and util-linux (nsenter, setpriv), kmod
# (modprobe), iproute2 (ip, tc), can-utils (the tests' witnesses), dash
# (/bin/sh) and busybox-static (the initramfs, poweroff).
arm64_root_pkgs=(bash busybox-static can-utils coreutils dash grep iproute2 kmod mount util-linux)

# apt knows arm64 packages once arm64 is a foreign architecture of dpkg's.
add_arm64() {
	dpkg --print-foreign-architectures | grep -qx arm64 && return 0
	echo "setup-host: adding arm64 to dpkg's architectures (dpkg --add-architecture arm64) for the arm64 guest's packages" >&2
	quiet dpkg --add-architecture arm64
	quiet apt-get update
	updated=1
}

# The arm64 packages PKG... and everything they depend on (Depends and
# Pre-Depends; of alternatives the first that is a real arm64 package;
# Architecture: all packages, seen as virtual here, are left out: they are
# data and maintainer scripts' tools, which the guest does not need). One
# apt-cache call per level of the dependency tree.
arm64_closure() {
	local -A seen=() queued=()
	local level=("$@") next p line kind dep taken
	while [[ ${#level[@]} -gt 0 ]]; do
		for p in "${level[@]}"; do seen[$p]=1; done
		next=() taken=0
		while IFS= read -r line; do
			# Unindented: the next package's section.
			[[ $line == [[:space:]]* ]] || { taken=0; continue; }
			read -r kind dep <<<"$line"
			case $kind in
			Depends: | PreDepends: | "|Depends:" | "|PreDepends:") ;;
			*) continue ;; # a virtual package's providers
			esac
			if [[ $taken -eq 0 && $dep != "<"* ]]; then
				dep=${dep%:arm64}
				if [[ -z ${seen[$dep]:-} && -z ${queued[$dep]:-} ]]; then
					queued[$dep]=1
					next+=("$dep")
				fi
				taken=1
			fi
			# Without "|", this dependency's alternatives end here.
			[[ $kind == "|"* ]] || taken=0
		done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
			--no-replaces --no-enhances "${level[@]/%/:arm64}" 2>/dev/null)
		level=("${next[@]}")
	done
	printf '%s\n' "${!seen[@]}" | LC_ALL=C sort
}

# The arm64 root directory DIR (the kernel package is unpacked there already).
make_arm64_root() { # DIR
	local root=$1 debs=$1.debs pkgs
	mapfile -t pkgs < <(arm64_closure "${arm64_root_pkgs[@]}")
	[[ ${#pkgs[@]} -ge ${#arm64_root_pkgs[@]} ]] || die "cannot resolve the arm64 packages of ${arm64_root_pkgs[*]}"
	mkdir -p "$debs"
	chmod 0777 "$debs"
	(cd "$debs" && apt-get download "${pkgs[@]/%/:arm64}" >"$log" 2>&1) ||
		{ cat "$log" >&2; die "apt-get download of the arm64 guest's packages failed"; }
	for deb in "$debs"/*.deb; do
		quiet dpkg-deb -x "$deb" "$root"
	done
	rm -rf "$debs"
	# What maintainer scripts or an installer would have made.
	mkdir -p "$root"/{proc,sys,dev,run,tmp,root,mnt,var/tmp}
	[[ -e $root/bin/sh ]] || ln -s dash "$root/bin/sh"
	for f in bin/bash bin/busybox bin/sh bin/ip sbin/modprobe usr/bin/candump usr/bin/nsenter; do
		[[ -e $root/$f || -L $root/$f ]] || die "the arm64 guest's root has no /$f"
	done
}

fetch_kernel() { # NAME
	local name=$1 kcache=$cache/$1 pkg='' meta ver tmp
	# An arm64 root is made again when its package list changes.
	local want_root=''
	[[ $name != *-arm64 ]] || want_root=$(printf '%s\n' "${arm64_root_pkgs[@]}")
	if [[ -s $kcache/kernel-version && -d $kcache/root/lib/modules/$(cat "$kcache/kernel-version") &&
		$want_root == "$(cat "$kcache/root-packages" 2>/dev/null)" ]]; then
		return 0
	fi
	[[ $name != *-arm64 ]] || add_arm64
	for attempt in cached updated backports; do
		case $attempt in
		updated) [[ $updated -eq 0 ]] || continue; apt_update_once ;;
		backports) [[ $name == 6.12 ]] && add_backports || break ;;
		esac
		for meta in $(kernel_metas "$name"); do
			if [[ $attempt == backports ]]; then
				pkg=$(resolve_meta -t bookworm-backports "$meta")
			else
				pkg=$(resolve_meta "$meta")
			fi
			# linux-image-6.1.0-57-amd64 -> 6.1.0-57-amd64 is uname -r
			# (linux-image-6.1.0-57-arm64:arm64 -> 6.1.0-57-arm64).
			if [[ -n $pkg ]] && kernel_matches "$name" "$(p=${pkg#linux-image-} && echo "${p%:arm64}")"; then
				break 2
			fi
			pkg=''
		done
	done
	[[ -n $pkg ]] || die "no Debian package for guest kernel $name (tried $(kernel_metas "$name" | tr ' ' ,)): Debian's kernels must be in the apt sources"

	mkdir -p "$kcache"
	tmp=$(mktemp -d "$cache/fetch.XXXXXX")
	trap 'rm -f "$log"; rm -rf "$tmp"' EXIT
	# apt-get download drops privileges to _apt: the directory must be writable by it.
	chmod 0777 "$tmp"
	if ! (cd "$tmp" && apt-get download "$pkg" >"$log" 2>&1); then
		apt_update_once
		(cd "$tmp" && apt-get download "$pkg" >"$log" 2>&1) || { cat "$log" >&2; die "apt-get download $pkg failed"; }
	fi
	quiet dpkg -x "$tmp"/"${pkg%:arm64}"_*.deb "$tmp/root"
	ver=$(ls "$tmp/root/lib/modules" | head -n1)
	[[ -n $ver && -f $tmp/root/boot/vmlinuz-$ver ]] || die "unexpected layout in $pkg: no /boot/vmlinuz-<ver>"
	kernel_matches "$name" "$ver" || die "$pkg holds kernel $ver, not $name"
	[[ $name != *-arm64 ]] || make_arm64_root "$tmp/root"
	# Module dependency maps are generated by the package's postinst normally.
	quiet depmod -b "$tmp/root" "$ver"
	rm -rf "$kcache/root"
	mv "$tmp/root" "$kcache/root"
	ln -sfn "root/boot/vmlinuz-$ver" "$kcache/vmlinuz"
	if [[ -n $want_root ]]; then
		echo "$want_root" >"$kcache/root-packages"
	else
		rm -f "$kcache/root-packages"
	fi
	echo "$ver" >"$kcache/kernel-version.tmp"
	mv "$kcache/kernel-version.tmp" "$kcache/kernel-version"
	rm -rf "$tmp"
	trap 'rm -f "$log"' EXIT
}

mkdir -p "$cache"
# The cache's former layout (one kernel, Debian's 6.1, in .cache/vm/ itself)
# becomes .cache/vm/6.1/ rather than being fetched again.
if [[ -s $cache/kernel-version && -d $cache/root && ! -e $cache/6.1 ]] &&
	kernel_matches 6.1 "$(cat "$cache/kernel-version")"; then
	mkdir -p "$cache/6.1"
	mv "$cache/root" "$cache/kernel-version" "$cache/6.1/"
	ln -sfn "root/boot/vmlinuz-$(cat "$cache/6.1/kernel-version")" "$cache/6.1/vmlinuz"
	rm -f "$cache/vmlinuz" "$cache/initramfs.cpio" "$cache/initramfs.stamp"
fi
for k in "${kernels[@]}"; do
	fetch_kernel "$k"
done

# Eclipse Kanto container-management, kanto-cm and suite-connector, for the tests and the demo
# that run the real Kanto in the guest. They come as xz-compressed static
# binaries built from Kanto's source (KANTO_DIST, by default a directory
# "shared/kanto" beside the repository's directory); unpacked into
# .cache/kanto/ (the arm64 builds, NAME.arm64.xz, into .cache/kanto/arm64/:
# the device test bed's arm64 guest) and checked against the digests below.
kanto_dist=${KANTO_DIST:-$repo/../shared/kanto}
kanto_cache="$repo/.cache/kanto"
declare -A kanto_sha=(
	[container-management]=c1752b1cc5816c3232a2594ae57d45aad398da153b2cea4029541eb663f16203
	[kanto-cm]=15968ccadaa0ad640fc05358886f97323f05ad61203f045e0cf68f961db28a5c
	[container-management.arm64]=c2654689fabc1ecb45ecdb1b26a8739c3045ae63f49b9d6172a89579e641aa1a
	[kanto-cm.arm64]=2e6f3001efb35e8f5bc6180153ababd052b32e576468ca16769d83a790cca327
	# suite-connector: the link to the cloud (test/ditto, the demo)
	[suite-connector]=c3bc5e0ca7b1f5cef5be0737f45805315e485a8598ea894c02efbb6edc1c4cbc
	[suite-connector.arm64]=1f337220cfd608c01a3ebf35b88cf09e394886575276310a695e874d8afcb2b0
)
mkdir -p "$kanto_cache/arm64"
for bin in "${!kanto_sha[@]}"; do
	case $bin in
	*.arm64) dst=$kanto_cache/arm64/${bin%.arm64} ;;
	*) dst=$kanto_cache/$bin ;;
	esac
	if [[ -x $dst ]] && echo "${kanto_sha[$bin]}  $dst" | sha256sum --quiet -c - 2>/dev/null; then
		continue
	fi
	[[ -f $kanto_dist/$bin.xz ]] ||
		die "no $bin.xz in $kanto_dist: set KANTO_DIST to the directory with Eclipse Kanto's container-management.xz and kanto-cm.xz"
	xz -dc "$kanto_dist/$bin.xz" >"$dst.tmp" || die "cannot unpack $kanto_dist/$bin.xz"
	echo "${kanto_sha[$bin]}  $dst.tmp" | sha256sum --quiet -c - 2>/dev/null ||
		die "$kanto_dist/$bin.xz: sha256 of the unpacked binary is not ${kanto_sha[$bin]}"
	chmod 0755 "$dst.tmp"
	mv "$dst.tmp" "$dst"
done
# Kanto's own unit and default config (the device test bed installs them
# unchanged), from KANTO_DIST's units/.
declare -A kanto_units_sha=(
	[container-management.service]=4edf4ec991a318d58c99150baf5ef8d3241597c4b8b3d9f8da62f88126ea1a03
	[container-management.config.json]=90ff4fc7bc0b37b18ed3eb434a9c4508a76bcb1de4b22b40061135f8e88ea068
)
mkdir -p "$kanto_cache/units"
for f in "${!kanto_units_sha[@]}"; do
	dst=$kanto_cache/units/$f
	if [[ -f $dst ]] && echo "${kanto_units_sha[$f]}  $dst" | sha256sum --quiet -c - 2>/dev/null; then
		continue
	fi
	[[ -f $kanto_dist/units/$f ]] || die "no units/$f in $kanto_dist: set KANTO_DIST to the directory with Eclipse Kanto's binaries and units/"
	echo "${kanto_units_sha[$f]}  $kanto_dist/units/$f" | sha256sum --quiet -c - 2>/dev/null ||
		die "$kanto_dist/units/$f: sha256 is not ${kanto_units_sha[$f]}"
	cp "$kanto_dist/units/$f" "$dst.tmp"
	mv "$dst.tmp" "$dst"
done

# Kubernetes' kubelet v1.37.2 (static, amd64), for test/cni's pods made by a
# real kubelet (standalone: static pods, no API server). From K8S_DIST (by
# default shared/k8s beside the repository's directory, whose README.md says
# how it was built from the Go module proxy alone), unpacked into
# .cache/k8s/kubelet and checked against the digest of the uncompressed binary.
k8s_dist=${K8S_DIST:-$repo/../shared/k8s}
kubelet=$repo/.cache/k8s/kubelet
kubelet_sha=90647284ba71ffb54a4ab03f48c75393868a32538eb5bbc2bbe120a675298737
if ! { [[ -x $kubelet ]] && echo "$kubelet_sha  $kubelet" | sha256sum --quiet -c - 2>/dev/null; }; then
	[[ -f $k8s_dist/kubelet.xz ]] || die "no kubelet.xz in $k8s_dist: set K8S_DIST to the directory with kubelet.xz"
	mkdir -p "${kubelet%/*}"
	xz -dc "$k8s_dist/kubelet.xz" >"$kubelet.tmp" || die "cannot unpack $k8s_dist/kubelet.xz"
	echo "$kubelet_sha  $kubelet.tmp" | sha256sum --quiet -c - 2>/dev/null ||
		die "$k8s_dist/kubelet.xz: sha256 of the unpacked binary is not $kubelet_sha"
	chmod 0755 "$kubelet.tmp"
	mv "$kubelet.tmp" "$kubelet"
fi

# cannelloni 2.1.2 (CAN over UDP; GPL-2.0), what users run where vxcan is
# missing: BenchmarkBridge (test/bench) compares bridge mode with it. Built
# here from PEERS_DIST (by default shared/peers beside the repository's
# directory; its README.md says how) into .cache/peers/cannelloni, which the
# guest sees at the same path; rebuilt only when the tarball changes.
peers_dist=${PEERS_DIST:-$repo/../shared/peers}
peers_cache="$repo/.cache/peers"
cannelloni_sha=a78ac389c4ba42f1808abe0b090a5089978f1ae21a1cf10dfe6a7156ff85f183
if [[ ! -x $peers_cache/cannelloni || $(cat "$peers_cache/cannelloni.sha256" 2>/dev/null) != "$cannelloni_sha" ]]; then
	tarball=$peers_dist/cannelloni-2.1.2.tar.xz
	[[ -f $tarball ]] || die "no cannelloni-2.1.2.tar.xz in $peers_dist: set PEERS_DIST to the directory that has it"
	echo "$cannelloni_sha  $tarball" | sha256sum --quiet -c - 2>/dev/null || die "$tarball: sha256 is not $cannelloni_sha"
	src="$peers_cache/cannelloni-src"
	rm -rf "$src"
	mkdir -p "$src/build"
	tar -xJf "$tarball" -C "$src" --strip-components=1
	# g++ 12 warns where 2.1.2's authors' compiler did not: no -Werror.
	sed -i 's/ -Werror//' "$src/CMakeLists.txt"
	(cd "$src/build" && quiet cmake -DCMAKE_BUILD_TYPE=Release -DSCTP_SUPPORT=OFF .. && quiet make -j"$(nproc)")
	cp "$src/build/cannelloni" "$peers_cache/cannelloni.tmp"
	mv "$peers_cache/cannelloni.tmp" "$peers_cache/cannelloni"
	echo "$cannelloni_sha" >"$peers_cache/cannelloni.sha256"
	rm -rf "$src"
fi
