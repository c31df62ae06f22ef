package encap

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

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
// 8, with random initial values; over inputs of 0xff bytes (the largest
// words) up to 16 MiB; and over all-zero input.
func TestChecksumAVX2(t *testing.T) {
	if !haveAVX2 {
		t.Skip("no AVX2 on this CPU: Checksum never takes that path here")
	}
	r := rand.New(rand.NewPCG(5, 6))
	buf := make([]byte, avx2Min+4096+8)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	sum := func(b []byte, initial uint16, avx bool) (s uint16) {
		withAVX2(t, avx, func() { s = Checksum(b, initial) })
		return s
	}
	for n := avx2Min - 1; n <= avx2Min+4096; n++ {
		off := n % 8
		b := buf[off : off+n]
		initial := uint16(r.Uint32())
		if got, want := sum(b, initial, true), sum(b, initial, false); got != want {
			t.Fatalf("len %d off %d initial %#04x: AVX2 %#04x, portable %#04x", n, off, initial, got, want)
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
