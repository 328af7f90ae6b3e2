package padim

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"gonum.org/v1/gonum/blas/gonum"
)

// The fast packed float32 path against the float64 unpacked reference on the
// same state, for the dimensions the benchmarks report.
func TestScoreMatchesReference(t *testing.T) {
	for _, tc := range []struct{ gh, gw, d, n int }{{4, 4, 10, 40}, {4, 4, 100, 150}, {2, 2, 200, 260}, {1, 2, 550, 600}} {
		g := newFeatureGen(tc.gh*tc.gw, tc.d, uint64(tc.d))
		s, _ := fitState(t, g, tc.gh, tc.gw, tc.d, tc.n)
		sc, err := NewScorer(s, 3)
		if err != nil {
			t.Fatal(err)
		}
		e := make([]float32, len(s.Mean))
		dist := make([]float32, s.Positions())
		worst := 0.0
		for _, shift := range []float64{0, 0, 0.3, 2} {
			g.next(e, shift)
			if err := sc.Score(dist, e); err != nil {
				t.Fatal(err)
			}
			want, err := ReferenceDistances(s, e)
			if err != nil {
				t.Fatal(err)
			}
			for q := range dist {
				// Squared distances: the quantity the kernel sums.
				worst = math.Max(worst, relDiff(float64(dist[q])*float64(dist[q]), want[q]*want[q]))
			}
		}
		sc.Close()
		t.Logf("d=%d: worst relative difference of squared distances %.2g", tc.d, worst)
		if worst > 1e-3 {
			t.Errorf("d=%d: relative difference %.2g > 1e-3", tc.d, worst)
		}
	}
}

// A hand-checkable case: identity inverse covariance gives the Euclidean
// distance; a diagonal one weights it.
func TestScoreByHand(t *testing.T) {
	s := &State{GridH: 1, GridW: 2, D: 2,
		Mean: []float32{1, 1, 0, 0},
		// Position 0: [[1,0],[0,1]]; position 1: [[4, 1],[1, 9]].
		InvCov: []float32{1, 0, 1, 4, 1, 9},
	}
	sc, err := NewScorer(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	dist := make([]float32, 2)
	if err := sc.Score(dist, []float32{4, 5, 1, 2}); err != nil {
		t.Fatal(err)
	}
	// (3,4)·I·(3,4) = 25; (1,2)·[[4,1],[1,9]]·(1,2) = 4 + 2·2 + 36 = 44.
	if dist[0] != 5 || math.Abs(float64(dist[1])-math.Sqrt(44)) > 1e-6 {
		t.Fatalf("got %v, want [5 %v]", dist, math.Sqrt(44))
	}
}

func TestScoreErrorsAndAllocs(t *testing.T) {
	g := newFeatureGen(56*56, 16, 9)
	s, _ := fitState(t, g, 56, 56, 16, 20)
	sc, err := NewScorer(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := make([]float32, len(s.Mean))
	dist := make([]float32, s.Positions())
	if err := sc.Score(dist[:3], e); err == nil {
		t.Error("short destination accepted")
	}
	if err := sc.Score(dist, e[:3]); err == nil {
		t.Error("short embedding accepted")
	}
	if n := testing.AllocsPerRun(10, func() { _ = sc.Score(dist, e) }); n != 0 {
		t.Errorf("%v allocs per Score", n)
	}
	// Concurrent callers are serialized and get the same answer.
	g.next(e, 1)
	_ = sc.Score(dist, e)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			mine := make([]float32, len(dist))
			for range 5 {
				if err := sc.Score(mine, e); err != nil {
					t.Error(err)
				}
			}
			for i := range mine {
				if mine[i] != dist[i] {
					t.Errorf("concurrent score differs at %d", i)
					return
				}
			}
		})
	}
	wg.Wait()
	sc.Close()
	sc.Close()
	if err := sc.Score(dist, e); err == nil {
		t.Error("closed scorer scored")
	}
	if _, err := NewScorer(&State{GridH: 1, GridW: 1, D: 2, Mean: []float32{1}}, 1); err == nil {
		t.Error("invalid state accepted")
	}
}

// TestQuadFormKernels: the assembly kernel (where the CPU has AVX2 and FMA)
// and the portable quadForm agree with xᵀAx summed in float64 for every
// row length's tail (d = 1…40) and the sizes models use, on matrices and
// vectors with values of both signs.
func TestQuadFormKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var impl gonum.Implementation
	sizes := []int{100, 128, 200, 550}
	for d := 1; d <= 40; d++ {
		sizes = append(sizes, d)
	}
	for _, d := range sizes {
		a := make([]float32, packedLen(d))
		for i := range a {
			a[i] = r.Float32()*2 - 1
		}
		x := make([]float32, d)
		for i := range x {
			x[i] = r.Float32()*4 - 2
		}
		var want, mag float64
		off := 0
		for i := range d {
			for j := i; j < d; j++ {
				v := float64(a[off+j-i]) * float64(x[i]) * float64(x[j])
				if j > i {
					v *= 2
				}
				want += v
				mag += math.Abs(v)
			}
			off += d - i
		}
		tol := 1e-5 * mag
		if got := quadForm(impl, a, x); math.Abs(got-want) > tol {
			t.Errorf("d=%d: quadForm = %g, want %g (±%g)", d, got, want, tol)
		}
		if !cpuHasFMA {
			continue
		}
		if got := quadFormFMA(&a[0], &x[0], d); math.Abs(got-want) > tol {
			t.Errorf("d=%d: quadFormFMA = %g, want %g (±%g)", d, got, want, tol)
		}
	}
	if !cpuHasFMA {
		t.Log("no AVX2/FMA on this CPU: only the portable kernel was checked")
	}
}
