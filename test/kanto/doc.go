// Package kanto holds the end-to-end tests of kanto-can with real
// containers: Debian's containerd and runc, started by the tests in the
// QEMU guest, containers created the way Eclipse Kanto creates them
// (containerd namespace kanto-cm, a private network namespace made by runc,
// not privileged, no CAP_NET_ADMIN), with kanto-can's hooks from the
// manifest or only KANTO_CAN in the environment and the runc wrapper.
// Built with -tags kernel; see test/vm and internal/kerneltest/ctrtest.
package kanto
