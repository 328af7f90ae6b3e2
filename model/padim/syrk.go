package padim

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// The fit's rank-k update of one position: the k rows x_b = x[b*d : b*d+d]
// (image b's embedding minus the shift) add x_bᵀx_b to the packed upper
// triangle acc (row i holds columns i..d-1), row i gaining Σ_b x_b[i]·x_b[i:].
// The accumulators stay float64 over all images; where the CPU has AVX2 and
// FMA (cpuHasFMA), the sum over one batch (at most 16 products) is formed in
// float32, eight lanes per instruction, and widened before it is added.
// Its rounding (about 1e-7 of a batch's sum) is far below the ε·I ridge.

// syrkRows32 is the update through the assembly kernel (cpuHasFMA only).
func syrkRows32(acc []float64, x []float32, k, d int) {
	if k == 0 {
		return
	}
	off := 0
	for i := range d {
		n := d - i
		syrkRowFMA(&acc[off], n, &x[i], d, k)
		off += n
	}
}

// syrkRows64 is the portable update: a transposed matrix-vector product per
// row, in gonum's SIMD assembly where it has some.
func syrkRows64(acc, x []float64, k, d int, impl *gonum.Implementation) {
	if k == 0 {
		return
	}
	off := 0
	for i := range d {
		n := d - i
		impl.Dgemv(blas.Trans, k, n, 1, x[i:], d, x[i:], d, 1, acc[off:off+n], 1)
		off += n
	}
}
