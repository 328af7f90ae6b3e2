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
	opts.Holdout = 0.5
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
		det, rep, err := Fit(context.Background(), contextOptions(t, pool), textures(2*minZScoreHeldOut), nil)
		if err != nil {
			t.Fatal(err)
		}
		if (rep.ContextPool != 0) != (pool != 0) || (det.ctx != nil) != (pool != 0) {
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

// A model with a context scale saves, loads and scores the same, without
// allocating per frame; the file's context tensors are checked on load.
func TestContextScaleSaveLoad(t *testing.T) {
	opts := contextOptions(t, 8)
	det, _, err := Fit(context.Background(), opts, textures(2*minZScoreHeldOut), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	info := det.Info()
	if info.ContextPool != 8 || info.ContextGridH != 7 || info.ContextGridW != 7 || info.ContextFeatures != 64 || info.StateBytes != padim.StateBytes(56*56, 32)+padim.StateBytes(7*7, 64) {
		t.Fatalf("info %+v", info)
	}
	img, _ := unevenTexture(6000)
	r, err := det.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	want := r.Score
	path := filepath.Join(t.TempDir(), "ctx.safetensors")
	if err := det.Save(path); err != nil {
		t.Fatal(err)
	}
	o := opts
	o.ContextPool = 0 // the file decides
	ld, err := Load(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	if li := ld.Info(); li.ContextPool != 8 || li.ContextGridH != 7 || li.ContextFeatures != 64 || li.StateBytes != info.StateBytes {
		t.Fatalf("loaded info %+v", ld.Info())
	}
	r, err = ld.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.Score-want) > 1e-5*math.Abs(want) {
		t.Errorf("loaded model scores %.6f, fitted %.6f", r.Score, want)
	}
	if n := testing.AllocsPerRun(5, func() { ld.Inspect(img) }); n != 0 {
		t.Errorf("Inspect allocates %v times per frame", n)
	}

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

// Without the position z-score the two scales' distances are not on one
// scale, so the context scale is left out rather than mixed in raw.
func TestContextScaleNeedsZScore(t *testing.T) {
	opts := contextOptions(t, 8)
	opts.PositionZScore = false
	det, rep, err := Fit(context.Background(), opts, textures(24), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if det.ctx != nil || rep.ContextPool != 0 || det.Info().ContextPool != 0 {
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
		det, rep, err := Fit(context.Background(), opts, textures(2*minZScoreHeldOut), nil)
		if err != nil {
			t.Fatal(err)
		}
		d := 0
		if det.ctx != nil {
			d = det.ctx.emb.D()
		}
		det.Close()
		if d != c.wantD || rep.Features != 32 || rep.StateBytes > opts.MemoryBudget {
			t.Errorf("%d bytes left: context d=%d, want %d (report %+v)", c.left, d, c.wantD, rep)
		}
	}
}

// The context scale's entries come from a model file: whatever they hold,
// loading returns a context scale or an error, never panics, and a scale it
// returns scores without going out of bounds.
func FuzzLoadContextScale(f *testing.F) {
	f.Add("2", "0,1,2", 12, 24, 4)
	f.Add("3", "5,1", 2, 3, 1)
	f.Add("eight", "", 0, 0, 0)
	f.Add("4", "0,0", 2, 3, 1)
	f.Add("-2", "1,2,3", 0, 0, 0)
	taps := []padim.TapShape{{H: 4, W: 4, C: 4}, {H: 2, W: 2, C: 2}}
	f.Fuzz(func(t *testing.T, pool, channels string, nMean, nInv, nStat int) {
		size := func(n int) int { return min(max(n, 0), 4096) }
		pm := &padim.Model{
			State: padim.State{GridH: 4, GridW: 4, D: 2},
			Meta:  padim.Metadata{Extra: map[string]string{metaContextPool: pool, metaContextChannels: channels}},
			Tensors: map[string]padim.Tensor{
				tensorContextMean:      {Data: make([]float32, size(nMean))},
				tensorContextInvCov:    {Data: make([]float32, size(nInv))},
				tensorContextDistMean:  {Data: make([]float32, size(nStat))},
				tensorContextDistInvSD: {Data: make([]float32, size(nStat))},
			},
		}
		c, err := loadContextScale(pm, taps, 1)
		if err != nil || c == nil {
			return
		}
		defer c.close()
		maps := []padim.FeatureMap{{H: 4, W: 4, C: 4, Data: make([]float32, 64)}, {H: 2, W: 2, C: 2, Data: make([]float32, 8)}}
		if err := c.score(maps); err != nil {
			t.Fatal(err)
		}
		if err := c.addTo(make([]float32, 16), c.dist); err != nil {
			t.Fatal(err)
		}
	})
}
