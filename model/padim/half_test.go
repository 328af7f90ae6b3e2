package padim

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
	"gonum.org/v1/gonum/blas/gonum"
)

// The half-precision kernel computes exactly what its Go reference does
// with the same rounded values (every row length's padding, d = 1…40, and
// the sizes models use), and the rounding moves xᵀAx by about binary16's
// relative precision.
func TestQuadFormHalf(t *testing.T) {
	if !cpuHasHalf {
		t.Skip("no AVX2/FMA/F16C on this CPU: the scorer keeps float32")
	}
	r := rand.New(rand.NewPCG(5, 6))
	sizes := []int{100, 128, 200, 550}
	for d := 1; d <= 40; d++ {
		sizes = append(sizes, d)
	}
	for _, d := range sizes {
		s := &State{GridH: 1, GridW: 2, D: d, Mean: make([]float32, 2*d), InvCov: make([]float32, 2*packedLen(d))}
		for i := range s.InvCov {
			s.InvCov[i] = r.Float32()*2 - 1
		}
		h := newHalfInv(s)
		x := make([]float32, d, d+8)
		for i := range x {
			x[i] = r.Float32()*4 - 2
		}
		for q := range 2 {
			ref := quadFormHalfRef(h, q, x)
			got := quadFormHalf(&h.off[q*h.stride], &h.diag[q*d], &x[0], d)
			var mag float64
			a := s.InvCov[q*packedLen(d):]
			off := 0
			for i := range d {
				for j := i; j < d; j++ {
					mag += math.Abs(float64(a[off+j-i]) * float64(x[i]) * float64(x[j]))
				}
				off += d - i
			}
			if math.Abs(got-ref) > 1e-5*mag {
				t.Errorf("d=%d position %d: kernel %g, reference %g (±%g)", d, q, got, ref, 1e-5*mag)
			}
			exact := quadForm(gonum.Implementation{}, a[:packedLen(d)], x)
			if math.Abs(got-exact) > 2*math.Exp2(-11)*mag {
				t.Errorf("d=%d position %d: half %g, float32 %g: more than binary16's rounding apart (±%g)", d, q, got, exact, 2*math.Exp2(-11)*mag)
			}
		}
	}
}

// A Scorer with Half gives the float32 scorer's distances within 0.5% on
// fitted states (normal and shifted embeddings), and allocates nothing.
func TestScorerHalf(t *testing.T) {
	if !cpuHasHalf {
		t.Skip("no AVX2/FMA/F16C on this CPU: the scorer keeps float32")
	}
	for _, tc := range []struct{ gh, gw, d, n int }{{4, 4, 10, 40}, {4, 4, 100, 150}, {2, 2, 200, 260}} {
		g := newFeatureGen(tc.gh*tc.gw, tc.d, uint64(tc.d))
		s, _ := fitState(t, g, tc.gh, tc.gw, tc.d, tc.n)
		full, err := NewScorer(s, 2)
		if err != nil {
			t.Fatal(err)
		}
		half, err := NewScorerWith(s, ScorerOptions{Workers: 2, Half: true})
		if err != nil {
			t.Fatal(err)
		}
		if !half.Half() || full.Half() || tc.d >= 100 && half.half.bytes() >= int64(len(s.InvCov))*4*6/10 {
			t.Fatalf("d=%d: half %v (%d bytes for %d float32s), full %v", tc.d, half.Half(), half.half.bytes(), len(s.InvCov), full.Half())
		}
		e := make([]float32, len(s.Mean))
		a, b := make([]float32, s.Positions()), make([]float32, s.Positions())
		worst := 0.0
		for _, shift := range []float64{0, 0.3, 2} {
			g.next(e, shift)
			if err := full.Score(a, e); err != nil {
				t.Fatal(err)
			}
			if err := half.Score(b, e); err != nil {
				t.Fatal(err)
			}
			for q := range a {
				worst = math.Max(worst, relDiff(float64(a[q]), float64(b[q])))
			}
		}
		if n := testing.AllocsPerRun(3, func() { _ = half.Score(b, e) }); n != 0 {
			t.Errorf("d=%d: %v allocs per score", tc.d, n)
		}
		full.Close()
		half.Close()
		t.Logf("d=%d: worst relative difference of distances %.2g", tc.d, worst)
		if worst > 5e-3 {
			t.Errorf("d=%d: half-precision distances %.2g from float32's, want ≤ 0.5%%", tc.d, worst)
		}
	}
}

// Rounding to binary16 is to nearest, and the values PaDiM stores
// (|A| ≤ 1/ε = 100) keep 11 significant bits.
func TestHalfRounding(t *testing.T) {
	for _, v := range []float32{100, -100, 1, 0.1, -3.14159, 1e-3, 0} {
		got := float16.Fromfloat32(v).Float32()
		if math.Abs(float64(got-v)) > math.Exp2(-11)*math.Abs(float64(v)) {
			t.Errorf("%g rounds to %g", v, got)
		}
	}
}

// quadFormHalfRef is quadFormHalf in Go, for the tests: the same rounded
// values, widened exactly, summed like quadForm.
func quadFormHalfRef(h *halfInv, q int, x []float32) float64 {
	d := len(x)
	o := h.off[q*h.stride:]
	var total float64
	at := 0
	for i := range d {
		var dot float32
		for j := range d - 1 - i {
			dot += float16.Frombits(o[at+j]).Float32() * x[i+1+j]
		}
		total += float64(x[i]) * float64(h.diag[q*d+i]*x[i]+2*dot)
		at += halfRowLen(d, i)
	}
	return total
}
