// Package podman holds the end-to-end tests of kanto-can with Debian's
// podman 4.3, rootful, in the QEMU guest: kanto-can's OCI hooks.d entries
// (deploy/podman) in podman's hooks directory, containers asking for CAN
// with the annotation io.kanto-can.buses or KANTO_CAN, frames both ways
// with the emulated ECU, nothing left after removal, bad requests failing
// `podman run` with kanto-can's line. Built with -tags kernel; see
// internal/kerneltest/enginetest.
package podman
