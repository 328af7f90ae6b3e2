package backbone

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

// texture draws a reproducible gray texture with the given mean and
// contrast (values clipped to 0..255).
func texture(w, h int, mean, contrast float64, seed uint64) *image.Gray {
	rng := rand.New(rand.NewPCG(seed, 7))
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = uint8(min(max(mean+contrast*rng.NormFloat64(), 0), 255))
	}
	return g
}

// lumaStats returns the luminance mean and standard deviation of img.
func lumaStats(img image.Image) (mean, std float64) {
	b := img.Bounds()
	var s, ss, n float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			l := float64(color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y)
			s += l
			ss += l * l
			n++
		}
	}
	mean = s / n
	return mean, math.Sqrt(ss/n - mean*mean)
}

func TestStandardizerTargetsMeanAndContrast(t *testing.T) {
	var s Standardizer
	for _, c := range []struct{ mean, contrast float64 }{{40, 14}, {128, 40}, {200, 15}} {
		out := s.Apply(texture(64, 48, c.mean, c.contrast, 1))
		if _, ok := out.(*image.Gray); !ok {
			t.Fatalf("gray input gave %T, want *image.Gray", out)
		}
		m, sd := lumaStats(out)
		if math.Abs(m-128) > 1.5 || math.Abs(sd-StandardStd) > 1.5 {
			t.Errorf("input mean %v contrast %v: output mean %.2f std %.2f, want 128 and %d", c.mean, c.contrast, m, sd, StandardStd)
		}
	}
	s = Standardizer{Mean: 100, Std: 20}
	m, sd := lumaStats(s.Apply(texture(64, 48, 50, 8, 2)))
	if math.Abs(m-100) > 1.5 || math.Abs(sd-20) > 1.5 {
		t.Errorf("custom target: mean %.2f std %.2f, want 100 and 20", m, sd)
	}
}

// A dark, low-contrast frame (a line under weak light) is stretched by
// at most DefaultMaxGain: its contrast is mostly the sensor's noise, which a
// stretch to the full StandardStd would blow up 7-fold into texture that
// drowns faint defects. Its mean still moves to the target.
func TestStandardizerCapsGain(t *testing.T) {
	var s Standardizer
	for _, c := range []struct{ mean, contrast float64 }{{19, 6}, {60, 3}} {
		m, sd := lumaStats(s.Apply(texture(64, 48, c.mean, c.contrast, 8)))
		in := c.contrast * DefaultMaxGain
		if math.Abs(m-128) > 1.5 || math.Abs(sd-in) > 0.1*in {
			t.Errorf("input mean %v contrast %v: output mean %.2f std %.2f, want 128 and %.1f (stretched %.2f×)", c.mean, c.contrast, m, sd, in, DefaultMaxGain)
		}
	}
	// The fused path's photometric map takes the same gain.
	img := texture(64, 48, 19, 6, 9)
	if ph := (&Standardizer{}).Measure(img); math.Abs(float64(ph.Gain)-DefaultMaxGain) > 1e-3 {
		t.Errorf("Measure: gain %.3f, want %.3f", ph.Gain, DefaultMaxGain)
	}
	// A model fitted under the old bound keeps it: the full contrast.
	old := Standardizer{MaxGain: LegacyMaxGain}
	if _, sd := lumaStats(old.Apply(img)); math.Abs(sd-StandardStd) > 1.5 {
		t.Errorf("MaxGain %g: output std %.2f, want %d", LegacyMaxGain, sd, StandardStd)
	}
	if ph := old.Measure(img); math.Abs(float64(ph.Gain)-StandardStd/6.0) > 0.5 {
		t.Errorf("MaxGain %g: Measure gain %.3f, want about %g", LegacyMaxGain, ph.Gain, StandardStd/6.0)
	}
}

// Two exposures of the same part must look the same to the network.
func TestStandardizerRemovesExposure(t *testing.T) {
	base := texture(80, 60, 120, 30, 3)
	dark := image.NewGray(base.Rect)
	for i, p := range base.Pix {
		dark.Pix[i] = uint8(0.6*float64(p) + 10 + 0.5)
	}
	var s1, s2 Standardizer
	a, b := s1.Apply(base).(*image.Gray), s2.Apply(dark).(*image.Gray)
	var diff float64
	for i := range a.Pix {
		diff = max(diff, math.Abs(float64(a.Pix[i])-float64(b.Pix[i])))
	}
	if diff > 3 {
		t.Errorf("bright and dark exposures differ by up to %v levels after standardizing, want ≤ 3", diff)
	}
	var raw float64
	for i := range base.Pix {
		raw = max(raw, math.Abs(float64(base.Pix[i])-float64(dark.Pix[i])))
	}
	if raw < 30 {
		t.Fatalf("test setup: exposures differ by only %v levels", raw)
	}
}

func TestStandardizerColourAndOrigin(t *testing.T) {
	// An RGBA image whose bounds do not start at 0,0, tinted: every channel
	// gets the same affine map, so the tint's direction survives.
	src := image.NewRGBA(image.Rect(10, 20, 74, 68))
	g := texture(64, 48, 90, 12, 4)
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			v := g.Pix[y*g.Stride+x]
			src.SetRGBA(10+x, 20+y, color.RGBA{v, uint8(max(int(v)-20, 0)), uint8(max(int(v)-40, 0)), 255})
		}
	}
	var s Standardizer
	out := s.Apply(src)
	if b := out.Bounds(); b != image.Rect(0, 0, 64, 48) {
		t.Fatalf("bounds %v, want 0,0-64,48", b)
	}
	m, sd := lumaStats(out)
	if math.Abs(m-128) > 2 || math.Abs(sd-StandardStd) > 2 {
		t.Errorf("RGBA: mean %.2f std %.2f", m, sd)
	}
	var ch [4]float64
	o := out.(*image.RGBA)
	for i, v := range o.Pix {
		ch[i%4] += float64(v)
	}
	if !(ch[0] > ch[1] && ch[1] > ch[2]) || ch[3] != 255*64*48 {
		t.Errorf("tint or alpha lost: channel sums %v", ch)
	}
	// Generic path (YCbCr, as colour JPEGs decode).
	yc := image.NewYCbCr(image.Rect(0, 0, 32, 32), image.YCbCrSubsampleRatio444)
	copy(yc.Y, texture(32, 32, 60, 14, 5).Pix)
	for i := range yc.Cb {
		yc.Cb[i], yc.Cr[i] = 128, 128
	}
	m, sd = lumaStats(s.Apply(yc))
	if math.Abs(m-128) > 2 || math.Abs(sd-StandardStd) > 2 {
		t.Errorf("YCbCr: mean %.2f std %.2f", m, sd)
	}
}

func TestStandardizerFlatImage(t *testing.T) {
	flat := texture(16, 16, 30, 0, 6)
	flat.Pix[0] = 31 // one level of noise must not become full contrast
	var s Standardizer
	_, sd := lumaStats(s.Apply(flat))
	if sd > 2 {
		t.Errorf("a flat frame was amplified to std %.2f", sd)
	}
	if out := s.Apply(image.NewGray(image.Rect(0, 0, 0, 0))); out.Bounds().Dx() != 0 {
		t.Errorf("empty image: got %v", out.Bounds())
	}
}

func TestStandardizerDoesNotAllocate(t *testing.T) {
	gray := texture(320, 240, 100, 20, 8)
	rgba := image.NewRGBA(image.Rect(0, 0, 320, 240))
	var s Standardizer
	s.Apply(gray)
	s.Apply(rgba)
	if n := testing.AllocsPerRun(5, func() { s.Apply(gray); s.Apply(rgba) }); n != 0 {
		t.Errorf("%v allocations per frame, want 0", n)
	}
}

func BenchmarkStandardizer(b *testing.B) {
	img := texture(640, 480, 100, 20, 9)
	var s Standardizer
	b.ReportAllocs()
	for b.Loop() {
		s.Apply(img)
	}
}
