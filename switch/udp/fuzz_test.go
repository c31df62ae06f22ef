package udp

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel writes it.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.SizeofCmsghdr:], data)
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// recvCmsgs on any bytes: no panic; the control messages a receive gets
// (UDP_GRO, IP_TOS or IPV6_TCLASS, SO_RXQ_OVFL, in any order, with others
// around them) are read back.
func FuzzRecvCmsgs(f *testing.F) {
	f.Add(append(append(cmsg(unix.SOL_UDP, unix.UDP_GRO, u32(1400)), cmsg(unix.IPPROTO_IP, unix.IP_TOS, []byte{3})...),
		cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(7))...))
	f.Add(append(cmsg(unix.IPPROTO_IPV6, unix.IPV6_TCLASS, u32(0xb9)), cmsg(unix.SOL_UDP, unix.UDP_GRO, []byte{0x10, 0})...))
	f.Add(cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMP, make([]byte, 16)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Aligned, as the kernel's buffer is.
		ctrl := make([]uint64, (len(b)+7)/8)
		buf := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(ctrl))), len(ctrl)*8)[:len(b)]
		copy(buf, b)
		seg, ecn, _, _ := recvCmsgs(buf)
		if ecn > 3 || seg < 0 {
			t.Fatalf("segment %d, ECN %d", seg, ecn)
		}
		// Known messages appended are read back when the bytes before
		// them parse as whole messages.
		tail := append(cmsg(unix.SOL_UDP, unix.UDP_GRO, u32(1234)), cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(99))...)
		if wholeMessages(buf) {
			all := append(append([]byte(nil), buf...), tail...)
			ctrl2 := make([]uint64, (len(all)+7)/8)
			buf2 := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(ctrl2))), len(ctrl2)*8)[:len(all)]
			copy(buf2, all)
			seg, _, drops, ok := recvCmsgs(buf2)
			if seg != 1234 || drops != 99 || !ok {
				t.Fatalf("appended messages read as segment %d, drops %d (%v)", seg, drops, ok)
			}
		}
	})
}

// wholeMessages reports whether b is a sequence of well-formed control
// messages, each padded to its CmsgSpace.
func wholeMessages(b []byte) bool {
	for len(b) > 0 {
		if len(b) < unix.SizeofCmsghdr {
			return false
		}
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(b) {
			return false
		}
		sp := unix.CmsgSpace(l - unix.SizeofCmsghdr)
		if sp > len(b) {
			return false
		}
		b = b[sp:]
	}
	return true
}
