package padim

import (
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas/gonum"
)

func check(t *testing.T, kernel string, d, k int, got, want []float64, tol float64) {
	t.Helper()
	for i := range got {
		if diff := got[i] - want[i]; diff > tol || diff < -tol {
			t.Fatalf("%s kernel, d=%d k=%d: element %d is %v, want %v", kernel, d, k, i, got[i], want[i])
		}
	}
}

// TestSyrkRows holds the rank-k update (the assembly kernel where the CPU
// has one) against a plain float64 triple loop, for sizes around the kernel's
// blocks of 16 and 4 and odd and even row counts.
func TestSyrkRows(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var impl gonum.Implementation
	for _, d := range []int{1, 3, 4, 5, 16, 17, 20, 33, 100} {
		for _, k := range []int{0, 1, 2, 3, 16} {
			x := make([]float64, k*d)
			x32 := make([]float32, k*d)
			for i := range x {
				x32[i] = float32(r.NormFloat64())
				x[i] = float64(x32[i])
			}
			acc := make([]float64, packedLen(d))
			want := make([]float64, packedLen(d))
			for i := range acc {
				acc[i] = r.NormFloat64()
				want[i] = acc[i]
			}
			off := 0
			for i := range d {
				for j := i; j < d; j++ {
					for b := range k {
						want[off+j-i] += x[b*d+i] * x[b*d+j]
					}
				}
				off += d - i
			}
			got := append([]float64(nil), acc...)
			syrkRows64(got, x, k, d, &impl)
			check(t, "gonum", d, k, got, want, 1e-12)
			if cpuHasFMA {
				// Products of 16 float32 values summed in float32: the
				// rounding is relative to the magnitude of the terms.
				got := append([]float64(nil), acc...)
				syrkRows32(got, x32, k, d)
				check(t, "fma", d, k, got, want, 1e-5*float64(k+1))
			}
		}
	}
}
