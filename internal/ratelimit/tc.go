package ratelimit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
)

// Traffic control constants that golang.org/x/sys/unix does not define,
// from the Linux UAPI headers (linux/pkt_sched.h, linux/pkt_cls.h,
// linux/rtnetlink.h, linux/gen_stats.h).
const (
	sizeofTcMsg  = 20 // struct tcmsg
	sizeofTcaMsg = 4  // struct tcamsg
	sizeofPolice = 56 // struct tc_police: 5 u32, 2 struct tc_ratespec (12 bytes each), 3 u32

	tcHIngress    = 0xfffffff1 // TC_H_INGRESS: parent of the ingress qdisc
	tcHMinIngress = 0xfff2     // TC_H_MIN_INGRESS
	ingressHandle = 0xffff0000 // the ingress qdisc's handle, ffff:

	// filterParent is where tc puts "ingress" filters:
	// TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS), ffff:fff2.
	filterParent = tcHIngress&0xffff0000 | tcHMinIngress

	ethPAll = 0x0003 // ETH_P_ALL

	tcaKind    = 1 // TCA_KIND
	tcaOptions = 2 // TCA_OPTIONS

	tcaMatchallAct = 2 // TCA_MATCHALL_ACT

	tcaActTab     = 1 // TCA_ACT_TAB (TCA_ROOT_TAB) of RTM_*ACTION
	tcaActKind    = 1 // TCA_ACT_KIND
	tcaActOptions = 2 // TCA_ACT_OPTIONS
	tcaActStats   = 4 // TCA_ACT_STATS

	tcaPoliceTBF        = 1  // TCA_POLICE_TBF: struct tc_police
	tcaPolicePktRate64  = 10 // TCA_POLICE_PKTRATE64: packets per second
	tcaPolicePktBurst64 = 11 // TCA_POLICE_PKTBURST64: psched ticks, see burstTicks

	tcaStatsBasic = 1 // TCA_STATS_BASIC: struct gnet_stats_basic
	tcaStatsQueue = 3 // TCA_STATS_QUEUE: struct gnet_stats_queue
	tcaStatsPkt64 = 8 // TCA_STATS_PKT64: u64 packets

	tcActOK   = 0 // TC_ACT_OK
	tcActShot = 2 // TC_ACT_SHOT

	// psched ticks are 64 ns (PSCHED_SHIFT 6 in include/net/pkt_sched.h).
	pschedTickNS = 64
	nsPerSecond  = 1_000_000_000
)

// Our filter: matchall, first in the ingress chain, protocol all.
const (
	filterPrio   = 1
	filterHandle = 1
	filterKind   = "matchall"
	policeKind   = "police"
)

// htons is ETH_P_* as the kernel wants it in tcm_info: network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// tcMsg encodes struct tcmsg.
func tcMsg(ifindex int, handle, parent, info uint32) []byte {
	b := make([]byte, sizeofTcMsg)
	// tcm_family AF_UNSPEC and the padding stay zero.
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(ifindex)))
	binary.NativeEndian.PutUint32(b[8:], handle)
	binary.NativeEndian.PutUint32(b[12:], parent)
	binary.NativeEndian.PutUint32(b[16:], info)
	return b
}

func u64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

// burstTicks converts a burst in frames to what TCA_POLICE_PKTBURST64
// carries: the time the rate needs to earn that many frames, in psched
// ticks (iproute2 sends tc_calc_xmittime(rate, burst); the kernel keeps
// PSCHED_TICKS2NS of it as the bucket size). Rounded up so that the
// bucket holds the whole burst and Get reads the same burst back.
func burstTicks(l Limit) uint64 {
	den := l.FramesPerSecond * pschedTickNS
	return (l.Burst*nsPerSecond + den - 1) / den
}

// burstFrames is the inverse of burstTicks, rounded to the nearest frame.
func burstFrames(rate, ticks uint64) uint64 {
	if rate == 0 {
		return 0
	}
	hi, lo := bits.Mul64(ticks, rate*pschedTickNS)
	lo, carry := bits.Add64(lo, nsPerSecond/2, 0)
	hi += carry
	if hi >= nsPerSecond {
		return ^uint64(0) // beyond anything Validate allows
	}
	q, _ := bits.Div64(hi, lo, nsPerSecond)
	return q
}

// policeParms encodes struct tc_police for a packet-rate policer: only the
// exceed action (TC_ACT_SHOT) and the action index are set. The kernel
// requires this struct even when the rate comes in TCA_POLICE_PKTRATE64;
// its byte rate must stay zero (byte and packet rates are exclusive).
func policeParms(index uint32) []byte {
	b := make([]byte, sizeofPolice)
	binary.NativeEndian.PutUint32(b[0:], index)
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(tcActShot)))
	// limit, burst, mtu (0: no size limit), rate, peakrate, refcnt,
	// bindcnt, capab: zero.
	return b
}

// policeAction adds one police action to ae, as item 1 of an action list.
func policeAction(ae *nl.AttributeEncoder, index uint32, l Limit) {
	ae.Nested(1, func(ae *nl.AttributeEncoder) error {
		ae.String(tcaActKind, policeKind)
		ae.Nested(tcaActOptions, func(ae *nl.AttributeEncoder) error {
			ae.Bytes(tcaPoliceTBF, policeParms(index))
			ae.Bytes(tcaPolicePktRate64, u64(l.FramesPerSecond))
			ae.Bytes(tcaPolicePktBurst64, u64(burstTicks(l)))
			return nil
		})
		return nil
	})
}

// newQdiscMsg asks for an ingress qdisc; it fails with EEXIST when the
// interface has one (or a clsact qdisc) already.
func newQdiscMsg(ifindex int) (nl.Message, error) {
	ae := nl.NewAttributeEncoder()
	ae.String(tcaKind, "ingress")
	attrs, err := ae.Encode()
	if err != nil {
		return nl.Message{}, err
	}
	return nl.Message{
		Header: nl.Header{Type: unix.RTM_NEWQDISC, Flags: nl.Acknowledge | nl.Create | nl.Excl},
		Data:   append(tcMsg(ifindex, ingressHandle, tcHIngress, 0), attrs...),
	}, nil
}

// delQdiscMsg deletes whatever qdisc sits at the ingress parent. The handle
// is left zero: the kernel then does not compare it.
func delQdiscMsg(ifindex int) nl.Message {
	return nl.Message{
		Header: nl.Header{Type: unix.RTM_DELQDISC, Flags: nl.Acknowledge},
		Data:   tcMsg(ifindex, 0, tcHIngress, 0),
	}
}

// newFilterMsg creates our matchall filter with a new police action
// (index 0: the kernel picks one).
func newFilterMsg(ifindex int, l Limit) (nl.Message, error) {
	ae := nl.NewAttributeEncoder()
	ae.String(tcaKind, filterKind)
	ae.Nested(tcaOptions, func(ae *nl.AttributeEncoder) error {
		ae.Nested(tcaMatchallAct, func(ae *nl.AttributeEncoder) error {
			policeAction(ae, 0, l)
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return nl.Message{}, err
	}
	info := uint32(filterPrio)<<16 | uint32(htons(ethPAll))
	return nl.Message{
		Header: nl.Header{Type: unix.RTM_NEWTFILTER, Flags: nl.Acknowledge | nl.Create | nl.Excl},
		Data:   append(tcMsg(ifindex, filterHandle, filterParent, info), attrs...),
	}, nil
}

// replaceActionMsg changes the rate of the existing police action index in
// place. (A matchall filter cannot be changed: cls_matchall answers EEXIST
// to a replace of its filter; an action can, with no moment unlimited.)
func replaceActionMsg(index uint32, l Limit) (nl.Message, error) {
	ae := nl.NewAttributeEncoder()
	ae.Nested(tcaActTab, func(ae *nl.AttributeEncoder) error {
		policeAction(ae, index, l)
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return nl.Message{}, err
	}
	return nl.Message{
		Header: nl.Header{Type: unix.RTM_NEWACTION, Flags: nl.Acknowledge | nl.Create | nl.Replace},
		Data:   append(make([]byte, sizeofTcaMsg), attrs...), // struct tcamsg, AF_UNSPEC
	}, nil
}

// dumpFiltersMsg lists the filters of the ingress qdisc.
func dumpFiltersMsg(ifindex int) nl.Message {
	return nl.Message{
		Header: nl.Header{Type: unix.RTM_GETTFILTER, Flags: nl.Dump},
		Data:   tcMsg(ifindex, 0, filterParent, 0),
	}
}

// filter is what a filter dump says about one filter, reduced to what we
// need to recognise ours.
type filter struct {
	ifindex  int
	handle   uint32
	prio     uint16
	protocol uint16 // host byte order
	kind     string
	police   *police // the first police action, if any
}

// police is a police action read back.
type police struct {
	index      uint32
	action     int32 // exceed action
	pktRate    uint64
	pktBurst   uint64 // psched ticks
	hasPktRate bool
	packets    uint64 // seen by the action
	drops      uint64
}

func (f filter) ours() bool {
	return f.kind == filterKind && f.prio == filterPrio && f.handle == filterHandle &&
		f.protocol == ethPAll && f.police != nil && f.police.hasPktRate
}

// parseFilter decodes one RTM_NEWTFILTER message of a dump.
func parseFilter(m nl.Message) (filter, error) {
	if len(m.Data) < sizeofTcMsg {
		return filter{}, fmt.Errorf("tc filter message of %d bytes", len(m.Data))
	}
	d := m.Data
	info := binary.NativeEndian.Uint32(d[16:])
	f := filter{
		ifindex:  int(int32(binary.NativeEndian.Uint32(d[4:]))),
		handle:   binary.NativeEndian.Uint32(d[8:]),
		prio:     uint16(info >> 16),
		protocol: htons(uint16(info)), // htons is its own inverse
	}
	ad, err := nl.NewAttributeDecoder(d[sizeofTcMsg:])
	if err != nil {
		return filter{}, err
	}
	var opts []byte
	for ad.Next() {
		switch ad.Type() {
		case tcaKind:
			f.kind = ad.String()
		case tcaOptions:
			opts = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return filter{}, err
	}
	if f.kind != filterKind || opts == nil {
		return f, nil
	}
	ad, _ = nl.NewAttributeDecoder(opts)
	for ad.Next() {
		if ad.Type() != tcaMatchallAct {
			continue
		}
		ad.Nested(func(ad *nl.AttributeDecoder) error {
			for ad.Next() && f.police == nil {
				p, err := parseAction(ad.Bytes())
				if err != nil {
					return err
				}
				f.police = p
			}
			return nil
		})
	}
	return f, ad.Err()
}

// parseAction decodes one action of a list; nil if it is not a police
// action.
func parseAction(b []byte) (*police, error) {
	ad, _ := nl.NewAttributeDecoder(b)
	var kind string
	var opts, stats []byte
	for ad.Next() {
		switch ad.Type() {
		case tcaActKind:
			kind = ad.String()
		case tcaActOptions:
			opts = ad.Bytes()
		case tcaActStats:
			stats = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil || kind != policeKind {
		return nil, err
	}
	p := &police{}
	ad, _ = nl.NewAttributeDecoder(opts)
	for ad.Next() {
		switch ad.Type() {
		case tcaPoliceTBF:
			if b := ad.Bytes(); len(b) >= 8 {
				p.index = binary.NativeEndian.Uint32(b[0:])
				p.action = int32(binary.NativeEndian.Uint32(b[4:]))
			} else {
				return nil, errors.New("tc police: short TCA_POLICE_TBF")
			}
		case tcaPolicePktRate64:
			v, err := getU64(ad)
			if err != nil {
				return nil, err
			}
			p.pktRate, p.hasPktRate = v, true
		case tcaPolicePktBurst64:
			v, err := getU64(ad)
			if err != nil {
				return nil, err
			}
			p.pktBurst = v
		}
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	ad, _ = nl.NewAttributeDecoder(stats)
	var pkt64 bool
	for ad.Next() {
		b := ad.Bytes()
		switch ad.Type() {
		case tcaStatsBasic: // struct gnet_stats_basic { u64 bytes; u32 packets; }
			if len(b) >= 12 && !pkt64 {
				p.packets = uint64(binary.NativeEndian.Uint32(b[8:]))
			}
		case tcaStatsPkt64:
			if v, err := getU64(ad); err == nil {
				p.packets, pkt64 = v, true
			}
		case tcaStatsQueue: // struct gnet_stats_queue: qlen, backlog, drops, ...
			if len(b) >= 12 {
				p.drops = uint64(binary.NativeEndian.Uint32(b[8:]))
			}
		}
	}
	return p, ad.Err()
}

func getU64(ad *nl.AttributeDecoder) (uint64, error) {
	b := ad.Bytes()
	if len(b) != 8 {
		return 0, fmt.Errorf("tc attribute %d: %d bytes, want 8", ad.Type(), len(b))
	}
	return binary.NativeEndian.Uint64(b), nil
}
