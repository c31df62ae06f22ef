package encap_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/vxswitch/vxswitch/encap"
)

func BenchmarkPutVXLAN(b *testing.B) {
	buf := make([]byte, encap.VXLANHeaderLen)
	b.SetBytes(encap.VXLANHeaderLen)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		encap.PutVXLAN(buf, uint32(i))
	}
}

func BenchmarkParseVXLAN(b *testing.B) {
	buf := make([]byte, encap.VXLANHeaderLen)
	encap.PutVXLAN(buf, 4096)
	b.SetBytes(encap.VXLANHeaderLen)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encap.ParseVXLAN(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChecksum(b *testing.B) { benchChecksum(b, 0) }

// BenchmarkChecksumUnaligned sums slices that start at an odd address.
func BenchmarkChecksumUnaligned(b *testing.B) { benchChecksum(b, 1) }

func benchChecksum(b *testing.B, off int) {
	data := randBytes(rand.New(rand.NewPCG(1, 1)), 65536+1)
	for _, n := range []int{64, 1500, 65536} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			d := data[off : off+n]
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				encap.Checksum(d, 0)
			}
		})
	}
}

// BenchmarkSegment splits a 64 KiB IPv4 superframe (the largest IPv4
// packet) at MSS 1398 (a 1450-byte overlay MTU minus 52 bytes of IPv4 and
// TCP headers with timestamps), headers into a scratch buffer, payloads in
// place.
func BenchmarkSegment(b *testing.B) {
	const mss = 1398
	super := seg{tcpOpts: true, payload: make([]byte, 65535-20-32)}.super(b)
	hdr := make([]byte, 128)
	b.SetBytes(int64(len(super)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := encap.ParseTCPSuper(super, mss)
		if err != nil {
			b.Fatal(err)
		}
		for i := range s.Segments() {
			s.Segment(i, super, hdr)
		}
	}
}

// BenchmarkCoalesce coalesces 44 received segments of 1448 bytes (a 1500
// MTU with timestamps) into one superframe: parsing each (checksums
// verified), appending, finishing.
func BenchmarkCoalesce(b *testing.B) {
	const mss, n = 1448, 44
	frames := split(b, seg{tcpOpts: true, payload: make([]byte, n*mss)}.super(b), mss)
	firstHdr := bytes.Clone(frames[0][:66])
	b.SetBytes(n * mss)
	b.ReportAllocs()
	for b.Loop() {
		copy(frames[0], firstHdr) // undo the previous iteration's Finish
		var r encap.TCPRun
		for i, f := range frames {
			s, ok := encap.ParseTCPSeg(f)
			if !ok {
				b.Fatal("refused")
			}
			if i == 0 {
				r.Start(f, s)
			} else if !r.Append(f, s) {
				b.Fatal("not appended")
			}
		}
		if _, ok := r.Finish(); !ok {
			b.Fatal("no GSO")
		}
	}
}

func BenchmarkSourcePort(b *testing.B) {
	for name, f := range map[string][]byte{
		"ipv4": seg{payload: make([]byte, 100)}.frame(b),
		"ipv6": seg{v6: true, payload: make([]byte, 100)}.frame(b),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				encap.SourcePort(f, 49152, 65535)
			}
		})
	}
}
