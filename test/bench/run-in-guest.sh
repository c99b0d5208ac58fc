#!/bin/bash
# Runs the benchmark binary inside the test guest (see `make bench`):
# attach figures with BENCHTIME iterations, container starts with
# CONTAINER_BENCHTIME (each takes seconds under emulation). $BENCH, a
# regular expression, picks benchmarks by name (default: all of them).
set -euo pipefail
bin=$1 benchtime=$2 container_benchtime=$3
cd "$(dirname "${BASH_SOURCE[0]}")"
echo "kernel $(uname -r), $(nproc) CPUs, emulated (TCG): quote ratios, not absolute times"
bench() { # NAME BENCHTIME
	[[ $1 =~ ${BENCH:-.} ]] || return 0
	"$bin" -test.run '^$' -test.bench "^$1\$" -test.benchtime "$2"
}
bench BenchmarkAttach "$benchtime"
bench BenchmarkContainerStart "$container_benchtime"
bench BenchmarkKantoStart "$container_benchtime"
# Pod sandboxes through containerd's CRI, with and without kanto-can-cni.
bench BenchmarkPodSandbox "$container_benchtime"
# Static pods by a real kubelet, with and without kanto-can-cni.
bench BenchmarkStaticPod "$container_benchtime"
bench BenchmarkFilters 5x
bench BenchmarkTopReading 20x
# kanto-can-daemon: 10 bus returns per N (1, 10, 100 attachments); one storm
# of 100 container starts and stops.
bench BenchmarkBusReappear 10x
bench BenchmarkDaemonResources 1x
# Bridge mode against the vxcan path and cannelloni (over UDP, built by make
# setup): latency, lossless rates and CPU, 1 and 10 containers.
bench BenchmarkBridge 1x
# Bridge mode: kanto-can-daemon killed and started again under a stream of
# 500 frames/s: restore time, outage, frames lost.
bench BenchmarkBridgeDaemonRestart 5x
# The way to the fleet with Kanto's suite-connector and a hub broker: 10 Kanto
# containers, command round trips, bytes per message, idle traffic.
bench BenchmarkFleetPath 1x
