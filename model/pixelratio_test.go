package model

import (
	"context"
	"math"
	"testing"

	"github.com/inspectd/inspectd/model/padim"
)

// haloDefect is a w×w inspection whose map is 12 at the centre of an
// 11×11 defect, 10.5 over the rest of it and halo (a share of the 10
// image threshold) in a 3-pixel ring around it, 1 elsewhere, with the
// defect's mask.
func haloDefect(halo float32) (*Inspection, []uint8) {
	const w = 64
	r := &Inspection{Map: make([]float32, w*w), W: w, H: w}
	mask := make([]uint8, w*w)
	for y := range w {
		for x := range w {
			i := y*w + x
			switch {
			case x >= 20 && x <= 30 && y >= 20 && y <= 30:
				r.Map[i], mask[i] = 10.5, 1
			case x >= 17 && x <= 33 && y >= 17 && y <= 33:
				r.Map[i] = halo
			default:
				r.Map[i] = 1
			}
		}
	}
	r.Map[25*w+25] = 12
	r.Score = 12
	return r, mask
}

// The search grows the alarm regions as far as the synthetic defects say
// (a defect's surroundings lit at 0.85 of the threshold: the regions end
// at the defect with 0.9, take the ring in with 0.75), and keeps
// padim.DefaultPixelRatio on too few flagged defects or a lead within
// PixelRatioMargin. A defect the threshold passes counts nothing.
func TestPixelRatioFromSyntheticDefects(t *testing.T) {
	r, mask := haloDefect(8.5)
	var tr ratioTrial
	for range MinPixelRatioImages - 1 {
		if err := tr.add(r, 10, mask); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.add(r, 12, mask); err != nil { // passed: not flagged
		t.Fatal(err)
	}
	if ratio, iou, n := tr.choose(); ratio != padim.DefaultPixelRatio || n != MinPixelRatioImages-1 || math.Abs(iou-121.0/289) > 1e-9 {
		t.Errorf("%d flagged defects: ratio %g, IoU %g over %d; want the default %g, IoU %g (the ring taken in)", MinPixelRatioImages-1, ratio, iou, n,
			padim.DefaultPixelRatio, 121.0/289)
	}
	if err := tr.add(r, 10, mask); err != nil {
		t.Fatal(err)
	}
	if ratio, iou, n := tr.choose(); ratio != 0.9 || n != MinPixelRatioImages || iou != 1 {
		t.Errorf("%d flagged defects: ratio %g, IoU %g over %d; want 0.9 with IoU 1", MinPixelRatioImages, ratio, iou, n)
	}

	// A ring under every share tried: every share outlines the defect
	// alike, and the default stays.
	r, mask = haloDefect(5)
	tr = ratioTrial{}
	for range MinPixelRatioImages {
		if err := tr.add(r, 10, mask); err != nil {
			t.Fatal(err)
		}
	}
	if ratio, iou, _ := tr.choose(); ratio != padim.DefaultPixelRatio || iou != 1 {
		t.Errorf("a ring under every share: ratio %g, IoU %g; want the default with IoU 1", ratio, iou)
	}

	// A lead within the margin is no reason to leave the default.
	tr = ratioTrial{n: MinPixelRatioImages}
	for i, ratio := range PixelRatios {
		tr.sum[i] = 0.5 * float64(tr.n)
		if ratio == 0.9 {
			tr.sum[i] = (0.5 + PixelRatioMargin/2) * float64(tr.n)
		}
	}
	if ratio, _, _ := tr.choose(); ratio != padim.DefaultPixelRatio {
		t.Errorf("a lead of %g: ratio %g, want the default", PixelRatioMargin/2, ratio)
	}
	if ratio, iou, n := (&ratioTrial{}).choose(); ratio != padim.DefaultPixelRatio || iou != 0 || n != 0 {
		t.Errorf("nothing flagged: %g, %g, %d", ratio, iou, n)
	}
}

// A fit's pixel threshold is the options' pixel ratio of its image
// threshold (the search's choice reaches the model this way), the default
// share without one; the file keeps it.
func TestFitTakesThePixelRatio(t *testing.T) {
	sameFitPath(t)
	for _, ratio := range []float64{0, 0.9} {
		o := searchOptions(t)
		o.Recipe = "plain"
		o.Threshold.PixelRatio = ratio
		det, _, err := Fit(context.Background(), o, wides(12), nil)
		if err != nil {
			t.Fatal(err)
		}
		info := det.Info()
		det.Close()
		want := ratio
		if want == 0 {
			want = padim.DefaultPixelRatio
		}
		if got := info.PixelThreshold / info.ImageThreshold; math.Abs(got-want) > 1e-9 {
			t.Errorf("pixel ratio %g: pixel threshold %g of image threshold %g (%g), want %g", ratio, info.PixelThreshold, info.ImageThreshold, got, want)
		}
	}
}

// BenchmarkRatioTrial is the search's cost of measuring the pixel ratios
// on one flagged synthetic defect of a 512×1408 map (kolektorsdd's frame
// size), beside BenchmarkRatioTrial/baseline, one mask drawn at the
// default share as every inspection draws it.
func BenchmarkRatioTrial(b *testing.B) {
	const w, h = 512, 1408
	r := &Inspection{Map: make([]float32, w*h), W: w, H: h}
	mask := make([]uint8, w*h)
	for y := range h {
		for x := range w {
			i := y*w + x
			r.Map[i] = float32((x*7+y*13)%97) / 100
			if x >= 200 && x < 260 && y >= 600 && y < 700 {
				r.Map[i], mask[i] = 10.5, 1
			}
		}
	}
	r.Map[650*w+230], r.Score = 12, 12
	b.Run("baseline", func(b *testing.B) {
		var res padim.Result
		th := padim.Thresholds{Image: 10, Pixel: 10 * padim.DefaultPixelRatio}
		for b.Loop() {
			if err := th.Inspect(&res, r.Map, w, h, 12); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("trial", func(b *testing.B) {
		var tr ratioTrial
		for b.Loop() {
			if err := tr.add(r, 10, mask); err != nil {
				b.Fatal(err)
			}
		}
	})
}
