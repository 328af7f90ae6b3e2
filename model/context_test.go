package model

import (
	"context"
	"image"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/metrics"
	"github.com/inspectd/inspectd/model/padim"
)

// unevenTexture is texture with its lower part ground differently: finer
// and stronger grain. Patch by patch that is a plausible surface; only the
// region as a whole is off, like the `uneven` class of magnetic tiles.
func unevenTexture(seed uint64) (*image.Gray, []uint8) {
	img := texture(seed, false)
	b := img.Bounds()
	mask := make([]uint8, b.Dx()*b.Dy())
	for y := b.Dy() / 2; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			i := y*img.Stride + x
			v := float64(img.Pix[i]) + 12 + 8*math.Sin(float64(x)/2)
			img.Pix[i] = uint8(min(max(v, 0), 255))
			mask[y*b.Dx()+x] = 255
		}
	}
	return img, mask
}

func contextOptions(t *testing.T, pool int) Options {
	opts := testOptions(t)
	opts.PositionZScore = true
	opts.ContextPool = pool
	opts.ContextFeatures = 64
	return opts
}

// The context scale raises a region that differs as a whole: pixel AUROC
// of the uneven half against the rest of the same images and normal images
// goes up, and small defects are still found.
func TestContextScaleFindsRegions(t *testing.T) {
	if testing.Short() {
		t.Skip("four fits; the race run has TestContextScaleSaveLoad")
	}
	var aurocs [2]float64
	for k, pool := range []int{0, 8} {
		det, rep, err := Fit(context.Background(), contextOptions(t, pool), textures(MinZScoreImages), nil)
		if err != nil {
			t.Fatal(err)
		}
		if (rep.ContextPool != 0) != (pool != 0) || (len(det.scales) > 1) != (pool != 0) {
			t.Fatalf("context pool %d: report %+v", pool, rep)
		}
		pix := metrics.NewPixels()
		for i := range 4 {
			img, mask := unevenTexture(uint64(3000 + i))
			r, err := det.Inspect(img)
			if err != nil {
				t.Fatal(err)
			}
			if err := pix.Add(r.Map, mask, r.W, r.H); err != nil {
				t.Fatal(err)
			}
			r, _ = det.Inspect(texture(uint64(4000+i), false))
			if err := pix.Add(r.Map, make([]uint8, r.W*r.H), r.W, r.H); err != nil {
				t.Fatal(err)
			}
		}
		if aurocs[k], err = pix.AUROC(); err != nil {
			t.Fatal(err)
		}
		r, _ := det.Inspect(texture(5000, true))
		if !r.Anomalous {
			t.Errorf("context pool %d: the blob defect is not found (score %.2f, threshold %.2f)", pool, r.Score, r.Threshold)
		}
		det.Close()
	}
	t.Logf("pixel AUROC of the uneven half: without context %.4f, with %.4f", aurocs[0], aurocs[1])
	if !(aurocs[1] > aurocs[0]+0.02) {
		t.Errorf("context scale does not help on a region defect: AUROC %.4f without, %.4f with", aurocs[0], aurocs[1])
	}
}

// fitAndSave fits a detector with a context scale (closed when the test
// ends), scores an uneven texture with it and saves it: the starting point
// of the model-file tests.
func fitAndSave(t *testing.T, opts Options) (det *Detector, img image.Image, score float64, path string) {
	t.Helper()
	det, _, err := Fit(context.Background(), opts, textures(MinZScoreImages), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { det.Close() })
	img, _ = unevenTexture(6000)
	r, err := det.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "ctx.safetensors")
	if err := det.Save(path); err != nil {
		t.Fatal(err)
	}
	return det, img, r.Score, path
}

// A model with a context scale saves, loads and scores the same, without
// allocating per frame; the file's context tensors are checked on load.
func TestContextScaleSaveLoad(t *testing.T) {
	opts := contextOptions(t, 8)
	det, img, want, path := fitAndSave(t, opts)
	info := det.Info()
	if info.ContextPool != 8 || info.ContextGridH != 7 || info.ContextGridW != 7 || info.ContextFeatures != 64 || info.ContextWeight != DefaultContextWeight ||
		info.StateBytes != padim.StateBytes(56*56, 32)+padim.StateBytes(7*7, 64) {
		t.Fatalf("info %+v", info)
	}
	o := opts
	o.ContextPool, o.ContextWeight = 0, 5 // the file decides
	ld, err := Load(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	if li := ld.Info(); li.ContextPool != 8 || li.ContextGridH != 7 || li.ContextFeatures != 64 || li.ContextWeight != DefaultContextWeight || li.StateBytes != info.StateBytes {
		t.Fatalf("loaded info %+v", ld.Info())
	}
	r, err := ld.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Score-want) > 1e-5*math.Abs(want) {
		t.Errorf("loaded model scores %.6f, fitted %.6f", r.Score, want)
	}
	if n := testing.AllocsPerRun(5, func() { ld.Inspect(img) }); n != 0 {
		t.Errorf("Inspect allocates %v times per frame", n)
	}
	// Over the budget with the context scale, not without: refused from
	// the header as Load refuses it.
	patch := padim.StateBytes(56*56, 32)
	budgetAsLoad(t, path, o, patch-1, patch, info.StateBytes-1, info.StateBytes)

	// Damaged context scales: each is refused with the tensor or key named.
	pm, err := padim.Load(path, padim.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	for _, c := range []struct {
		name   string
		change func(m *padim.Model)
		want   string
	}{
		{"tensor missing", func(m *padim.Model) { delete(m.Tensors, tensorContextInvCov) }, tensorContextInvCov + " missing"},
		{"tensor short", func(m *padim.Model) {
			t := m.Tensors[tensorContextMean]
			m.Tensors[tensorContextMean] = padim.Tensor{Shape: []int{len(t.Data) - 1}, Data: t.Data[1:]}
		}, tensorContextMean + " has"},
		{"pool not a number", func(m *padim.Model) { m.Meta.Extra[metaContextPool] = "eight" }, metaContextPool},
		{"pool too coarse", func(m *padim.Model) { m.Meta.Extra[metaContextPool] = "57" }, metaContextPool},
		{"pool key missing", func(m *padim.Model) { delete(m.Meta.Extra, metaContextPool) }, metaContextPool + " missing"},
		{"channels missing", func(m *padim.Model) { delete(m.Meta.Extra, metaContextChannels) }, metaContextChannels + " missing"},
		{"channel not a number", func(m *padim.Model) { m.Meta.Extra[metaContextChannels] = "1,x,3" }, `"x" is not a channel index`},
		{"channel out of range", func(m *padim.Model) { m.Meta.Extra[metaContextChannels] = "1,2,5000" }, "out of range"},
		{"fewer channels than the state", func(m *padim.Model) { m.Meta.Extra[metaContextChannels] = "1,2,3" }, tensorContextMean + " has"},
		{"weight not a number", func(m *padim.Model) { m.Meta.Extra[metaContextWeight] = "two" }, metaContextWeight + ` "two"`},
		{"weight zero", func(m *padim.Model) { m.Meta.Extra[metaContextWeight] = "0" }, metaContextWeight + ` "0"`},
		{"weight infinite", func(m *padim.Model) { m.Meta.Extra[metaContextWeight] = "+Inf" }, metaContextWeight + ` "+Inf"`},
		{"weight huge", func(m *padim.Model) { m.Meta.Extra[metaContextWeight] = "1e39" }, metaContextWeight + ` "1e39"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := *pm
			m.Tensors = map[string]padim.Tensor{}
			for k, v := range pm.Tensors {
				m.Tensors[k] = v
			}
			m.Meta.Extra = map[string]string{}
			for k, v := range pm.Meta.Extra {
				m.Meta.Extra[k] = v
			}
			c.change(&m)
			bad := filepath.Join(t.TempDir(), "bad.safetensors")
			if err := padim.Save(bad, &m); err != nil {
				t.Fatal(err)
			}
			_, err := Load(bad, opts)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), bad) {
				t.Fatalf("want an error naming %q and the file, got %v", c.want, err)
			}
		})
	}
}

// A model file from before the weight existed summed the scales: it loads
// with weight 1, and its scores follow (the patch scale plus the context
// scale once).
func TestContextScaleWeightMissingInFile(t *testing.T) {
	sameFitPath(t)
	opts := contextOptions(t, 8)
	opts.ContextWeight = 1
	_, img, want, path := fitAndSave(t, opts)
	pm, err := padim.Load(path, padim.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := *pm
	m.Meta.Extra = map[string]string{}
	for k, v := range pm.Meta.Extra {
		if k != metaContextWeight {
			m.Meta.Extra[k] = v
		}
	}
	old := filepath.Join(t.TempDir(), "old.safetensors")
	err = padim.Save(old, &m)
	pm.Close()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := Load(old, contextOptions(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	if w := ld.Info().ContextWeight; w != 1 {
		t.Fatalf("loaded weight %g, want 1", w)
	}
	r, err := ld.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Score-want) > 1e-5*math.Abs(want) {
		t.Errorf("old file scores %.6f, the model it came from %.6f", r.Score, want)
	}
}

// The context scale's scores land on the patch grid cell by cell, weighted:
// cells of 6 cover 54 of 56 patch rows and columns, and the last two take
// the nearest covered value.
func TestContextScaleAddTo(t *testing.T) {
	taps := []padim.TapShape{{H: 56, W: 56, C: 8}, {H: 28, W: 28, C: 8}, {H: 14, W: 14, C: 8}}
	render := func(weight float64, cell int) []float32 {
		c, err := newScale(taps, 6, 4, 1, nil, weight, 1, 56, 56)
		if err != nil {
			t.Fatal(err)
		}
		if c.coverH != 54 || c.coverW != 54 || c.emb.GridH() != 9 {
			t.Fatalf("cells cover %dx%d on a %dx%d grid", c.coverH, c.coverW, c.emb.GridH(), c.emb.GridW())
		}
		p := c.emb.Positions()
		mean, inv := make([]float32, p), make([]float32, p)
		dist := make([]float32, p)
		for i := range p {
			inv[i] = 1
		}
		dist[cell] = 1
		fine := make([]float32, 56*56)
		if err := c.addTo(fine, dist, mean, inv, float32(weight), false); err != nil {
			t.Fatal(err)
		}
		return fine
	}
	// The last cell (8, 8) covers patch rows and columns 48..53.
	one, two := render(1, 9*9-1), render(2, 9*9-1)
	peak, at := float32(0), 0
	for i, v := range one {
		if math.Abs(float64(two[i]-2*v)) > 1e-6 {
			t.Fatalf("patch %d: weight 2 adds %g, weight 1 %g", i, two[i], v)
		}
		if v > peak {
			peak, at = v, i
		}
	}
	if y, x := at/56, at%56; y < 48 || x < 48 || peak < 0.99 {
		t.Errorf("the last cell's score peaks at patch (%d, %d) with %g, want inside rows and columns 48..55 at 1", y, x, peak)
	}
	for y := 54; y < 56; y++ {
		for x := range 56 {
			if one[y*56+x] != one[53*56+min(x, 53)] {
				t.Fatalf("patch (%d, %d) = %g, want the nearest covered patch's %g", y, x, one[y*56+x], one[53*56+min(x, 53)])
			}
		}
	}
	// On a patch grid pooled to 28×28 (a small budget) the same cells
	// cover 27 of its rows and columns.
	c, err := newScale(taps, 6, 4, 1, nil, 1, 1, 28, 28)
	if err != nil || c.coverH != 27 || c.coverW != 27 {
		t.Fatalf("pooled patch grid: cover %v, err %v", c, err)
	}
	// The first cell lights the top-left corner, not the far one.
	first := render(1, 0)
	if first[0] < 0.99 || first[55*56+55] != 0 {
		t.Errorf("first cell: corner values %g and %g", first[0], first[55*56+55])
	}
}

// Without the position z-score the two scales' distances are not on one
// scale, so the context scale is left out rather than mixed in raw.
func TestContextScaleNeedsZScore(t *testing.T) {
	sameFitPath(t)
	opts := contextOptions(t, 8)
	opts.PositionZScore = false
	det, rep, err := Fit(context.Background(), opts, textures(24), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if len(det.scales) > 1 || rep.ContextPool != 0 || det.Info().ContextPool != 0 {
		t.Fatalf("context scale fitted without the z-score: %+v", rep)
	}
}

// The context scale takes what the memory budget leaves after the patch
// scale: a smaller d when that is little, none when it is too little.
func TestContextScaleFitsBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("two fits; the race run has TestContextScaleSaveLoad")
	}
	for _, c := range []struct {
		left  int64
		wantD int
	}{{padim.StateBytes(7*7, 40), 40}, {padim.StateBytes(7*7, 16) - 1, 0}} {
		opts := contextOptions(t, 8)
		opts.MemoryBudget = padim.StateBytes(56*56, 32) + c.left
		det, rep, err := Fit(context.Background(), opts, textures(MinZScoreImages), nil)
		if err != nil {
			t.Fatal(err)
		}
		d := 0
		if len(det.scales) > 1 {
			d = det.scales[1].emb.D()
		}
		det.Close()
		if d != c.wantD || rep.Features != 32 || rep.StateBytes > opts.MemoryBudget {
			t.Errorf("%d bytes left: context d=%d, want %d (report %+v)", c.left, d, c.wantD, rep)
		}
	}
}

// With a budget so small that the patch grid is pooled, the context scale
// still fits on it and scores.
func TestContextScaleOnPooledPatchGrid(t *testing.T) {
	sameFitPath(t)
	opts := contextOptions(t, 6)
	opts.MemoryBudget = 1_500_000
	det, rep, err := Fit(context.Background(), opts, textures(MinZScoreImages), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if rep.Pool != 2 || len(det.scales) != 2 || det.scales[1].coverH != 27 {
		t.Fatalf("report %+v, %d scales", rep, len(det.scales))
	}
	if _, err := det.Inspect(texture(5000, true)); err != nil {
		t.Fatal(err)
	}
}

// The context scale's entries come from a model file: whatever they hold,
// loading returns a context scale or an error, never panics, and a scale it
// returns scores without going out of bounds.
func FuzzLoadContextScale(f *testing.F) {
	f.Add("2", "0,1,2", "", 12, 24, 4)
	f.Add("3", "5,1", "2", 2, 3, 1)
	f.Add("eight", "", "x", 0, 0, 0)
	f.Add("4", "0,0", "NaN", 2, 3, 1)
	f.Add("-2", "1,2,3", "-1", 0, 0, 0)
	taps := []padim.TapShape{{H: 4, W: 4, C: 4}, {H: 2, W: 2, C: 2}}
	f.Fuzz(func(t *testing.T, pool, channels, weight string, nMean, nInv, nStat int) {
		size := func(n int) int { return min(max(n, 0), 4096) }
		meta := map[string]string{metaContextPool: pool, metaContextChannels: channels}
		if weight != "" {
			meta[metaContextWeight] = weight
		}
		pm := &padim.Model{
			State: padim.State{GridH: 4, GridW: 4, D: 2},
			Meta:  padim.Metadata{Extra: meta},
			Tensors: map[string]padim.Tensor{
				tensorContextMean:      {Data: make([]float32, size(nMean))},
				tensorContextInvCov:    {Data: make([]float32, size(nInv))},
				tensorContextDistMean:  {Data: make([]float32, size(nStat))},
				tensorContextDistInvSD: {Data: make([]float32, size(nStat))},
			},
		}
		patch, err := newScale(taps, 1, 2, 1, nil, 1, 1, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		c, err := loadScale(pm, scalePrefix(1), taps, 1, patch, padim.ScorerOptions{Workers: 1})
		if err != nil || c == nil {
			return
		}
		defer c.close()
		maps := []padim.FeatureMap{{H: 4, W: 4, C: 4, Data: make([]float32, 64)}, {H: 2, W: 2, C: 2, Data: make([]float32, 8)}}
		if err := c.embedView(0, maps); err != nil {
			t.Fatal(err)
		}
		if err := c.score(); err != nil {
			t.Fatal(err)
		}
		if err := c.addTo(make([]float32, 16), c.dist, c.zMean, c.zInvStd, c.weight, false); err != nil {
			t.Fatal(err)
		}
	})
}
