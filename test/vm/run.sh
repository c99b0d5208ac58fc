#!/usr/bin/env bash
# Boot Debian's kernel under QEMU and run one command inside it, as root, in the
# guest's initial network namespace, with the caller's working directory.
#
#   test/vm/run.sh [--kernel NAME] [--kvaser N] [--timeout S] [--env K=V]... [--mem MB] [--smp N] -- CMD [ARGS...]
#
# Why a VM: the host kernel may lack CAN entirely (and KVM), so every test that
# needs vcan/vxcan/can-gw or a CAN controller runs in a guest under software
# emulation. The guest sees the host's root file system read-only over 9p, with a
# tmpfs overlay on top, so every host binary (and the repo) is available at the
# same path (a repository under /tmp or /run is shared on its own, read-only).
# out/vm-share/ of the repo is shared writable at the same path.
#
# CMD's stdout and stderr stream to our stdout; we exit with CMD's exit status,
# 124 on timeout, 126 if the guest hung or trapped (a kernel soft lockup, or
# an "Oops: int3" on text the kernel had just patched: rare faults of QEMU's
# software emulation: run again), and non-zero if the guest dies
# without reporting one.
# --kernel picks the guest kernel of the matrix: 6.1 (Debian 12's, the
# default), 6.1-rt (PREEMPT_RT) or 6.12; $KANTO_CAN_KERNEL is the default's
# default. Requires test/vm/setup-host.sh NAME to have run (the kernel in
# .cache/vm/NAME/). The guest sees the name as $KANTO_CAN_KERNEL.
#
# A kernel named *-arm64 (6.1-arm64) boots an arm64 machine instead
# (qemu-system-aarch64 -M virt -cpu max, software emulation). The host's
# root is amd64, so that guest's root is .cache/vm/NAME/root/ (Debian's
# arm64 packages, unpacked by setup-host.sh), read-only with a tmpfs overlay
# as above; the repository is shared at its own path, so CMD, its working
# directory and the binaries it runs (built for arm64) must be in the
# repository. The emulated Kvaser controllers sit at PCI slots 05.0, 06.0...
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Resolved: a symlinked .cache (a worktree sharing another's) must name the
# job script by a path the guest's initramfs can follow before switch_root.
vmcache=$(realpath -m "$repo/.cache/vm")
share="$repo/out/vm-share"

die() { echo "run.sh: $*" >&2; exit 2; }
usage() {
	sed -n '5p' "${BASH_SOURCE[0]}" | sed 's/^#  *//' >&2
	exit 2
}

kvaser=2 timeout=600 mem=1024 smp=2 kname=${KANTO_CAN_KERNEL:-6.1}
envs=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--kernel) kname=${2:?}; shift 2 ;;
	--kvaser) kvaser=${2:?}; shift 2 ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	--env) [[ ${2:-} == [A-Za-z_]*=* ]] || die "--env wants KEY=VALUE, got '${2:-}'"; envs+=("$2"); shift 2 ;;
	--mem) mem=${2:?}; shift 2 ;;
	--smp) smp=${2:?}; shift 2 ;;
	--) shift; break ;;
	-h|--help) usage ;;
	*) die "unknown option '$1' (did you forget '--' before the command?)" ;;
	esac
done
[[ $# -gt 0 ]] || usage
for n in "$kvaser" "$timeout" "$mem" "$smp"; do
	[[ $n =~ ^[0-9]+$ ]] || die "numeric option expected, got '$n'"
done

[[ $kname =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "--kernel wants a name like 6.1, got '$kname'"
# Per kernel: the unpacked package, its version, the initramfs built from it.
cache="$vmcache/$kname"
[[ -s $cache/kernel-version ]] ||
	die "no guest kernel $kname in .cache/vm/$kname: run test/vm/setup-host.sh $kname (make setup KERNEL=$kname) first"
kver=$(cat "$cache/kernel-version")
kroot="$cache/root"
kernel="$kroot/boot/vmlinuz-$kver"
[[ -f $kernel ]] || die "missing $kernel: run test/vm/setup-host.sh $kname again"
if [[ $kname == *-arm64 ]]; then
	arch=arm64
	qemu_bin=qemu-system-aarch64
	# The guest's own root: its busybox, its modules at /lib/modules.
	busybox="$kroot/bin/busybox"
	[[ $PWD == "$repo" || $PWD == "$repo"/* ]] ||
		die "an arm64 guest sees only its own root and the repository: run from within $repo"
else
	arch=amd64
	qemu_bin=qemu-system-x86_64
	busybox=/bin/busybox
fi
command -v "$qemu_bin" >/dev/null || die "$qemu_bin not found: run test/vm/setup-host.sh $kname"
[[ -x $busybox ]] || die "$busybox not found (busybox-static): run test/vm/setup-host.sh $kname"
[[ $repo != *[[:space:]]* ]] || die "the repo path must not contain white space (it goes on the kernel command line)"

# ---------------------------------------------------------------------------
# Initramfs: busybox + the modules needed to reach the host's root over 9p.
# Its /init mounts the overlay and switch_roots into the per-run job script.
# Built once, rebuilt when the kernel, busybox or this init changes.
# ---------------------------------------------------------------------------
read -r -d '' init_script <<'INIT' || true
#!/bin/busybox sh
# Stage 1 (busybox, in the initramfs): reach the host's root, then hand over.
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "vm-init: $*"; echo o >/proc/sysrq-trigger; sleep 5; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
job=
for arg in $(cat /proc/cmdline); do
	case $arg in kanto_job=*) job=${arg#kanto_job=} ;; esac
done
[ -n "$job" ] || fail "no kanto_job= on the kernel command line"
while read -r m; do
	insmod "/modules/$m" || fail "insmod $m failed"
done </modules/load
mkdir -p /lower /rw /newroot
# Read-only share: cache=loose lets the guest cache pages and metadata, which
# makes executing host binaries much faster than the default cache=none.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower ||
	fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/ovl-work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/ovl-work overlay /newroot ||
	fail "cannot mount the overlay root"
[ -f "/newroot$job" ] || fail "job script $job not visible in the guest"
umount /proc /sys /dev 2>/dev/null
exec switch_root /newroot /bin/bash "$job"
INIT

initrd="$cache/initramfs.cpio"
# Inputs: the kernel, busybox, and this script (init and build recipe).
stamp=$( { echo "$kver"; sha256sum "$busybox" "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-32)
if [[ ! -s $initrd || $(cat "$cache/initramfs.stamp" 2>/dev/null) != "$stamp" ]]; then
	tmp=$(mktemp -d "$cache/initramfs.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/bin" "$tmp/modules" "$tmp/proc" "$tmp/sys" "$tmp/dev"
	cp "$busybox" "$tmp/bin/busybox"
	printf '%s\n' "$init_script" >"$tmp/init"
	chmod 0755 "$tmp/init"
	# Resolve the load order (dependencies first) from the guest kernel's own tree;
	# built-in modules need nothing. Compressed modules are unpacked for busybox insmod.
	for m in virtio_pci 9pnet_virtio 9p overlay; do
		modprobe -d "$kroot" -S "$kver" --show-depends "$m" || exit 1
	done | awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++' | while read -r ko; do
		base=$(basename "$ko")
		case $ko in
		*.ko) cp "$ko" "$tmp/modules/$base" ;;
		*.ko.xz) xz -dc "$ko" >"$tmp/modules/${base%.xz}"; base=${base%.xz} ;;
		*.ko.zst) zstd -qdc "$ko" >"$tmp/modules/${base%.zst}"; base=${base%.zst} ;;
		*.ko.gz) gzip -dc "$ko" >"$tmp/modules/${base%.gz}"; base=${base%.gz} ;;
		*) echo "run.sh: unexpected module file $ko" >&2; exit 1 ;;
		esac
		echo "$base" >>"$tmp/modules/load"
	done
	[[ -s $tmp/modules/load ]] || die "could not resolve the 9p/virtio modules of kernel $kver"
	# Uncompressed: unpacking is faster than decompressing under emulation.
	(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$tmp.cpio"
	mv "$tmp.cpio" "$initrd"
	echo "$stamp" >"$cache/initramfs.stamp"
	rm -rf "$tmp"
	trap - EXIT
fi

# ---------------------------------------------------------------------------
# Job script: stage 2, runs as PID 1 in the guest with the host's bash (an
# arm64 guest's own bash). It lives in .cache/vm/jobs/ so the guest sees it
# through the 9p root (an arm64 guest's in its root's kanto-jobs/).
# ---------------------------------------------------------------------------
if [[ $arch == arm64 ]]; then
	mkdir -p "$kroot/kanto-jobs" "$vmcache/jobs" "$share"
	job=$(mktemp "$kroot/kanto-jobs/job.XXXXXXXX")
	guest_job=/kanto-jobs/${job##*/}
else
	mkdir -p "$vmcache/jobs" "$share"
	job=$(mktemp "$vmcache/jobs/job.XXXXXXXX")
	guest_job=$job
fi
status=$(mktemp "$vmcache/jobs/status.XXXXXXXX")
lockup="$status.lockup" # made when the guest's kernel reports a soft lockup
trap 'rm -f "$job" "$status" "$lockup"' EXIT
# A per-run nonce: CMD's own output cannot produce the exit marker by accident.
nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
marker="KANTO-VM-EXIT-$nonce"

q() { printf '%q' "$1"; }
{
	cat <<EOF
# Generated by test/vm/run.sh for one run; deleted afterwards.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
marker=$(q "$marker")
EOF
	cat <<'EOF'
# Report an exit status to the host and stop the machine. PID 1 must never
# exit (that is a kernel panic), so every path ends here.
report() {
	# stty sets the line with TCSADRAIN: waits until the UART sent everything.
	stty -F /dev/console -onlcr 2>/dev/null
	echo "$marker=$1"
	stty -F /dev/console -onlcr 2>/dev/null
	# isa-debug-exit at 0xf4 stops QEMU at once; poweroff is the fallback.
	printf '\001' | dd of=/dev/port bs=1 seek=244 count=1 conv=notrunc status=none 2>/dev/null
	/bin/busybox poweroff -f
	while :; do /bin/busybox sleep 1000; done
}
fatal() { echo "vm: $*"; report 125; }

mount -t proc proc /proc || fatal "mount /proc"
mount -t sysfs sysfs /sys || fatal "mount /sys"
mount -t devtmpfs -o mode=0755 devtmpfs /dev || fatal "mount /dev"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts || fatal "mount /dev/pts"
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
# What udev would add: bash process substitution needs /dev/fd.
ln -sfn /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run || fatal "mount /run"
mount -t tmpfs -o mode=1777 tmpfs /tmp || fatal "mount /tmp"
mount -t cgroup2 cgroup2 /sys/fs/cgroup || fatal "mount cgroup2"
# No CR before LF in what reaches the host.
stty -F /dev/console -onlcr 2>/dev/null
EOF
	cat <<EOF
kver=$(q "$kver")
export KANTO_CAN_KERNEL=$(q "$kname")
kmods=$(q "$([[ $arch == arm64 ]] && echo "/lib/modules/$kver" || echo "$kroot/lib/modules/$kver")")
arch=$(q "$arch")
repo=$(q "$repo")
share=$(q "$share")
cwd=$(q "$PWD")
EOF
	cat <<'EOF'
# A repository under /tmp or /run (a CI clone, say) is hidden by the fresh
# tmpfs mounted there: bring it back from its own read-only share. An arm64
# guest's root is not the host's: it always mounts the repository so.
case $arch:$repo in
arm64:* | *:/tmp/* | *:/run/*)
	mkdir -p "$repo" &&
		mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 reposhare "$repo" ||
		fatal "mount the repository at $repo"
	;;
esac
# modprobe looks in /lib/modules/$(uname -r): give it the guest kernel's tree
# (an arm64 guest's root has it there already).
if [ "$kmods" != "/lib/modules/$kver" ]; then
	mkdir -p "/lib/modules/$kver" || fatal "mkdir /lib/modules/$kver"
	mount --bind "$kmods" "/lib/modules/$kver" || fatal "bind-mount the guest kernel's modules"
fi
# Writable share (host reads results after the run). cache=mmap: no write caching.
mount -t 9p -o trans=virtio,version=9p2000.L,cache=mmap,msize=512000 vmshare "$share" ||
	fatal "mount the writable share at $share"
# One modprobe for all: every process start is expensive under emulation.
# can_gw keeps its default parameters (max_hops=1). A module this kernel does
# not have (no .ko, not built in) is said here and left to the tests, which
# skip naming it (kerneltest.RequireModules); any other failure is fatal.
mods=(can can_raw can_gw vcan vxcan can_dev sja1000 kvaser_pci sch_ingress cls_matchall act_police)
if ! modprobe -q -a "${mods[@]}" 2>/dev/null; then
	for m in "${mods[@]}"; do
		modprobe "$m" && continue
		modinfo "$m" >/dev/null 2>&1 || { echo "vm: kernel $kver has no module $m: tests that need it skip"; continue; }
		fatal "modprobe $m failed"
	done
fi
# Optional: not every kernel has these. bridge and veth: Kanto's default
# network (libnetwork's bridge kanto-cm0).
modprobe -q -a can_bcm can_isotp bridge veth
ip link set lo up
cd "$cwd" || fatal "working directory $cwd is not visible in the guest (/tmp and /run are fresh tmpfs there; only the repository is shared back)"
export HOME=/root TERM=dumb
EOF
	# The host's PATH means nothing to an arm64 guest (other binaries).
	[[ $arch == arm64 ]] ||
		printf 'export PATH=%s\n' "$(q "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}")"
	for e in "${envs[@]}"; do
		printf 'export %s=%s\n' "${e%%=*}" "$(q "${e#*=}")"
	done
	printf '('
	for a in "$@"; do printf ' %s' "$(q "$a")"; done
	printf ') </dev/null 2>&1\n'
	cat <<'EOF'
rc=$?
sync
report "$rc"
EOF
} >"$job"

# ---------------------------------------------------------------------------
# QEMU
# ---------------------------------------------------------------------------
if [[ $arch == arm64 ]]; then
	# No isa-debug-exit on -M virt: the job's poweroff ends QEMU (PSCI), and
	# the exit status comes from the console's marker. The 9p devices are
	# named as PCI devices (what -virtfs means is the machine's choice).
	qemu=(
		qemu-system-aarch64
		-nodefaults -no-user-config -nographic -no-reboot
		-machine virt -accel tcg,thread=multi -cpu max -m "$mem" -smp "$smp"
		-kernel "$kernel" -initrd "$initrd"
		-append "console=ttyAMA0 quiet loglevel=1 panic=-1 softlockup_panic=1 kanto_job=$guest_job"
		-serial stdio -monitor none -nic none
		-fsdev "local,id=hostroot,path=$kroot,security_model=none,readonly=on,multidevs=remap"
		-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
		-fsdev "local,id=vmshare,path=$share,security_model=none,multidevs=remap"
		-device virtio-9p-pci,fsdev=vmshare,mount_tag=vmshare
		-fsdev "local,id=reposhare,path=$repo,security_model=none,readonly=on,multidevs=remap"
		-device virtio-9p-pci,fsdev=reposhare,mount_tag=reposhare
	)
else
	qemu=(
		qemu-system-x86_64
		-nodefaults -no-user-config -nographic -no-reboot
		-bios qboot.rom -machine pc -accel tcg,thread=multi -cpu max -m "$mem" -smp "$smp"
		-kernel "$kernel" -initrd "$initrd"
		-append "console=ttyS0 quiet loglevel=1 panic=-1 softlockup_panic=1 8250.nr_uarts=1 tsc=reliable kanto_job=$guest_job"
		-serial stdio -monitor none -nic none
		-device isa-debug-exit,iobase=0xf4,iosize=0x04
		-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
		-virtfs "local,path=$share,mount_tag=vmshare,security_model=none,multidevs=remap"
		-virtfs "local,path=$repo,mount_tag=reposhare,security_model=none,readonly=on,multidevs=remap"
	)
fi
if [[ $kvaser -gt 0 ]]; then
	qemu+=(-object can-bus,id=canbus0)
	for ((i = 0; i < kvaser; i++)); do
		if [[ $arch == arm64 ]]; then
			# On -M virt only explicit slots gave every controller a channel.
			qemu+=(-device "kvaser_pci,canbus=canbus0,addr=$(printf '%02x' $((5 + i))).0")
		else
			qemu+=(-device kvaser_pci,canbus=canbus0)
		fi
	done
fi

# Stream the console, strip CRs, and catch the exit marker (not printed).
filter() {
	local line
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line%$'\r'}
		if [[ $line == *"$marker="* ]]; then
			# CMD's last output may lack a newline: keep it.
			[[ -z ${line%%"$marker="*} ]] || printf '%s\n' "${line%%"$marker="*}"
			echo "${line#*"$marker="}" >"$status"
			continue
		fi
		# QEMU's own note when the timeout kills it: we print a clearer one.
		[[ $line != "$qemu_bin: terminating on signal"* ]] || continue
		# An arm64 guest's poweroff after the marker (no isa-debug-exit there).
		[[ ! -s $status || $line != *"reboot: Power down"* ]] || continue
		# softlockup_panic=1 ends such a guest at once (see below).
		[[ $line != *"soft lockup - CPU"* ]] || : >"$lockup"
		# A kernel breakpoint trap on code that no longer holds one: the
		# kernel patched its text (jump labels: int3, then the new bytes)
		# and a vCPU of QEMU's software emulation still ran its stale
		# translation. An emulation fault, not a test result (seen once on
		# 6.12, in a cgroup mkdir of runc's).
		[[ $line != *"Oops: int3"* ]] || : >"$lockup"
		printf '%s\n' "$line"
	done
}

set +e
timeout -k 10 "$timeout" "${qemu[@]}" </dev/null 2>&1 | filter
qrc=${PIPESTATUS[0]}
set -e

if [[ $qrc -eq 124 || $qrc -eq 137 ]]; then
	echo "run.sh: timeout: guest still running after ${timeout}s, QEMU killed" >&2
	exit 124
fi
rc=$(cat "$status")
if [[ -e $lockup ]]; then
	echo "run.sh: the guest hung or trapped: a kernel soft lockup or a stale breakpoint trap (Oops: int3), rare faults of QEMU's software emulation seen with runc and podman; not a test result. Run again." >&2
	exit 126
fi
if [[ ! $rc =~ ^[0-9]+$ ]]; then
	echo "run.sh: the guest stopped without reporting an exit status (kernel panic or crash; QEMU exit $qrc)" >&2
	exit 125
fi
exit "$rc"
