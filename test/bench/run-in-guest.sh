#!/bin/bash
# Runs the benchmark binary inside the test guest (see `make bench`):
# attach figures with BENCHTIME iterations, container starts with
# CONTAINER_BENCHTIME (each takes seconds under emulation).
set -euo pipefail
bin=$1 benchtime=$2 container_benchtime=$3
cd "$(dirname "${BASH_SOURCE[0]}")"
echo "kernel $(uname -r), $(nproc) CPUs, emulated (TCG): quote ratios, not absolute times"
"$bin" -test.run '^$' -test.bench '^BenchmarkAttach$' -test.benchtime "$benchtime"
"$bin" -test.run '^$' -test.bench '^BenchmarkContainerStart$' -test.benchtime "$container_benchtime"
"$bin" -test.run '^$' -test.bench '^BenchmarkFilters$' -test.benchtime 5x
