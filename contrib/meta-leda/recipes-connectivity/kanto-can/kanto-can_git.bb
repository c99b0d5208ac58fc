# kanto-can for Eclipse Leda (meta-leda): a SKETCH, NOT TESTED.
#
# Nothing here has been built with bitbake: the project's tests run the
# binaries on Debian's kernel in a QEMU guest, not in a Yocto image. Check it
# against your Yocto release (go-mod class, network access in do_compile,
# kernel module package names) before use; see docs/leda.md.

SUMMARY = "CAN interfaces for Kanto containers: vxcan + CAN gateway, policy, daemon"
HOMEPAGE = "https://github.com/kanto-can/kanto-can"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://src/${GO_IMPORT}/LICENSE;md5=2ee41112a44fe7014dce33e26468ba93"

SRC_URI = "git://github.com/kanto-can/kanto-can.git;protocol=https;branch=main"
SRCREV = "${AUTOREV}"
PV = "0.1+git${SRCPV}"

GO_IMPORT = "github.com/kanto-can/kanto-can"
# Two binaries: kanto-can (hooks, CLI, runc wrapper: on every container
# start, kept small) and kanto-can-daemon (gRPC, Prometheus).
GO_INSTALL = "${GO_IMPORT}/cmd/kanto-can ${GO_IMPORT}/cmd/kanto-can-daemon"
# Static, as the project builds them.
export CGO_ENABLED = "0"
GO_LINKSHARED = ""
GOBUILDFLAGS:append = " -trimpath"

inherit go-mod systemd

# go-mod downloads the modules in do_compile (Yocto kirkstone and later).
do_compile[network] = "1"

SYSTEMD_SERVICE:${PN} = "kanto-can.service"
SYSTEMD_AUTO_ENABLE = "enable"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/src/${GO_IMPORT}/deploy/kanto-can.service ${D}${systemd_system_unitdir}/
    # The admin's policy (docs/policy.md); kanto-can runs without one.
    install -d ${D}${sysconfdir}/kanto-can
    install -m 0644 ${S}/src/${GO_IMPORT}/examples/policy/config.json ${D}${sysconfdir}/kanto-can/config.json.example
}

FILES:${PN} += "${systemd_system_unitdir}/kanto-can.service ${sysconfdir}/kanto-can"

# What the kernel must provide (names as in poky's kernel-module packages;
# built-in is fine too).
RRECOMMENDS:${PN} += " \
    kernel-module-can \
    kernel-module-can-raw \
    kernel-module-can-gw \
    kernel-module-vxcan \
    kernel-module-vcan \
    kernel-module-sch-ingress \
    kernel-module-cls-matchall \
    kernel-module-act-police \
"
