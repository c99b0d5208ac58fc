// Package nl is kanto-can's netlink layer: a blocking NETLINK_ROUTE socket
// (Conn), messages (Message) and attributes (AttributeEncoder,
// AttributeDecoder), just what packages cangw and vxcan need.
//
// It replaces mdlayher/netlink, whose API it follows, for one measured
// reason: start-up cost on a container's start path, where kanto-can runs
// as a hook for every container start. That library's socket goes through
// the Go runtime's network poller, makes namespace-bound sockets on a new
// locked goroutine, and brings in package net, whose initialisation alone
// cost about as much as the whole attach's netlink work under emulation
// (docs/benchmarks.md). Here the kernel answers a route request inside
// sendmsg, so replies are queued before we read them; a socket in another
// namespace is made on the calling thread, moved there and back.
package nl
