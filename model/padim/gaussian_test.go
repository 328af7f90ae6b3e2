package padim

import (
	"bytes"
	"log/slog"
	"math"
	"strings"
	"testing"
)

func fitState(t testing.TB, g *featureGen, gridH, gridW, d, n int) (*State, [][]float32) {
	t.Helper()
	acc, err := NewAccumulator(AccumulatorOptions{GridH: gridH, GridW: gridW, D: d})
	if err != nil {
		t.Fatal(err)
	}
	embs := make([][]float32, n)
	for i := range embs {
		embs[i] = make([]float32, gridH*gridW*d)
		g.next(embs[i], 0)
		if err := acc.Add(embs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if acc.Count() != n {
		t.Fatalf("count %d, want %d", acc.Count(), n)
	}
	s, err := acc.Finalize(FinalizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s, embs
}

// The streaming, batched, shifted, float32-stored fit must give the same
// Gaussians as the textbook two-pass float64 fit.
func TestFitMatchesReference(t *testing.T) {
	const gh, gw, d, n = 3, 4, 24, 61 // n not a multiple of the batch
	g := newFeatureGen(gh*gw, d, 1)
	s, embs := fitState(t, g, gh, gw, d, n)
	ref, err := FitReference(embs, gh, gw, d, DefaultEps)
	if err != nil {
		t.Fatal(err)
	}
	tri := packedLen(d)
	for q := range gh * gw {
		for i := range d {
			if r := relDiff(float64(s.Mean[q*d+i]), ref.mean[q][i]); r > 1e-6 && math.Abs(ref.mean[q][i]) > 1e-6 {
				t.Fatalf("position %d mean[%d]: %v vs %v", q, i, s.Mean[q*d+i], ref.mean[q][i])
			}
		}
		k := 0
		maxAbs := 0.0
		for i := range d {
			maxAbs = math.Max(maxAbs, math.Abs(ref.inv[q].At(i, i)))
		}
		for i := range d {
			for j := i; j < d; j++ {
				got, want := float64(s.InvCov[q*tri+k]), ref.inv[q].At(i, j)
				if math.Abs(got-want) > 1e-5*maxAbs {
					t.Fatalf("position %d inv[%d,%d]: %v vs %v", q, i, j, got, want)
				}
				k++
			}
		}
	}
	// End to end on unseen normal and anomalous samples.
	e := make([]float32, gh*gw*d)
	sc, err := NewScorer(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	dist := make([]float32, gh*gw)
	for _, shift := range []float64{0, 0.5, 3} {
		g.next(e, shift)
		want, _ := ref.Distances(e)
		if err := sc.Score(dist, e); err != nil {
			t.Fatal(err)
		}
		for q := range dist {
			if r := relDiff(float64(dist[q]), want[q]); r > 1e-3 {
				t.Fatalf("shift %g position %d: %v vs reference %v (rel %.2g)", shift, q, dist[q], want[q], r)
			}
		}
	}
}

func TestFinalizeErrors(t *testing.T) {
	if _, err := NewAccumulator(AccumulatorOptions{GridH: 0, GridW: 1, D: 1}); err == nil {
		t.Error("empty grid accepted")
	}
	acc, _ := NewAccumulator(AccumulatorOptions{GridH: 2, GridW: 3, D: 2})
	if err := acc.Add(make([]float32, 5)); err == nil {
		t.Error("short embedding accepted")
	}
	_ = acc.Add(make([]float32, 12))
	if _, err := acc.Finalize(FinalizeOptions{}); err == nil || !strings.Contains(err.Error(), "need at least 2") {
		t.Errorf("one image: %v", err)
	}
	e := make([]float32, 12)
	e[(1*3+2)*2+1] = float32(math.NaN())
	_ = acc.Add(e)
	_, err := acc.Finalize(FinalizeOptions{})
	if err == nil || !strings.Contains(err.Error(), "(y=1, x=2)") {
		t.Errorf("NaN feature: %v", err)
	}
	if _, err := acc.Finalize(FinalizeOptions{Eps: -1}); err == nil {
		t.Error("negative eps accepted")
	}
}

// Two identical channels make the covariance singular; with a negligible
// ridge the Cholesky factorization fails, and Finalize must either add
// regularization (logging it once) or name the position.
func TestFinalizeRegularization(t *testing.T) {
	const gh, gw, d = 2, 2, 2
	acc, _ := NewAccumulator(AccumulatorOptions{GridH: gh, GridW: gw, D: d, Workers: 2})
	for i := range 20 {
		e := make([]float32, gh*gw*d)
		for q := range gh * gw {
			v := float32(i%5) * 0.5
			e[q*d], e[q*d+1] = v, v
			if q != 3 { // only position (y=1, x=1) is degenerate
				e[q*d+1] = float32(i%3) * 0.7
			}
		}
		_ = acc.Add(e)
	}
	_, err := acc.Finalize(FinalizeOptions{Eps: 1e-30, MaxRegularization: 2})
	if err == nil || !strings.Contains(err.Error(), "(y=1, x=1)") || !strings.Contains(err.Error(), "not positive definite") {
		t.Fatalf("want an error naming (y=1, x=1), got %v", err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	s, err := acc.Finalize(FinalizeOptions{Eps: 1e-30, MaxRegularization: 40, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "positions=1") || !strings.Contains(out, "first_y=1 first_x=1") {
		t.Fatalf("log: %q", out)
	}
	for _, v := range s.InvCov {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("non-finite inverse %v", s.InvCov)
		}
	}
}

// More images after Finalize keep accumulating.
func TestFinalizeTwice(t *testing.T) {
	g := newFeatureGen(2, 3, 5)
	acc, _ := NewAccumulator(AccumulatorOptions{GridH: 1, GridW: 2, D: 3})
	var embs [][]float32
	for i := range 30 {
		e := make([]float32, 6)
		g.next(e, 0)
		embs = append(embs, e)
		_ = acc.Add(e)
		if i == 10 {
			if _, err := acc.Finalize(FinalizeOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := acc.Finalize(FinalizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := FitReference(embs, 1, 2, 3, DefaultEps)
	for q := range 2 {
		for i := range 3 {
			if relDiff(float64(s.Mean[q*3+i]), ref.mean[q][i]) > 1e-6 {
				t.Fatalf("mean mismatch at %d,%d", q, i)
			}
		}
	}
}
