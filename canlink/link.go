package canlink

import (
	"encoding/binary"
	"fmt"

	"github.com/kanto-can/kanto-can/internal/rtconn"
	"github.com/kanto-can/kanto-can/nl"
	"golang.org/x/sys/unix"
)

// MTUs of CAN interfaces: the MTU says which frames an interface carries.
const (
	MTUClassic = 16 // CAN_MTU: struct can_frame, classic CAN only
	MTUFD      = 72 // CANFD_MTU: struct canfd_frame, classic and CAN FD
)

// arphrdCAN is the hardware type of every SocketCAN interface.
const arphrdCAN = 280

// Link is what the kernel reports about one network interface, reduced to
// what CAN plumbing needs.
type Link struct {
	Index int
	Name  string
	Kind  string // IFLA_INFO_KIND: "can" (hardware), "vcan", "vxcan", ...
	Type  uint16 // ARPHRD_* hardware type
	MTU   int
	Up    bool // administratively up (IFF_UP)
	// OperState is RFC 2863's operational state (IFLA_OPERSTATE). A vxcan
	// end carries frames only once it is OperUp: the kernel activates its
	// queueing discipline then, and until then drops what is sent.
	OperState OperState
	Alias     string // IFLA_IFALIAS, free text of up to 255 bytes
	// For a vxcan end: the peer's ifindex and the peer's network namespace
	// id as seen from this namespace (-1 when the peer is in this one).
	PeerIndex   int
	PeerNetNSID int
	// CAN is the controller's state and bit timing for a CAN controller
	// (Kind "can"); nil for every other kind of link.
	CAN *CANInfo
	// Stats are the interface's counters (IFLA_STATS64); nil when the
	// kernel sent none.
	Stats *LinkStats
}

// LinkStats are an interface's counters since it was made, the first eight
// of struct rtnl_link_stats64. On a CAN interface a packet is a frame.
type LinkStats struct {
	RxPackets, TxPackets uint64
	RxBytes, TxBytes     uint64 // data bytes (the frames' payloads)
	RxErrors, TxErrors   uint64
	RxDropped, TxDropped uint64
}

// sizeofLinkStats is the part of struct rtnl_link_stats64 LinkStats
// holds: eight u64. Kernels send the whole struct (24 u64 or more).
const sizeofLinkStats = 8 * 8

func parseLinkStats(p []byte) (*LinkStats, error) {
	if len(p) < sizeofLinkStats {
		return nil, fmt.Errorf("IFLA_STATS64: %d bytes, want at least %d", len(p), sizeofLinkStats)
	}
	u := func(i int) uint64 { return binary.NativeEndian.Uint64(p[8*i:]) }
	return &LinkStats{
		RxPackets: u(0), TxPackets: u(1), RxBytes: u(2), TxBytes: u(3),
		RxErrors: u(4), TxErrors: u(5), RxDropped: u(6), TxDropped: u(7),
	}, nil
}

// OperState is a link's operational state, IF_OPER_* (RFC 2863).
type OperState uint8

// The operational states, as the kernel numbers them.
const (
	OperUnknown        OperState = 0 // a driver that does not say (vcan)
	OperNotPresent     OperState = 1
	OperDown           OperState = 2
	OperLowerLayerDown OperState = 3 // a vxcan end whose peer is down
	OperTesting        OperState = 4
	OperDormant        OperState = 5
	OperUp             OperState = 6
)

var operStateNames = [...]string{"unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"}

// String is the name `ip link` shows, in lower case.
func (s OperState) String() string {
	if int(s) < len(operStateNames) { // a uint8 is never negative
		return operStateNames[s]
	}
	return fmt.Sprintf("operstate(%d)", uint8(s))
}

// IsCAN reports whether the link is a SocketCAN interface of any kind.
func (l Link) IsCAN() bool { return l.Type == arphrdCAN }

// FD reports whether the link carries CAN FD frames (its MTU is CANFD_MTU).
func (l Link) FD() bool { return l.MTU == MTUFD }

// ParseLink decodes an RTM_NEWLINK or RTM_DELLINK message, such as a link
// notification.
func ParseLink(m nl.Message) (Link, error) { return parseLink(m) }

func parseLink(m nl.Message) (Link, error) {
	if len(m.Data) < rtconn.IfinfomsgLen {
		return Link{}, fmt.Errorf("canlink: RTM_NEWLINK message of %d bytes, want at least %d", len(m.Data), rtconn.IfinfomsgLen)
	}
	l := Link{
		Type:        binary.NativeEndian.Uint16(m.Data[2:]),
		Index:       int(int32(binary.NativeEndian.Uint32(m.Data[4:]))),
		Up:          binary.NativeEndian.Uint32(m.Data[8:])&unix.IFF_UP != 0,
		PeerNetNSID: -1,
	}
	ad, err := nl.NewAttributeDecoder(m.Data[rtconn.IfinfomsgLen:])
	if err != nil {
		return Link{}, fmt.Errorf("canlink: link %d: %w", l.Index, err)
	}
	// IFLA_INFO_DATA depends on the kind, which the kernel sends first;
	// it is decoded after the walk all the same.
	var infoData, xstats []byte
	hasInfoData := false
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			l.Name = ad.String()
		case unix.IFLA_MTU:
			l.MTU = int(ad.Uint32())
		case unix.IFLA_OPERSTATE:
			l.OperState = OperState(ad.Uint8())
		case unix.IFLA_IFALIAS:
			l.Alias = ad.String()
		case unix.IFLA_LINK:
			l.PeerIndex = int(ad.Uint32())
		case unix.IFLA_LINK_NETNSID:
			l.PeerNetNSID = int(ad.Int32())
		case unix.IFLA_STATS64:
			stats, err := parseLinkStats(ad.Bytes())
			if err != nil {
				return Link{}, fmt.Errorf("canlink: link %d (%s): %w", l.Index, l.Name, err)
			}
			l.Stats = stats
		case unix.IFLA_LINKINFO:
			ad.Nested(func(nad *nl.AttributeDecoder) error {
				for nad.Next() {
					switch nad.Type() {
					case unix.IFLA_INFO_KIND:
						l.Kind = nad.String()
					case unix.IFLA_INFO_DATA:
						infoData, hasInfoData = nad.Bytes(), true
					case unix.IFLA_INFO_XSTATS:
						xstats = nad.Bytes()
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return Link{}, fmt.Errorf("canlink: link %d (%s): %w", l.Index, l.Name, err)
	}
	if l.Kind == "can" && hasInfoData {
		if l.CAN, err = parseCANInfo(infoData); err != nil {
			return Link{}, fmt.Errorf("canlink: link %d (%s): CAN info: %w", l.Index, l.Name, err)
		}
		if xstats != nil {
			if l.CAN.Stats, err = parseCANDeviceStats(xstats); err != nil {
				return Link{}, fmt.Errorf("canlink: link %d (%s): CAN stats: %w", l.Index, l.Name, err)
			}
		}
	}
	return l, nil
}
