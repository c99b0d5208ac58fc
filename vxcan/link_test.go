package vxcan

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/nl"
	"golang.org/x/sys/unix"
)

// A link message as the kernel sends it for a vxcan host end.
func TestParseLink(t *testing.T) {
	ae := nl.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, "kcan0123456789a")
	ae.Uint32(unix.IFLA_MTU, MTUFD)
	ae.String(unix.IFLA_IFALIAS, "kanto-can v1 x")
	ae.Uint32(unix.IFLA_LINK, 2)
	ae.Int32(unix.IFLA_LINK_NETNSID, 0)
	ae.Nested(unix.IFLA_LINKINFO, func(n *nl.AttributeEncoder) error {
		n.String(unix.IFLA_INFO_KIND, "vxcan")
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	msg := ifinfomsg(17, unix.IFF_UP, 0)
	binary.NativeEndian.PutUint16(msg[2:], arphrdCAN)
	l, err := parseLink(nl.Message{Data: append(msg, attrs...)})
	if err != nil {
		t.Fatal(err)
	}
	want := Link{Index: 17, Name: "kcan0123456789a", Kind: "vxcan", Type: 280, MTU: 72, Up: true, Alias: "kanto-can v1 x", PeerIndex: 2, PeerNetNSID: 0}
	if l != want {
		t.Fatalf("parseLink = %+v, want %+v", l, want)
	}
	if !l.IsCAN() || !l.FD() {
		t.Fatal("IsCAN/FD")
	}
}

func TestParseLinkShort(t *testing.T) {
	if _, err := parseLink(nl.Message{Data: make([]byte, 8)}); err == nil || !strings.Contains(err.Error(), "8 bytes") {
		t.Fatalf("short message: %v", err)
	}
}
