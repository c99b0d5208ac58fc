package vxcan_test

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/canlink"
	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/nl/nltest"
	"github.com/kanto-can/kanto-can/vxcan"
)

// request is what the scripted kernel saw of one request.
type request struct {
	ns    int
	typ   nl.HeaderType
	flags nl.HeaderFlags
	index int32
}

// linkReply is the kernel's answer to a link get: a vxcan end up, its
// peer at peerIndex, in operational state oper.
func linkReply(index int32, name string, peerIndex uint32, oper canlink.OperState) nl.Message {
	ae := nl.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	ae.Uint32(unix.IFLA_MTU, canlink.MTUFD)
	ae.Uint32(unix.IFLA_LINK, peerIndex)
	ae.Uint8(unix.IFLA_OPERSTATE, uint8(oper))
	ae.Nested(unix.IFLA_LINKINFO, func(n *nl.AttributeEncoder) error {
		n.String(unix.IFLA_INFO_KIND, "vxcan")
		return nil
	})
	attrs, _ := ae.Encode()
	msg := make([]byte, 16)
	binary.NativeEndian.PutUint16(msg[2:], 280)
	binary.NativeEndian.PutUint32(msg[4:], uint32(index))
	binary.NativeEndian.PutUint32(msg[8:], unix.IFF_UP)
	return nl.Message{Header: nl.Header{Type: unix.RTM_NEWLINK}, Data: append(msg, attrs...)}
}

// linkwatch answers watchers as the kernel does once linkwatch has run:
// the host end (index 9, namespace 0) and its peer (index 4, namespace
// peerNS) operationally up, unless held.
func linkwatch(peerNS int, held map[int]bool) nltest.Notifications {
	return func(ns int, groups uint32, from int) ([]nl.Message, int) {
		if from < 0 || from > 0 || held[ns] {
			return nil, 0 // joined at 0; nothing more, or never up
		}
		if ns == 0 {
			return []nl.Message{linkReply(9, "vxhost", 4, canlink.OperUp)}, 1
		}
		return []nl.Message{linkReply(4, "can0", 9, canlink.OperUp)}, 1
	}
}

// The pair is made by a request from a socket in the peer's namespace,
// the near end sent back; then this end is brought up from here. If that
// fails, the half-made pair is deleted.
func TestCreateRequests(t *testing.T) {
	peerNS, err := os.Open(os.DevNull) // a number is all the scripted kernel needs
	if err != nil {
		t.Fatal(err)
	}
	defer peerNS.Close()
	for _, failUp := range []bool{false, true} {
		var seen []request
		kernel := func(ns int, req nl.Message) ([]nl.Message, error) {
			seen = append(seen, request{ns, req.Header.Type, req.Header.Flags &^ nl.Request, int32(binary.NativeEndian.Uint32(req.Data[4:]))})
			switch {
			case req.Header.Type == unix.RTM_NEWLINK && req.Header.Flags&nl.Create != 0:
				return nil, nil
			case req.Header.Type == unix.RTM_NEWLINK && failUp:
				return nil, &nl.KernelError{Errno: unix.EPERM, Message: "not today"}
			case req.Header.Type == unix.RTM_GETLINK:
				return []nl.Message{linkReply(9, "vxhost", 4, canlink.OperLowerLayerDown)}, nil
			}
			return nil, nil
		}
		c := vxcan.NewConn(nltest.DialNotifying(kernel, linkwatch(int(peerNS.Fd()), nil)))
		end, err := c.Create(vxcan.Pair{Name: "vxhost", PeerName: "can0", PeerNS: peerNS, MTU: canlink.MTUFD})
		c.Close()
		ns := int(peerNS.Fd())
		if !failUp {
			if err != nil || end.Index != 9 || end.Name != "vxhost" || !end.Up {
				t.Fatalf("Create = %+v, %v", end, err)
			}
			want := []request{
				{ns, unix.RTM_NEWLINK, nl.Acknowledge | nl.Create | nl.Excl, 0},
				{0, unix.RTM_NEWLINK, nl.Acknowledge, 0},
				{0, unix.RTM_GETLINK, 0, 0},
			}
			if len(seen) != len(want) {
				t.Fatalf("requests %+v, want %+v", seen, want)
			}
			for i := range want {
				if seen[i] != want[i] {
					t.Errorf("request %d: %+v, want %+v", i, seen[i], want[i])
				}
			}
			continue
		}
		var ke *nl.KernelError
		if !errors.As(err, &ke) || ke.Message != "not today" || !errors.Is(err, unix.EPERM) {
			t.Fatalf("Create with a failing bring-up = %v, want the kernel's EPERM", err)
		}
		last := seen[len(seen)-1]
		if last.typ != unix.RTM_DELLINK || last.index != 9 || last.ns != 0 {
			t.Fatalf("after the failed bring-up: %+v, want the half-made pair (index 9) deleted", seen)
		}
	}
}

// Create waits for both ends to be operational (the kernel drops frames
// until then); an end that does not come up fails it, named, and the pair
// is deleted. A kernel without vxcan is named as such.
func TestCreateWaitsAndExplains(t *testing.T) {
	peerNS, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer peerNS.Close()
	ns := int(peerNS.Fd())
	for _, tc := range []struct {
		held map[int]bool
		want string
	}{
		{map[int]bool{0: true}, "vxcan: vxhost (this end) did not come up within 5s: not operational (operstate lowerlayerdown)"},
		{map[int]bool{ns: true}, "vxcan: peer can0 (the other end, in the peer's namespace) did not come up within 5s: not operational (operstate lowerlayerdown)"},
	} {
		var deleted []int32
		kernel := func(reqNS int, req nl.Message) ([]nl.Message, error) {
			index := int32(binary.NativeEndian.Uint32(req.Data[4:]))
			switch req.Header.Type {
			case unix.RTM_DELLINK:
				deleted = append(deleted, index)
			case unix.RTM_GETLINK:
				if reqNS == 0 {
					return []nl.Message{linkReply(9, "vxhost", 4, canlink.OperLowerLayerDown)}, nil
				}
				return []nl.Message{linkReply(4, "can0", 9, canlink.OperLowerLayerDown)}, nil
			}
			return nil, nil
		}
		c := vxcan.NewConn(nltest.DialNotifying(kernel, linkwatch(ns, tc.held)))
		_, err := c.Create(vxcan.Pair{Name: "vxhost", PeerName: "can0", PeerNS: peerNS})
		if !errors.Is(err, vxcan.ErrNotOperational) || err.Error() != tc.want {
			t.Errorf("Create = %v\nwant %s", err, tc.want)
		}
		if len(deleted) != 1 || deleted[0] != 9 {
			t.Errorf("deleted %v, want the pair (index 9)", deleted)
		}
	}

	noModule := func(int, nl.Message) ([]nl.Message, error) {
		return nil, &nl.KernelError{Errno: unix.EOPNOTSUPP, Message: "Unknown device type"}
	}
	_, err = vxcan.NewConn(nltest.Dial(noModule)).Create(vxcan.Pair{Name: "vxhost", PeerName: "can0", PeerNS: peerNS})
	want := "vxcan: create vxhost with peer can0: the kernel has no vxcan (modprobe vxcan; CONFIG_CAN_VXCAN): operation not supported (Unknown device type)"
	if !errors.Is(err, vxcan.ErrNoVXCAN) || err.Error() != want {
		t.Errorf("without vxcan: %v\nwant %s", err, want)
	}
}
