package fakekernel

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
)

const ifinfomsgLen = 16

// ifaliasz is IFALIASZ: an alias has at most 255 bytes.
const ifaliasz = 256

// vxcanInfoPeer is VXCAN_INFO_PEER.
const vxcanInfoPeer = 1

// linkReq is an RTM_NEWLINK, RTM_DELLINK or RTM_GETLINK request decoded:
// struct ifinfomsg and the attributes kanto-can sends.
type linkReq struct {
	index         int
	flags, change uint32
	name, alias   string
	hasAlias      bool
	mtu           int
	nsFD          int // IFLA_NET_NS_FD, -1 when absent
	kind          string
	peer          *linkReq // VXCAN_INFO_PEER
}

func parseLinkReq(b []byte) (*linkReq, error) {
	if len(b) < ifinfomsgLen {
		return nil, unix.EINVAL
	}
	r := &linkReq{
		index:  int(int32(ne.Uint32(b[4:]))),
		flags:  ne.Uint32(b[8:]),
		change: ne.Uint32(b[12:]),
		nsFD:   -1,
	}
	ad, err := nl.NewAttributeDecoder(b[ifinfomsgLen:])
	if err != nil {
		return nil, unix.EINVAL
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			r.name = ad.String()
		case unix.IFLA_IFALIAS:
			r.alias, r.hasAlias = ad.String(), true
		case unix.IFLA_MTU:
			r.mtu = int(ad.Uint32())
		case unix.IFLA_NET_NS_FD:
			r.nsFD = int(ad.Uint32())
		case unix.IFLA_LINKINFO:
			ad.Nested(func(info *nl.AttributeDecoder) error {
				for info.Next() {
					switch info.Type() {
					case unix.IFLA_INFO_KIND:
						r.kind = info.String()
					case unix.IFLA_INFO_DATA:
						info.Nested(func(data *nl.AttributeDecoder) error {
							for data.Next() {
								if data.Type() == vxcanInfoPeer {
									p, err := parseLinkReq(data.Bytes())
									if err != nil {
										return err
									}
									r.peer = p
								}
							}
							return nil
						})
					}
				}
				return nil
			})
		case unix.IFLA_NET_NS_PID, unix.IFLA_TARGET_NETNSID:
			return nil, notModelled("link attribute %d", ad.Type())
		}
	}
	if err := ad.Err(); err != nil {
		return nil, unix.EINVAL
	}
	if len(r.name) > unix.IFNAMSIZ-1 {
		return nil, unix.EINVAL
	}
	if len(r.alias) > ifaliasz-1 {
		return nil, unix.EINVAL
	}
	return r, nil
}

// find is the link a request names: by index when given, else by name.
func (n *netns) find(r *linkReq) *Link {
	if r.index != 0 {
		return n.byIndex(r.index)
	}
	if r.name != "" {
		return n.byName(r.name)
	}
	return nil
}

// validMTU: CAN links carry classic (16) or FD (72) frames.
func validMTU(mtu int) bool { return mtu == 0 || mtu == MTUClassic || mtu == MTUFD }

// up applies ifinfomsg's flags and change to a link's IFF_UP, as
// rtnl_dev_combine_flags does: with change 0 the flags replace all.
func (r *linkReq) up(was bool) bool {
	if r.flags == 0 && r.change == 0 {
		return was
	}
	if r.change == 0 || r.change&unix.IFF_UP != 0 {
		return r.flags&unix.IFF_UP != 0
	}
	return was
}

// newLink creates a link (NLM_F_CREATE) or changes one.
func (k *Kernel) newLink(n *netns, req nl.Message) (string, error) {
	r, err := parseLinkReq(req.Data)
	if err != nil {
		return "", err
	}
	if l := n.find(r); l != nil {
		if req.Header.Flags&nl.Excl != 0 {
			return "create " + r.name, unix.EEXIST
		}
		err := n.changeLink(l, r)
		k.carrier(l)
		return "change " + l.Name, err
	}
	if r.index != 0 || req.Header.Flags&nl.Create == 0 {
		return "change " + r.name, unix.ENODEV
	}
	switch r.kind {
	case "vcan":
		return "create vcan " + r.name, n.createVCAN(r)
	case "vxcan":
		return k.createVxcan(n, r)
	case "":
		return "create " + r.name, unix.EOPNOTSUPP // no kind, nothing to make
	}
	return "", notModelled("link kind %q", r.kind)
}

func (n *netns) changeLink(l *Link, r *linkReq) error {
	if r.nsFD >= 0 || r.kind != "" {
		return notModelled("moving or re-typing %s", l.Name)
	}
	if !validMTU(r.mtu) {
		return unix.EINVAL
	}
	// Bringing a vxcan end up needs its peer (vxcan_open).
	if up := r.up(l.Up); up && !l.Up && l.Kind == "vxcan" && l.PeerIndex == 0 {
		return unix.ENOTCONN
	}
	if r.mtu != 0 {
		l.MTU = r.mtu
	}
	if r.hasAlias {
		l.Alias = r.alias
	}
	l.Up = r.up(l.Up)
	return nil
}

func (n *netns) createVCAN(r *linkReq) error {
	if r.name == "" {
		return notModelled("a vcan without a name")
	}
	if !validMTU(r.mtu) {
		return unix.EINVAL
	}
	l := &Link{Name: r.name, Kind: "vcan", Type: ARPHRDCAN, MTU: MTUFD, Alias: r.alias}
	if r.mtu != 0 {
		l.MTU = r.mtu
	}
	l.Up = r.up(false)
	n.add(l)
	return nil
}

// createVxcan makes a pair as vxcan_newlink does: the request's own link in
// the asking socket's namespace, the "peer" in the namespace its
// IFLA_NET_NS_FD names (the asking one without). The peer cannot be
// brought up by the same request (vxcan_open: ENOTCONN, the pair is not
// linked yet); the request's own link can.
func (k *Kernel) createVxcan(n *netns, r *linkReq) (string, error) {
	p := r.peer
	if p == nil {
		return "", notModelled("a vxcan without VXCAN_INFO_PEER")
	}
	summary := fmt.Sprintf("create vxcan %s in ns%d, peer %s", r.name, n.id, p.name)
	if r.name == "" || p.name == "" {
		return summary, notModelled("vxcan ends without names")
	}
	pn := n
	if p.nsFD >= 0 {
		var err error
		if pn, err = k.nsOfFD(p.nsFD); err != nil {
			return summary, err
		}
	}
	summary += fmt.Sprintf(" in ns%d", pn.id)
	if r.nsFD >= 0 {
		return summary, notModelled("IFLA_NET_NS_FD on the vxcan's own link")
	}
	if pn.byName(p.name) != nil {
		return summary, unix.EEXIST
	}
	if !validMTU(r.mtu) || !validMTU(p.mtu) {
		return summary, unix.EINVAL
	}
	if p.up(false) {
		return summary, unix.ENOTCONN
	}
	mtu := func(m int) int {
		if m == 0 {
			return MTUFD
		}
		return m
	}
	peer := pn.add(&Link{Name: p.name, Kind: "vxcan", Type: ARPHRDCAN, MTU: mtu(p.mtu), Alias: p.alias})
	own := n.add(&Link{Name: r.name, Kind: "vxcan", Type: ARPHRDCAN, MTU: mtu(r.mtu), Alias: r.alias})
	own.PeerNS, own.PeerIndex, peer.PeerNS, peer.PeerIndex = pn.id, peer.Index, n.id, own.Index
	own.Up = r.up(false)
	own.Oper, peer.Oper = OperLowerLayerDown, OperLowerLayerDown
	k.carrier(own)
	return summary, nil
}

func (k *Kernel) delLink(n *netns, req nl.Message) (string, error) {
	r, err := parseLinkReq(req.Data)
	if err != nil {
		return "", err
	}
	l := n.find(r)
	if l == nil {
		return fmt.Sprintf("index %d %s", r.index, r.name), unix.ENODEV
	}
	if l.Kind != "vxcan" && l.Kind != "vcan" {
		return l.Name, unix.EOPNOTSUPP // no rtnl dellink for controllers or lo
	}
	k.unregister(l)
	return l.Name, nil
}

func (k *Kernel) getLink(n *netns, req nl.Message) ([]nl.Message, error) {
	if req.Header.Flags&nl.Dump == nl.Dump {
		out := make([]nl.Message, 0, len(n.links))
		for _, l := range n.links {
			out = append(out, k.linkMessage(l))
		}
		return out, nil
	}
	r, err := parseLinkReq(req.Data)
	if err != nil {
		return nil, err
	}
	l := n.find(r)
	if l == nil {
		return nil, unix.ENODEV
	}
	return []nl.Message{k.linkMessage(l)}, nil
}

// linkMessage is the RTM_NEWLINK the kernel sends about l.
func (k *Kernel) linkMessage(l *Link) nl.Message {
	ae := nl.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, l.Name)
	ae.Uint32(unix.IFLA_MTU, uint32(l.MTU))
	ae.Uint8(unix.IFLA_OPERSTATE, l.Oper)
	if l.Alias != "" {
		ae.String(unix.IFLA_IFALIAS, l.Alias)
	}
	if l.Kind == "vxcan" {
		ae.Uint32(unix.IFLA_LINK, uint32(l.PeerIndex))
		if l.PeerNS != l.NS {
			// The peer's namespace id as seen from here; this model
			// uses the namespace's own number.
			ae.Int32(unix.IFLA_LINK_NETNSID, int32(l.PeerNS))
		}
	}
	if l.Kind != "" {
		ae.Nested(unix.IFLA_LINKINFO, func(info *nl.AttributeEncoder) error {
			info.String(unix.IFLA_INFO_KIND, l.Kind)
			if l.Kind == "can" {
				info.Nested(unix.IFLA_INFO_DATA, func(data *nl.AttributeEncoder) error {
					state := l.CANState
					if !l.Up {
						state = unix.CAN_STATE_STOPPED
					}
					data.Uint32(unix.IFLA_CAN_STATE, state)
					return nil
				})
			}
			return nil
		})
	}
	attrs, _ := ae.Encode()
	b := make([]byte, ifinfomsgLen, ifinfomsgLen+len(attrs))
	ne.PutUint16(b[2:], l.Type)
	ne.PutUint32(b[4:], uint32(l.Index))
	if l.Up {
		ne.PutUint32(b[8:], unix.IFF_UP)
	}
	return nl.Message{Header: nl.Header{Type: unix.RTM_NEWLINK}, Data: append(b, attrs...)}
}
