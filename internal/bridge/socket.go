package bridge

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// rcvBuf is each socket's receive buffer: a burst the daemon has not yet
// read waits there (the kernel's default, about 200 KiB, holds some 900
// classic frames).
const rcvBuf = 1 << 20

// openCAN opens a CAN_RAW socket bound to the interface ifname of the
// calling thread's network namespace, in the poller (so that Close ends a
// Read that waits). fd lets CAN FD frames through. filters is what the
// socket receives: nil every frame, empty none.
func openCAN(ifname string, fd bool, filters []unix.CanFilter) (*os.File, error) {
	s, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		return nil, fmt.Errorf("CAN_RAW socket: %w", err)
	}
	if err := setupCAN(s, ifname, fd, filters); err != nil {
		unix.Close(s)
		return nil, fmt.Errorf("%s: %w", ifname, err)
	}
	return os.NewFile(uintptr(s), "can:"+ifname), nil
}

func setupCAN(s int, ifname string, fd bool, filters []unix.CanFilter) error {
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr); err != nil {
		return fmt.Errorf("interface index: %w", err)
	}
	if fd {
		if err := unix.SetsockoptInt(s, unix.SOL_CAN_RAW, unix.CAN_RAW_FD_FRAMES, 1); err != nil {
			return fmt.Errorf("CAN_RAW_FD_FRAMES: %w", err)
		}
	}
	if filters != nil {
		if err := unix.SetsockoptCanRawFilter(s, unix.SOL_CAN_RAW, unix.CAN_RAW_FILTER, filters); err != nil {
			return fmt.Errorf("CAN_RAW_FILTER (%d filters): %w", len(filters), err)
		}
	}
	// Beyond rmem_max needs CAP_NET_ADMIN, which the daemon has.
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	if err := unix.Bind(s, &unix.SockaddrCAN{Ifindex: int(ifr.Uint32())}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// canFDMTU is the size of struct canfd_frame, the largest a CAN_RAW socket
// reads (x/sys/unix lacks the constant).
const canFDMTU = 72
