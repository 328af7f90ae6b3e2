#include "textflag.h"

// func quadFormHalf(off *uint16, diag *float32, x *float32, d int) float64
//
// xᵀAx for the symmetric d×d matrix A given as its diagonal (d float32)
// and its off-diagonal rows in IEEE 754 half precision (halfInv: row i
// holds A[i][i+1..d-1], zero-padded to a multiple of 8): each row's
// products with x[i+1..] from 8 halves widened per VCVTPH2PS (F16C) in two
// FMA chains, the row's 8-lane vector then weighted by x[i] into one 8-lane
// float32 sum over the rows (no horizontal sum per row: a row averages 50
// values, and reducing each cost as much as its products), the diagonal
// Σ A[i][i]·x[i]² beside it; lanes and diagonal summed in float64 at the
// end. x must hold d+7 floats, the last 7 zero.
TEXT ·quadFormHalf(SB), NOSPLIT, $0-40
	MOVQ off+0(FP), SI
	MOVQ diag+8(FP), DX
	MOVQ x+16(FP), DI
	MOVQ d+24(FP), CX
	VXORPS Y8, Y8, Y8
	VXORPS X9, X9, X9
	XORQ R8, R8

hrow:
	CMPQ R8, CX
	JGE  hdone
	MOVQ CX, R9
	SUBQ R8, R9
	DECQ R9
	ADDQ $7, R9
	ANDQ $-8, R9
	LEAQ 4(DI)(R8*4), R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1

hloop16:
	CMPQ R9, $16
	JL   htail8
	VCVTPH2PS 0(SI), Y2
	VFMADD231PS 0(R11), Y2, Y0
	VCVTPH2PS 16(SI), Y3
	VFMADD231PS 32(R11), Y3, Y1
	ADDQ $32, SI
	ADDQ $64, R11
	SUBQ $16, R9
	JMP  hloop16

htail8:
	TESTQ R9, R9
	JZ   hsum
	VCVTPH2PS 0(SI), Y2
	VFMADD231PS 0(R11), Y2, Y0
	ADDQ $16, SI

hsum:
	VADDPS Y1, Y0, Y0
	VBROADCASTSS (DI)(R8*4), Y4
	VFMADD231PS Y0, Y4, Y8
	VMOVSS (DX)(R8*4), X2
	VMOVSS (DI)(R8*4), X3
	VMULSS X3, X2, X2
	VFMADD231SS X3, X2, X9
	INCQ R8
	JMP  hrow

hdone:
	VEXTRACTF128 $1, Y8, X1
	VCVTPS2PD X8, Y6
	VCVTPS2PD X1, Y7
	VADDPD Y7, Y6, Y6
	VEXTRACTF128 $1, Y6, X7
	VADDPD X7, X6, X6
	VHADDPD X6, X6, X6
	VADDSD X6, X6, X6
	VCVTSS2SD X9, X9, X9
	VADDSD X9, X6, X6
	VZEROUPPER
	MOVSD X6, ret+32(FP)
	RET
