// Package attach is the core of kanto-can: it turns requested buses and a
// target network namespace into kernel objects and back.
//
// For each (target, bus) it makes one vxcan pair, the peer created directly
// inside the target under the requested name, and can-gw rules between the
// host bus and the host end: bus -> container ("rx") and container -> bus
// ("tx"), one rule per kernel filter, classic and (on FD buses) FD.
//
// The kernel is the record. The host end's name (prefix "kcan" + a hash of
// target and bus) and its alias ("kanto-can v1 ...", see [Meta]) say what
// it is; a can-gw rule is ours when one of its interfaces is one of our host
// ends. Nothing else is ever touched. Deleting a host end deletes the pair
// and makes the kernel drop every rule that names it, which is how detach,
// rollback and the death of a container's namespace all clean up.
//
// Names: a host bus is the host's CAN interface an attachment is wired to
// (HostBus, HostBusIndex, HostBusStatus); a request (request.Bus,
// Plan.Request, req) is what is asked of one host bus; the inside name is
// the container's interface.
package attach
