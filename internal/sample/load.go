package sample

// Bits of a classic CAN data frame with an 11-bit id besides its data:
// start of frame 1, id 11, RTR 1, IDE 1, r0 1, DLC 4, CRC 15, CRC
// delimiter 1, ACK 2, end of frame 7, and the interframe space 3.
const frameOverheadBits = 47

// Load estimates a bus's load in percent of its capacity from what its
// controller counted over seconds: frames sent and received, and their data
// bytes, at the nominal bitrate. It counts every frame as a classic one with
// an 11-bit id and no stuff bits, as canbusload does without -e: a lower
// bound (an extended id adds 20 bits; stuffing up to about a fifth; the
// data phase of a CAN FD frame is faster than the nominal bitrate).
func Load(frames, bytes uint64, bitrate uint32, seconds float64) float64 {
	if bitrate == 0 || seconds <= 0 {
		return 0
	}
	bits := float64(frames)*frameOverheadBits + float64(bytes)*8
	return bits / seconds / float64(bitrate) * 100
}
