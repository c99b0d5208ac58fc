package nl

// Transport carries a Conn's requests to the kernel and the kernel's
// answers back: a NETLINK_ROUTE socket (Dial, DialConfig), or a stand-in
// whose "kernel" is a function (package nltest), so that what is built on
// Conn can be tested without one. A Conn calls Send and Receive of one
// request at a time; Close may come from another goroutine.
type Transport interface {
	// Send sends one datagram holding a request.
	Send(b []byte) error
	// Receive returns the next datagram of the kernel's answers.
	Receive() ([]byte, error)
	// NetNS returns a new file descriptor of the transport's network
	// namespace; the caller closes it.
	NetNS() (int, error)
	// DialNetNS opens a transport of the same kind in the network
	// namespace of nsFD (which stays the caller's).
	DialNetNS(nsFD int) (Transport, error)
	// Watch opens a transport in the same network namespace that receives
	// the notifications of groups (a bit mask of RTMGRP_* values) and
	// sends nothing; Conn.Watch wraps it in a Watcher.
	Watch(groups uint32) (Transport, error)
	// Close releases the transport.
	Close() error
}
