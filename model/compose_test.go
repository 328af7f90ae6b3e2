package model

import (
	"context"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/dataset"
	"github.com/inspectd/inspectd/model/modeltest"
	"github.com/inspectd/inspectd/model/padim"
)

// texture renders a gray surface with fine random grain and, when defect
// is set, a bright blob: enough for the real backbone to tell them apart.
func texture(seed uint64, defect bool) *image.Gray {
	var blob image.Rectangle
	if defect {
		blob = image.Rect(90, 60, 120, 85)
	}
	return grain(seed, 200, 160, blob)
}

// grain renders a w×h gray surface of vertical stripes and fine random
// grain, bright (250) inside blob.
func grain(seed uint64, w, h int, blob image.Rectangle) *image.Gray {
	r := rand.New(rand.NewPCG(seed, 7))
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := 110 + 30*math.Sin(float64(x)/6) + 20*r.NormFloat64()
			if (image.Point{x, y}).In(blob) {
				v = 250
			}
			img.Pix[y*img.Stride+x] = uint8(min(max(v, 0), 255))
		}
	}
	return img
}

type textures int

func (n textures) Len() int                         { return int(n) }
func (n textures) Image(i int) (image.Image, error) { return texture(uint64(i), false), nil }

func testOptions(t testing.TB) Options {
	return Options{Backbone: backbone.Options{Path: modeltest.BackbonePath(t), Threads: 2,
		Preprocess: backbone.Preprocess{Resize: backbone.ResizeFit}}, Features: 32, MinFeatures: 16, Sigma: 4}
}

// saveLoad saves det in a temporary folder and loads it back with opts,
// closed when the test ends; it returns the file's path too.
func saveLoad(t *testing.T, det *Detector, opts Options) (string, *Detector) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := det.Save(path); err != nil {
		t.Fatal(err)
	}
	ld, err := Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ld.Close() })
	return path, ld
}

func TestFitSaveLoad(t *testing.T) {
	opts := testOptions(t)
	det, rep, err := Fit(context.Background(), opts, textures(30), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if rep.Images != 30 || rep.ThresholdImages != 30 || rep.Features != 32 {
		t.Fatalf("report %+v", rep)
	}
	checkHighest(t, rep, det.Info().ImageThreshold, 30)
	good, bad := texture(1000, false), texture(1001, true)
	rg, err := det.Inspect(good)
	if err != nil {
		t.Fatal(err)
	}
	sg, ag := rg.Score, rg.Anomalous // the Inspection is reused by the next call
	rb, _ := det.Inspect(bad)
	sb := rb.Score
	if !(sb > 1.5*sg) || !rb.Anomalous || ag {
		t.Fatalf("good %.2f (anomalous %v), defect %.2f (anomalous %v), threshold %.2f", sg, ag, sb, rb.Anomalous, rb.Threshold)
	}
	// The mask marks the blob.
	if rb.Mask.Pix[72*rb.Mask.Stride+105] != 255 || rb.Mask.Pix[10*rb.Mask.Stride+10] != 0 {
		t.Error("mask does not mark the defect")
	}

	path, ld := saveLoad(t, det, opts)
	for _, c := range []struct {
		img  image.Image
		want float64
	}{{good, sg}, {bad, sb}} {
		r, err := ld.Inspect(c.img)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r.Score-c.want) > 1e-5*c.want {
			t.Errorf("loaded model scores %.6f, fitted one %.6f", r.Score, c.want)
		}
	}
	if ld.Info().ID != det.Info().ID || ld.Info().ImageThreshold != det.Info().ImageThreshold {
		t.Errorf("info differs after load: %+v vs %+v", ld.Info(), det.Info())
	}
	if n := testing.AllocsPerRun(5, func() { ld.Inspect(good) }); n != 0 {
		t.Errorf("Inspect allocates %v times per frame", n)
	}

	t.Run("half precision", func(t *testing.T) {
		if !padim.HalfSupported() {
			t.Skip("no AVX2/FMA/F16C: float32 only")
		}
		o := opts
		o.HalfPrecision = true
		hd, err := Load(path, o)
		if err != nil {
			t.Fatal(err)
		}
		defer hd.Close()
		if !hd.scales[0].scorer.Half() || ld.scales[0].scorer.Half() {
			t.Fatal("precision option not applied")
		}
		for _, c := range []struct {
			img  image.Image
			want float64
			bad  bool
		}{{good, sg, false}, {bad, sb, true}} {
			r, err := hd.Inspect(c.img)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(r.Score-c.want) > 5e-3*c.want || r.Anomalous != c.bad {
				t.Errorf("half precision scores %.4f (anomalous %v), float32 %.4f", r.Score, r.Anomalous, c.want)
			}
		}
		if n := testing.AllocsPerRun(5, func() { hd.Inspect(good) }); n != 0 {
			t.Errorf("Inspect allocates %v times per frame", n)
		}
	})
	t.Run("half precision fit", func(t *testing.T) {
		if !padim.HalfSupported() {
			t.Skip("no AVX2/FMA/F16C: float32 only")
		}
		// The fit scores in float32 whatever the precision: the same
		// thresholds and per-position statistics as the float32 fit, a
		// detector that then scores in float16.
		o := opts
		o.HalfPrecision = true
		hd, _, err := Fit(context.Background(), o, textures(30), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer hd.Close()
		if !hd.scales[0].scorer.Half() || hd.Info().ImageThreshold != det.Info().ImageThreshold ||
			!slices.Equal(hd.scales[0].zInvStd, det.scales[0].zInvStd) || !slices.Equal(hd.scales[0].zMean, det.scales[0].zMean) {
			t.Fatalf("half-precision fit: scorer half %v, threshold %v against float32's %v, statistics equal %v",
				hd.scales[0].scorer.Half(), hd.Info().ImageThreshold, det.Info().ImageThreshold, slices.Equal(hd.scales[0].zInvStd, det.scales[0].zInvStd))
		}
	})
	t.Run("other backbone refused", func(t *testing.T) {
		o := opts
		o.Backbone.Path = filepath.Join(modeltest.GoTFLiteDir(t), "_example", "segment", "deeplabv3_257_mv_gpu.tflite")
		if _, err := Load(path, o); err == nil || !strings.Contains(err.Error(), "backbone") {
			t.Fatalf("want a backbone mismatch error, got %v", err)
		}
	})
	t.Run("over budget refused", func(t *testing.T) {
		o := opts
		o.MemoryBudget = 1 << 20
		if _, err := Load(path, o); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("want a budget error naming the file, got %v", err)
		}
	})
	t.Run("corrupt refused", func(t *testing.T) {
		b, _ := os.ReadFile(path)
		b[len(b)-100] ^= 1
		bad := filepath.Join(t.TempDir(), "bad.safetensors")
		os.WriteFile(bad, b, 0o644)
		if _, err := Load(bad, opts); err == nil {
			t.Fatal("corrupt model accepted")
		}
	})
	t.Run("budget coarsens", func(t *testing.T) {
		o := opts
		o.MemoryBudget = padim.StateBytes(56*56, 16) - 1 // min d does not fit: pool
		d2, rep, err := Fit(context.Background(), o, textures(12), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d2.Close()
		if rep.Pool < 2 || rep.Features != 16 || rep.StateBytes > o.MemoryBudget {
			t.Fatalf("budget %d: chose %+v", o.MemoryBudget, rep)
		}
	})
}

// The fast float32 path (packed inverse, streaming fit) agrees with the
// plain float64 reference on real backbone features.
func TestScoresMatchReferenceOnRealFeatures(t *testing.T) {
	sameFitPath(t)
	tiles := modeltest.MagneticTile(t)
	set, err := dataset.Scan(tiles)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t)
	var paths pathsSource
	for i := 0; i < 40; i++ {
		paths = append(paths, set.Train[i*len(set.Train)/40].Path)
	}
	opts.Threshold.Explicit = 1
	det, _, err := Fit(context.Background(), opts, paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	var embs [][]float32
	for _, p := range paths {
		img, err := dataset.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := det.embed(img, nil); err != nil {
			t.Fatal(err)
		}
		embs = append(embs, append([]float32(nil), det.scales[0].vec...))
	}
	st := det.scales[0].state
	ref, err := padim.FitReference(embs, st.GridH, st.GridW, st.D, det.opts.Epsilon)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range set.Test[:6] {
		img, err := dataset.Load(it.Path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := det.embed(img, nil); err != nil {
			t.Fatal(err)
		}
		p := det.scales[0]
		if err := p.score(); err != nil {
			t.Fatal(err)
		}
		want, err := ref.Distances(p.vec)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, w := range want {
			worst = max(worst, math.Abs(float64(p.dist[i])-w)/max(w, 1e-9))
		}
		if worst > 1e-3 {
			t.Errorf("%s: fast path differs from the float64 reference by %.2g (relative)", filepath.Base(it.Path), worst)
		}
	}
}

type pathsSource []string

func (p pathsSource) Len() int                         { return len(p) }
func (p pathsSource) Image(i int) (image.Image, error) { return dataset.Load(p[i]) }

func TestPositionStats(t *testing.T) {
	grids := [][]float32{{1, 5, 2}, {3, 5, 2}, {5, 5, 2.02}}
	mean, inv := positionStats(grids)
	if math.Abs(float64(mean[0])-3) > 1e-6 || math.Abs(float64(mean[1])-5) > 1e-6 {
		t.Fatalf("means %v", mean)
	}
	if sd := 1 / float64(inv[0]); math.Abs(sd-math.Sqrt(8.0/3)) > 1e-4 {
		t.Errorf("std of position 0 = %v", sd)
	}
	// Positions that do not vary are floored at spreadFloor of the average spread.
	avg := (math.Sqrt(8.0/3) + 0 + math.Sqrt(0.02*0.02*2/9)) / 3
	if sd := 1 / float64(inv[1]); math.Abs(sd-spreadFloor*avg) > 1e-4 {
		t.Errorf("floored std %v, want %v", sd, spreadFloor*avg)
	}
	// A position half as variable as the average (a quiet border) is
	// divided by the floor, not by its own spread: its z is not magnified.
	_, inv = positionStats([][]float32{{0, 0}, {2, 1}})
	if got, want := 1/float64(inv[1]), spreadFloor*0.75; math.Abs(got-want) > 1e-6 {
		t.Errorf("quiet position's spread %v, want the floor %v", got, want)
	}
}

// fitZScore fits a detector with the per-position z-score on textures
// (closed when the test ends).
func fitZScore(t *testing.T) (Options, *Detector) {
	t.Helper()
	opts := testOptions(t)
	opts.PositionZScore = true
	det, _, err := Fit(context.Background(), opts, textures(MinZScoreImages), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { det.Close() })
	return opts, det
}

// With the per-position z-score, a fitted model and its saved file agree,
// and the statistics change the scores.
func TestPositionZScoreSaveLoad(t *testing.T) {
	opts, det := fitZScore(t)
	if !det.Info().PositionZScore || det.scales[0].zMean == nil {
		t.Fatal("z-score not fitted")
	}
	good, bad := texture(2000, false), texture(2001, true)
	r, err := det.Inspect(good)
	if err != nil {
		t.Fatal(err)
	}
	sg, ag := r.Score, r.Anomalous
	r, _ = det.Inspect(bad)
	sb, ab := r.Score, r.Anomalous
	if ag || !ab {
		t.Errorf("good anomalous=%v (%.2f), defect anomalous=%v (%.2f), threshold %.2f", ag, sg, ab, sb, r.Threshold)
	}
	path := filepath.Join(t.TempDir(), "z.safetensors")
	if err := det.Save(path); err != nil {
		t.Fatal(err)
	}
	o := opts
	o.PositionZScore = false // the file decides
	ld, err := Load(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	if !ld.Info().PositionZScore {
		t.Fatal("loaded model lost its z-score statistics")
	}
	r, _ = ld.Inspect(bad)
	if math.Abs(r.Score-sb) > 1e-5*math.Abs(sb) {
		t.Errorf("loaded model scores %.6f, fitted %.6f", r.Score, sb)
	}
}

// Each training image is scored for the threshold with the per-position
// statistics of all the other training images (never its own), and the
// model keeps the statistics of all.
func TestLeaveOneOutScores(t *testing.T) {
	sameFitPath(t)
	_, det := fitZScore(t)
	p := det.scales[0].positions()
	r := rand.New(rand.NewPCG(7, 8))
	loo := &looGrids{}
	grids := make([][]float32, 6)
	for i := range grids {
		g := make([]float32, p)
		for j := range g {
			g[j] = 1 + r.Float32()*float32(i+1)
		}
		grids[i] = g
		loo.dist = append(loo.dist, [][]float32{g})
		loo.geom = append(loo.geom, looGeom{b: image.Rect(0, 0, 80, 60), reg: backbone.Region{X0: 0, Y0: 0, X1: 1, Y1: 1}})
	}
	det.setPositionStats(loo)
	got, _, err := det.looScores(loo)
	if err != nil {
		t.Fatal(err)
	}
	s := det.scales[0]
	keptMean, keptInv := s.zMean, s.zInvStd
	allMean, allInv := positionStats(grids)
	for i := range grids {
		others := append(append([][]float32(nil), grids[:i]...), grids[i+1:]...)
		mean, inv := positionStats(others)
		for j, v := range grids[i] {
			det.grid[j] = (v - mean[j]) * inv[j]
		}
		want, err := det.render(80, 60, loo.geom[i].reg)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got[i]-float64(want)) > 1e-5*math.Abs(float64(want)) {
			t.Errorf("training image %d scores %.6f, want %.6f (statistics of the other %d)", i, got[i], want, len(others))
		}
	}
	for j := range allMean {
		if math.Abs(float64(keptMean[j]-allMean[j])) > 1e-5*math.Abs(float64(allMean[j])) || math.Abs(float64(keptInv[j]-allInv[j])) > 1e-4*math.Abs(float64(allInv[j])) {
			t.Fatalf("position %d: model keeps mean %v / inverse std %v, want those of all images %v / %v", j, keptMean[j], keptInv[j], allMean[j], allInv[j])
		}
	}
}

// sameFitPath skips a test under -short (make test's -race run): its fits
// take the path TestFitSaveLoad, TestContextScaleSaveLoad, the search
// tests and TestRegistrationInspectAndRoundTrip (registration's row
// goroutines) already run under the race detector, and what it checks is
// arithmetic or a file's contents, which the full run checks. Each cost
// 10–27 s there.
func sameFitPath(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("the fit path is raced by TestFitSaveLoad; this checks values, in the full run")
	}
}
