// Package docker holds the end-to-end tests of kanto-can with Debian's
// Docker 20.10 in the QEMU guest: kanto-can as a runtime of dockerd
// (daemon.json "runtimes", the runc wrapper), containers asking for CAN
// with KANTO_CAN, frames both ways with the emulated ECU, nothing left
// after removal, default-runtime containers untouched, bad requests
// failing `docker run` with kanto-can's line. Built with -tags kernel; see
// internal/kerneltest/enginetest.
package docker
