// Command canapp is the application inside the test containers of the kernel
// tests (see internal/kerneltest/ctrtest): a static binary that uses a CAN
// interface the way a containerised CAN application would.
//
//	canapp check IFACE                       exit 3 if IFACE does not exist
//	canapp send IFACE ID#DATA[,ID#DATA...]   send frames (cansend syntax)
//	canapp recv IFACE N [TIMEOUT-SECONDS]    print N frames, exit 4 on timeout
//	canapp serve IFACE                       print "ready", echo frames with ID+1
//
// Frames use the cansend / candump -L syntax: 123#1122 (standard id),
// 12345678#11 (extended id: more than 3 hex digits), 123#R (remote request),
// 123##1AABB (CAN FD: the digit after ## holds the flags, 1 = bit rate switch,
// 2 = error state indicator). recv and serve print frames the same way.
//
// Build it static (CGO_ENABLED=0): it runs in minimal images without a libc.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Exit statuses a test can tell apart.
const (
	exitError     = 1
	exitUsage     = 2
	exitNoIface   = 3
	exitTimeout   = 4
	canRawFD      = 5  // CAN_RAW_FD_FRAMES
	canMTU        = 16 // sizeof(struct can_frame)
	canfdMTU      = 72 // sizeof(struct canfd_frame)
	defaultWaitS  = 10
	maxClassicLen = 8
	maxFDLen      = 64
)

type frame struct {
	id    uint32 // with CAN_EFF_FLAG / CAN_RTR_FLAG as on the wire
	fd    bool
	flags byte // CAN FD flags
	data  []byte
}

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	cmd, iface, args := os.Args[1], os.Args[2], os.Args[3:]
	switch cmd {
	case "check":
		check(iface)
		fmt.Printf("interface %s present\n", iface)
	case "send":
		if len(args) != 1 {
			usage()
		}
		send(iface, args[0])
	case "recv":
		if len(args) < 1 || len(args) > 2 {
			usage()
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 0 {
			fail(exitUsage, "bad frame count %q", args[0])
		}
		wait := defaultWaitS
		if len(args) == 2 {
			if wait, err = strconv.Atoi(args[1]); err != nil || wait <= 0 {
				fail(exitUsage, "bad timeout %q", args[1])
			}
		}
		recv(iface, n, time.Duration(wait)*time.Second)
	case "serve":
		if len(args) != 0 {
			usage()
		}
		serve(iface)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: canapp check IFACE | send IFACE ID#DATA[,...] | recv IFACE N [TIMEOUT-S] | serve IFACE")
	os.Exit(exitUsage)
}

func fail(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "canapp: "+format+"\n", a...)
	os.Exit(code)
}

// check exits 3 unless the interface exists: the first thing a CAN
// application does, and what shows whether the interface was there in time.
func check(iface string) *net.Interface {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		fail(exitNoIface, "no interface %s: %v", iface, err)
	}
	return ifi
}

// open binds a raw CAN socket that also carries CAN FD frames.
func open(iface string) int {
	ifi := check(iface)
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		fail(exitError, "socket: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_CAN_RAW, canRawFD, 1); err != nil {
		fail(exitError, "CAN_RAW_FD_FRAMES on %s: %v", iface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrCAN{Ifindex: ifi.Index}); err != nil {
		fail(exitError, "bind %s: %v", iface, err)
	}
	return fd
}

func send(iface, list string) {
	var frames []frame
	for _, s := range strings.Split(list, ",") {
		f, err := parse(s)
		if err != nil {
			fail(exitUsage, "%v", err)
		}
		frames = append(frames, f)
	}
	fd := open(iface)
	for _, f := range frames {
		if _, err := unix.Write(fd, f.marshal()); err != nil {
			fail(exitError, "send %s on %s: %v", f, iface, err)
		}
	}
}

func recv(iface string, n int, wait time.Duration) {
	fd := open(iface)
	deadline := time.Now().Add(wait)
	for i := 0; i < n; i++ {
		f, ok := read(fd, deadline)
		if !ok {
			fail(exitTimeout, "timeout: %d of %d frames on %s within %v", i, n, iface, wait)
		}
		fmt.Println(f)
	}
}

// serve echoes every frame back with its id plus one, so a test can check
// both directions with one container. "ready" is printed once the socket is
// bound: frames sent after it are seen.
func serve(iface string) {
	fd := open(iface)
	fmt.Println("ready")
	for {
		f, _ := read(fd, time.Time{})
		fmt.Println(f) // what reached the container, in order
		mask := uint32(unix.CAN_SFF_MASK)
		if f.id&unix.CAN_EFF_FLAG != 0 {
			mask = unix.CAN_EFF_MASK
		}
		f.id = f.id&^mask | (f.id&mask+1)&mask
		if _, err := unix.Write(fd, f.marshal()); err != nil {
			fail(exitError, "echo %s on %s: %v", f, iface, err)
		}
	}
}

// read returns the next frame, or false once the deadline passed (a zero
// deadline waits for ever).
func read(fd int, deadline time.Time) (frame, bool) {
	buf := make([]byte, canfdMTU)
	for {
		ms := -1
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return frame{}, false
			}
			ms = int(left/time.Millisecond) + 1
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, ms)
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil {
			fail(exitError, "poll: %v", err)
		}
		m, err := unix.Read(fd, buf)
		if err != nil {
			fail(exitError, "read: %v", err)
		}
		if f, ok := unmarshal(buf[:m]); ok {
			return f, true
		}
	}
}

func parse(s string) (frame, error) {
	idStr, rest, ok := strings.Cut(s, "#")
	if !ok || idStr == "" {
		return frame{}, fmt.Errorf("frame %q: want ID#DATA", s)
	}
	id64, err := strconv.ParseUint(idStr, 16, 32)
	if err != nil {
		return frame{}, fmt.Errorf("frame %q: bad id: %v", s, err)
	}
	f := frame{id: uint32(id64)}
	if len(idStr) > 3 {
		if f.id > unix.CAN_EFF_MASK {
			return frame{}, fmt.Errorf("frame %q: extended id out of range", s)
		}
		f.id |= unix.CAN_EFF_FLAG
	} else if f.id > unix.CAN_SFF_MASK {
		return frame{}, fmt.Errorf("frame %q: standard id out of range", s)
	}
	switch {
	case strings.HasPrefix(rest, "#"):
		if len(rest) < 2 {
			return frame{}, fmt.Errorf("frame %q: FD frame needs a flags digit after ##", s)
		}
		fl, err := strconv.ParseUint(rest[1:2], 16, 8)
		if err != nil {
			return frame{}, fmt.Errorf("frame %q: bad FD flags", s)
		}
		f.fd, f.flags, rest = true, byte(fl), rest[2:]
	case strings.HasPrefix(rest, "R") || strings.HasPrefix(rest, "r"):
		f.id |= unix.CAN_RTR_FLAG
		n := 0
		if len(rest) > 1 {
			if n, err = strconv.Atoi(rest[1:]); err != nil || n > maxClassicLen {
				return frame{}, fmt.Errorf("frame %q: bad RTR length", s)
			}
		}
		f.data = make([]byte, n)
		return f, nil
	}
	data, err := hex.DecodeString(strings.ReplaceAll(rest, ".", ""))
	if err != nil {
		return frame{}, fmt.Errorf("frame %q: bad data: %v", s, err)
	}
	if max := maxClassicLen; len(data) > max && !f.fd || len(data) > maxFDLen {
		return frame{}, fmt.Errorf("frame %q: %d data bytes is too long", s, len(data))
	}
	f.data = data
	return f, nil
}

func (f frame) String() string {
	var b strings.Builder
	if f.id&unix.CAN_EFF_FLAG != 0 {
		fmt.Fprintf(&b, "%08X", f.id&unix.CAN_EFF_MASK)
	} else {
		fmt.Fprintf(&b, "%03X", f.id&unix.CAN_SFF_MASK)
	}
	switch {
	case f.fd:
		fmt.Fprintf(&b, "##%X%X", f.flags&0x3, f.data) // BRS, ESI (not CANFD_FDF)
	case f.id&unix.CAN_RTR_FLAG != 0:
		b.WriteString("#R")
		if len(f.data) > 0 {
			fmt.Fprintf(&b, "%d", len(f.data))
		}
	default:
		fmt.Fprintf(&b, "#%X", f.data)
	}
	return b.String()
}

// marshal encodes struct can_frame or struct canfd_frame (host byte order).
func (f frame) marshal() []byte {
	size := canMTU
	if f.fd {
		size = canfdMTU
	}
	b := make([]byte, size)
	binary.NativeEndian.PutUint32(b[0:4], f.id)
	b[4] = byte(len(f.data))
	if f.fd {
		b[5] = f.flags
	}
	if f.id&unix.CAN_RTR_FLAG == 0 {
		copy(b[8:], f.data)
	}
	return b
}

func unmarshal(b []byte) (frame, bool) {
	if len(b) != canMTU && len(b) != canfdMTU {
		return frame{}, false
	}
	f := frame{id: binary.NativeEndian.Uint32(b[0:4]), fd: len(b) == canfdMTU}
	if f.id&unix.CAN_ERR_FLAG != 0 {
		return frame{}, false
	}
	n := int(b[4])
	if f.fd {
		f.flags = b[5]
		n = min(n, maxFDLen)
	} else {
		n = min(n, maxClassicLen)
	}
	if f.id&unix.CAN_RTR_FLAG != 0 {
		f.data = make([]byte, n)
	} else {
		f.data = append([]byte(nil), b[8:8+n]...)
	}
	return f, true
}
