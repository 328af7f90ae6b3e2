package dataset

import (
	"image"
	"image/color"
	"math"
	"strings"
	"testing"
)

// testScene is a w×h colour image with some structure: a gradient, a
// bright part and a dark one, levels over most of 0..255.
func testScene(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			r := uint8(40 + 180*x/w)
			g := uint8(60 + 150*y/h)
			b := uint8(120)
			if x > w/2 && y > h/2 {
				r, g, b = 240, 235, 230
			}
			if x < w/5 {
				r, g, b = 10, 12, 8
			}
			img.SetRGBA(x, y, color.RGBA{r, g, b, 255})
		}
	}
	return img
}

// The set is brought to the asked mean grey level: the output's mean luma
// lies within ±1.5 levels of Mean, noise and hot pixels included.
func TestDimMeanLuma(t *testing.T) {
	img := testScene(160, 120)
	gray := image.NewGray(image.Rect(0, 0, 128, 96))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(50 + i%150)
	}
	for _, src := range []image.Image{img, gray} {
		for _, mean := range []float64{8, 19, 60, 128} {
			d, err := NewDim(mean, DimNoise, 1, []float64{MeanLuma(src)})
			if err != nil {
				t.Fatal(err)
			}
			out := d.Apply(src, "train/good/000.png")
			if out.Rect != image.Rect(0, 0, src.Bounds().Dx(), src.Bounds().Dy()) {
				t.Fatalf("%T: output %v, want the input's size", src, out.Rect)
			}
			if got := MeanLuma(out); math.Abs(got-mean) > 1.5 {
				t.Errorf("%T, mean %g: output mean luma %.2f (input %.2f, scale %.3f)", src, mean, got, MeanLuma(src), d.Scale)
			}
		}
	}
	// One factor for the set: an image brighter than the sample stays
	// brighter.
	d, _ := NewDim(19, DimNoise, 1, []float64{MeanLuma(img), MeanLuma(img) / 2})
	if got := MeanLuma(d.Apply(img, "x")); !(got > 19*1.2) {
		t.Errorf("an image twice the sample's other one: mean luma %.2f, want above the set's 19 (one factor for the set)", got)
	}
}

// The noise's standard deviation per channel is Noise times 1.2, 1.0 and
// 1.4 (R, G, B) on a flat image; its mean is the scaled level.
func TestDimNoisePerChannel(t *testing.T) {
	flat := image.NewGray(image.Rect(0, 0, 300, 200))
	for i := range flat.Pix {
		flat.Pix[i] = 100
	}
	const noise = 4
	d, err := NewDim(40, noise, 7, []float64{100})
	if err != nil {
		t.Fatal(err)
	}
	out := d.Apply(flat, "test/good/001.png")
	hot := map[[2]int]bool{}
	for _, hp := range d.HotPixels(300, 200) {
		hot[[2]int{hp.X, hp.Y}] = true
	}
	for c, k := range []float64{1.2, 1.0, 1.4} {
		var sum, sq float64
		var n int
		for y := range 200 {
			for x := range 300 {
				if hot[[2]int{x, y}] {
					continue
				}
				v := float64(out.Pix[y*out.Stride+4*x+c])
				sum += v
				sq += v * v
				n++
			}
		}
		m := sum / float64(n)
		sd := math.Sqrt(sq/float64(n) - m*m)
		// Rounding to levels adds 1/12 of a level's variance.
		want := math.Sqrt(k*k*noise*noise + 1.0/12)
		if math.Abs(m-40) > 0.1 || math.Abs(sd-want) > 0.05*want {
			t.Errorf("channel %d: mean %.3f (want 40), SD %.3f (want %.3f)", c, m, sd, want)
		}
	}
	for i := 3; i < len(out.Pix); i += 4 {
		if out.Pix[i] != 255 {
			t.Fatalf("alpha %d at %d: want opaque", out.Pix[i], i)
		}
	}
}

// Hot pixels sit at the same positions (and levels) in two different
// images of the same size, none elsewhere beyond the noise; another size
// or seed has others.
func TestDimHotPixels(t *testing.T) {
	w, h := 200, 150
	d, err := NewDim(20, 2, 3, []float64{80})
	if err != nil {
		t.Fatal(err)
	}
	a := image.NewGray(image.Rect(0, 0, w, h))
	for i := range a.Pix {
		a.Pix[i] = 80
	}
	b := testScene(w, h)
	for x := range w / 2 {
		for y := range h {
			b.SetRGBA(x, y, color.RGBA{60, 60, 60, 255}) // nothing above 255·0.25 levels after scaling
		}
	}
	b.SetRGBA(w-1, h-1, color.RGBA{255, 255, 255, 255})
	hotAt := func(img image.Image, key string) map[[3]int]uint8 {
		out := d.Apply(img, key)
		m := map[[3]int]uint8{}
		for y := range h {
			for x := range w {
				for c := range 3 {
					// The brightest level of b scales to 61: with the
					// noise (SD ≤ 2.8) never above 100.
					if v := out.Pix[y*out.Stride+4*x+c]; v > 100 {
						m[[3]int{x, y, c}] = v
					}
				}
			}
		}
		return m
	}
	ha, hb := hotAt(a, "train/good/000.png"), hotAt(b, "test/crack/004.png")
	want := int(math.Round(float64(w*h) * DimHotPixels))
	if len(ha) != want || len(hb) != want {
		t.Fatalf("%d and %d bright channels, want the %d hot pixels alone", len(ha), len(hb), want)
	}
	for k, v := range ha {
		if hb[k] != v || v < DimHotMin {
			t.Errorf("hot pixel %v: %d in one image, %d in the other, want the same level in %d..%d", k, v, hb[k], DimHotMin, DimHotMax)
		}
	}
	same := func(p, q []HotPixel) bool {
		for i := range min(len(p), len(q)) {
			if p[i] != q[i] {
				return false
			}
		}
		return len(p) == len(q)
	}
	if !same(d.HotPixels(w, h), d.HotPixels(w, h)) {
		t.Error("hot pixels differ between calls")
	}
	if e := (Dim{Seed: 4}); same(d.HotPixels(w, h), e.HotPixels(w, h)) {
		t.Error("seeds 3 and 4 have the same hot pixels")
	}
	if got := d.HotPixels(w+10, h); same(got[:want], d.HotPixels(w, h)) {
		t.Error("another size has the same hot pixels")
	}
}

// The same seed and key repeat exactly; another key or seed draws other
// noise.
func TestDimRepeatsByKey(t *testing.T) {
	img := testScene(96, 72)
	d, err := NewDim(19, DimNoise, 1, []float64{MeanLuma(img)})
	if err != nil {
		t.Fatal(err)
	}
	a := d.Apply(img, "test/good/000.png")
	if b := d.Apply(img, "test/good/000.png"); string(a.Pix) != string(b.Pix) {
		t.Error("the same seed and key gave two images")
	}
	differ := func(p, q *image.RGBA) int {
		n := 0
		for i := range p.Pix {
			if p.Pix[i] != q.Pix[i] {
				n++
			}
		}
		return n
	}
	e := d
	e.Seed = 2
	for name, other := range map[string]*image.RGBA{"another key": d.Apply(img, "test/good/001.png"), "another seed": e.Apply(img, "test/good/000.png")} {
		// Noise of SD 3.5 leaves a channel's level unchanged about one
		// time in ten: most levels differ.
		if n := differ(a, other); n < len(a.Pix)/2 {
			t.Errorf("%s: %d of %d levels differ, want most", name, n, len(a.Pix))
		}
	}
}

// Out-of-range settings and samples without exposure are refused, naming
// the range.
func TestNewDimRefuses(t *testing.T) {
	for _, c := range []struct {
		mean, noise float64
		lumas       []float64
		want        string
	}{
		{0, 3.5, []float64{50}, "want 1 to 128"},
		{300, 3.5, []float64{50}, "want 1 to 128"},
		{math.NaN(), 3.5, []float64{50}, "want 1 to 128"},
		{19, -1, []float64{50}, "want 0 to 64"},
		{19, 3.5, nil, "no image"},
		{19, 3.5, []float64{0, 0}, "black images"},
	} {
		if _, err := NewDim(c.mean, c.noise, 1, c.lumas); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewDim(%g, %g, %v): %v, want an error saying %q", c.mean, c.noise, c.lumas, err, c.want)
		}
	}
}
