package canlink

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/kanto-can/kanto-can/nl"
	"golang.org/x/sys/unix"
)

// CANState is a CAN controller's error state (enum can_state,
// include/uapi/linux/can/netlink.h).
type CANState uint32

// The controller states the kernel reports in IFLA_CAN_STATE.
const (
	CANStateErrorActive  CANState = unix.CAN_STATE_ERROR_ACTIVE  // normal operation
	CANStateErrorWarning CANState = unix.CAN_STATE_ERROR_WARNING // an error counter reached 96
	CANStateErrorPassive CANState = unix.CAN_STATE_ERROR_PASSIVE // an error counter reached 128
	CANStateBusOff       CANState = unix.CAN_STATE_BUS_OFF       // off the bus (transmit errors reached 256)
	CANStateStopped      CANState = unix.CAN_STATE_STOPPED       // the interface is down
	CANStateSleeping     CANState = unix.CAN_STATE_SLEEPING
	// CANStateUnknown stands for a reply without IFLA_CAN_STATE.
	CANStateUnknown CANState = 0xffffffff
)

var canStateNames = [...]string{
	CANStateErrorActive:  "error-active",
	CANStateErrorWarning: "error-warning",
	CANStateErrorPassive: "error-passive",
	CANStateBusOff:       "bus-off",
	CANStateStopped:      "stopped",
	CANStateSleeping:     "sleeping",
}

// String is the state as kanto-can shows it: "error-active",
// "error-warning", "error-passive", "bus-off", "stopped", "sleeping";
// "unknown" without a state, "state N" for a state this package does not
// know.
func (s CANState) String() string {
	// Compared as CANStates: int(s) is negative from 1<<31 on 32 bits.
	if s < CANState(len(canStateNames)) {
		return canStateNames[s]
	}
	if s == CANStateUnknown {
		return "unknown"
	}
	return "state " + strconv.FormatUint(uint64(s), 10)
}

// CANCtrlModeFD is CAN_CTRLMODE_FD: the controller runs CAN FD.
const CANCtrlModeFD = unix.CAN_CTRLMODE_FD

// CANInfo is what the kernel reports about a CAN controller (a link of
// kind "can") in its IFLA_INFO_DATA.
type CANInfo struct {
	State CANState
	// Bitrate is the nominal bitrate in bit/s (IFLA_CAN_BITTIMING); 0 when
	// none is set, e.g. after the driver was bound and before the system
	// configured the interface.
	Bitrate uint32
	// DataBitrate is the CAN FD data phase bitrate in bit/s
	// (IFLA_CAN_DATA_BITTIMING); 0 when none is set.
	DataBitrate uint32
	// CtrlMode holds the CAN_CTRLMODE_* flags in use (IFLA_CAN_CTRLMODE).
	CtrlMode uint32
	// ErrorCounters are the controller's transmit and receive error
	// counters (IFLA_CAN_BERR_COUNTER); nil when the driver cannot read
	// them.
	ErrorCounters *CANErrorCounters
	// Stats count the controller's error events (IFLA_INFO_XSTATS); nil
	// when the kernel sent none.
	Stats *CANDeviceStats
}

// CANErrorCounters are a CAN controller's error counters (struct
// can_berr_counter): 96 and more is error-warning, 128 error-passive, a
// transmit count of 256 bus-off.
type CANErrorCounters struct {
	Tx, Rx uint16
}

// CANDeviceStats count a CAN controller's error events since it was made
// (struct can_device_stats).
type CANDeviceStats struct {
	BusErrors       uint32 // bus errors the controller signalled
	ErrorWarning    uint32 // changes to error-warning
	ErrorPassive    uint32 // changes to error-passive
	BusOff          uint32 // changes to bus-off
	ArbitrationLost uint32
	Restarts        uint32 // restarts after bus-off
}

// sizeofCANDeviceStats is struct can_device_stats: six u32.
const sizeofCANDeviceStats = 6 * 4

func parseCANDeviceStats(p []byte) (*CANDeviceStats, error) {
	if len(p) < sizeofCANDeviceStats {
		return nil, fmt.Errorf("IFLA_INFO_XSTATS: %d bytes, want at least %d", len(p), sizeofCANDeviceStats)
	}
	u := func(i int) uint32 { return binary.NativeEndian.Uint32(p[4*i:]) }
	return &CANDeviceStats{
		BusErrors: u(0), ErrorWarning: u(1), ErrorPassive: u(2), BusOff: u(3), ArbitrationLost: u(4), Restarts: u(5),
	}, nil
}

// FD reports whether the controller runs CAN FD (CAN_CTRLMODE_FD).
func (c CANInfo) FD() bool { return c.CtrlMode&CANCtrlModeFD != 0 }

// Sizes of the uapi structs in IFLA_CAN_* attributes. The kernel's policy
// treats them as minimum lengths; so does parseCANInfo.
const (
	sizeofCANBittiming = 32 // struct can_bittiming: eight u32, bitrate first
	sizeofCANCtrlMode  = 8  // struct can_ctrlmode: u32 mask, u32 flags
	sizeofCANBerr      = 4  // struct can_berr_counter: u16 txerr, u16 rxerr
)

// canAttrs are the IFLA_CAN_* attributes parseCANInfo reads: their names,
// for errors, and their least payload size (exact for the u32 state). An
// array indexed by type, not a map: data in the binary, nothing to build
// at start-up.
var canAttrs = [...]struct {
	name  string
	size  int
	exact bool
}{
	unix.IFLA_CAN_STATE:          {"IFLA_CAN_STATE", 4, true},
	unix.IFLA_CAN_BITTIMING:      {"IFLA_CAN_BITTIMING", sizeofCANBittiming, false},
	unix.IFLA_CAN_DATA_BITTIMING: {"IFLA_CAN_DATA_BITTIMING", sizeofCANBittiming, false},
	unix.IFLA_CAN_CTRLMODE:       {"IFLA_CAN_CTRLMODE", sizeofCANCtrlMode, false},
	unix.IFLA_CAN_BERR_COUNTER:   {"IFLA_CAN_BERR_COUNTER", sizeofCANBerr, false},
}

// parseCANInfo decodes the IFLA_INFO_DATA of a link of kind "can"
// (can_fill_info in drivers/net/can/dev/netlink.c). Attributes it does
// not use are skipped.
func parseCANInfo(b []byte) (*CANInfo, error) {
	info := &CANInfo{State: CANStateUnknown}
	ad, err := nl.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	for ad.Next() {
		typ := ad.Type()
		if int(typ) >= len(canAttrs) || canAttrs[typ].name == "" {
			continue
		}
		a := canAttrs[typ]
		p := ad.Bytes()
		switch {
		case a.exact && len(p) != a.size:
			return nil, fmt.Errorf("%s: %d bytes, want %d", a.name, len(p), a.size)
		case len(p) < a.size:
			return nil, fmt.Errorf("%s: %d bytes, want at least %d", a.name, len(p), a.size)
		}
		switch typ {
		case unix.IFLA_CAN_STATE:
			info.State = CANState(binary.NativeEndian.Uint32(p))
		case unix.IFLA_CAN_BITTIMING:
			info.Bitrate = binary.NativeEndian.Uint32(p)
		case unix.IFLA_CAN_DATA_BITTIMING:
			info.DataBitrate = binary.NativeEndian.Uint32(p)
		case unix.IFLA_CAN_CTRLMODE:
			// The kernel fills flags only (mask 0).
			info.CtrlMode = binary.NativeEndian.Uint32(p[4:])
		case unix.IFLA_CAN_BERR_COUNTER:
			info.ErrorCounters = &CANErrorCounters{Tx: binary.NativeEndian.Uint16(p), Rx: binary.NativeEndian.Uint16(p[2:])}
		}
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	return info, nil
}
