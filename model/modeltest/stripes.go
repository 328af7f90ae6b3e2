package modeltest

import (
	"image"
	"math"
	"math/rand/v2"
)

// Stripes is a w×h gray frame of vertical stripes (level 110, amplitude
// 30, period about 38 pixels) with white Gaussian sensor noise of standard
// deviation sd levels, seeded by seed: a line whose noise against its
// contrast a test sets (the stripes alone measure no noise, since
// Immerkær's mask is blind to what varies along one axis only).
func Stripes(seed uint64, w, h int, sd float64) *image.Gray {
	r := rand.New(rand.NewPCG(seed, 3))
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			v := 110 + 30*math.Sin(float64(x)/6) + sd*r.NormFloat64()
			img.Pix[y*img.Stride+x] = uint8(min(max(math.Round(v), 0), 255))
		}
	}
	return img
}
