package cangw

import (
	"fmt"
	"strings"
)

// Flags are the rtcanmsg.flags of a rule (CGW_FLAGS_CAN_*).
type Flags uint16

const (
	// FlagEcho (CGW_FLAGS_CAN_ECHO) sends forwarded frames with the echo
	// flag, so local sockets on the destination see them as if sent by a
	// local application (cangw -e; recommended on vcan).
	FlagEcho Flags = 0x1
	// FlagSrcTimestamp (CGW_FLAGS_CAN_SRC_TSTAMP) keeps the receive
	// timestamp of the source frame instead of clearing it (cangw -t).
	FlagSrcTimestamp Flags = 0x2
	// FlagIIFTXOK (CGW_FLAGS_CAN_IIF_TX_OK) allows sending a frame out of the
	// interface it came in on (cangw -i). Needed when Src == Dst, and as a fix
	// for the ifindex collision described in the package documentation.
	FlagIIFTXOK Flags = 0x4
	// FlagFD (CGW_FLAGS_CAN_FD) makes the rule forward CAN FD frames, and
	// only those (cangw -X). Without it a rule forwards only classic frames.
	FlagFD Flags = 0x8

	knownFlags = FlagEcho | FlagSrcTimestamp | FlagIIFTXOK | FlagFD
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{FlagEcho, "ECHO"},
	{FlagSrcTimestamp, "SRC_TSTAMP"},
	{FlagIIFTXOK, "IIF_TX_OK"},
	{FlagFD, "FD"},
}

// String returns the set flags joined by "|", e.g. "ECHO|FD"; unknown bits
// are shown in hex, no flags as "0".
func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var parts []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			parts = append(parts, n.name)
			f &^= n.f
		}
	}
	if f != 0 {
		parts = append(parts, fmt.Sprintf("0x%x", uint16(f)))
	}
	return strings.Join(parts, "|")
}
