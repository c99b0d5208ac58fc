#!/bin/bash
# The demo, run inside the test guest by `make demo`: the emulated ECU on can1
# and a stand-in container (its own network namespace, user nobody, no
# capabilities) exchange frames through the host bus can0, wired by
# `kanto-can attach`. Every step is checked: the demo fails if a frame does
# not arrive.
set -euo pipefail

KC=${KANTO_CAN_BIN:?KANTO_CAN_BIN names the kanto-can binary}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
# A process as the container's app would run: in the container's network
# namespace, as nobody, without any capability.
in_container() { nsenter -t "$CPID" -n setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all -- "$@"; }

say "Emulated hardware: can0 (the host's bus) and can1 (an ECU) on one emulated CAN bus"
for dev in can0 can1; do
	ip link set "$dev" type can bitrate 500000
	ip link set "$dev" up
done
ip -details link show can0 | sed -n '1p;/can state/p'

say "A stand-in container: its own network namespace, user nobody, no capabilities"
unshare --net --fork setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all -- sleep 600 &
UPID=$!
# unshare forks: the container's process is its child.
for _ in $(seq 100); do CPID=$(pgrep -P "$UPID" || true); [ -n "$CPID" ] && break; sleep 0.05; done
[ -n "$CPID" ] || { echo "demo: the stand-in container did not start" >&2; exit 1; }
trap 'kill $UPID 2>/dev/null || true' EXIT
echo "container pid $CPID; inside it:"
in_container ip -brief link

say "kanto-can attach: the container gets can0, wired to the host's can0"
show "$KC" attach --pid "$CPID" --bus can0
echo "inside the container now:"
in_container ip -brief link show can0

say "ECU -> container: the ECU sends 123#DEADBEEF on can1"
in_container candump -L -n 1 -T 10000 can0 > /tmp/demo-in.log &
RX=$!
# candump is listening once its raw socket shows in the container's /proc.
until nsenter -t "$CPID" -n cat /proc/net/can/rcvlist_all 2>/dev/null | grep -qw can0; do sleep 0.05; done
show cansend can1 123#DEADBEEF
wait "$RX"
echo "the container's candump received: $(cut -d' ' -f2- /tmp/demo-in.log)"
grep -q 'can0 123#DEADBEEF' /tmp/demo-in.log || { echo "demo: the frame did not reach the container" >&2; exit 1; }

say "container -> ECU: the container (as nobody) sends 7DF#0201 on its can0"
candump -L -n 1 -T 10000 can1 > /tmp/demo-ecu.log &
RX=$!
until grep -qw can1 /proc/net/can/rcvlist_all 2>/dev/null; do sleep 0.05; done
show in_container cansend can0 7DF#0201
wait "$RX"
echo "the ECU's candump received: $(cut -d' ' -f2- /tmp/demo-ecu.log)"
grep -q 'can1 7DF#0201' /tmp/demo-ecu.log || { echo "demo: the frame did not reach the ECU" >&2; exit 1; }

say "The container cannot touch its interface or the gateway (no CAP_NET_ADMIN)"
if in_container ip link set can0 down 2>&1; then echo "demo: the container could reconfigure can0" >&2; exit 1; fi

say "kanto-can ls: the attachment, its gateway rules and their counters"
show "$KC" ls

say "kanto-can detach: the host end and every rule of ours are gone"
show "$KC" detach --pid "$CPID"
show "$KC" ls
echo
echo "demo: OK"
