#!/usr/bin/env bash
# Run Go kernel test binaries; meant to run INSIDE the test VM (test/vm/run.sh).
#
#   test/vm/run-kernel-tests.sh DIR
#
# DIR holds <name>.test binaries (go test -c -tags kernel) and, for each, <name>.dir
# with the package's source directory: the binary runs there, as under go test.
# Extra flags for every binary come from $KERNEL_TEST_FLAGS (e.g. -test.run=Foo).
# Ends with one line "kernel: N passed, M failed[, K skipped]" counting top-level
# tests, after one naming the kernel and the time taken. Fails if a binary
# fails or if no test passed at all.
set -uo pipefail

dir=${1:?usage: run-kernel-tests.sh DIR}
dir=$(cd "$dir" && pwd) || exit 2
shopt -s nullglob
bins=("$dir"/*.test)
if [[ ${#bins[@]} -eq 0 ]]; then
	echo "kernel: no *.test binaries in $dir"
	echo "kernel: 0 passed, 0 failed"
	exit 1
fi

# shellcheck disable=SC2206 # word splitting of the flags is intended
extra=(${KERNEL_TEST_FLAGS:-})
pass=0 fail=0 skip=0 bad=0
results=()
for bin in "${bins[@]}"; do
	name=$(basename "$bin" .test)
	src=$dir/$name.dir
	if [[ ! -s $src ]] || ! pkgdir=$(<"$src") || [[ ! -d $pkgdir ]]; then
		results+=("FAIL  $name (no usable $name.dir)")
		bad=$((bad + 1))
		continue
	fi
	echo "=== kernel: $name (in $pkgdir)"
	log=$(mktemp)
	# Stream the output live and keep a copy to count results. 20 minutes a
	# binary: test/kanto (containers, the daemon's soak, the real Kanto)
	# takes about 10 under emulation, more on a loaded machine.
	(cd "$pkgdir" && "$bin" -test.v -test.timeout 20m "${extra[@]}") 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# Top-level results only: subtests are indented.
	p=$(grep -c '^--- PASS: ' "$log")
	f=$(grep -c '^--- FAIL: ' "$log")
	s=$(grep -c '^--- SKIP: ' "$log")
	rm -f "$log"
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	if [[ $rc -ne 0 ]]; then
		results+=("FAIL  $name (exit $rc; $p passed, $f failed, $s skipped)")
		bad=$((bad + 1))
	else
		results+=("ok    $name ($p passed, $s skipped)")
	fi
done

echo
echo "kernel test binaries on ${KANTO_CAN_KERNEL:-this kernel} ($(uname -r)), ${SECONDS}s:"
printf '  %s\n' "${results[@]}"
[[ $pass -gt 0 ]] || echo "  no test passed (ran no test?): that is a failure"
summary="kernel: $pass passed, $fail failed"
[[ $skip -eq 0 ]] || summary+=", $skip skipped"
# The closing line, last of all.
echo "$summary"
[[ $bad -eq 0 && $pass -gt 0 ]]
