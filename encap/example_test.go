package encap_test

import (
	"encoding/binary"
	"fmt"

	"github.com/vxswitch/vxswitch/encap"
)

// exampleSuperframe builds, with encap's own setters, an Ethernet/IPv4/TCP
// superframe as the kernel hands it to a TAP with TSO.
func exampleSuperframe(payload int) []byte {
	f := make([]byte, 54+payload)
	copy(f[0:], []byte{0x02, 0x42, 0x0a, 0, 0, 3}) // destination MAC
	copy(f[6:], []byte{0x02, 0x42, 0x0a, 0, 0, 2}) // source MAC
	binary.BigEndian.PutUint16(f[12:], encap.EtherTypeIPv4)
	ip := encap.IPv4(f[encap.EthernetHeaderLen:])
	ip[0] = 0x45                         // version 4, no options
	ip[6] = 0x40                         // DF
	ip[8], ip[9] = 64, encap.ProtocolTCP // TTL, protocol
	ip.SetTotalLength(uint16(40 + payload))
	copy(ip.Src(), []byte{10, 0, 0, 2})
	copy(ip.Dst(), []byte{10, 0, 0, 3})
	th := encap.TCP(f[34:])
	binary.BigEndian.PutUint16(th[0:], 40000)
	binary.BigEndian.PutUint16(th[2:], 5201)
	th.SetSeq(1)
	th[12] = 5 << 4 // 20-byte header
	th.SetFlags(encap.TCPFlagACK | encap.TCPFlagPSH)
	binary.BigEndian.PutUint16(th[14:], 502) // window
	th.SetChecksum(encap.PseudoHeaderChecksum(encap.ProtocolTCP, ip.Src(), ip.Dst(), uint16(20+payload)))
	return f
}

// The transmit side: split a TSO superframe read from the TAP into
// segments, each behind a VXLAN header, without copying payloads.
func ExampleTCPSuper() {
	const mss = 1448
	frame := exampleSuperframe(3*mss + 100)
	s, err := encap.ParseTCPSuper(frame, mss)
	if err != nil {
		fmt.Println("drop:", err)
		return
	}
	scratch := make([]byte, encap.VXLANHeaderLen+s.HeaderLen()) // one per segment in a real loop
	for i := range s.Segments() {
		encap.PutVXLAN(scratch, 4096)
		payload := s.Segment(i, frame, scratch[encap.VXLANHeaderLen:])
		th := encap.TCP(scratch[encap.VXLANHeaderLen+34:])
		fmt.Printf("datagram %d: %d header bytes + %d payload bytes, seq %d, flags %#02x\n",
			i, len(scratch), len(payload), th.Seq(), th.Flags())
	}
	// Output:
	// datagram 0: 62 header bytes + 1448 payload bytes, seq 1, flags 0x10
	// datagram 1: 62 header bytes + 1448 payload bytes, seq 1449, flags 0x10
	// datagram 2: 62 header bytes + 1448 payload bytes, seq 2897, flags 0x10
	// datagram 3: 62 header bytes + 100 payload bytes, seq 4345, flags 0x18
}

// The receive side: coalesce decapsulated inner frames into superframes
// written to the TAP with one writev each, without copying payloads.
func ExampleTCPRun() {
	// Inner frames as they come out of VXLAN datagrams: four segments of a
	// flow, then a frame that is not a TCP segment.
	const mss = 1448
	super := exampleSuperframe(3*mss + 100)
	s, _ := encap.ParseTCPSuper(super, mss)
	var frames [][]byte
	for i := range s.Segments() {
		hdr := make([]byte, s.HeaderLen())
		frames = append(frames, append(hdr, s.Segment(i, super, hdr)...))
	}
	frames = append(frames, make([]byte, 60))

	var (
		run encap.TCPRun
		iov [][]byte // the pending write: a whole first frame, then payloads
	)
	flush := func() {
		if len(iov) == 0 {
			return
		}
		if g, ok := run.Finish(); ok {
			// virtio-net header: NEEDS_CSUM, GSO_TCPV4, and g's fields.
			fmt.Printf("writev %d pieces with GSO: hdr_len %d gso_size %d csum_start %d csum_offset %d\n",
				len(iov), g.HdrLen, g.Size, g.CsumStart, g.CsumOffset)
		} else {
			fmt.Printf("write %d bytes without GSO\n", len(iov[0]))
		}
		iov = iov[:0]
	}
	for _, f := range frames {
		seg, ok := encap.ParseTCPSeg(f)
		if ok && run.Append(f, seg) {
			iov = append(iov, f[seg.HeaderLen():])
			continue
		}
		flush()
		iov = append(iov, f)
		if ok {
			run.Start(f, seg)
		} else {
			flush()
		}
	}
	flush()
	// Output:
	// writev 4 pieces with GSO: hdr_len 54 gso_size 1448 csum_start 34 csum_offset 16
	// write 60 bytes without GSO
}
