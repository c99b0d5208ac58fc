// Package demo is `make demo`: the main job end to end in the test guest.
// Debian's containerd and runc start a Kanto-style container from
// examples/kanto/can-ubuntu-hooks.json (namespace kanto-cm, not privileged,
// kanto-can's hooks from the manifest); it has can0 before its entrypoint
// runs, and frames flow both ways with the emulated ECU on can1 (QEMU's
// Kvaser PCI controllers on one emulated CAN bus). A second container asks
// only through KANTO_CAN in its environment and gets its hooks from
// kanto-can installed as runc.
//
// It is written as a (kernel-tagged) Go test so that it runs on the same
// container helpers as the tests, and so that `make test` proves it works.
package demo
