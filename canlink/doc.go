// Package canlink reads and manages a network namespace's CAN interfaces
// over route netlink: links by name or index or all of them (name, kind,
// hardware type, MTU, alias, peer), a CAN controller's state and bit
// timing, deletion, and virtual CAN buses (vcan).
//
// Package vxcan makes the pairs that connect namespaces and returns their
// ends as this package's Link; package cangw routes frames between links.
// All three can share one socket: open an nl.Conn, pass it to each
// NewConn, and close it once when done (a NewConn's Conn leaves its socket
// to the caller). Dial and DialConfig open a socket the Conn owns.
//
// Facts worth knowing (verified on Linux 6.1):
//   - Every SocketCAN interface has hardware type ARPHRD_CAN (280), which
//     vishvananda/netlink shows as "unknown280"; [Link.IsCAN] checks it.
//   - The MTU says which frames an interface carries: [MTUClassic] (16)
//     classic CAN only, [MTUFD] (72) classic and CAN FD.
//   - A controller's state is reported only for links of kind "can"
//     (hardware); vcan and vxcan have none.
//   - Interface names are at most 15 bytes.
package canlink
