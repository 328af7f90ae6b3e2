// Package noise measures a camera's sensor noise and a frame's contrast
// from single frames, so that a line whose noise is a large share of what
// its parts show can be told apart from one where it is not.
//
// The noise estimate is Immerkær's (J. Immerkær, "Fast Noise Variance
// Estimation", Computer Vision and Image Understanding 64(2), 1996): the
// mean absolute response to the 3×3 mask
//
//	 1 −2  1
//	−2  4 −2
//	 1 −2  1
//
// (the difference of two Laplacians, blind to planes and slopes) times
// √(π/2)/6 is the standard deviation of white Gaussian noise. Edges and
// fine texture answer the mask too, so the estimate is taken per block of
// Block×Block pixels and the frame's noise is a low percentile of the
// blocks' (Percentile): a frame with some flat area, as most inspection
// scenes have, is then measured where only the noise is left. Clipped
// pixels (black or white, at the end of the range) carry no noise: a
// black conveyor or a blown highlight would be the quietest blocks and
// read as a noiseless line, so the mask is not taken where it touches
// one, and a block left mostly without it is not one of the blocks.
package noise

import (
	"errors"
	"image"
	"image/draw"
	"math"
	"slices"
)

// Block is the side of the square blocks the noise is estimated in
// (pixels), and Percentile the share of blocks whose estimate is at most
// the frame's.
const (
	Block      = 32
	Percentile = 0.1
)

// Resolution is the least noise Measure reports (levels): an estimate
// under it is the luma's float32 rounding, not a sensor's noise. On
// rendered shading (a ramp of one level per pixel in RGB) the mask's
// response, blind to slopes, is that rounding alone, about 1e-6 levels,
// which read as "sensor noise 0.00 levels … (ratio 44554605.9)" where a
// flat rendered frame says "no sensor noise"; the least response real
// levels give is about 4e-4 (one step of blue in one pixel of a block).
const Resolution = 1e-4

// Levels are a frame's luminance figures, in levels of 255.
type Levels struct {
	// Noise is the estimated standard deviation of the sensor noise in
	// the luminance (Rec. 601 luma).
	Noise float64
	// Contrast is the luminance's standard deviation over the frame: how
	// far apart what the frame shows lies, noise included.
	Contrast float64
}

// ErrTooSmall says that a frame is too small for the estimate (under 3
// pixels a side).
var ErrTooSmall = errors.New("noise: the frame is under 3 pixels a side")

// ErrClipped says that a frame has no block where its noise shows: it is
// clipped (black or white) nearly everywhere.
var ErrClipped = errors.New("noise: the frame is clipped black or white in every block")

// Measure returns img's noise and contrast (Levels). A frame smaller than
// a block is one block; ErrTooSmall for one under 3 pixels a side,
// ErrClipped for one clipped in every block.
func Measure(img image.Image) (Levels, error) {
	w, h, y := luma(img)
	if w < 3 || h < 3 {
		return Levels{}, ErrTooSmall
	}
	var sum, sq float64
	for _, v := range y {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	n := float64(len(y))
	mean := sum / n
	contrast := math.Sqrt(max(sq/n-mean*mean, 0))

	bw, bh := min(Block, w), min(Block, h)
	var est []float64
	for by := 0; by+bh <= h; by += bh {
		for bx := 0; bx+bw <= w; bx += bw {
			if v, ok := immerkaer(y, w, bx, by, bw, bh); ok {
				est = append(est, v)
			}
		}
	}
	if len(est) == 0 {
		return Levels{}, ErrClipped
	}
	slices.Sort(est)
	noise := est[int(Percentile*float64(len(est)-1))]
	if noise < Resolution {
		noise = 0
	}
	return Levels{Noise: noise, Contrast: contrast}, nil
}

// immerkaer is the noise estimate over the block of bw×bh pixels at
// (bx, by) of the w-wide plane y, taken where the mask touches no clipped
// pixel; false when that is under half the block (clipping would hide
// the noise, down to none in a black or white area).
func immerkaer(y []float32, w, bx, by, bw, bh int) (float64, bool) {
	var s float64
	n := 0
	for r := by + 1; r < by+bh-1; r++ {
		up, mid, down := y[(r-1)*w:], y[r*w:], y[(r+1)*w:]
		for c := bx + 1; c < bx+bw-1; c++ {
			if clipped(up[c-1:c+2]) || clipped(mid[c-1:c+2]) || clipped(down[c-1:c+2]) {
				continue
			}
			v := up[c-1] - 2*up[c] + up[c+1] - 2*mid[c-1] + 4*mid[c] - 2*mid[c+1] + down[c-1] - 2*down[c] + down[c+1]
			s += math.Abs(float64(v))
			n++
		}
	}
	if 2*n < (bw-2)*(bh-2) {
		return 0, false
	}
	return math.Sqrt(math.Pi/2) * s / (6 * float64(n)), true
}

// clipped says whether any of the levels v is at an end of the range
// (black or white; half a level of slack for the luma of colours).
func clipped(v []float32) bool {
	for _, l := range v {
		if l < 0.5 || l > 254.5 {
			return true
		}
	}
	return false
}

// luma returns img's width, height and luminance plane (row major,
// levels): the Y plane of a decoded JPEG and a gray image's levels as they
// are, else Rec. 601 luma of the colours.
func luma(img image.Image) (int, int, []float32) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float32, w*h)
	switch m := img.(type) {
	case *image.Gray:
		for r := range h {
			for c, v := range m.Pix[m.PixOffset(b.Min.X, b.Min.Y+r):][:w] {
				out[r*w+c] = float32(v)
			}
		}
		return w, h, out
	case *image.YCbCr:
		for r := range h {
			for c, v := range m.Y[m.YOffset(b.Min.X, b.Min.Y+r):][:w] {
				out[r*w+c] = float32(v)
			}
		}
		return w, h, out
	}
	rgba, ok := img.(*image.RGBA)
	if !ok {
		rgba = image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(rgba, rgba.Rect, img, b.Min, draw.Src)
		b = rgba.Rect
	}
	for r := range h {
		p := rgba.Pix[rgba.PixOffset(b.Min.X, b.Min.Y+r):][:4*w]
		for c := range w {
			out[r*w+c] = Luma[float32](p[4*c], p[4*c+1], p[4*c+2])
		}
	}
	return w, h, out
}

// Luma is the Rec. 601 luma of the levels r, g and b (0.299 R + 0.587 G +
// 0.114 B, in levels of 255, 0 to 255), computed in T's precision: Measure
// takes it in float32 (its plane), dataset.MeanLuma in float64 (a sum over
// a frame). The one place the formula lives: the precision is the caller's,
// so each gets to the bit what it computed before it was shared.
func Luma[T float32 | float64](r, g, b uint8) T {
	return 0.299*T(r) + 0.587*T(g) + 0.114*T(b)
}
