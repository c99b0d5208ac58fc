package cangw

// Values from include/uapi/linux/can/gw.h, include/uapi/linux/can.h and
// include/uapi/linux/rtnetlink.h. golang.org/x/sys/unix has none of the CGW_*
// names, so they are defined here.

// rtcanmsg header values.
const (
	afCAN         = 29 // AF_CAN: rtcanmsg.can_family
	cgwTypeCANCAN = 1  // CGW_TYPE_CAN_CAN: the only gateway type the kernel knows
	rtcanmsgLen   = 4  // sizeof(struct rtcanmsg): u8 family, u8 gwtype, u16 flags
)

// rtnetlink message types used by can-gw (RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE).
const (
	rtmNewRoute = 24
	rtmDelRoute = 25
	rtmGetRoute = 26
)

// CGW_* netlink attribute types (enum in gw.h, in kernel order).
const (
	cgwModAND   = 1  // CGW_MOD_AND: struct cgw_frame_mod (17 bytes)
	cgwModOR    = 2  // CGW_MOD_OR
	cgwModXOR   = 3  // CGW_MOD_XOR
	cgwModSET   = 4  // CGW_MOD_SET
	cgwCSXOR    = 5  // CGW_CS_XOR: struct cgw_csum_xor (4 bytes)
	cgwCSCRC8   = 6  // CGW_CS_CRC8: struct cgw_csum_crc8 (282 bytes)
	cgwHandled  = 7  // CGW_HANDLED: u32 counter (dump only)
	cgwDropped  = 8  // CGW_DROPPED: u32 counter (dump only)
	cgwSrcIf    = 9  // CGW_SRC_IF: u32 ifindex
	cgwDstIf    = 10 // CGW_DST_IF: u32 ifindex
	cgwFilter   = 11 // CGW_FILTER: struct can_filter (8 bytes)
	cgwDeleted  = 12 // CGW_DELETED: u32 counter (dump only)
	cgwLimHops  = 13 // CGW_LIM_HOPS: u8
	cgwModUID   = 14 // CGW_MOD_UID: u32
	cgwFDModAND = 15 // CGW_FDMOD_AND: struct cgw_fdframe_mod (73 bytes)
	cgwFDModOR  = 16 // CGW_FDMOD_OR
	cgwFDModXOR = 17 // CGW_FDMOD_XOR
	cgwFDModSET = 18 // CGW_FDMOD_SET
)

// Attribute payload sizes. The kernel's cgw_policy gives these as minimum
// lengths; all structs in gw.h are packed, so there is no tail padding.
const (
	canFrameLen     = 16                // sizeof(struct can_frame): data is 8-byte aligned at offset 8
	canFDFrameLen   = 72                // sizeof(struct canfd_frame)
	modAttrLen      = canFrameLen + 1   // CGW_MODATTR_LEN, packed: 17
	fdModAttrLen    = canFDFrameLen + 1 // CGW_FDMODATTR_LEN, packed: 73
	csXORLen        = 4                 // CGW_CS_XOR_LEN
	csCRC8Len       = 282               // CGW_CS_CRC8_LEN: 5 + 256 + 1 + 20, packed
	crc8ProfileData = 20                // cgw_csum_crc8.profile_data
	canFilterLen    = 8                 // sizeof(struct can_filter)
)

// CAN identifier bits (include/uapi/linux/can.h).
const (
	canEFFFlag   = 0x80000000 // CAN_EFF_FLAG: 29-bit extended frame
	canRTRFlag   = 0x40000000 // CAN_RTR_FLAG: remote transmission request
	canErrFlag   = 0x20000000 // CAN_ERR_FLAG: error frame
	canInvFilter = 0x20000000 // CAN_INV_FILTER: same bit as CAN_ERR_FLAG, in can_filter.can_id
	canEFFMask   = 0x1FFFFFFF // CAN_EFF_MASK
)

// Limits from net/can/gw.c.
const (
	maxHops      = 6  // CGW_MAX_HOPS: upper bound of the max_hops module parameter
	canMaxDLen   = 8  // CAN_MAX_DLEN: classic checksum indexes are -8..7
	canFDMaxDLen = 64 // CANFD_MAX_DLEN: CAN FD checksum indexes are -64..63
)
