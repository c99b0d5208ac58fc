// Package cni tests kanto-can-cni, the CNI plugin (internal/cni), in the
// QEMU guest: driven by libcni as a runtime drives it (ADD, CHECK, DEL in
// every order the spec allows, bad input), and pods made through
// containerd's CRI exactly as kubelet makes them, with frames both ways
// between the pod and the emulated ECU. Tests are behind the "kernel"
// build tag; make kernel-tests passes the plugin's path as
// $KANTO_CAN_CNI.
package cni
