package noise

import (
	"errors"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

// grayWith is a w×h gray image of level base plus Gaussian noise of sd
// sigma, rounded and clipped.
func grayWith(w, h int, base, sigma float64, seed uint64) *image.Gray {
	r := rand.New(rand.NewPCG(seed, 1))
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = uint8(min(max(math.Round(base+sigma*r.NormFloat64()), 0), 255))
	}
	return g
}

func TestMeasureRecoversNoise(t *testing.T) {
	for _, sigma := range []float64{1, 3, 8} {
		lv, err := Measure(grayWith(256, 256, 100, sigma, 7))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(lv.Noise-sigma) > 0.1*sigma {
			t.Errorf("noise sd %g: measured %.3f, want within 10%%", sigma, lv.Noise)
		}
		if math.Abs(lv.Contrast-sigma) > 0.1*sigma {
			t.Errorf("noise sd %g: contrast %.3f, want about the noise's (a flat frame)", sigma, lv.Contrast)
		}
	}
}

// A frame that is mostly fine texture with some flat area is measured
// where only the noise is left: the texture is no noise.
func TestMeasureIgnoresTexture(t *testing.T) {
	g := grayWith(256, 256, 60, 2, 3)
	for y := range 256 {
		for x := range 192 { // three quarters: a one-pixel checkerboard
			if (x+y)%2 == 0 {
				g.Pix[y*g.Stride+x] += 80
			}
		}
	}
	lv, err := Measure(g)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(lv.Noise-2) > 0.25 {
		t.Errorf("noise %.3f on a textured frame with noise sd 2 on its flat quarter, want about 2", lv.Noise)
	}
	if lv.Contrast < 30 {
		t.Errorf("contrast %.1f, want the checkerboard's (about 35)", lv.Contrast)
	}
}

func TestMeasureSmoothFrameIsQuiet(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 300, 200))
	for y := range 200 {
		for x := range 300 {
			g.SetGray(x, y, color.Gray{uint8(20 + 200*float64(x)/300*float64(y)/200)})
		}
	}
	lv, err := Measure(g)
	if err != nil {
		t.Fatal(err)
	}
	if lv.Noise > 0.5 {
		t.Errorf("noise %.3f on a smooth noiseless ramp, want under 0.5 (rounding only)", lv.Noise)
	}
	if lv.Contrast < 30 {
		t.Errorf("contrast %.1f of a ramp over 20..220, want its spread", lv.Contrast)
	}
}

func TestMeasureContrast(t *testing.T) {
	// Dark and bright halves, short of clipping (clipped blocks are no
	// blocks, TestMeasureClippedBackground).
	g := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range g.Pix {
		g.Pix[i] = 10
		if i%64 < 32 {
			g.Pix[i] = 240
		}
	}
	lv, err := Measure(g)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(lv.Contrast-115) > 1e-9 {
		t.Errorf("contrast %g of halves at 10 and 240: want 115", lv.Contrast)
	}
	if lv.Noise != 0 {
		t.Errorf("noise %g: want 0 (the blocks left and right of the edge are flat)", lv.Noise)
	}
}

// A colour frame, its JPEG-style Y plane and a gray frame of the same
// luminance measure alike; a sub-image is measured from its own origin.
func TestMeasureKinds(t *testing.T) {
	g := grayWith(96, 80, 120, 4, 11)
	rgba := image.NewRGBA(g.Rect)
	ycc := image.NewYCbCr(g.Rect, image.YCbCrSubsampleRatio420)
	for i, v := range g.Pix {
		rgba.Pix[4*i], rgba.Pix[4*i+1], rgba.Pix[4*i+2], rgba.Pix[4*i+3] = v, v, v, 255
		ycc.Y[i] = v
	}
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = 128, 128
	}
	want, err := Measure(g)
	if err != nil {
		t.Fatal(err)
	}
	for name, img := range map[string]image.Image{"rgba": rgba, "ycbcr": ycc, "nrgba": toNRGBA(g)} {
		got, err := Measure(img)
		if err != nil {
			t.Fatal(name, err)
		}
		if math.Abs(got.Noise-want.Noise) > 1e-3 || math.Abs(got.Contrast-want.Contrast) > 1e-3 {
			t.Errorf("%s: %+v, the gray frame's %+v", name, got, want)
		}
	}
	sub := g.SubImage(image.Rect(10, 10, 90, 70))
	flat := image.NewGray(image.Rect(0, 0, 80, 60))
	for y := range 60 {
		copy(flat.Pix[y*80:(y+1)*80], g.Pix[(y+10)*g.Stride+10:])
	}
	a, _ := Measure(sub)
	b, _ := Measure(flat)
	if a != b {
		t.Errorf("sub-image %+v, its copy at the origin %+v", a, b)
	}
}

func toNRGBA(g *image.Gray) *image.NRGBA {
	out := image.NewNRGBA(g.Rect)
	for i, v := range g.Pix {
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = v, v, v, 255
	}
	return out
}

func TestMeasureTooSmall(t *testing.T) {
	if _, err := Measure(image.NewGray(image.Rect(0, 0, 2, 50))); !errors.Is(err, ErrTooSmall) {
		t.Errorf("2×50 frame: %v, want ErrTooSmall", err)
	}
	if _, err := Measure(grayWith(5, 4, 50, 1, 1)); err != nil {
		t.Errorf("5×4 frame (one block): %v", err)
	}
}

// A part on a black (or blown white) background is measured on the part:
// the clipped background holds no noise, and its blocks, the quietest,
// would read as a noiseless line. A frame clipped everywhere has no noise
// to measure.
func TestMeasureClippedBackground(t *testing.T) {
	for _, bg := range []uint8{0, 255} {
		g := grayWith(256, 256, 100, 5, 11)
		for y := range 256 {
			for x := range 96 { // three eighths of the frame, clipped
				g.Pix[y*g.Stride+x] = bg
			}
		}
		lv, err := Measure(g)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(lv.Noise-5) > 0.5 {
			t.Errorf("background %d: noise %.3f on a part with noise sd 5, want about 5", bg, lv.Noise)
		}
	}
	for _, v := range []uint8{0, 255} {
		g := image.NewGray(image.Rect(0, 0, 64, 64))
		for i := range g.Pix {
			g.Pix[i] = v
		}
		if _, err := Measure(g); !errors.Is(err, ErrClipped) {
			t.Errorf("a frame all at %d: %v, want ErrClipped", v, err)
		}
	}
}

// BenchmarkMeasure: one 512×512 frame (gray, and colour as decoded PNGs
// come), of which a fit measures 9.
func BenchmarkMeasure(b *testing.B) {
	g := grayWith(512, 512, 100, 3, 1)
	rgba := image.NewRGBA(g.Rect)
	for i, v := range g.Pix {
		rgba.Pix[4*i], rgba.Pix[4*i+1], rgba.Pix[4*i+2], rgba.Pix[4*i+3] = v, v, v, 255
	}
	for name, img := range map[string]image.Image{"gray": g, "rgba": rgba} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Measure(img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Luma weighs the channels by Rec. 601, in either precision, and a gray
// level is its own luma.
func TestLuma(t *testing.T) {
	for _, c := range []struct {
		r, g, b uint8
		want    float64
	}{{255, 0, 0, 0.299 * 255}, {0, 255, 0, 0.587 * 255}, {0, 0, 255, 0.114 * 255}, {0, 0, 0, 0}, {128, 128, 128, 128}, {255, 255, 255, 255}} {
		if got := Luma[float64](c.r, c.g, c.b); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Luma[float64](%d, %d, %d) = %v, want %v", c.r, c.g, c.b, got, c.want)
		}
		if got := Luma[float32](c.r, c.g, c.b); math.Abs(float64(got)-c.want) > 1e-4 {
			t.Errorf("Luma[float32](%d, %d, %d) = %v, want %v", c.r, c.g, c.b, got, c.want)
		}
	}
}
