//go:build amd64 && !purego

package encap

import "golang.org/x/sys/cpu"

// haveAVX2 chooses sumAVX2 for long inputs. A variable, so that tests can
// compare the two paths on the same machine.
var haveAVX2 = cpu.X86.HasAVX2

// avx2Built: this build has sumAVX2.
const avx2Built = true

// sumAVX2 adds the little-endian 32-bit words of p[:n], n a positive
// multiple of 128, into four 64-bit lanes and stores them in out. Each
// lane's sum, like every 32-bit word, is congruent mod 0xffff to the sum
// of the 16-bit words it holds (2^16 ≡ 1), so the lanes can be added into
// Checksum's accumulator. A lane takes at most eight words below 2^32 per
// 128 bytes, so it cannot overflow below 2^29 × 128 bytes of input.
//
//go:noescape
func sumAVX2(p *byte, n int, out *[4]uint64)
