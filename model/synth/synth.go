// Package synth pastes synthetic defects into images of good parts, with
// their ground-truth masks, so that a recipe can be judged on a line for
// which only good images exist. The kinds follow what self-supervised
// anomaly detection uses for the same purpose (CutPaste, Li et al., CVPR
// 2021: patches cut from elsewhere and pasted; DRAEM, Zavrtanik et al.,
// ICCV 2021: smooth random-shaped regions of changed appearance) plus the
// thin scratches and small spots real lines show. Sizes are relative to the
// image, so they survive the resize onto the network input.
package synth

import (
	"fmt"
	"image"
	"image/draw"
	"math"
	"math/rand/v2"
)

// Kind is a kind of synthetic defect.
type Kind int

// Kinds of defect.
const (
	// Paste is a patch cut from another image (or another place of the same
	// one), flipped or not, blended in through a soft random-shaped mask.
	Paste Kind = iota
	// Region is a smooth random-shaped region of shifted brightness,
	// blurred, noisier or of other contrast than the rest.
	Region
	// Scratch is a thin bright or dark curved line.
	Scratch
	// Blob is a small bright or dark spot.
	Blob
)

// Kinds lists every kind, in order (a new slice each call).
func Kinds() []Kind { return []Kind{Paste, Region, Scratch, Blob} }

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Paste:
		return "paste"
	case Region:
		return "region"
	case Scratch:
		return "scratch"
	case Blob:
		return "blob"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// canvas is an image as float channels (1 for gray, 3 for colour), 0..255.
type canvas struct {
	w, h, c int
	p       []float32
}

func newCanvas(img image.Image) *canvas {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if g, ok := img.(*image.Gray); ok {
		cv := &canvas{w: w, h: h, c: 1, p: make([]float32, w*h)}
		for y := range h {
			row := g.Pix[g.PixOffset(b.Min.X, b.Min.Y+y):]
			for x := range w {
				cv.p[y*w+x] = float32(row[x])
			}
		}
		return cv
	}
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(rgba, rgba.Rect, img, b.Min, draw.Src)
	cv := &canvas{w: w, h: h, c: 3, p: make([]float32, 3*w*h)}
	for i := range w * h {
		cv.p[3*i], cv.p[3*i+1], cv.p[3*i+2] = float32(rgba.Pix[4*i]), float32(rgba.Pix[4*i+1]), float32(rgba.Pix[4*i+2])
	}
	return cv
}

// image converts the canvas back: *image.Gray for one channel, else
// *image.RGBA.
func (cv *canvas) image() image.Image {
	q := func(v float32) uint8 { return uint8(min(max(v+0.5, 0), 255)) }
	if cv.c == 1 {
		g := image.NewGray(image.Rect(0, 0, cv.w, cv.h))
		for i, v := range cv.p {
			g.Pix[i] = q(v)
		}
		return g
	}
	out := image.NewRGBA(image.Rect(0, 0, cv.w, cv.h))
	for i := range cv.w * cv.h {
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = q(cv.p[3*i]), q(cv.p[3*i+1]), q(cv.p[3*i+2]), 255
	}
	return out
}

// luma is the brightness at pixel i.
func (cv *canvas) luma(i int) float32 {
	if cv.c == 1 {
		return cv.p[i]
	}
	return 0.299*cv.p[3*i] + 0.587*cv.p[3*i+1] + 0.114*cv.p[3*i+2]
}

// Apply returns a copy of img with one defect of kind k, drawn with rng,
// and its mask (w×h, row major, 1 where the defect is at least half
// blended in, else 0). donor supplies the patch of a Paste (nil: img
// itself, another place). The copy is *image.Gray for a gray img, else
// *image.RGBA. A defect always marks some pixels.
func Apply(img, donor image.Image, k Kind, rng *rand.Rand) (image.Image, []uint8) {
	cv := newCanvas(img)
	w, h := cv.w, cv.h
	side := float64(min(w, h))
	alpha := make([]float32, w*h)
	switch k {
	case Paste:
		size := side * uniform(rng, 0.10, 0.25)
		bx, by := place(rng, w, h, size)
		shape(alpha, w, h, bx, by, size, size*uniform(rng, 0.6, 1.4), rng)
		src := cv
		if donor != nil {
			src = newCanvas(donor)
		}
		// A patch of the donor from elsewhere, flipped at random.
		ox := rng.IntN(max(src.w-int(size), 1)) - int(bx)
		oy := rng.IntN(max(src.h-int(size), 1)) - int(by)
		flip := rng.IntN(2) == 1
		patch := make([]float32, len(cv.p))
		for y := range h {
			for x := range w {
				sx, sy := x+ox, y+oy
				if flip {
					sx = int(2*bx+size) - x + ox
				}
				sx, sy = min(max(sx, 0), src.w-1), min(max(sy, 0), src.h-1)
				for c := range cv.c {
					patch[(y*w+x)*cv.c+c] = src.p[(sy*src.w+sx)*src.c+min(c, src.c-1)]
				}
			}
		}
		blend(cv, alpha, patch)
	case Region:
		size := side * uniform(rng, 0.15, 0.4)
		bx, by := place(rng, w, h, size)
		shape(alpha, w, h, bx, by, size, size*uniform(rng, 0.5, 1.5), rng)
		region(cv, alpha, rng)
	case Scratch:
		scratch(alpha, w, h, side, rng)
		shift(cv, alpha, sign(rng)*uniform(rng, 50, 110))
	case Blob:
		r := side * uniform(rng, 0.015, 0.045)
		cx, cy := uniform(rng, r, float64(w)-r), uniform(rng, r, float64(h)-r)
		e := uniform(rng, 0.6, 1.6)
		for y := range h {
			for x := range w {
				dx, dy := (float64(x)+0.5-cx)/(r*e), (float64(y)+0.5-cy)*e/r
				alpha[y*w+x] = float32(smoothstep(1.25, 0.75, math.Hypot(dx, dy)))
			}
		}
		shift(cv, alpha, sign(rng)*uniform(rng, 40, 90))
	}
	mask := make([]uint8, w*h)
	any := false
	best := 0
	for i, a := range alpha {
		if a >= 0.5 {
			mask[i], any = 1, true
		}
		if a > alpha[best] {
			best = i
		}
	}
	if !any {
		mask[best] = 1
	}
	return cv.image(), mask
}

func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

func sign(rng *rand.Rand) float64 {
	if rng.IntN(2) == 0 {
		return -1
	}
	return 1
}

// place picks the top-left corner of a box of size px inside w×h.
func place(rng *rand.Rand, w, h int, size float64) (float64, float64) {
	return uniform(rng, 0, max(float64(w)-size, 0)), uniform(rng, 0, max(float64(h)-size, 0))
}

func smoothstep(e0, e1, x float64) float64 {
	t := min(max((x-e0)/(e1-e0), 0), 1)
	return t * t * (3 - 2*t)
}

// shape draws a smooth random blob into alpha: an ellipse of sw×sh pixels
// at (bx, by) whose radius is modulated by a few random harmonics, with a
// soft edge of a few pixels.
func shape(alpha []float32, w, h int, bx, by, sw, sh float64, rng *rand.Rand) {
	cx, cy := bx+sw/2, by+sh/2
	var amp, phase [4]float64
	for i := range amp {
		amp[i], phase[i] = uniform(rng, 0, 0.25/float64(i+1)), uniform(rng, 0, 2*math.Pi)
	}
	edge := max(1.5, 0.04*min(sw, sh))
	for y := max(int(cy-sh), 0); y < min(int(cy+sh)+1, h); y++ {
		for x := max(int(cx-sw), 0); x < min(int(cx+sw)+1, w); x++ {
			dx, dy := (float64(x)+0.5-cx)/(sw/2), (float64(y)+0.5-cy)/(sh/2)
			th := math.Atan2(dy, dx)
			rad := 1.0
			for i := range amp {
				rad += amp[i] * math.Sin(float64(i+2)*th+phase[i])
			}
			d := (math.Hypot(dx, dy) - rad) * min(sw, sh) / 2 // pixels outside the outline
			alpha[y*w+x] = float32(smoothstep(edge, -edge, d))
		}
	}
}

// scratch draws a thin curved line (a quadratic Bézier) into alpha.
func scratch(alpha []float32, w, h int, side float64, rng *rand.Rand) {
	length := side * uniform(rng, 0.15, 0.45)
	width := max(1.2, side*uniform(rng, 0.004, 0.012))
	ang := uniform(rng, 0, math.Pi)
	cx, cy := uniform(rng, 0.15, 0.85)*float64(w), uniform(rng, 0.15, 0.85)*float64(h)
	ax, ay := cx-math.Cos(ang)*length/2, cy-math.Sin(ang)*length/2
	bx, by := cx+math.Cos(ang)*length/2, cy+math.Sin(ang)*length/2
	bend := uniform(rng, -0.2, 0.2) * length
	mx, my := cx-math.Sin(ang)*bend, cy+math.Cos(ang)*bend
	steps := int(length*2) + 2
	for i := 0; i <= steps; i++ {
		t := float64(i) / float64(steps)
		px := (1-t)*(1-t)*ax + 2*(1-t)*t*mx + t*t*bx
		py := (1-t)*(1-t)*ay + 2*(1-t)*t*my + t*t*by
		r := width/2 + 1
		for y := max(int(py-r), 0); y < min(int(py+r)+1, h); y++ {
			for x := max(int(px-r), 0); x < min(int(px+r)+1, w); x++ {
				d := math.Hypot(float64(x)+0.5-px, float64(y)+0.5-py) - width/2
				a := float32(smoothstep(0.75, -0.75, d))
				alpha[y*w+x] = max(alpha[y*w+x], a)
			}
		}
	}
}

// blend mixes src into cv by alpha.
func blend(cv *canvas, alpha, src []float32) {
	for i, a := range alpha {
		if a == 0 {
			continue
		}
		for c := range cv.c {
			j := i*cv.c + c
			cv.p[j] += a * (src[j] - cv.p[j])
		}
	}
}

// shift brightens (or darkens) cv by delta levels where alpha says, so
// that a change stays visible on very bright or dark surfaces: what would
// clip turns the other way.
func shift(cv *canvas, alpha []float32, delta float64) {
	for i, a := range alpha {
		if a == 0 {
			continue
		}
		d := float32(delta)
		if l := cv.luma(i); l+d > 255 || l+d < 0 {
			d = -d
		}
		for c := range cv.c {
			cv.p[i*cv.c+c] += a * d
		}
	}
}

// region changes the appearance inside alpha in one of four ways: a
// brightness shift, a blur, added grain, or a change of contrast around the
// region's mean.
func region(cv *canvas, alpha []float32, rng *rand.Rand) {
	w, h := cv.w, cv.h
	changed := make([]float32, len(cv.p))
	copy(changed, cv.p)
	switch rng.IntN(4) {
	case 0:
		shift(cv, alpha, sign(rng)*uniform(rng, 20, 45))
		return
	case 1:
		boxBlur(changed, w, h, cv.c, max(2, int(float64(min(w, h))*uniform(rng, 0.008, 0.02))))
	case 2:
		s := uniform(rng, 12, 28)
		for i := range changed {
			changed[i] += float32(s * rng.NormFloat64())
		}
	case 3:
		var sum, n float64
		for i, a := range alpha {
			if a > 0.5 {
				sum += float64(cv.luma(i))
				n++
			}
		}
		m := float32(sum / max(n, 1))
		k := float32(uniform(rng, 0.4, 0.7))
		if rng.IntN(2) == 0 {
			k = float32(uniform(rng, 1.5, 2.2))
		}
		for i := range changed {
			changed[i] = m + k*(changed[i]-m)
		}
	}
	blend(cv, alpha, changed)
}

// boxBlur blurs p (w×h, c channels) in place with a (2r+1)² box, twice.
func boxBlur(p []float32, w, h, c, r int) {
	tmp := make([]float32, len(p))
	for range 2 {
		pass := func(dst, src []float32, n, m, stride, step int) {
			// n lines of m samples; sample j of line i at i*stride+j*step.
			for i := range n {
				for ch := range c {
					var acc float32
					cnt := 0
					at := func(j int) float32 { return src[(i*stride+j*step)*c+ch] }
					for j := 0; j <= min(r, m-1); j++ {
						acc += at(j)
						cnt++
					}
					for j := range m {
						dst[(i*stride+j*step)*c+ch] = acc / float32(cnt)
						if j+r+1 < m {
							acc += at(j + r + 1)
							cnt++
						}
						if j-r >= 0 {
							acc -= at(j - r)
							cnt--
						}
					}
				}
			}
		}
		pass(tmp, p, h, w, w, 1)
		pass(p, tmp, w, h, 1, w)
	}
}
