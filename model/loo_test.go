package model

import (
	"context"
	"math"
	"testing"

	"github.com/inspectd/inspectd/model/padim"
)

// The leave-one-out distance computed from the in-sample one agrees with
// fitting the Gaussians again without the image and scoring it (float64
// reference, real backbone features, d close to n as in practice): exactly
// when the refit's ridge is ε(n−1)/(n−2), the one the formula implies, and
// within that change of the ridge (1/(n−2)) with ε itself.
func TestLeaveOneOutMatchesRefit(t *testing.T) {
	opts := testOptions(t)
	opts.Features, opts.MinFeatures = 16, 16
	opts.MemoryBudget = padim.StateBytes(14*14, 16) // pool the grid: the reference keeps full matrices
	opts.Threshold.Explicit = 1
	const n = 24
	det, _, err := Fit(context.Background(), opts, textures(n), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	p := det.scales[0]
	var embs [][]float32
	for i := range n {
		img, _ := textures(n).Image(i)
		if _, err := det.embed(img, nil); err != nil {
			t.Fatal(err)
		}
		embs = append(embs, append([]float32(nil), p.vec...))
	}
	gh, gw, d := p.state.GridH, p.state.GridW, p.state.D
	full, err := padim.FitReference(embs, gh, gw, d, det.opts.Epsilon)
	if err != nil {
		t.Fatal(err)
	}
	worst, ridge, ratio := 0.0, 0.0, 0.0
	for _, i := range []int{0, 7, 23} {
		in, err := full.Distances(embs[i])
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(in))
		for j, v := range in {
			got[j] = float32(v)
		}
		leaveOneOut(got, n)
		rest := append(append([][]float32(nil), embs[:i]...), embs[i+1:]...)
		exact, err := padim.FitReference(rest, gh, gw, d, det.opts.Epsilon*(n-1)/(n-2))
		if err != nil {
			t.Fatal(err)
		}
		want, err := exact.Distances(embs[i])
		if err != nil {
			t.Fatal(err)
		}
		plain, err := padim.FitReference(rest, gh, gw, d, det.opts.Epsilon)
		if err != nil {
			t.Fatal(err)
		}
		near, err := plain.Distances(embs[i])
		if err != nil {
			t.Fatal(err)
		}
		for j, w := range want {
			worst = max(worst, math.Abs(float64(got[j])-w)/w)
			ridge = max(ridge, math.Abs(float64(got[j])-near[j])/near[j])
			ratio = max(ratio, w/in[j])
		}
	}
	t.Logf("leave-one-out distances up to %.2fx the in-sample ones; worst relative error %.2g (%.2g against a refit with ridge ε)", ratio, worst, ridge)
	if ridge > 1.0/(n-2) {
		t.Errorf("leave-one-out distance differs from a refit with ridge ε by %.2g, more than the ridge's change 1/(n-2)", ridge)
	}
	if ratio < 1.3 {
		t.Errorf("test setup: held-out distances are at most %.2fx the in-sample ones; want a case where it matters", ratio)
	}
	if worst > 2e-3 {
		t.Errorf("leave-one-out distance differs from a refit without the image by %.2g (relative)", worst)
	}
}
