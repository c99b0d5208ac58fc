// Package kerneltest is the test harness for tests that need a real Linux
// kernel with CAN: vcan, vxcan, the CAN gateway (can-gw) and the emulated
// Kvaser PCI controllers of the test VM.
//
// Such tests are built with the "kernel" build tag and run only inside the
// QEMU guest started by test/vm/run.sh (make kernel-tests), never on the
// development host: every helper first calls [Require], which fails the test
// unless KANTO_CAN_GUEST=1.
//
// A typical test:
//
//	//go:build kernel
//
//	func TestForward(t *testing.T) {
//		kerneltest.Require(t)
//		bus := kerneltest.VCAN(t, "kt-bus", 72)
//		ns := kerneltest.NewNS(t)
//		// ... configure the system under test with kerneltest.Binary(t) ...
//		in := kerneltest.Open(t, ns, "can0")
//		out := kerneltest.Open(t, nil, "kt-bus")
//		out.Send(t, kerneltest.Frame{ID: 0x123, Data: []byte{1, 2}})
//		in.Expect(t, []kerneltest.Frame{{ID: 0x123, Data: []byte{1, 2}}}, 5*time.Second)
//	}
//
// Everything a helper creates (interfaces, namespaces, sockets, processes) is
// removed by tb.Cleanup, in reverse order of creation.
//
// # Asserting that a frame did NOT arrive
//
// Do not sleep and then check that nothing came: the wait is either too long
// or too short. Use a marker frame instead. Frames keep their order on a CAN
// interface, through vxcan and through can-gw, so: send the frames that must
// be filtered out, then send a marker frame that must pass, and call
// [Socket.ExpectOnlyUntil]. When the marker arrives, everything sent before it
// has either arrived or been dropped:
//
//	bus.Send(t, blocked)                     // must not reach the container
//	bus.Send(t, marker)                      // must reach it
//	ctr.ExpectOnlyUntil(t, nil, marker, 5*time.Second)
//
// The marker must be a frame the path under test lets through, and it must
// travel the same path as the frames it vouches for.
package kerneltest
