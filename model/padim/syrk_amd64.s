#include "textflag.h"

// ·tailmask+4*(8-r) holds the lane mask of the first r floats (quad_amd64.s
// uses it too).
DATA ·tailmask+0(SB)/8, $0xffffffffffffffff
DATA ·tailmask+8(SB)/8, $0xffffffffffffffff
DATA ·tailmask+16(SB)/8, $0xffffffffffffffff
DATA ·tailmask+24(SB)/8, $0xffffffffffffffff
DATA ·tailmask+32(SB)/8, $0
DATA ·tailmask+40(SB)/8, $0
DATA ·tailmask+48(SB)/8, $0
DATA ·tailmask+56(SB)/8, $0
GLOBL ·tailmask(SB), RODATA|NOPTR, $64

// func syrkRowFMA(acc *float64, n int, x *float32, stride int, k int)
//
// For each block of acc (16 values, then 8, then the last 1-7 under a lane
// mask) the k rows are folded in with float32 fused multiply-adds
// (coefficient x[b*stride] broadcast, times x[b*stride+j : +block]), even
// and odd rows into separate registers so that two FMA chains run at once;
// the block's sum is then widened to float64 and added to acc.
TEXT ·syrkRowFMA(SB), NOSPLIT, $0-40
	MOVQ acc+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ x+16(FP), SI
	MOVQ stride+24(FP), R8
	SHLQ $2, R8
	MOVQ k+32(FP), R9
	TESTQ R9, R9
	JZ   done
	MOVQ SI, BX           // x at this block's first column

block16:
	CMPQ CX, $16
	JL   block8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ SI, R12          // coefficient of row b
	MOVQ BX, R10          // row b's values at this block
	MOVQ R9, R11
	SHRQ $1, R11
	JZ   odd16

pair16:
	VBROADCASTSS (R12), Y14
	VFMADD231PS 0(R10), Y14, Y0
	VFMADD231PS 32(R10), Y14, Y1
	ADDQ R8, R12
	ADDQ R8, R10
	VBROADCASTSS (R12), Y15
	VFMADD231PS 0(R10), Y15, Y2
	VFMADD231PS 32(R10), Y15, Y3
	ADDQ R8, R12
	ADDQ R8, R10
	DECQ R11
	JNZ  pair16

odd16:
	TESTQ $1, R9
	JZ   store16
	VBROADCASTSS (R12), Y14
	VFMADD231PS 0(R10), Y14, Y0
	VFMADD231PS 32(R10), Y14, Y1

store16:
	VADDPS Y2, Y0, Y0
	VADDPS Y3, Y1, Y1
	VCVTPS2PD X0, Y4
	VEXTRACTF128 $1, Y0, X5
	VCVTPS2PD X5, Y5
	VCVTPS2PD X1, Y6
	VEXTRACTF128 $1, Y1, X7
	VCVTPS2PD X7, Y7
	VADDPD 0(DI), Y4, Y4
	VADDPD 32(DI), Y5, Y5
	VADDPD 64(DI), Y6, Y6
	VADDPD 96(DI), Y7, Y7
	VMOVUPD Y4, 0(DI)
	VMOVUPD Y5, 32(DI)
	VMOVUPD Y6, 64(DI)
	VMOVUPD Y7, 96(DI)
	ADDQ $128, DI
	ADDQ $64, BX
	SUBQ $16, CX
	JMP  block16

block8:
	CMPQ CX, $8
	JL   tail
	VXORPS Y0, Y0, Y0
	VXORPS Y2, Y2, Y2
	MOVQ SI, R12
	MOVQ BX, R10
	MOVQ R9, R11
	SHRQ $1, R11
	JZ   odd8

pair8:
	VBROADCASTSS (R12), Y14
	VFMADD231PS 0(R10), Y14, Y0
	ADDQ R8, R12
	ADDQ R8, R10
	VBROADCASTSS (R12), Y15
	VFMADD231PS 0(R10), Y15, Y2
	ADDQ R8, R12
	ADDQ R8, R10
	DECQ R11
	JNZ  pair8

odd8:
	TESTQ $1, R9
	JZ   store8
	VBROADCASTSS (R12), Y14
	VFMADD231PS 0(R10), Y14, Y0

store8:
	VADDPS Y2, Y0, Y0
	VCVTPS2PD X0, Y4
	VEXTRACTF128 $1, Y0, X5
	VCVTPS2PD X5, Y5
	VADDPD 0(DI), Y4, Y4
	VADDPD 32(DI), Y5, Y5
	VMOVUPD Y4, 0(DI)
	VMOVUPD Y5, 32(DI)
	ADDQ $64, DI
	ADDQ $32, BX
	SUBQ $8, CX
	JMP  block8

tail:
	TESTQ CX, CX
	JZ   done
	// Y13: mask of the first CX floats; Y11, Y12: the same lanes as
	// doubles (low and high four).
	LEAQ ·tailmask+32(SB), R13
	MOVQ CX, AX
	SHLQ $2, AX
	SUBQ AX, R13
	VMOVUPS (R13), Y13
	VPMOVSXDQ X13, Y11
	VEXTRACTF128 $1, Y13, X12
	VPMOVSXDQ X12, Y12
	VXORPS Y0, Y0, Y0
	VXORPS Y2, Y2, Y2
	MOVQ SI, R12
	MOVQ BX, R10
	MOVQ R9, R11
	SHRQ $1, R11
	JZ   oddtail

pairtail:
	VBROADCASTSS (R12), Y14
	VMASKMOVPS 0(R10), Y13, Y8
	VFMADD231PS Y8, Y14, Y0
	ADDQ R8, R12
	ADDQ R8, R10
	VBROADCASTSS (R12), Y15
	VMASKMOVPS 0(R10), Y13, Y9
	VFMADD231PS Y9, Y15, Y2
	ADDQ R8, R12
	ADDQ R8, R10
	DECQ R11
	JNZ  pairtail

oddtail:
	TESTQ $1, R9
	JZ   storetail
	VBROADCASTSS (R12), Y14
	VMASKMOVPS 0(R10), Y13, Y8
	VFMADD231PS Y8, Y14, Y0

storetail:
	VADDPS Y2, Y0, Y0
	VCVTPS2PD X0, Y4
	VEXTRACTF128 $1, Y0, X5
	VCVTPS2PD X5, Y5
	VMASKMOVPD 0(DI), Y11, Y6
	VMASKMOVPD 32(DI), Y12, Y7
	VADDPD Y6, Y4, Y4
	VADDPD Y7, Y5, Y5
	VMASKMOVPD Y4, Y11, 0(DI)
	VMASKMOVPD Y5, Y12, 32(DI)

done:
	VZEROUPPER
	RET
