// Package ditto holds the kernel tests of kanto-can-daemon's Ditto
// features (package internal/ditto) in the QEMU guest: a real MQTT broker
// (Debian's mosquitto, started by the test), a stand-in for Kanto's
// suite-connector written in Go, the real Eclipse Kanto starting a
// container with a CAN bus, and the daemon with --ditto. Built with -tags
// kernel; see test/vm.
package ditto
