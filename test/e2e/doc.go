// Package e2e holds end-to-end tests of the kanto-can binary in a real
// kernel: they are built with -tags kernel and run in the QEMU guest by
// `make kernel-tests` (see test/vm). Each test drives the binary as a user
// would and checks the result with Go CAN sockets, can-utils as an
// independent witness, and the kernel's own view of links and rules.
package e2e
