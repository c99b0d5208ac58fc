// Package cangw manages the Linux kernel CAN gateway (can-gw, net/can/gw.c)
// over rtnetlink, like the cangw tool of can-utils.
//
// A gateway rule forwards CAN frames received on one interface to another
// one inside the kernel, optionally filtered (one id/mask filter per rule),
// modified (AND, OR, XOR, SET on id, length, data and CAN FD flags) and
// given an XOR or CRC8 checksum. Rules live per network namespace; the
// can-gw module must be loaded (modprobe can-gw).
//
//	c, err := cangw.Dial()
//	...
//	err = c.Add(cangw.Rule{Src: can0, Dst: vcan1, Flags: cangw.FlagEcho})
//	rules, err := c.List() // with Handled/Dropped/Deleted counters
//	err = c.Delete(rules[0])
//
// Add, Delete and Flush need CAP_NET_ADMIN in the initial user namespace;
// List needs no privilege. Rules are validated before they are sent, so
// that requests the kernel would reject with a bare EINVAL, or accept while
// silently ignoring part of them, fail with an error naming the field.
// Kernel errors are wrapped with an explanation and keep their errno
// (errors.Is(err, unix.EINVAL) works); see ErrNoSuchRule and ErrNotLoaded.
//
// # Traps
//
// The kernel has no duplicate check: adding the same rule twice forwards
// every frame twice. Call List and compare with Rule.Equal before Add when
// a rule may already exist.
//
// Delete is an exact match: it removes the first rule with the same flags,
// hop limit, source, destination and filter, and either the same UID (when
// either side has one) or else identical modifications and checksums.
// Anything else fails with EINVAL, wrapped as ErrNoSuchRule. Deleting a rule
// returned by List always matches. Flush (a delete with both interface
// indexes 0) removes every rule of the namespace, also other programs'
// rules: use it only in a namespace you own.
//
// A rule with FlagFD forwards only CAN FD frames, a rule without it only
// classic frames. A bus that carries both needs two rules per direction.
// Modifications follow the rule's kind: Frame is sent as struct canfd_frame
// on FD rules and as struct can_frame (8 data bytes, no flags) otherwise.
//
// The kernel reads CGW_MOD_UID and the checksums only when the rule has a
// modification; otherwise it accepts the rule and drops them without a
// word. Validate reports this instead. A UID also changes what Add does:
// a second Add with the same UID replaces the modifications of the existing
// rule (interfaces and filter must be the same, flags and hop limit are
// not changed).
//
// The hop limit (HopLimit) must be within 1 and the module parameter
// max_hops, which defaults to 1 and can only be set when the module is
// loaded (modprobe can-gw max_hops=N, N at most 6).
//
// Frames are not sent back out of the interface they came in on, unless the
// rule has FlagIIFTXOK. The check compares interface indexes, and a frame
// that came through a vxcan pair carries the ifindex of the sending end in
// the other network namespace: if that number happens to equal the
// destination's ifindex, the frame is discarded silently, without any
// counter moving. Set FlagIIFTXOK on rules whose source is a vxcan end, or
// choose non-colliding interface indexes.
//
// On a vcan destination, local sockets see forwarded frames only when the
// rule has FlagEcho: vcan loops back just the frames sent with the echo flag
// (a vxcan or real CAN destination does not need it).
//
// Rules name interfaces by index. When an interface is unregistered, the
// kernel deletes every rule that uses it; a re-created interface gets a new
// index and its rules must be added again. Setting an interface down keeps
// the rules (frames count as Dropped).
//
// The Handled counter counts frames handed to the destination driver; a
// virtual destination (vxcan) can still drop them later under load.
package cangw
