package cangw

import "fmt"

// XORChecksum (struct cgw_csum_xor) writes into data[ResultIdx] the XOR of
// InitXORVal and data[FromIdx..ToIdx], after the modifications. Negative
// indexes count from the end of the received frame's data (-1 = last byte).
type XORChecksum struct {
	FromIdx, ToIdx, ResultIdx int8
	InitXORVal                uint8
}

// CRC8Profile selects extra input to a CRC8 checksum (CGW_CRC8PRF_*).
type CRC8Profile uint8

const (
	CRC8ProfileNone     CRC8Profile = 0 // CGW_CRC8PRF_UNSPEC: data bytes only
	CRC8Profile1U8      CRC8Profile = 1 // CGW_CRC8PRF_1U8: one extra byte, ProfileData[0]
	CRC8Profile16U8     CRC8Profile = 2 // CGW_CRC8PRF_16U8: ProfileData[data[1] & 0xf]
	CRC8ProfileSFFIDXOR CRC8Profile = 3 // CGW_CRC8PRF_SFFID_XOR: (id & 0xff) ^ (id >> 8 & 0xff)
)

func (p CRC8Profile) String() string {
	switch p {
	case CRC8ProfileNone:
		return "none"
	case CRC8Profile1U8:
		return "1U8"
	case CRC8Profile16U8:
		return "16U8"
	case CRC8ProfileSFFIDXOR:
		return "SFFID_XOR"
	}
	return fmt.Sprintf("CRC8Profile(%d)", uint8(p))
}

// CRC8Checksum (struct cgw_csum_crc8) writes into data[ResultIdx] a
// table-driven CRC8 over data[FromIdx..ToIdx] (plus the profile's extra
// byte), XORed with FinalXORVal. Indexes as for XORChecksum.
type CRC8Checksum struct {
	FromIdx, ToIdx, ResultIdx int8
	InitCRCVal, FinalXORVal   uint8
	Table                     [256]uint8
	Profile                   CRC8Profile
	// ProfileData is up to 20 bytes (profile_data[20]); the rest is zero.
	// List returns it without trailing zero bytes.
	ProfileData []byte
}

func checkIndexes(name string, from, to, res int8, fd bool) error {
	// cgw_chk_csum_parms: every index in -dlen..dlen-1.
	dlen := canMaxDLen
	kind := "classic"
	if fd {
		dlen, kind = canFDMaxDLen, "CAN FD"
	}
	for _, x := range []struct {
		field string
		v     int8
	}{{"FromIdx", from}, {"ToIdx", to}, {"ResultIdx", res}} {
		if int(x.v) < -dlen || int(x.v) >= dlen {
			return fmt.Errorf("cangw: rule: %s.%s %d out of range %d..%d for a %s rule", name, x.field, x.v, -dlen, dlen-1, kind)
		}
	}
	return nil
}

func (c XORChecksum) validate(fd bool) error {
	return checkIndexes("XOR", c.FromIdx, c.ToIdx, c.ResultIdx, fd)
}

func (c CRC8Checksum) validate(fd bool) error {
	if err := checkIndexes("CRC8", c.FromIdx, c.ToIdx, c.ResultIdx, fd); err != nil {
		return err
	}
	if c.Profile > CRC8ProfileSFFIDXOR {
		return fmt.Errorf("cangw: rule: CRC8.Profile %d is unknown (0..3)", c.Profile)
	}
	if len(c.ProfileData) > crc8ProfileData {
		return fmt.Errorf("cangw: rule: CRC8.ProfileData has %d bytes, at most %d", len(c.ProfileData), crc8ProfileData)
	}
	return nil
}
