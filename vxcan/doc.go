// Package vxcan creates and manages vxcan pairs, the CAN equivalent of a
// veth pair: a frame sent on one end is received on the other.
//
// Its reason to exist is [Conn.Create]: it makes a pair whose peer is born
// directly inside another network namespace, under its final name and with
// both ends up, in one RTM_NEWLINK request, and returns once both carry
// frames. That is what gives a container its own CAN interface without
// nsenter, without a second step and without a moment where the peer is
// visible on the host. vishvananda/netlink has
// no vxcan type, so the request is built here (on package nl).
//
// The ends it makes and lists are package canlink's Link, which also
// reads and deletes links in general and makes vcan buses. It knows nothing
// about containers or the CAN gateway; package cangw routes frames between
// the host end and a bus.
//
// Facts worth knowing (verified on Linux 6.1):
//   - The default MTU is CANFD_MTU (72); set canlink.MTUClassic (16) for a
//     pair that may carry classic frames only.
//   - A pair with both ends up drops frames until the kernel's linkwatch
//     work has made the ends operational (IF_OPER_UP) and activated their
//     queues, asynchronously; Create returns only after that (bounded by
//     Pair.UpTimeout), so the first frame sent is carried.
//   - Destroying the peer's network namespace unregisters both ends, and the
//     kernel then deletes every can-gw rule that named the host end.
package vxcan
