#include "textflag.h"

// func quadFormFMA(a *float32, x *float32, d int) float64
//
// xᵀAx for the symmetric d×d matrix A given as its packed upper triangle
// (row i: A[i][i], A[i][i+1], …, A[i][d-1]), with the numerics of
// quadForm: each row's off-diagonal dot product Σ_{j>i} A[i][j]·x[j] in
// float32 (two 8-lane FMA chains, 16 floats per step, then 8, then the last
// 1-7 under a lane mask), t = A[i][i]·x[i] + 2·dot in float32, and
// Σ x[i]·t over the rows in float64. One call per position instead of one
// gonum Sdot call per row: the rows average d/2 floats, too short for a
// call's overhead.
TEXT ·quadFormFMA(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ d+16(FP), CX
	VXORPD X14, X14, X14      // total
	XORQ R8, R8               // i

row:
	CMPQ R8, CX
	JGE  done
	MOVQ CX, R9
	SUBQ R8, R9
	DECQ R9                   // n-1 = d-i-1 off-diagonal values
	LEAQ 4(SI), R10           // &A[i][i+1]
	LEAQ 4(DI)(R8*4), R11     // &x[i+1]
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1

loop16:
	CMPQ R9, $16
	JL   tail8
	VMOVUPS 0(R10), Y2
	VFMADD231PS 0(R11), Y2, Y0
	VMOVUPS 32(R10), Y3
	VFMADD231PS 32(R11), Y3, Y1
	ADDQ $64, R10
	ADDQ $64, R11
	SUBQ $16, R9
	JMP  loop16

tail8:
	CMPQ R9, $8
	JL   tailr
	VMOVUPS 0(R10), Y2
	VFMADD231PS 0(R11), Y2, Y0
	ADDQ $32, R10
	ADDQ $32, R11
	SUBQ $8, R9

tailr:
	TESTQ R9, R9
	JZ   reduce
	// Lane mask of the first R9 floats: ·tailmask+4*(8-R9) (syrk_amd64.s).
	LEAQ ·tailmask+32(SB), R12
	SHLQ $2, R9
	SUBQ R9, R12
	VMOVUPS (R12), Y5
	VMASKMOVPS 0(R10), Y5, Y2
	VMASKMOVPS 0(R11), Y5, Y3
	VFMADD231PS Y3, Y2, Y1

reduce:
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X1, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0         // dot
	VADDSS X0, X0, X0         // 2·dot
	VMOVSS 0(SI), X2          // A[i][i]
	VMOVSS (DI)(R8*4), X3     // x[i]
	VMULSS X3, X2, X2
	VADDSS X2, X0, X0         // t = A[i][i]·x[i] + 2·dot
	VCVTSS2SD X0, X0, X0
	VCVTSS2SD X3, X3, X3
	VMULSD X3, X0, X0
	VADDSD X0, X14, X14
	// Next row: this one held d-i values.
	MOVQ CX, R9
	SUBQ R8, R9
	LEAQ (SI)(R9*4), SI
	INCQ R8
	JMP  row

done:
	VZEROUPPER
	MOVSD X14, ret+24(FP)
	RET

