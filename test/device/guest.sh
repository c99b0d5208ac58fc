#!/bin/bash
# The device test bed's job inside the booted guest (run by the image's
# devtest-agent.service from the host's 9p share, mounted at /run/devtest,
# once systemd says the boot has finished). Each boot is counted on the
# guest's own disk, so the count itself shows that the disk persists:
#
#   boot 1: install, as a device owner would: Kanto's container-management
#           with its own unit and config, kanto-can's package (an older
#           version: boot 2 upgrades it) with dpkg -i, can0 for
#           systemd-networkd, the container image, two manifests in Kanto's
#           deployment directory (one container asks for can0, one does
#           not); then reboot.
#   boot 2: the checks; then an upgrade to the current package, which must
#           keep the running container's attachment; then a real reboot.
#   boot 3: the same checks, and that nothing is duplicated or stale (the
#           same container, one host end, two rules); then the package's
#           removal (nothing of ours left, the CAN container fails to start
#           with a line naming kanto-can, the other runs), installing it
#           again, and purging it (no file of ours left); power off.
#
# Every check writes "ok NAME" or "FAIL NAME: why" to
# /run/devtest/results/bootN; the host's test (test/device) reads them
# after "DEVTEST boot=N done" on the console and fails on any FAIL or any
# missing check. Nothing here decides the test's result alone.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
share=/run/devtest
state=/var/lib/devtest
mkdir -p "$state" "$share/results"
n=$(( $(cat "$state/boots" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$state/boots"
sync
out="$share/results/boot$n"
: >"$out"
say() { echo "DEVTEST boot=$n $*"; }
ok() { echo "ok $1" >>"$out"; say "ok $1"; }
fail() { echo "FAIL $1: $2" >>"$out"; say "FAIL $1: $2"; }
check() { # NAME CMD...: ok if CMD succeeds, else FAIL with its output
	local name=$1 msg
	shift
	if msg=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(echo "$msg" | tail -n 5 | tr '\n' ' ')"; fi
}
finish() { # reboot|poweroff
	# What the host shows when a check failed: this boot's journal, Kanto's log.
	local d="$share/diag/boot$n"
	mkdir -p "$d"
	journalctl -b --no-pager -o short-monotonic >"$d/journal" 2>&1
	cp /var/log/container-management/container-management.log "$d/" 2>/dev/null
	kanto-cm list >"$d/kanto-cm-list" 2>&1
	say "done"
	sync
	systemctl "$1"
	exit 0
}

app=devapp # the container's name and id in its manifest
bootid=$(cat /proc/sys/kernel/random/boot_id)
# The boot is over when systemd says so (running, or degraded if a unit
# failed): awaited with systemd's own wait.
system=$(systemctl is-system-running --wait)
say "ready boot_id=$bootid system=$system"

# ---------------------------------------------------------------------------
# Installing kanto-can: its package, as make dist made it, and nothing else.
debs=$share/debs
install_kanto_can() { # previous|current
	local want
	want=$(cat "$debs/$1.version")
	dpkg -i "$debs/$1.deb" || return 1
	installed "$want" && systemctl is-active --quiet kanto-can.service ||
		{ echo "kanto-can.service: $(systemctl is-active kanto-can.service)"; return 1; }
}
installed() { # VERSION: the package is installed at that version, and its binary says so
	local st
	st=$(dpkg-query -W -f='${Status} ${Version}' kanto-can 2>&1)
	[[ $st == "install ok installed $1" ]] || { echo "dpkg: kanto-can $st, want $1"; return 1; }
	kanto-can --version | grep -qF -- "$1" || { echo "kanto-can --version: $(kanto-can --version 2>&1), want $1"; return 1; }
}

install_kanto() { # Kanto's binaries, unit and config, as Kanto's package has them
	install -m 0755 "$share/kanto/container-management" "$share/kanto/kanto-cm" /usr/bin/ &&
		install -m 0644 "$share/kanto/units/container-management.service" /lib/systemd/system/ &&
		mkdir -p /etc/container-management/containers /var/log/container-management &&
		# Kanto's shipped config, with its deployment directory turned on
		# (off by default): what an owner edits to have containers from
		# manifests.
		jq '. + {deployment: {enable: true}}' "$share/kanto/units/container-management.config.json" \
			>/etc/container-management/config.json &&
		systemctl daemon-reload &&
		systemctl enable container-management.service
}

plain=plainapp     # the container without CAN
lateapp=lateapp # boot 4: the one whose bus is optional
if [[ $n -eq 1 ]]; then
	check kanto-installed install_kanto
	check kanto-can-installed install_kanto_can previous
	# can0 brought up at boot by systemd-networkd, as devices do.
	check networkd-can0 install -D -m 0644 "$share/80-can0.network" /etc/systemd/network/80-can0.network
	# The container's image, imported as an owner without a registry would.
	check image-imported ctr -n kanto-cm images import "$share/image.tar"
	check manifests-deployed install -m 0644 "$share/$app.json" "$share/$plain.json" /etc/container-management/containers/
	finish reboot
fi

# ---------------------------------------------------------------------------
# Boots 2 and 3: the device as its owner finds it after a boot (boot 4,
# with its bus missing at boot, has checks of its own below).
boot_check() { [[ $n -eq 4 ]] || check "$@"; }
boot_check disk-persisted test -s /etc/container-management/containers/$app.json

running() {
	[[ $system == running ]] || { echo "system $system; failed units: $(systemctl list-units --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"; return 1; }
}
boot_check system-running running

active_from() { # UNIT FILE: active, enabled, loaded from FILE
	local st en fp
	st=$(systemctl is-active "$1") en=$(systemctl is-enabled "$1") fp=$(systemctl show -P FragmentPath "$1")
	[[ $st == active && $en == enabled && $fp == "$2" ]] || { echo "$1: $st, $en, from $fp"; return 1; }
}
debian_pkg() { dpkg-query -W -f='${Status} ${Version}\n' "$1" | grep -q '^install ok installed' || { echo "$1 not installed by dpkg"; return 1; }; }
boot_check containerd-debian debian_pkg containerd
boot_check containerd-active active_from containerd.service /lib/systemd/system/containerd.service
boot_check kanto-unit-is-kantos cmp /lib/systemd/system/container-management.service "$share/kanto/units/container-management.service"
boot_check kanto-active active_from container-management.service /lib/systemd/system/container-management.service
boot_check kanto-can-active active_from kanto-can.service /lib/systemd/system/kanto-can.service

caps() { # the daemon's capability sets: CAP_NET_ADMIN (12), CAP_SYS_PTRACE (19), CAP_SYS_ADMIN (21)
	local pid s bad=''
	pid=$(systemctl show -P MainPID kanto-can.service)
	[[ $pid -gt 0 ]] || { echo "no main pid"; return 1; }
	for s in CapInh CapPrm CapEff CapBnd CapAmb; do
		v=$(awk -v s="$s:" '$1 == s {print $2}' "/proc/$pid/status")
		[[ $v == 0000000000281000 ]] || bad+="$s=$v "
	done
	[[ $(awk '$1 == "NoNewPrivs:" {print $2}' "/proc/$pid/status") == 1 ]] || bad+="NoNewPrivs!=1 "
	[[ -z $bad ]] || { echo "$bad"; return 1; }
}
boot_check kanto-can-caps caps

can0_up() { # by networkd, at 500 kbit/s, up
	local setup j
	# networkd may still be configuring it when the boot is over (the
	# arm64 guest: "pending"): awaited with networkd's own wait.
	/lib/systemd/systemd-networkd-wait-online --interface=can0:carrier --timeout=120 >/dev/null 2>&1
	setup=$(networkctl list --no-legend --no-pager can0 | awk '{print $5}')
	[[ $setup == configured ]] || { echo "networkd: can0 $setup"; return 1; }
	j=$(ip -details -json link show can0)
	jq -e '.[0].linkinfo.info_data.bittiming.bitrate == 500000 and (.[0].flags | index("UP") != null)' <<<"$j" >/dev/null ||
		{ echo "can0: $j"; return 1; }
}
boot_check can0-by-networkd can0_up

# The container: started by Kanto from the deployment directory, restart
# policy always. Its entrypoint's first line says whether can0 was there;
# Kanto keeps the container's output in its json.log.
log=/var/lib/container-management/containers/$app/json.log
cmlog=/var/log/container-management/container-management.log # Kanto's own log
started() {
	# Awaited (tail -F follows the file, also before it exists): the
	# entrypoint's line of this boot, once Kanto's deployment has created
	# and started the container.
	grep -m1 -q "devtest start boot=$bootid" < <(timeout 180 tail -F -n +1 "$log" 2>/dev/null) ||
		{ echo "no start line of this boot in $log: $(tail -n 3 "$log" 2>&1); kanto-cm: $(kanto-cm list 2>&1)"; return 1; }
}
boot_check container-started started
policy() {
	local p
	p=$(kanto-cm get -n "$app" | jq -r '.host_config.restart_policy.type')
	[[ $p == always ]] || { echo "restart policy $p"; return 1; }
}
boot_check restart-policy-always policy
before() { # can0 there before the entrypoint ran, and one start this boot
	local starts
	if grep -q 'can0=missing' "$log"; then echo "an entrypoint ran without can0: $(grep can0=missing "$log" | head -n1)"; return 1; fi
	starts=$(grep -c "devtest start boot=$bootid can0=present" "$log")
	[[ $starts -eq 1 ]] || { echo "$starts starts this boot, want 1"; return 1; }
}
boot_check can0-before-entrypoint before
ready() { grep -m1 -q '"log":"ready' < <(timeout 60 tail -F -n +1 "$log" 2>/dev/null); }
boot_check app-ready ready

frames() { # the ECU on can1 asks, the container's app answers (id+1)
	local dump got
	ip link set can1 type can bitrate 500000 && ip link set can1 up || return 1
	dump=$(mktemp)
	candump -L -n 1 -T 20000 can1,124:7FF >"$dump" 2>&1 &
	local pid=$!
	# candump's filter is in the kernel's receive list once it listens.
	# (the kernel prints a standard id with three digits)
	for _ in $(seq 200); do grep -Eq '^ +can1 +124 ' /proc/net/can/rcvlist_fil 2>/dev/null && break; sleep 0.05; done
	cansend can1 123#11223344
	wait "$pid"
	got=$(cat "$dump")
	ip link set can1 down
	[[ $got == *"can1 124#11223344"* ]] || { echo "ECU got: '$got'"; return 1; }
}
boot_check frames-both-ways frames

rules() { # exactly one attachment: one host end, two gateway rules (classic bus), one record
	local r h a
	r=$(cangw -L 2>/dev/null | grep -c -- '-s can0\|-d can0')
	h=$(ip -o link show type vxcan | grep -c ' kcan')
	a=$(kanto-can ls -o json | jq 'if type == "array" then length else (.attachments | length) end')
	[[ $r -eq 2 && $h -eq 1 && $a -eq 1 ]] || { echo "rules on can0 $r (want 2), host ends $h (want 1), attachments $a (want 1)"; cangw -L; ip -o link show type vxcan; return 1; }
}
boot_check one-attachment rules
one_container() {
	local c
	# By the Name column: the other containers' image is named devapp too.
	c=$(kanto-cm list 2>/dev/null | awk -F'|' -v n="$app" '{gsub(/[ \t]/, "", $2)} $2 == n' | wc -l)
	[[ $c -eq 1 ]] || { echo "$c containers named $app"; kanto-cm list; return 1; }
}
boot_check one-container one_container
quiet_daemon() { # no warning but the one for a device without a policy file
	local w
	w=$(journalctl -b -u kanto-can.service -o cat --no-pager | grep -E 'level=(WARN|ERROR)' | grep -v 'level=WARN msg="policy: none: ')
	[[ -z $w ]] || { echo "$w"; return 1; }
}
boot_check daemon-no-warnings quiet_daemon

plain_running() { # the container without CAN runs (its pid: stdout)
	local c
	c=$(kanto-cm get -n "$plain" 2>&1) || { echo "$c"; return 1; }
	jq -e '.state.status == 2 and .state.pid > 0' <<<"$c" >/dev/null || { echo "$plain: $(jq -c .state <<<"$c")"; return 1; }
	jq -r .state.pid <<<"$c"
}
boot_check plain-running plain_running

created=$(kanto-cm get -n "$app" 2>/dev/null | jq -r '.created // empty')
app_pid() { kanto-cm get -n "$app" 2>/dev/null | jq -r '.state.pid // empty'; }
host_end() { ip -o link show type vxcan | awk '/ kcan/ {sub(":", "", $1); print $1 "/" $2}'; }

if [[ $n -eq 2 ]]; then
	echo "$created" >"$state/container-created"
	check package-is-previous installed "$(cat "$debs/previous.version")"
	# The upgrade, as an owner's apt or dpkg does it: the daemon restarts,
	# the running container keeps its interface and its rules, untouched.
	upgrade() {
		local end0 rules0 pid0 app0 end1 rules1 pid1 app1
		end0=$(host_end) rules0=$(cangw -L | sort) pid0=$(systemctl show -P MainPID kanto-can.service) app0=$(app_pid)
		install_kanto_can current || return 1
		end1=$(host_end) rules1=$(cangw -L | sort) pid1=$(systemctl show -P MainPID kanto-can.service) app1=$(app_pid)
		[[ -n $end0 && $end1 == "$end0" ]] || { echo "host end (ifindex/name) $end0 before, $end1 after"; return 1; }
		[[ $rules1 == "$rules0" ]] || { echo "rules before: $rules0; after: $rules1"; return 1; }
		[[ $pid1 -gt 0 && $pid1 != "$pid0" ]] || { echo "daemon pid $pid0 before, $pid1 after: not restarted"; return 1; }
		[[ -n $app0 && $app1 == "$app0" ]] || { echo "the container's pid $app0 before, $app1 after"; return 1; }
	}
	check upgrade-keeps-attachment upgrade
	check frames-after-upgrade frames
	finish reboot
fi
# ---------------------------------------------------------------------------
# Boot 4: the bus appears after Kanto started its containers.
if [[ $n -eq 4 ]]; then
	check late-kanto-can-active active_from kanto-can.service /lib/systemd/system/kanto-can.service
	late_absent() { ! ip link show can0 >/dev/null 2>&1 || { echo "can0 is there at boot: the blacklist did not hold"; return 1; }; }
	check late-bus-absent late_absent
	# The required bus: the start fails with kanto-can's line in Kanto's log.
	required_fails() {
		grep -m1 -q 'host bus can0 does not exist' < <(timeout 180 tail -F -n "+$(($(cat "$state/cmlines") + 1))" "$cmlog" 2>/dev/null) ||
			{ echo "no line naming the missing bus in Kanto's log: $(tail -n 3 "$cmlog")"; return 1; }
	}
	check late-required-fails-clearly required_fails
	# The optional one: started, with its interface, before the bus exists.
	latelog=/var/lib/container-management/containers/$lateapp/json.log
	opt_started() {
		grep -m1 -q "devtest start boot=$bootid can0=present" < <(timeout 180 tail -F -n +1 "$latelog" 2>/dev/null) ||
			{ echo "no start line with can0 this boot in $latelog: $(tail -n 3 "$latelog" 2>&1)"; return 1; }
	}
	check late-optional-started opt_started
	# The driver, late; networkd configures can0 when it appears, the daemon
	# routes the optional bus (awaited in its journal).
	mark=$(date '+%Y-%m-%d %H:%M:%S')
	check late-module-loaded modprobe kvaser_pci
	routed() {
		grep -m1 -q 'msg=reconciled.*restored=kcan' < <(timeout 120 journalctl -f -u kanto-can.service -o cat --since "$mark" 2>/dev/null) ||
			{ echo "the daemon did not route can0: $(journalctl -u kanto-can.service -o cat --since "$mark" | tail -n 3)"; return 1; }
		# networkd's configuration of the new can0 (bitrate, up), awaited
		# as at boot.
		can0_up
	}
	check late-optional-routed routed
	check late-optional-frames-both-ways frames
	# Kanto does not retry a start whose hook failed: the required one
	# stays down until its owner starts it, and then has can0.
	req_down() { [[ $(kanto-cm get -n "$app" | jq -r '.state.status') != 2 ]] || { echo "$app runs"; return 1; }; }
	check late-required-stays-down req_down
	req_start() {
		kanto-cm start -n "$app" >/dev/null || return 1
		grep -m1 -q "devtest start boot=$bootid can0=present" < <(timeout 120 tail -F -n +1 "$log" 2>/dev/null) ||
			{ echo "no start with can0: $(tail -n 3 "$log")"; return 1; }
	}
	check late-required-started-by-owner req_start
	finish poweroff
fi

# The container Kanto started again, not one made anew from the manifest.
same() { [[ -n $created && $(cat "$state/container-created") == "$created" ]] || { echo "container created $created, was $(cat "$state/container-created")"; return 1; }; }
check same-container-after-reboot same
check package-is-current installed "$(cat "$debs/current.version")"

# ---------------------------------------------------------------------------
# Boot 3, then: removal, installing again, purge.
nothing_in_kernel() { # no host end, rule or record of ours
	local h r f
	h=$(ip -o link show type vxcan | grep ' kcan')
	r=$(cangw -L 2>/dev/null | grep -- '-s can0\|-d can0')
	f=$(find /run/kanto-can -type f ! -name '.*' 2>/dev/null)
	[[ -z $h && -z $r && -z $f ]] || { echo "left: links [$h] rules [$r] records [$f]"; return 1; }
}
plain0=$(plain_running)
cmlines=$(wc -l <"$cmlog")
check removed dpkg -r kanto-can
unit_gone() {
	local st
	st=$(systemctl is-active kanto-can.service)
	[[ $st == inactive ]] || { echo "kanto-can.service $st"; return 1; }
	[[ ! -e /usr/bin/kanto-can ]] || { echo "/usr/bin/kanto-can is still there"; return 1; }
}
check removed-unit-stopped unit_gone
check removed-nothing-in-kernel nothing_in_kernel
# The app lost can0 and exits; Kanto's restart policy starts it again and
# the start fails with a line that says why: runc cannot run the
# manifest's hook (the binary is gone), or, if the restart came while the
# package was going, the hook refused (prerm's hold).
hook_fails() {
	local line
	line=$(grep -m1 -E 'kanto-can: no such file or directory|kanto-can package is being removed' \
		< <(timeout 120 tail -F -n "+$((cmlines + 1))" "$cmlog" 2>/dev/null)) ||
		{ echo "no failed start naming kanto-can in Kanto's log: $(tail -n 3 "$cmlog")"; return 1; }
	echo "$line" >"$share/diag/removed-start-line"
	# Kanto does not retry a start whose hook failed: the container stays
	# down (Kanto's state follows its log line: polled, there is no event).
	local st i
	for i in $(seq 120); do
		st=$(kanto-cm get -n "$app" 2>/dev/null | jq -r '.state.status')
		[[ $st == 2 ]] || return 0
		sleep 0.5
	done
	echo "$app still running (status $st) after its failed start"
	return 1
}
mkdir -p "$share/diag"
check removed-can-container-fails-clearly hook_fails
plain_same() { local p; p=$(plain_running) || return 1; [[ $p == "$plain0" ]] || { echo "$plain: pid $plain0 before, $p after"; return 1; }; }
check removed-others-run plain_same

# Installing again, without a reboot: the owner starts the container again
# (Kanto does not retry a start whose hook failed).
check reinstalled install_kanto_can current
restarted() {
	# From the log's end before the start: kanto-cm start returns once the
	# task runs, and the app may be ready by then.
	local from
	from=$(($(wc -l <"$log") + 1))
	kanto-cm start -n "$app" >/dev/null || return 1
	grep -m1 -q '"log":"ready' < <(timeout 120 tail -F -n "+$from" "$log" 2>/dev/null) || { echo "the app did not start again: $(tail -n 3 "$log")"; return 1; }
	local starts
	starts=$(grep -c "devtest start boot=$bootid can0=present" "$log")
	[[ $starts -eq 2 ]] || { echo "$starts starts with can0 this boot, want 2"; return 1; }
}
check reinstalled-container-starts restarted
check reinstalled-frames-both-ways frames
check reinstalled-one-attachment rules

# Purge: nothing of the package's left, in the kernel or on the disk.
dpkg-query -L kanto-can >"$state/files" 2>/dev/null
check purged dpkg --purge kanto-can
check purged-nothing-in-kernel nothing_in_kernel
no_files() {
	local left='' f
	while read -r f; do
		# Directories others share (/usr/bin, /etc) stay; ours must go.
		if [[ -e $f && ( ! -d $f || $f == *kanto-can* ) ]]; then left+="$f "; fi
	done <"$state/files"
	for f in /run/kanto-can /etc/kanto-can /etc/systemd/system/multi-user.target.wants/kanto-can.service \
		/var/lib/systemd/deb-systemd-helper-enabled/kanto-can.service.dsh-also; do
		[[ ! -e $f ]] || left+="$f "
	done
	[[ $(wc -l <"$state/files") -gt 5 ]] || { echo "dpkg listed $(wc -l <"$state/files") files: not the package's list"; return 1; }
	[[ -z $(dpkg-query -W -f='${Status}' kanto-can 2>/dev/null | grep -v 'not-installed') ]] || { echo "dpkg: $(dpkg-query -W -f='${Status}' kanto-can)"; return 1; }
	[[ -z $left ]] || { echo "left: $left"; return 1; }
}
check purged-no-files no_files
check purged-others-run plain_same

# Boot order, for boot 4: the bus's driver loaded late (after Kanto started
# its containers), as when a controller's module is not autoloaded. The
# package installed once more; a second CAN container, whose bus is
# optional, in the deployment directory.
late_setup() {
	install_kanto_can current &&
		echo "blacklist kvaser_pci" >/etc/modprobe.d/devtest-late-bus.conf &&
		install -m 0644 "$share/$lateapp.json" /etc/container-management/containers/ &&
		wc -l <"$cmlog" >"$state/cmlines"
}
check late-setup late_setup
finish reboot
