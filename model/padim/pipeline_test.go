package padim

import (
	"image"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// tapGen makes feature maps for three taps at strides 1, 2 and 4 of a 16×16
// grid. Normal images are noise around a fixed per-position pattern; an
// anomaly is a blob of raised activations around (ax, ay) in grid units.
type tapGen struct {
	shapes []TapShape
	base   [][]float32
	r      *rand.Rand
}

func newTapGen(seed uint64) *tapGen {
	g := &tapGen{shapes: []TapShape{{16, 16, 8}, {8, 8, 16}, {4, 4, 32}}, r: rand.New(rand.NewPCG(seed, 1))}
	for _, s := range g.shapes {
		b := make([]float32, s.H*s.W*s.C)
		for i := range b {
			b[i] = g.r.Float32() * 2
		}
		g.base = append(g.base, b)
	}
	return g
}

func (g *tapGen) maps(anomalous bool, ax, ay float64) []FeatureMap {
	out := make([]FeatureMap, len(g.shapes))
	for t, s := range g.shapes {
		m := FeatureMap{H: s.H, W: s.W, C: s.C, Data: make([]float32, s.H*s.W*s.C)}
		scale := 16 / float64(s.W)
		for y := range s.H {
			for x := range s.W {
				bump := 0.0
				if anomalous {
					dx, dy := (float64(x)+0.5)*scale-ax, (float64(y)+0.5)*scale-ay
					bump = 3 * math.Exp(-(dx*dx+dy*dy)/4)
				}
				for c := range s.C {
					i := (y*s.W+x)*s.C + c
					v := float64(g.base[t][i]) + 0.3*g.r.NormFloat64() + bump*float64(c%3)
					m.Data[i] = float32(max(v, 0))
				}
			}
		}
		out[t] = m
	}
	return out
}

// The whole chain as the daemon will run it: embed, fit, hold out for the
// threshold, save, load by mmap, score, render at the original image size
// through a letterbox region, inspect.
func TestPipeline(t *testing.T) {
	g := newTapGen(1)
	emb, err := NewEmbedder(EmbedderOptions{Taps: g.shapes, D: 24, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	e := make([]float32, emb.Len())
	acc, err := NewAccumulator(AccumulatorOptions{GridH: emb.GridH(), GridW: emb.GridW(), D: emb.D()})
	if err != nil {
		t.Fatal(err)
	}
	for range 80 {
		if err := emb.Embed(e, g.maps(false, 0, 0)); err != nil {
			t.Fatal(err)
		}
		if err := acc.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	state, err := acc.Finalize(FinalizeOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := NewScorer(state, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The image is 300×150, letterboxed into the square input: it fills
	// rows 0.25..0.75 of the grid.
	region := Rect{0, 0.25, 1, 0.75}
	amap, err := NewAnomalyMap(AnomalyMapOptions{GridW: state.GridW, GridH: state.GridH, OutW: 300, OutH: 150, Sigma: DefaultSigma, Region: region})
	if err != nil {
		t.Fatal(err)
	}
	dist := make([]float32, state.Positions())
	m := make([]float32, 300*150)
	score := func(anomalous bool, ax, ay float64) float32 {
		if err := emb.Embed(e, g.maps(anomalous, ax, ay)); err != nil {
			t.Fatal(err)
		}
		if err := sc.Score(dist, e); err != nil {
			t.Fatal(err)
		}
		s, err := amap.Render(m, dist)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var held []float64
	for range 30 {
		held = append(held, float64(score(false, 0, 0)))
	}
	th, err := ImageThreshold(held, ThresholdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.Close()

	path := filepath.Join(t.TempDir(), "model.safetensors")
	err = Save(path, &Model{State: *state, Channels: emb.Channels(), Meta: Metadata{
		Eps: DefaultEps, ImageThreshold: th, PixelThreshold: th, BackboneSHA256: testSHA,
		Taps: []string{"t1", "t2", "t3"}, TapShapes: g.shapes, Preprocessing: `{}`,
		FitDate: time.Now(), Images: acc.Count(), Seed: 7,
	}})
	if err != nil {
		t.Fatal(err)
	}
	model, err := Load(path, LoadOptions{Expect: Expect{BackboneSHA256: testSHA, Taps: []string{"t1", "t2", "t3"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	emb, err = NewEmbedder(EmbedderOptions{Taps: model.Meta.TapShapes, Channels: model.Channels, Pool: model.Meta.Pool})
	if err != nil {
		t.Fatal(err)
	}
	if sc, err = NewScorer(&model.State, 0); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	thr := Thresholds{Image: model.Meta.ImageThreshold, Pixel: model.Meta.PixelThreshold}
	var res Result
	falseAlarms := 0
	for range 20 {
		s := score(false, 0, 0)
		if err := thr.Inspect(&res, m, 300, 150, s); err != nil {
			t.Fatal(err)
		}
		if res.Anomalous {
			falseAlarms++
		}
	}
	if falseAlarms > 2 {
		t.Errorf("%d of 20 normal images flagged", falseAlarms)
	}
	// A defect at grid (12, 8) is at image x = 12/16·300 = 225, y = (8/16 −
	// 0.25)/0.5·150 = 75.
	s := score(true, 12, 8)
	if err := thr.Inspect(&res, m, 300, 150, s); err != nil {
		t.Fatal(err)
	}
	t.Logf("defect: %+v, false alarms %d, threshold %.3g, mask %v", res, falseAlarms, th, maskBounds(res.Mask))
	if !res.Anomalous || res.Normalized < 1.5 {
		t.Fatalf("defect not flagged: %+v", res)
	}
	if res.Mask.GrayAt(225, 75).Y != 255 || res.Mask.GrayAt(40, 75).Y != 0 {
		t.Errorf("mask does not mark the defect where it is")
	}
	if b := maskBounds(res.Mask); !b.Overlaps(image.Rect(200, 50, 250, 100)) || b.Dx() > 150 {
		t.Errorf("mask bounds %v", b)
	}
}

func maskBounds(m *image.Gray) image.Rectangle {
	var r image.Rectangle
	for y := range m.Rect.Dy() {
		for x := range m.Rect.Dx() {
			if m.GrayAt(x, y).Y != 0 {
				r = r.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return r
}
