package encap

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestSumAVX2Lanes checks sumAVX2's four lanes against a model: lane i
// holds the sum of the low and high 32-bit halves of the 64-bit words at
// offsets 8i, 32+8i, 64+8i and 96+8i of every 128-byte block. Comparing
// Checksum's two paths alone would not notice that sumAVX2 is never
// called.
func TestSumAVX2Lanes(t *testing.T) {
	requireAVX2(t)
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{128, 256, 1408, 65536} {
		for _, fill := range []string{"random", "0xff"} {
			b := make([]byte, n+3)[3:] // unaligned
			for i := range b {
				b[i] = 0xff
				if fill == "random" {
					b[i] = byte(r.Uint32())
				}
			}
			var want [4]uint64
			for blk := 0; blk < n; blk += 128 {
				for i := range 4 {
					for _, at := range []int{8 * i, 32 + 8*i, 64 + 8*i, 96 + 8*i} {
						w := binary.LittleEndian.Uint64(b[blk+at:])
						want[i] += w&0xffffffff + w>>32
					}
				}
			}
			var got [4]uint64
			sumAVX2(&b[0], n, &got)
			if got != want {
				t.Errorf("%d bytes of %s: lanes %x, want %x", n, fill, got, want)
			}
		}
	}
}

// requireAVX2 skips a test of sumAVX2 where it cannot run: in a build
// without it (not amd64, or -tags purego) or on a CPU without AVX2. The
// condition is the hardware's, not haveAVX2, which is under test.
func requireAVX2(t *testing.T) {
	t.Helper()
	if !avx2Built || !cpu.X86.HasAVX2 {
		t.Skip("no sumAVX2 in this build, or no AVX2 on this CPU")
	}
}

// TestHaveAVX2: Checksum takes the AVX2 path exactly where the build has
// it and the CPU can run it.
func TestHaveAVX2(t *testing.T) {
	if want := avx2Built && cpu.X86.HasAVX2; haveAVX2 != want {
		t.Errorf("haveAVX2 = %v, want %v (built %v, CPU has AVX2 %v)", haveAVX2, want, avx2Built, cpu.X86.HasAVX2)
	}
}

// withAVX2 runs f with sumAVX2 chosen (on) or not.
func withAVX2(t *testing.T, on bool, f func()) {
	t.Helper()
	saved := haveAVX2
	defer func() { haveAVX2 = saved }()
	haveAVX2 = on
	f()
}

// TestChecksumAVX2 compares the AVX2 path with the portable one over
// every length up to 4 KiB past the threshold, at every alignment mod
// 32, with random initial values; over inputs of 0xff bytes (the largest
// words) up to 16 MiB; and over all-zero input.
func TestChecksumAVX2(t *testing.T) {
	requireAVX2(t)
	r := rand.New(rand.NewPCG(5, 6))
	buf := make([]byte, avx2Min+4096+32)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	sum := func(b []byte, initial uint16, avx bool) (s uint16) {
		withAVX2(t, avx, func() { s = Checksum(b, initial) })
		return s
	}
	for n := avx2Min - 1; n <= avx2Min+4096; n++ {
		for off := range 32 {
			b := buf[off : off+n]
			initial := uint16(r.Uint32())
			if got, want := sum(b, initial, true), sum(b, initial, false); got != want {
				t.Fatalf("len %d off %d initial %#04x: AVX2 %#04x, portable %#04x", n, off, initial, got, want)
			}
		}
	}
	for _, n := range []int{avx2Min, 1500, 65536, 1 << 20, 16 << 20} {
		ff := bytes.Repeat([]byte{0xff}, n)
		if got, want := sum(ff, 0xffff, true), sum(ff, 0xffff, false); got != want || got != 0xffff {
			t.Errorf("%d bytes of 0xff: AVX2 %#04x, portable %#04x, want 0xffff", n, got, want)
		}
		zero := make([]byte, n)
		if got := sum(zero, 0, true); got != 0 {
			t.Errorf("%d zero bytes: AVX2 %#04x, want 0", n, got)
		}
	}
}
