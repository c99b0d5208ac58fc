#!/bin/bash
# Runs the benchmark binary inside the test guest (see `make bench`).
set -euo pipefail
bin=$1 benchtime=$2
cd "$(dirname "${BASH_SOURCE[0]}")"
echo "kernel $(uname -r), $(nproc) CPUs, emulated (TCG): quote ratios, not absolute times"
exec "$bin" -test.run '^$' -test.bench . -test.benchtime "$benchtime"
