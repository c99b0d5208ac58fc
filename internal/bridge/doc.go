// Package bridge carries CAN frames between a host bus and a container's
// vcan through two CAN_RAW sockets held by kanto-can-daemon: the data path
// where the kernel has no vxcan (stock Raspberry Pi OS kernels before
// 2026-09, other vendor kernels). docs/design.md, "Bridge mode", says why it
// is built this way.
//
// A socket stays in the network namespace it was made in, so one process
// serves every container: the container's socket is made with the thread in
// the container's namespace (package netns), the bus's in the daemon's own.
// The kernel does the filtering on both: the receive allow-list is the host
// socket's CAN_RAW_FILTER, the transmit allow-list the container socket's,
// so a frame the policy refuses never reaches the daemon. The transmit rate
// limit is a token bucket in the daemon, before a frame reaches the bus.
//
// Frames a container sends on the bus are seen by every other socket on it
// (the kernel loops a sent frame back to the other sockets of the host, as
// for a local sender), so containers on one bus hear each other, and
// gateway-mode containers hear bridged ones; a socket does not receive its
// own frames, so nothing is echoed back to its sender.
//
// The daemon serves a unix socket (SocketName in the records' directory):
// an attach asks it, with Ask, to bridge a recorded attachment and returns
// only once both sockets are bound, so the app's first frame is carried.
package bridge
