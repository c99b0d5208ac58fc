// Package systemd tests the daemon's systemd unit (deploy/kanto-can.service)
// under Debian's real systemd in the QEMU guest: built with -tags kernel and
// run by `make kernel-tests` (see test/vm).
//
// The guest's init is a shell script, so the test runs systemd as PID 1 of
// a PID and mount namespace of its own (unshare), with container= set as
// container managers do: a system manager with its own cgroups, journald
// and sandboxing, in the guest's network namespace, where the CAN buses are.
package systemd
