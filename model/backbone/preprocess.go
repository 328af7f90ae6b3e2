package backbone

import (
	"fmt"
	"image"
	"image/draw"
	"math"
)

// ResizeMode says how an image of any aspect ratio is fitted into the
// network's input.
type ResizeMode string

// Resize modes.
const (
	// ResizeFit keeps the aspect ratio and pads the rest of the input by
	// replicating the image's edge pixels; the anomaly map is computed only
	// over the part that holds the image.
	ResizeFit ResizeMode = "fit"
	// ResizeSquash stretches the whole image to the input size.
	ResizeSquash ResizeMode = "squash"
	// ResizeCrop cuts the largest centred region of the input's aspect ratio.
	ResizeCrop ResizeMode = "crop"
)

// Region is the part of the network input that holds the image, in fractions
// of the input's width and height.
type Region struct{ X0, Y0, X1, Y1 float64 }

// Preprocess turns images into the input tensor's pixels.
type Preprocess struct {
	Resize ResizeMode
	// Mean and Std normalize pixels (0..255) for float inputs:
	// (p−Mean)/Std. Quantized inputs take raw pixels, as quantized image
	// models are trained to.
	Mean, Std [3]float32
}

// axis holds the resampling weights of one axis: for each destination pixel
// a window of source pixels starting at start[i] with taps weights.
type axis struct {
	src, dst, taps int
	start          []int32
	w              []float32
}

// newAxis builds a triangle (bilinear) filter whose support widens with the
// downscale factor, so that large frames are averaged, not aliased. Output
// pixels outside [off, off+n) replicate the nearest image pixel (edge pad).
func newAxis(src, dst, off, n int, srcOff, srcLen float64) *axis {
	scale := srcLen / float64(n)
	support := math.Max(1, scale)
	taps := int(math.Ceil(support))*2 + 1
	a := &axis{src: src, dst: dst, taps: taps, start: make([]int32, dst), w: make([]float32, dst*taps)}
	for i := 0; i < dst; i++ {
		j := min(max(i, off), off+n-1) - off
		center := srcOff + (float64(j)+0.5)*scale
		lo := int(math.Floor(center - support))
		lo = min(max(lo, 0), max(src-taps, 0))
		a.start[i] = int32(lo)
		var sum float64
		ws := a.w[i*taps : (i+1)*taps]
		for k := 0; k < taps && lo+k < src; k++ {
			x := (float64(lo+k) + 0.5 - center) / support
			if v := 1 - math.Abs(x); v > 0 {
				ws[k] = float32(v)
				sum += v
			}
		}
		if sum == 0 { // degenerate: nearest pixel
			near := min(max(int(center), 0), src-1)
			a.start[i] = int32(min(near, max(src-taps, 0)))
			ws[near-int(a.start[i])] = 1
			sum = 1
		}
		for k := range ws {
			ws[k] = float32(float64(ws[k]) / sum)
		}
	}
	return a
}

// resizer resizes images of one size into the input; it is rebuilt when the
// frame size changes and reused otherwise, so steady state does not allocate.
type resizer struct {
	srcW, srcH int
	mode       ResizeMode
	ax, ay     *axis
	tmp        []float32 // srcH × dstW × 3, after the horizontal pass
	rgba       *image.RGBA
	region     Region
}

// span is how one axis of an image maps onto the network input: source
// pixels [off, off+len) (fractional for crop) fill input pixels
// [dstOff, dstOff+dstLen) of dst; input pixels outside repeat the edge.
type span struct {
	off, len       float64
	dst            int
	dstOff, dstLen int
}

// geometry is how a srcW×srcH image fits a dstW×dstH input in mode.
func geometry(srcW, srcH, dstW, dstH int, mode ResizeMode) (x, y span, err error) {
	if srcW <= 0 || srcH <= 0 {
		return x, y, fmt.Errorf("empty image (%dx%d)", srcW, srcH)
	}
	sx0, sy0, sw, sh := 0.0, 0.0, float64(srcW), float64(srcH)
	ox, oy, nw, nh := 0, 0, dstW, dstH
	switch mode {
	case ResizeSquash, "":
	case ResizeCrop:
		if sw*float64(dstH) > sh*float64(dstW) {
			nsw := sh * float64(dstW) / float64(dstH)
			sx0, sw = (sw-nsw)/2, nsw
		} else {
			nsh := sw * float64(dstH) / float64(dstW)
			sy0, sh = (sh-nsh)/2, nsh
		}
	case ResizeFit:
		s := math.Min(float64(dstW)/sw, float64(dstH)/sh)
		nw = max(1, min(dstW, int(math.Round(sw*s))))
		nh = max(1, min(dstH, int(math.Round(sh*s))))
		ox, oy = (dstW-nw)/2, (dstH-nh)/2
	default:
		return x, y, fmt.Errorf("unknown resize mode %q (want fit, squash or crop)", mode)
	}
	return span{sx0, sw, dstW, ox, nw}, span{sy0, sh, dstH, oy, nh}, nil
}

// region is the part of the input the image fills.
func region(x, y span) Region {
	return Region{float64(x.dstOff) / float64(x.dst), float64(y.dstOff) / float64(y.dst),
		float64(x.dstOff+x.dstLen) / float64(x.dst), float64(y.dstOff+y.dstLen) / float64(y.dst)}
}

func newResizer(srcW, srcH, dstW, dstH int, mode ResizeMode) (*resizer, error) {
	gx, gy, err := geometry(srcW, srcH, dstW, dstH, mode)
	if err != nil {
		return nil, err
	}
	r := &resizer{srcW: srcW, srcH: srcH, mode: mode}
	r.ax = newAxis(srcW, dstW, gx.dstOff, gx.dstLen, gx.off, gx.len)
	r.ay = newAxis(srcH, dstH, gy.dstOff, gy.dstLen, gy.off, gy.len)
	r.tmp = make([]float32, srcH*dstW*3)
	r.region = region(gx, gy)
	return r, nil
}

// horizontal resamples every source row into tmp (3 channels).
func (r *resizer) horizontal(img image.Image) {
	ax := r.ax
	dw := ax.dst
	switch im := img.(type) {
	case *image.Gray:
		for y := 0; y < r.srcH; y++ {
			row := im.Pix[y*im.Stride : y*im.Stride+r.srcW]
			out := r.tmp[y*dw*3 : (y+1)*dw*3]
			for x := 0; x < dw; x++ {
				s := int(ax.start[x])
				ws := ax.w[x*ax.taps : (x+1)*ax.taps]
				var v float32
				for k, w := range ws {
					if w != 0 {
						v += w * float32(row[s+k])
					}
				}
				out[3*x], out[3*x+1], out[3*x+2] = v, v, v
			}
		}
	default:
		var pix []uint8
		var stride int
		switch im := img.(type) {
		case *image.RGBA:
			pix, stride = im.Pix, im.Stride
		case *image.NRGBA:
			pix, stride = im.Pix, im.Stride
		default:
			if r.rgba == nil {
				r.rgba = image.NewRGBA(image.Rect(0, 0, r.srcW, r.srcH))
			}
			draw.Draw(r.rgba, r.rgba.Rect, img, img.Bounds().Min, draw.Src)
			pix, stride = r.rgba.Pix, r.rgba.Stride
		}
		for y := 0; y < r.srcH; y++ {
			row := pix[y*stride : y*stride+4*r.srcW]
			out := r.tmp[y*dw*3 : (y+1)*dw*3]
			for x := 0; x < dw; x++ {
				s := int(ax.start[x])
				ws := ax.w[x*ax.taps : (x+1)*ax.taps]
				var cr, cg, cb float32
				for k, w := range ws {
					if w != 0 {
						p := row[4*(s+k) : 4*(s+k)+3 : 4*(s+k)+3]
						cr += w * float32(p[0])
						cg += w * float32(p[1])
						cb += w * float32(p[2])
					}
				}
				out[3*x], out[3*x+1], out[3*x+2] = cr, cg, cb
			}
		}
	}
}

// vertical resamples tmp's rows into dst, calling put for each output pixel
// row (3 floats per pixel, 0..255).
func (r *resizer) vertical(row []float32, y int) {
	ay := r.ay
	dw := r.ax.dst
	s := int(ay.start[y])
	ws := ay.w[y*ay.taps : (y+1)*ay.taps]
	clear(row)
	for k, w := range ws {
		if w == 0 {
			continue
		}
		src := r.tmp[(s+k)*dw*3 : (s+k+1)*dw*3]
		for i, v := range src {
			row[i] += w * v
		}
	}
}

// subImageOrigin normalizes images whose bounds do not start at (0, 0) by
// taking the sub-image's pixels directly.
func normalizeOrigin(img image.Image) image.Image {
	b := img.Bounds()
	if b.Min == (image.Point{}) {
		return img
	}
	switch im := img.(type) {
	case *image.Gray:
		return &image.Gray{Pix: im.Pix[im.PixOffset(b.Min.X, b.Min.Y):], Stride: im.Stride, Rect: image.Rect(0, 0, b.Dx(), b.Dy())}
	case *image.RGBA:
		return &image.RGBA{Pix: im.Pix[im.PixOffset(b.Min.X, b.Min.Y):], Stride: im.Stride, Rect: image.Rect(0, 0, b.Dx(), b.Dy())}
	case *image.NRGBA:
		return &image.NRGBA{Pix: im.Pix[im.PixOffset(b.Min.X, b.Min.Y):], Stride: im.Stride, Rect: image.Rect(0, 0, b.Dx(), b.Dy())}
	}
	return img // the generic path draws from Bounds().Min
}

// Standardizer rescales each image's intensities to one mean and contrast
// before the network sees it. Parts under a camera vary in brightness and
// contrast from part to part (exposure, surface finish, how the part sits
// under the light); PaDiM's Gaussians would otherwise spend their variance
// on that, and a normal but darker part would score as anomalous all over.
// Local defects keep their contrast relative to their surroundings.
//
// The mean and standard deviation are those of the luminance over the whole
// image; every channel gets the same affine map, so colours keep their hue.
// Apply reuses its output buffer: the result is valid until the next call.
type Standardizer struct {
	// Mean and Std are the target luminance mean and standard deviation
	// (0..255 scale); 0 means 128 and StandardStd.
	Mean, Std float64
	// MaxGain bounds the contrast stretch (0: DefaultMaxGain). A model
	// file records the bound it was fitted under, so that a model fitted
	// before DefaultMaxGain (LegacyMaxGain) scores frames as it was fitted.
	MaxGain float64

	gray  *image.Gray
	rgba  *image.RGBA
	frame frame // Measure's view of the image
}

// StandardStd is the default target standard deviation: wide enough to keep
// texture detail, narrow enough that little clips at 0 or 255.
const StandardStd = 40

// DefaultMaxGain is the most Standardizer stretches an image's contrast: a frame
// whose luminance spread is under StandardStd/DefaultMaxGain (12 levels) keeps
// part of its own, so that neither a flat image (a lens cap, a blank
// frame) nor a dark, low-contrast line is blown up into amplified sensor
// noise. Before, only spreads under 2 levels were spared (a stretch of up
// to 20×): on a dark line the network then saw its sensor noise as
// texture that drowned faint defects, which the recipe search's synthetic
// defects are too bold to show. Measured with `inspectd eval` on dark,
// noisy copies of screw (luminance spread 5 levels, README "A dark
// line"): the fixed recipe's image AUROC / PRO 0.618 / 0.789 → 0.679 /
// 0.817 (plain PaDiM 0.706 / 0.864). Of the shared sets' frames only 13 of
// magnetic tile's 1,344 have a spread under 12 levels.
const DefaultMaxGain = StandardStd / 12.0

// LegacyMaxGain is the bound of models fitted before DefaultMaxGain: only a
// spread under 2 levels was spared (StandardStd/2, a stretch of up to 20×).
const LegacyMaxGain = StandardStd / 2.0

// GainBound is the bound on the stretch in force: MaxGain, or DefaultMaxGain.
func (s *Standardizer) GainBound() float64 {
	if s.MaxGain > 0 {
		return s.MaxGain
	}
	return DefaultMaxGain
}

// Apply returns img standardized. *image.Gray stays gray; everything else
// becomes *image.RGBA.
func (s *Standardizer) Apply(img image.Image) image.Image {
	img = normalizeOrigin(img)
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return img
	}
	mean, std := s.Mean, s.Std
	if mean == 0 {
		mean = 128
	}
	if std == 0 {
		std = StandardStd
	}
	if g, ok := img.(*image.Gray); ok {
		if s.gray == nil || s.gray.Rect.Dx() != w || s.gray.Rect.Dy() != h {
			s.gray = image.NewGray(image.Rect(0, 0, w, h))
		}
		var sum, sq float64
		for y := 0; y < h; y++ {
			var rs, rq uint64 // exact per row: 255²·16384 fits easily
			for _, p := range g.Pix[y*g.Stride : y*g.Stride+w] {
				rs += uint64(p)
				rq += uint64(p) * uint64(p)
			}
			sum += float64(rs)
			sq += float64(rq)
		}
		lut := affineLUT(sum, sq, float64(w*h), mean, std, s.GainBound())
		for y := 0; y < h; y++ {
			src := g.Pix[y*g.Stride : y*g.Stride+w]
			dst := s.gray.Pix[y*s.gray.Stride : y*s.gray.Stride+w]
			for x, p := range src {
				dst[x] = lut[p]
			}
		}
		return s.gray
	}
	if s.rgba == nil || s.rgba.Rect.Dx() != w || s.rgba.Rect.Dy() != h {
		s.rgba = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	switch im := img.(type) {
	case *image.RGBA:
		copyRows(s.rgba, im.Pix, im.Stride, w, h)
	case *image.NRGBA:
		copyRows(s.rgba, im.Pix, im.Stride, w, h)
	default:
		draw.Draw(s.rgba, s.rgba.Rect, img, b.Min, draw.Src)
	}
	var sum, sq float64
	for y := 0; y < h; y++ {
		row := s.rgba.Pix[y*s.rgba.Stride : y*s.rgba.Stride+4*w]
		for x := 0; x < w; x++ {
			p := row[4*x : 4*x+3 : 4*x+3]
			l := 0.299*float64(p[0]) + 0.587*float64(p[1]) + 0.114*float64(p[2])
			sum += l
			sq += l * l
		}
	}
	lut := affineLUT(sum, sq, float64(w*h), mean, std, s.GainBound())
	for y := 0; y < h; y++ {
		row := s.rgba.Pix[y*s.rgba.Stride : y*s.rgba.Stride+4*w]
		for x := 0; x < w; x++ {
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = lut[row[4*x]], lut[row[4*x+1]], lut[row[4*x+2]], 255
		}
	}
	return s.rgba
}

// copyRows copies w×h RGBA pixels (alpha ignored later) into dst.
func copyRows(dst *image.RGBA, pix []uint8, stride, w, h int) {
	for y := 0; y < h; y++ {
		copy(dst.Pix[y*dst.Stride:y*dst.Stride+4*w], pix[y*stride:y*stride+4*w])
	}
}

// gain is the contrast stretch that brings a luminance spread sigma to
// std, at most bound.
func gain(std, sigma, bound float64) float64 {
	if sigma*bound <= std {
		return bound
	}
	return std / sigma
}

// affineLUT maps a pixel value v to mean + (v−μ)·std/σ, rounded and
// clipped, where μ and σ come from the sums over n pixels.
func affineLUT(sum, sq, n, mean, std, bound float64) (lut [256]uint8) {
	mu := sum / n
	sigma := math.Sqrt(max(sq/n-mu*mu, 0))
	k := gain(std, sigma, bound)
	for v := range lut {
		lut[v] = uint8(min(max(mean+(float64(v)-mu)*k+0.5, 0), 255))
	}
	return lut
}
