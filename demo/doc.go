// Package demo is `make demo`: the main job end to end in the test guest,
// the way a Kanto user does it. Eclipse Kanto's own container-management
// and kanto-cm (on Debian's containerd and runc) create the containers of
// examples/kanto with `kanto-cm create -f` and start them with `kanto-cm
// start`: not privileged, on Kanto's default bridge network. The one with
// kanto-can's hooks in its manifest has can0 before its entrypoint runs;
// the one that asks only through KANTO_CAN in its environment gets its
// hooks from kanto-can installed as runc. Frames flow both ways between
// each container's can0 and the emulated ECU on can1 (QEMU's Kvaser PCI
// controllers on one emulated CAN bus); kanto-can ls and status name the
// containers as Kanto does, kanto-can top --once shows their traffic, and
// kanto-can-daemon --ditto publishes them as Ditto features, which Kanto's
// own suite-connector carries to a second mosquitto standing for the cloud
// (a subscriber there prints what a fleet backend gets);
// kanto-cm remove leaves nothing behind.
//
// It is written as a (kernel-tagged) Go test so that it runs on the same
// helpers as the tests, and so that `make test` proves it works.
package demo
