//go:build amd64 && !purego

#include "textflag.h"

// func sumAVX2(p *byte, n int, out *[4]uint64)
//
// 128 bytes per iteration: four 32-byte loads, each split into the low
// and the high 32 bits of its 64-bit lanes (an AND and a shift, which run
// on more ports than a shuffle) and added into four accumulators, so that
// no accumulator takes more than two dependent adds per iteration.
TEXT ·sumAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ out+16(FP), DI
	VPXOR    Y0, Y0, Y0
	VPXOR    Y1, Y1, Y1
	VPXOR    Y2, Y2, Y2
	VPXOR    Y3, Y3, Y3
	VPCMPEQQ Y12, Y12, Y12
	VPSRLQ   $32, Y12, Y12 // 0x00000000ffffffff in every lane (not Y15: Go code keeps X15 zero)

loop:
	VMOVDQU 0(SI), Y4
	VMOVDQU 32(SI), Y5
	VMOVDQU 64(SI), Y6
	VMOVDQU 96(SI), Y7
	VPSRLQ  $32, Y4, Y8
	VPSRLQ  $32, Y5, Y9
	VPSRLQ  $32, Y6, Y10
	VPSRLQ  $32, Y7, Y11
	VPAND   Y12, Y4, Y4
	VPAND   Y12, Y5, Y5
	VPAND   Y12, Y6, Y6
	VPAND   Y12, Y7, Y7
	VPADDQ  Y4, Y0, Y0
	VPADDQ  Y8, Y1, Y1
	VPADDQ  Y5, Y2, Y2
	VPADDQ  Y9, Y3, Y3
	VPADDQ  Y6, Y0, Y0
	VPADDQ  Y10, Y1, Y1
	VPADDQ  Y7, Y2, Y2
	VPADDQ  Y11, Y3, Y3
	ADDQ    $128, SI
	SUBQ    $128, CX
	JNZ     loop

	VPADDQ  Y1, Y0, Y0
	VPADDQ  Y3, Y2, Y2
	VPADDQ  Y2, Y0, Y0
	VMOVDQU Y0, (DI)
	VZEROUPPER
	RET
