# kanto-can build and test entry points.
#
#   make build          static kanto-can, kanto-can-daemon and kanto-can-cni binaries in out/bin/
#   make dist           release artifacts in out/dist/: per architecture (amd64, arm64,
#                       armv7) a tarball and a Debian package, and SHA256SUMS (docs/install.md)
#   make setup          host packages + guest kernel(s) for the test VM (root)
#   make unit           vet + unit tests on the host, with the race detector
#   make unit-arm       the unit tests built for arm64 and arm (GOARM=7), run on
#                       the host by qemu-user-static (no binfmt_misc needed)
#   make kernel-tests   tests tagged "kernel", run in a QEMU guest (test/vm/)
#   make kernel-tests-arm64  the core kernel tests (ARM64_PKGS) built for arm64,
#                       run in an arm64 guest (KERNEL=6.1-arm64)
#   make test           unit, unit-arm, then the kernel matrix: every kernel test on 6.1,
#                       on 6.12 all but the slow packages (MATRIX_SKIP_PKGS), and
#                       ARM64_PKGS on 6.1-arm64;
#                       with KERNEL=NAME: unit, unit-arm, then every kernel test on NAME
#                       (ARM64_PKGS on an arm64 NAME)
#   make demo           the end-to-end demo in the guest (package demo)
#   make bench          benchmarks in the guest (test/bench), figures printed
#   make soak           the daemon soak test, SOAK_CYCLES (1000) container starts
#   make setup-device   the device test bed's disk image for DEVICE_ARCH (amd64):
#                       Debian 12 with systemd, containerd, runc, built from
#                       Debian's packages, configured by its own first boot,
#                       cached in .cache/device/ARCH/ (test/device/build-image.sh)
#   make device-test    the device test bed (test/device): that image booted
#                       with systemd as PID 1 through a fresh copy-on-write
#                       overlay; kanto-can, Kanto's container-management and a
#                       CAN container installed as an owner would, checked
#                       after a boot and again after a real reboot; opt-in:
#                       its image build and boots (about 25 min on 2 cores
#                       under load) do not fit CI's budget beside the kernel
#                       matrix; make test DEVICE_TEST=1 runs it last
#
# Kernel tests: KERNEL_PKGS=./internal/foo limits the packages,
# KERNEL_SKIP_PKGS='./test/kanto ./test/bench' leaves some out, KERNEL_TEST_DIR
# moves the test binaries (for parallel runs),
# KERNEL_TEST_FLAGS='-test.run=TestX' is passed to every test binary.
# KERNEL=6.1|6.1-rt|6.12 picks the guest kernel (Debian's; default 6.1) for
# kernel-tests, demo, bench and soak, and makes make test run one kernel.
# KERNEL=6.1-arm64 is an arm64 guest: build and kernel-tests then build for
# arm64 (GOARCH=arm64) into out/arm64/.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO ?= go
OUT := out
BIN := $(OUT)/bin/kanto-can
KERNEL_TEST_DIR ?= $(OUT)/kernel-tests
# Eclipse Kanto's container-management and kanto-cm, unpacked by make setup.
KANTO_DIR := .cache/kanto
# Kubernetes' kubelet (make setup unpacks it), for test/cni's real-kubelet tests.
KUBELET := .cache/k8s/kubelet
# Packages with *_test.go files behind the "kernel" build tag (all by default).
KERNEL_PKGS ?= ./...
KERNEL_SKIP_PKGS ?=
export KERNEL_TEST_FLAGS

# The guest kernel (test/vm/run.sh --kernel). make test without KERNEL runs
# the matrix: 6.1 with every kernel package, then MATRIX_KERNEL without
# MATRIX_SKIP_PKGS (real containers and Kanto, benchmarks: the slow ones).
ifeq ($(origin KERNEL),undefined)
TEST_MATRIX := 1
endif
KERNEL ?= 6.1
MATRIX_KERNEL ?= 6.12
MATRIX_SKIP_PKGS ?= ./test/kanto ./test/bench ./test/cni ./test/podman ./test/docker
# The arm64 guest of the matrix and what runs there: the packages' own
# kernel tests and test/e2e (the CLI, the hook, the daemon), which need no
# container engine; the engines, Kanto, systemd and the benchmarks are not
# in its root (docs/testing.md).
ARM64_KERNEL ?= 6.1-arm64
ARM64_PKGS ?= ./cangw ./canlink ./vxcan ./internal/ratelimit ./internal/kerneltest ./test/e2e
# What make setup fetches: the kernels make test will use.
SETUP_KERNELS ?= $(if $(TEST_MATRIX),6.1 $(MATRIX_KERNEL) $(ARM64_KERNEL),$(KERNEL))

# An arm64 guest runs arm64 binaries: built with GOARCH=arm64 (by build and
# kernel-tests, and what they build first) into a tree of their own. Its
# test binaries are vetted and built with -trimpath, as make unit-arm built
# the packages for arm64 before: on a fresh machine that halves their build.
KERNEL_TEST_BUILDFLAGS :=
ifneq ($(filter %-arm64,$(KERNEL)),)
OUT := out/arm64
BIN := $(OUT)/bin/kanto-can
KERNEL_TEST_BUILDFLAGS := -trimpath
build kernel-tests: export GOARCH := arm64
endif

# The guest's time limit for kernel-tests (seconds).
KERNEL_TEST_TIMEOUT ?= 1800

# The device test bed's architecture: amd64 or arm64.
DEVICE_ARCH ?= amd64

.PHONY: build dist setup setup-device device-test unit unit-arm kernel-tests kernel-tests-arm64 test demo bench soak

# One guest run of every kernel test binary in $(KERNEL_TEST_DIR).
KERNEL_TESTS_IN_GUEST = test/vm/run.sh --kernel $(KERNEL) --timeout $(KERNEL_TEST_TIMEOUT) --env KANTO_CAN_BIN=$(abspath $(BIN)) --env KANTO_CAN_GUEST=1 \
		--env KANTO_CAN_KANTO=$(abspath $(KANTO_DIR)) $(if $(SOAK_CYCLES),--env KANTO_CAN_SOAK_CYCLES=$(SOAK_CYCLES)) \
		--env KANTO_CAN_CANAPP=$(abspath $(OUT)/bin/canapp) --env KANTO_CAN_FAULT_BIN=$(abspath $(OUT)/fault/kanto-can) \
		--env KANTO_CAN_CANWIRE=$(abspath $(OUT)/bin/canwire) --env KANTO_CAN_CNI=$(abspath $(OUT)/bin/kanto-can-cni) \
		--env KANTO_CAN_KUBELET=$(abspath $(KUBELET)) \
		$(if $(KERNEL_TEST_FLAGS),--env KERNEL_TEST_FLAGS='$(KERNEL_TEST_FLAGS)') \
		-- test/vm/run-kernel-tests.sh $(KERNEL_TEST_DIR)

# The version the three binaries report (kanto-can --version,
# kanto-can-daemon --version, kanto-can-cni --version, CANManager): the
# release's, from git (tools/dist, docs/install.md), worked out once and
# only when a recipe needs it.
VERSION ?= $(eval VERSION := $$(shell cd tools/dist && $(GO) run . version 2>/dev/null || echo devel))$(VERSION)
LDFLAGS := -X github.com/kanto-can/kanto-can/internal/version.built=$(VERSION)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kanto-can
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT)/bin/kanto-can-daemon ./cmd/kanto-can-daemon
	# The CNI plugin, installed as kanto-can-cni in the CNI bin dir.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT)/bin/kanto-can-cni ./cmd/kanto-can-cni

# Release artifacts (tools/dist, a module of its own): reproducible, the
# version and every time from the commit.
dist:
	cd tools/dist && $(GO) run . -src $(CURDIR) -out $(abspath $(OUT)/dist)

setup:
	test/vm/setup-host.sh $(SETUP_KERNELS)

# Host tests with the race detector (it needs cgo: gcc, from make setup).
# The library example is a module of its own: it must build against the
# public packages (cangw, canlink, vxcan, nl) from outside. tools/dist's
# tests build the release artifacts twice (identical bytes), run lintian
# and check the packages; the first build on a fresh machine compiles
# everything for arm64 and arm, hence the timeout.
unit:
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race ./...
	cd examples/library && $(GO) vet ./... && CGO_ENABLED=0 $(GO) build -o /dev/null .
	cd tools/dist && $(GO) vet ./... && $(GO) test -timeout 30m ./...

# The same host tests cross-built for a 64-bit and a 32-bit ARM device, each
# test binary run by Debian's qemu-user-static invoked directly (go test
# -exec: no binfmt_misc). Without cgo, so without the race detector; vetted
# by unit (-vet=off: it would vet each package twice more). They catch
# what amd64 hides, such as an int that is 32 bits wide. -trimpath, as
# make dist builds: the two share the packages compiled per architecture.
unit-arm:
	GOARCH=arm64 CGO_ENABLED=0 $(GO) test -trimpath -vet=off -exec qemu-aarch64-static ./...
	GOARCH=arm GOARM=7 CGO_ENABLED=0 $(GO) test -trimpath -vet=off -exec qemu-arm-static ./...

# Build one test binary per package that has kernel-tagged test files, each
# with a .dir file naming its source directory (the tests' working directory),
# then run them all in one VM boot.
kernel-tests: build
	rm -rf $(KERNEL_TEST_DIR)
	mkdir -p $(KERNEL_TEST_DIR)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(OUT)/bin/canapp ./test/canapp
	# The library example, a module of its own (test/e2e runs it).
	cd examples/library && CGO_ENABLED=0 $(GO) build -trimpath -o $(abspath $(OUT)/bin/canwire) .
	# kanto-can with fault points armed (package internal/fault), for tests
	# that kill it half way.
	CGO_ENABLED=0 $(GO) build -trimpath -tags faultinject -o $(OUT)/fault/kanto-can ./cmd/kanto-can
	@n=0; skip=" $(if $(strip $(KERNEL_SKIP_PKGS)),$$($(GO) list -tags kernel $(KERNEL_SKIP_PKGS) | tr '\n' ' ')) "; \
	while read -r pkg dir files; do \
		if [[ $$skip == *" $$pkg "* ]]; then echo "kernel tests left out: $$pkg"; continue; fi; \
		for f in $$files; do \
			if grep -qE '^//go:build .*\bkernel\b' "$$dir/$$f"; then \
				name=$$(echo "$$pkg" | sed 's|^github.com/kanto-can/kanto-can/||; s|[/.]|_|g'); \
				echo "build kernel tests: $$pkg"; \
				$(GO) vet $(KERNEL_TEST_BUILDFLAGS) -tags kernel "$$pkg"; \
				CGO_ENABLED=0 $(GO) test -c $(KERNEL_TEST_BUILDFLAGS) -tags kernel -o "$(KERNEL_TEST_DIR)/$$name.test" "$$pkg"; \
				echo "$$dir" >"$(KERNEL_TEST_DIR)/$$name.dir"; \
				n=$$((n + 1)); \
				break; \
			fi; \
		done; \
	done < <($(GO) list -tags kernel -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' $(KERNEL_PKGS)); \
	[[ $$n -gt 0 ]] || { echo "no package has kernel-tagged tests"; exit 1; }
	$(KERNEL_TESTS_IN_GUEST) || { rc=$$?; [[ $$rc -eq 126 ]] || exit $$rc; \
		echo "kernel-tests: the guest hung or trapped (an emulation fault, see above): running the suite once more"; \
		$(KERNEL_TESTS_IN_GUEST); }

# The core kernel tests in the arm64 guest (make setup KERNEL=6.1-arm64
# first). Narrow it with ARM64_PKGS=./vxcan.
kernel-tests-arm64:
	$(MAKE) kernel-tests KERNEL=$(ARM64_KERNEL) KERNEL_PKGS='$(ARM64_PKGS)'

# make test DEVICE_TEST=1 also runs the device test bed (opt-in: time).
DEVICE_TEST ?=

test: setup $(if $(DEVICE_TEST),setup-device)
	$(MAKE) unit
	$(MAKE) unit-arm
ifdef TEST_MATRIX
	$(MAKE) kernel-tests KERNEL=6.1
	$(MAKE) kernel-tests KERNEL=$(MATRIX_KERNEL) KERNEL_SKIP_PKGS='$(MATRIX_SKIP_PKGS)'
	$(MAKE) kernel-tests-arm64
else
	$(MAKE) kernel-tests $(if $(filter %-arm64,$(KERNEL)),KERNEL_PKGS='$(ARM64_PKGS)')
endif
ifneq ($(DEVICE_TEST),)
	$(MAKE) device-test
endif

# The image needs Debian's 6.1 (its kernel and modules) whatever KERNEL is.
setup-device:
	test/vm/setup-host.sh 6.1
	test/device/build-image.sh $(DEVICE_ARCH)

# A Go test on the host (build tag device) that drives the guest: see
# test/device/device_test.go and docs/testing.md. What the owner installs
# is the package make dist makes, for the guest's architecture; the bed
# also upgrades to it from the same tree packaged as an older version
# (DEVICE_PREVIOUS_VERSION: what dpkg's upgrade path does, not what
# changed between two releases).
DEVICE_PREVIOUS_VERSION ?= 0.0.0~git19700101000000.0000000
DEVICE_OUT = $(OUT)/device/$(DEVICE_ARCH)
device-test: setup-device
	rm -rf $(DEVICE_OUT)/debs
	cd tools/dist && $(GO) run . -src $(CURDIR) -out $(abspath $(DEVICE_OUT)/debs/current) -arch $(DEVICE_ARCH) >/dev/null
	cd tools/dist && $(GO) run . -src $(CURDIR) -out $(abspath $(DEVICE_OUT)/debs/previous) -arch $(DEVICE_ARCH) -version '$(DEVICE_PREVIOUS_VERSION)' >/dev/null
	GOARCH=$(DEVICE_ARCH) CGO_ENABLED=0 $(GO) build -trimpath -o $(DEVICE_OUT)/canapp ./test/canapp
	$(GO) vet -tags device ./test/device
	CGO_ENABLED=0 $(GO) test -c -tags device -o $(OUT)/device/device.test ./test/device
	cd test/device && DEVTEST_ARCH=$(DEVICE_ARCH) DEVTEST_OUT=$(abspath $(DEVICE_OUT)) KANTO_CAN_KANTO=$(abspath $(KANTO_DIR)) \
		$(abspath $(OUT)/device/device.test) -test.v -test.timeout 100m

# The demo is a kernel-tagged Go test (package demo), so `make test` runs it too.
demo: setup build
	CGO_ENABLED=0 $(GO) build -trimpath -o $(OUT)/bin/canapp ./test/canapp
	CGO_ENABLED=0 $(GO) test -c -tags kernel -o $(OUT)/demo.test ./demo
	cd demo && ../test/vm/run.sh --kernel $(KERNEL) --kvaser 2 --env KANTO_CAN_BIN=$(abspath $(BIN)) --env KANTO_CAN_GUEST=1 --env KANTO_CAN_KANTO=$(abspath $(KANTO_DIR)) \
		--env KANTO_CAN_CANAPP=$(abspath $(OUT)/bin/canapp) -- $(abspath $(OUT)/demo.test) -test.run '^TestDemo$$'

# One guest run: the benchmark binary plus a no-op Go binary (the floor).
# BENCH_TIME and BENCH_TIME_CONTAINERS set the iterations per measurement;
# BENCH=REGEXP runs only the benchmarks whose names match (make bench
# BENCH=BenchmarkBusReappear).
BENCH_TIME ?= 60x
# Container starts are slower: fewer iterations for BenchmarkContainerStart.
BENCH_TIME_CONTAINERS ?= 15x
bench: setup build
	mkdir -p $(OUT)/bench
	CGO_ENABLED=0 $(GO) build -o $(OUT)/bench/noop ./test/bench/noop
	CGO_ENABLED=0 $(GO) build -trimpath -o $(OUT)/bin/canapp ./test/canapp
	CGO_ENABLED=0 $(GO) test -c -tags kernel -o $(OUT)/bench/bench.test ./test/bench
	echo "$(abspath test/bench)" >$(OUT)/bench/bench.dir
	test/vm/run.sh --kernel $(KERNEL) --timeout 1800 --env KANTO_CAN_BIN=$(abspath $(BIN)) --env KANTO_CAN_GUEST=1 --env KANTO_CAN_KANTO=$(abspath $(KANTO_DIR)) \
		--env KANTO_CAN_NOOP_BIN=$(abspath $(OUT)/bench/noop) --env KANTO_CAN_CANAPP=$(abspath $(OUT)/bin/canapp) \
		--env KANTO_CAN_CNI=$(abspath $(OUT)/bin/kanto-can-cni) --env KANTO_CAN_CANNELLONI=$(abspath .cache/peers/cannelloni) \
		--env KANTO_CAN_KUBELET=$(abspath $(KUBELET)) \
		$(if $(BENCH),--env BENCH='$(BENCH)') \
		-- test/bench/run-in-guest.sh $(abspath $(OUT)/bench/bench.test) $(BENCH_TIME) $(BENCH_TIME_CONTAINERS)

# TestDaemonSoak with SOAK_CYCLES container start/stop cycles (the suite runs
# 30): nothing of ours left, the daemon's goroutines and memory flat.
SOAK_CYCLES ?=
soak: setup
	$(MAKE) kernel-tests KERNEL_PKGS=./test/kanto KERNEL_TEST_FLAGS='-test.run=^TestDaemonSoak -test.v -test.timeout=2h' \
		SOAK_CYCLES=$(or $(SOAK_CYCLES),1000) KERNEL_TEST_TIMEOUT=7200
