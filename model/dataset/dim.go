package dataset

import (
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"image/draw"
	"math"
	"math/rand/v2"

	"github.com/inspectd/inspectd/model/noise"
)

// Dim is the "dark line" protocol (inspectd eval --dim): a data set taken
// again as a dark part under weak light on a colour sensor would take it.
// Three things are modelled, applied in this order to every training and
// test image:
//
//   - Exposure: every level of every image is multiplied by Scale, one
//     factor for the whole set: Mean (the line's mean grey level, 1..128
//     of 255) over the mean luminance of a sample of the set's training
//     images (DimScale). One factor, not one per image: the line's
//     exposure, which keeps the variation between parts that a per-image
//     scaling would erase. A set darker than Mean is brightened (Scale
//     above 1), clipped at 255.
//   - Sensor noise: independent Gaussian noise per pixel and per channel,
//     of standard deviation Noise levels times DimChannelNoise (R 1.2,
//     G 1.0, B 1.4: a colour sensor's channels differ in gain). It
//     differs between images (drawn from Seed and the image's key) and
//     repeats exactly for the same Seed and key, whatever the order
//     images are read in. A gray image becomes RGB.
//   - Hot pixels: DimHotPixels per pixel of the image (3 per 10,000),
//     each one channel of one pixel set to a level in 180..255, at
//     positions and levels fixed by Seed and the image's size: the same
//     in every image of that size, as a sensor's defects are.
//
// The geometry is unchanged, so masks are untouched. Levels are rounded
// and clipped to 0..255.
type Dim struct {
	// Mean is the line's mean grey level the set is brought to, 1 to
	// DimMaxMean levels of 255.
	Mean float64
	// Noise is the green channel's noise standard deviation in levels
	// (0 to DimMaxNoise); red and blue are DimChannelNoise times it.
	Noise float64
	// Seed fixes the noise (with each image's key) and the hot pixels.
	Seed uint64
	// Scale multiplies every level: Mean over the set's measured mean
	// luminance (DimScale).
	Scale float64
}

// The protocol's constants.
const (
	// DimNoise is eval --dim-noise's default: the green channel's noise
	// standard deviation, in levels of 255.
	DimNoise = 3.5
	// DimMaxMean and DimMaxNoise bound Dim.Mean and Dim.Noise (levels).
	DimMaxMean  = 128
	DimMaxNoise = 64
	// DimHotPixels is the share of pixels that are hot (3 per 10,000).
	DimHotPixels = 3.0 / 10000
	// DimHotMin and DimHotMax bound a hot pixel's level.
	DimHotMin = 180
	DimHotMax = 255
	// DimSample is how many training images, at most, spread over the
	// set's, DimScale's mean luminance is measured on.
	DimSample = 20
)

// DimChannelNoise are the noise standard deviations of the red, green and
// blue channels as multiples of Dim.Noise.
func DimChannelNoise() [3]float64 { return [3]float64{1.2, 1.0, 1.4} }

// NewDim returns the protocol bringing a set whose sample of training
// images has the mean luminances lumas (MeanLuma of each, levels) to mean
// grey level mean, with noise standard deviation noise (levels, green
// channel) and seed. It fails when mean or noise are out of range, or
// when the sample is empty or black (there is no exposure to scale).
func NewDim(mean, noise float64, seed uint64, lumas []float64) (Dim, error) {
	if !(mean >= 1 && mean <= DimMaxMean) {
		return Dim{}, fmt.Errorf("dim: mean grey level %g: want 1 to %d", mean, DimMaxMean)
	}
	if !(noise >= 0 && noise <= DimMaxNoise) {
		return Dim{}, fmt.Errorf("dim: noise %g levels: want 0 to %d", noise, DimMaxNoise)
	}
	scale, err := DimScale(mean, lumas)
	if err != nil {
		return Dim{}, err
	}
	return Dim{Mean: mean, Noise: noise, Seed: seed, Scale: scale}, nil
}

// ErrDimBlack says that the sample's mean luminance is 0: black images
// cannot be brought to a mean grey level by scaling.
var ErrDimBlack = errors.New("the sample's mean luminance is 0 (black images): no exposure to scale")

// DimScale is the exposure factor bringing images of mean luminance the
// mean of lumas (levels) to mean (levels). It fails without a sample
// and, with ErrDimBlack, on black images.
func DimScale(mean float64, lumas []float64) (float64, error) {
	if len(lumas) == 0 {
		return 0, errors.New("dim: no image to measure the exposure on")
	}
	var m float64
	for _, l := range lumas {
		m += l / float64(len(lumas))
	}
	if !(m > 0) {
		return 0, fmt.Errorf("dim: %w", ErrDimBlack)
	}
	return mean / m, nil
}

// MeanLuma is an image's mean luminance in levels of 255: Rec. 601 luma
// (noise.Luma: 0.299 R + 0.587 G + 0.114 B) of its levels as stored, the
// gray level of a gray image.
func MeanLuma(img image.Image) float64 {
	b := img.Bounds()
	n := b.Dx() * b.Dy()
	if n == 0 {
		return 0
	}
	var sum float64
	if g, ok := img.(*image.Gray); ok {
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := g.Pix[g.PixOffset(b.Min.X, y):][:b.Dx()]
			for _, v := range row {
				sum += float64(v)
			}
		}
		return sum / float64(n)
	}
	rgba := toRGBA(img)
	for i := 0; i < len(rgba.Pix); i += 4 {
		p := rgba.Pix[i : i+3 : i+3]
		sum += noise.Luma[float64](p[0], p[1], p[2])
	}
	return sum / float64(n)
}

// toRGBA copies img into a new *image.RGBA at the origin (gray repeated
// into the three channels), opaque.
func toRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	if g, ok := img.(*image.Gray); ok {
		for y := 0; y < b.Dy(); y++ {
			row := g.Pix[g.PixOffset(b.Min.X, b.Min.Y+y):][:b.Dx()]
			o := out.Pix[y*out.Stride:]
			for x, v := range row {
				o[4*x], o[4*x+1], o[4*x+2], o[4*x+3] = v, v, v, 255
			}
		}
		return out
	}
	draw.Draw(out, out.Rect, img, b.Min, draw.Src)
	return out
}

// HotPixel is one defective sensor pixel: one channel (0 red, 1 green,
// 2 blue) of the pixel at (X, Y) reads Level whatever the light.
type HotPixel struct {
	X, Y    int
	Channel int
	Level   uint8
}

// HotPixels are the sensor's hot pixels in a w×h image: round(w·h ·
// DimHotPixels) distinct positions, fixed by Seed, w and h alone (the
// same in every image of that size).
func (d Dim) HotPixels(w, h int) []HotPixel {
	if w <= 0 || h <= 0 {
		return nil
	}
	n := int(math.Round(float64(w) * float64(h) * DimHotPixels))
	hs := fnv.New64a()
	fmt.Fprintf(hs, "hot\x00%d\x00%dx%d", d.Seed, w, h)
	r := rand.New(rand.NewPCG(d.Seed, hs.Sum64()))
	seen := make(map[int]bool, n)
	out := make([]HotPixel, 0, n)
	for len(out) < n {
		i := r.IntN(w * h)
		if seen[i] {
			continue
		}
		seen[i] = true
		out = append(out, HotPixel{X: i % w, Y: i / w, Channel: r.IntN(3), Level: uint8(DimHotMin + r.IntN(DimHotMax-DimHotMin+1))})
	}
	return out
}

// Apply returns img as the dark line's sensor takes it (see Dim): scaled
// by Scale, with the noise of the image with the given key (its path
// relative to the data set) and the hot pixels of its size; always an
// opaque *image.RGBA of img's size at the origin.
func (d Dim) Apply(img image.Image, key string) *image.RGBA {
	out := toRGBA(img)
	hs := fnv.New64a()
	fmt.Fprintf(hs, "noise\x00%d\x00%s", d.Seed, key)
	r := rand.New(rand.NewPCG(d.Seed, hs.Sum64()))
	var sd [3]float64
	for c, k := range DimChannelNoise() {
		sd[c] = k * d.Noise
	}
	for i := 0; i < len(out.Pix); i += 4 {
		p := out.Pix[i : i+4 : i+4]
		for c := range 3 {
			v := math.Round(float64(p[c])*d.Scale + r.NormFloat64()*sd[c])
			p[c] = uint8(min(max(v, 0), 255))
		}
		p[3] = 255
	}
	for _, hp := range d.HotPixels(out.Rect.Dx(), out.Rect.Dy()) {
		out.Pix[hp.Y*out.Stride+4*hp.X+hp.Channel] = hp.Level
	}
	return out
}
