// Package ditto holds the kernel tests of kanto-can-daemon's Ditto
// features (package internal/ditto) in the QEMU guest, on the whole way to
// the fleet with real parts: Debian's mosquitto as Kanto's local broker,
// Kanto's own suite-connector, a second mosquitto as the hub with a
// subscriber there as the backend, the real Eclipse Kanto starting a
// container with a CAN bus, and the daemon with --ditto. Built with -tags
// kernel; see test/vm.
package ditto
