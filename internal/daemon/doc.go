// Package daemon keeps attachments routed and shows what flows through
// them. It reconciles the attachments' records with the kernel (see
// attach.Host.Reconcile) whenever something may have changed:
//
//   - at start, and whenever its event sources may have missed something;
//   - on link notifications: a CAN bus appearing or changing (a replugged
//     adapter, a reloaded driver, a re-created vcan) gets its rules back, a
//     host end appearing or going away is checked against its record;
//   - on containerd's task exit and delete events, in the namespaces it is
//     told to watch: a container that is gone loses what was left of its
//     attachments, even if its network namespace lives on.
//
// Triggers that arrive while a reconcile runs are merged into one more
// run. It also serves Prometheus metrics: frames per attachment and
// direction, rate-limit drops, bus state, reconcile runs and errors, the
// policy in force and whether containerd is reachable. Faults it retries
// (can-gw not loaded, containerd unreachable) are logged when they start
// and when they end, not at every try.
//
// In bridge mode (a kernel without vxcan, or the policy's "bridge":
// "always") the daemon is the data path: package bridge's server, on
// bridge.sock in the records' directory, carries each bridged
// attachment's frames, restores them from the records at start and ends
// them with their attachments.
//
// Otherwise the daemon is optional: hooks and the CLI attach and detach
// correctly without it. It lives in its own binary (kanto-can-daemon) so that the
// gRPC and Prometheus libraries stay off the container start path.
package daemon
