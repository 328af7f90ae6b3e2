package padim

import (
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestQuantile(t *testing.T) {
	s := []float64{5, 1, 4, 2, 3}
	for q, want := range map[float64]float64{0: 1, 1: 5, 0.5: 3, 0.9: 4.6, 0.125: 1.5} {
		got, err := Quantile(s, q)
		if err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("quantile %g: %v %v, want %v", q, got, err, want)
		}
	}
	if s[0] != 5 {
		t.Error("input reordered")
	}
	if _, err := Quantile(nil, 0.5); err == nil {
		t.Error("empty accepted")
	}
	if _, err := Quantile(s, 1.5); err == nil {
		t.Error("q>1 accepted")
	}
	if _, err := Quantile([]float64{1, math.NaN()}, 0.5); err == nil {
		t.Error("NaN accepted")
	}
}

func TestImageThreshold(t *testing.T) {
	scores := []float64{10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	got, err := ImageThreshold(scores, ThresholdOptions{})
	if want := (19 + 0.9) * 1.1; err != nil || math.Abs(got-want) > 1e-9 {
		t.Errorf("default: %v %v, want %v", got, err, want)
	}
	got, _ = ImageThreshold(scores, ThresholdOptions{Quantile: 0.5, Margin: 1})
	if got != 15 {
		t.Errorf("median: %v", got)
	}
	got, _ = ImageThreshold(nil, ThresholdOptions{Explicit: 7.5})
	if got != 7.5 {
		t.Errorf("explicit: %v", got)
	}
	for _, o := range []ThresholdOptions{{Explicit: -1}, {Margin: -1}, {Quantile: 2}} {
		if _, err := ImageThreshold(scores, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := ImageThreshold(nil, ThresholdOptions{}); err == nil {
		t.Error("no held-out scores accepted")
	}
	// Identical training images score 0 each: the error says so.
	if _, err := ImageThreshold(make([]float64, 5), ThresholdOptions{}); err == nil || !strings.Contains(err.Error(), "all alike") {
		t.Errorf("all-zero scores: %v", err)
	}
}

func TestInspect(t *testing.T) {
	amap := []float32{1, 2, 3, 4, 5, 6}
	var r Result
	th := Thresholds{Image: 4.5}
	if err := th.Inspect(&r, amap, 3, 2, 6); err != nil {
		t.Fatal(err)
	}
	if !r.Anomalous || r.Normalized != 6/4.5 || r.Threshold != 4.5 {
		t.Fatalf("%+v", r)
	}
	want := []uint8{0, 0, 0, 0, 255, 255}
	for i, v := range r.Mask.Pix {
		if v != want[i] {
			t.Fatalf("mask %v, want %v", r.Mask.Pix, want)
		}
	}
	mask := r.Mask
	th.Pixel = 2.5
	if n := testing.AllocsPerRun(3, func() { _ = th.Inspect(&r, amap, 3, 2, 6) }); n != 0 {
		t.Errorf("%v allocs", n)
	}
	if r.Mask != mask || !r.Anomalous || r.Mask.Pix[2] != 255 || r.Mask.Pix[1] != 0 {
		t.Fatalf("reuse or pixel threshold wrong: %+v %v", r, r.Mask.Pix)
	}
	if err := th.Inspect(&r, amap, 4, 2, 4); err == nil {
		t.Error("wrong size accepted")
	}
	if err := (Thresholds{}).Inspect(&r, amap, 3, 2, 4); err == nil {
		t.Error("zero threshold accepted")
	}
}

// The mask grows from the pixels above the image threshold into their
// 8-connected neighbours above the pixel threshold: a flagged defect's
// whole bright area, not a second area that never reaches the image
// threshold, and nothing at all on a passing image.
func TestInspectGrowsRegions(t *testing.T) {
	const w, h = 7, 4
	amap := []float32{
		0, 6, 9, 0, 0, 0, 0,
		0, 0, 6, 0, 0, 6, 7,
		7, 0, 0, 6, 0, 6, 0,
		0, 0, 0, 0, 0, 0, 0,
	}
	th := Thresholds{Image: 8, Pixel: 5}
	var r Result
	if err := th.Inspect(&r, amap, w, h, 9); err != nil {
		t.Fatal(err)
	}
	want := []uint8{
		0, 1, 1, 0, 0, 0, 0,
		0, 0, 1, 0, 0, 0, 0,
		0, 0, 0, 1, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0,
	}
	for i, v := range r.Mask.Pix {
		if v != want[i]*255 {
			t.Fatalf("mask\n%v\nwant the blob around 9 only (diagonal steps count, the 6–7 blob and the lone 7 never reach 8)\n%v", r.Mask.Pix, want)
		}
	}
	// Below the image threshold: a pass, and no mask.
	pass := slices.Clone(amap)
	pass[2] = 7.5
	if err := th.Inspect(&r, pass, w, h, 7.5); err != nil {
		t.Fatal(err)
	}
	if r.Anomalous || slices.ContainsFunc(r.Mask.Pix, func(v uint8) bool { return v != 0 }) {
		t.Fatalf("passing image: anomalous %v, mask %v", r.Anomalous, r.Mask.Pix)
	}
	// A score below the threshold while the map crosses it (a -fine
	// recipe publishes the patch scale's map): still a pass, no mask.
	if err := th.Inspect(&r, amap, w, h, 7); err != nil {
		t.Fatal(err)
	}
	if r.Anomalous || slices.ContainsFunc(r.Mask.Pix, func(v uint8) bool { return v != 0 }) {
		t.Fatalf("pass on its score: anomalous %v, mask %v", r.Anomalous, r.Mask.Pix)
	}
	// Pixel at or above Image: the pixels above Pixel, as before.
	th.Pixel = 6.5
	th.Image = 6
	if err := th.Inspect(&r, amap, w, h, 9); err != nil {
		t.Fatal(err)
	}
	for i, v := range r.Mask.Pix {
		if (v == 255) != (amap[i] > 6.5) {
			t.Fatalf("pixel above image threshold: mask %v", r.Mask.Pix)
		}
	}
	if n := testing.AllocsPerRun(3, func() { _ = (Thresholds{Image: 8, Pixel: 5}).Inspect(&r, amap, w, h, 9) }); n != 0 {
		t.Errorf("%v allocs per inspection in steady state", n)
	}
}

// The mask of random maps equals a plain breadth-first reference: the
// pixels above Pixel 8-connected through such pixels to one above Image
// (regions touching the edges, several seeds per region, stride beyond
// the width).
func TestInspectRegionsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 11))
	var r Result
	for k := range 200 {
		w, h := 1+rng.IntN(60), 1+rng.IntN(40)
		amap := make([]float32, w*h)
		for i := range amap {
			amap[i] = rng.Float32() * 10
		}
		th := Thresholds{Image: 9, Pixel: 3 + 5*rng.Float64()}
		if k%2 == 0 {
			r.Mask = image.NewGray(image.Rect(0, 0, w+3, h)).SubImage(image.Rect(0, 0, w, h)).(*image.Gray) // reused only if it fits
		}
		if err := th.Inspect(&r, amap, w, h, 10); err != nil {
			t.Fatal(err)
		}
		want := make([]bool, w*h)
		var queue []int
		for i, v := range amap {
			if v > float32(th.Image) {
				want[i] = true
				queue = append(queue, i)
			}
		}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					x, y := p%w+dx, p/w+dy
					if x < 0 || y < 0 || x >= w || y >= h {
						continue
					}
					if q := y*w + x; !want[q] && amap[q] > float32(th.Pixel) {
						want[q] = true
						queue = append(queue, q)
					}
				}
			}
		}
		for i, ok := range want {
			x, y := i%w, i/w
			if got := r.Mask.GrayAt(x, y).Y; (got == 255) != ok || (got != 0 && got != 255) {
				t.Fatalf("case %d (%dx%d, pixel threshold %.2f): mask at (%d,%d) is %d, want kept=%v", k, w, h, th.Pixel, x, y, got, ok)
			}
		}
	}
}
