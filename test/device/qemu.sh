#!/usr/bin/env bash
# Run the device test bed's guest machine for one architecture, its serial
# console on stdout; QEMU ends when the guest powers off (a guest reboot
# is a real reset of the machine: the firmware loads the kernel again and
# the disk keeps what was written).
#
#   test/device/qemu.sh amd64|arm64 --kernel F --initrd F --disk F [--raw]
#       [--append ARGS] [--share DIR] [--kvaser N] [--timeout S] [--mem MB]
#       [--no-reboot]
#
# --disk is a qcow2 overlay (a raw image with --raw). --share DIR is
# the host directory the guest mounts with 9p, tag devtest. Exits 124 on
# timeout, else with QEMU's status.
set -euo pipefail

die() { echo "qemu.sh: $*" >&2; exit 2; }
arch=${1:?usage: qemu.sh amd64|arm64 ...}; shift
kernel='' initrd='' disk='' format=qcow2 append='' share='' kvaser=0 timeout=900 mem=1536 smp=2 noreboot=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--kernel) kernel=$2; shift 2 ;;
	--initrd) initrd=$2; shift 2 ;;
	--disk) disk=$2; shift 2 ;;
	--raw) format=raw; shift ;;
	--no-reboot) noreboot=1; shift ;;
	--append) append=$2; shift 2 ;;
	--share) share=$2; shift 2 ;;
	--kvaser) kvaser=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	*) die "unknown option '$1'" ;;
	esac
done
[[ -f $kernel && -f $initrd && -f $disk ]] || die "--kernel, --initrd and --disk must name files"

common=(-nodefaults -no-user-config -nographic -m "$mem" -smp "$smp" -accel tcg,thread=multi
	-serial stdio -monitor none -nic none -kernel "$kernel" -initrd "$initrd")
case $arch in
amd64)
	command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found: run test/vm/setup-host.sh"
	qemu=(qemu-system-x86_64 -machine pc -bios qboot.rom -cpu max "${common[@]}")
	console=ttyS0
	extra="8250.nr_uarts=1 tsc=reliable"
	for ((i = 0; i < kvaser; i++)); do
		[[ $i -gt 0 ]] || qemu+=(-object can-bus,id=canbus0)
		qemu+=(-device kvaser_pci,canbus=canbus0)
	done
	;;
arm64)
	command -v qemu-system-aarch64 >/dev/null || die "qemu-system-aarch64 not found: run test/vm/setup-host.sh"
	qemu=(qemu-system-aarch64 -machine virt -cpu max "${common[@]}")
	console=ttyAMA0
	extra=''
	# Explicit PCI slots, before any other PCI device: without them only
	# one of the two controllers came up on virt.
	for ((i = 0; i < kvaser; i++)); do
		[[ $i -gt 0 ]] || qemu+=(-object can-bus,id=canbus0)
		qemu+=(-device "kvaser_pci,canbus=canbus0,addr=0$((5 + i)).0")
	done
	;;
*) die "unknown architecture '$arch'" ;;
esac
qemu+=(-drive "file=$disk,format=$format,if=none,id=root,cache=unsafe" -device virtio-blk-pci,drive=root)
[[ $noreboot -eq 0 ]] || qemu+=(-no-reboot)
[[ -z $share ]] || qemu+=(-virtfs "local,path=$share,mount_tag=devtest,security_model=none,multidevs=remap")
qemu+=(-append "console=$console root=/dev/vda rw quiet loglevel=3 panic=-1 $extra $append")

set +e
timeout -k 10 "$timeout" "${qemu[@]}" </dev/null
rc=$?
set -e
[[ $rc -ne 124 && $rc -ne 137 ]] || { echo "qemu.sh: timeout: the guest still ran after ${timeout}s" >&2; exit 124; }
exit "$rc"
