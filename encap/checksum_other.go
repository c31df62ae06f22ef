//go:build !amd64 || purego

package encap

// haveAVX2 is false where there is no sumAVX2.
var haveAVX2 = false

// avx2Built: this build has no sumAVX2.
const avx2Built = false

func sumAVX2(p *byte, n int, out *[4]uint64) { panic("encap: sumAVX2 without AVX2") }
