package encap

import "encoding/binary"

// VXLAN header layout (RFC 7348 §5):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|R|R|R|I|R|R|R|            Reserved                           |  byte 0: flags, bytes 1-3: reserved
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                VXLAN Network Identifier (VNI) |   Reserved    |  bytes 4-6: VNI, byte 7: reserved
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	// VXLANHeaderLen is the length of the VXLAN header in bytes.
	VXLANHeaderLen = 8
	// VXLANFlagVNI is the I flag: the VNI field is valid. It is the only
	// flag RFC 7348 defines and the only one the kernel's vxlan device
	// (without extensions) sets or accepts.
	VXLANFlagVNI = 0x08
	// MaxVNI is the largest VXLAN Network Identifier (24 bits).
	MaxVNI = 1<<24 - 1

	vxlanFlagsOff = 0
	vxlanVNIOff   = 4 // VNI in the upper 24 bits of the big-endian word at 4
)

// VXLAN is a view of a VXLAN header. It must be at least VXLANHeaderLen
// bytes long.
type VXLAN []byte

// Flags returns the flags byte.
func (v VXLAN) Flags() uint8 { return v[vxlanFlagsOff] }

// VNI returns the 24-bit VXLAN Network Identifier.
func (v VXLAN) VNI() uint32 { return binary.BigEndian.Uint32(v[vxlanVNIOff:]) >> 8 }

// PutVXLAN writes a VXLAN header for vni into b[:VXLANHeaderLen]: flags
// exactly VXLANFlagVNI and every reserved bit zero, as the wire rules
// require. Only the low 24 bits of vni are used (a VNI is at most MaxVNI).
// It panics if len(b) < VXLANHeaderLen.
func PutVXLAN(b []byte, vni uint32) {
	_ = b[VXLANHeaderLen-1]
	binary.BigEndian.PutUint32(b[vxlanFlagsOff:], VXLANFlagVNI<<24)
	binary.BigEndian.PutUint32(b[vxlanVNIOff:], (vni&MaxVNI)<<8)
}

// ParseVXLAN validates the VXLAN header at the start of b and returns its
// VNI. It is strict, like the receive path of the kernel's vxlan device:
// ErrShort if b is shorter than VXLANHeaderLen, ErrBadFlags if the flags byte
// is not exactly VXLANFlagVNI, ErrReserved if any reserved bit (bytes 1-3 and
// byte 7) is set.
func ParseVXLAN(b []byte) (vni uint32, err error) {
	if len(b) < VXLANHeaderLen {
		return 0, ErrShort
	}
	if b[vxlanFlagsOff] != VXLANFlagVNI {
		return 0, ErrBadFlags
	}
	w0 := binary.BigEndian.Uint32(b[vxlanFlagsOff:])
	w1 := binary.BigEndian.Uint32(b[vxlanVNIOff:])
	if w0&0x00ffffff != 0 || w1&0xff != 0 {
		return 0, ErrReserved
	}
	return w1 >> 8, nil
}
