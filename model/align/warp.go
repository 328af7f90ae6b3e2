package align

import (
	"fmt"
	"image"
	"image/draw"
	"math"
)

// affine is x' = A·(x, y) + B with A = [[a, b], [c, d]], the map from a
// destination pixel's centre to the source's continuous coordinates.
type affine struct{ a, b, c, d, e, f float64 }

func (m affine) apply(x, y float64) (float64, float64) {
	return m.a*x + m.b*y + m.e, m.c*x + m.d*y + m.f
}

// toFrame is the map from the reference view's coordinates, in pixels of a
// view of vw×vh covering a w×h frame, to the frame's coordinates:
// R(Angle)·(u·k − c) + c + (DX, DY) with k the view's scale.
func (t Transform) toFrame(w, h, vw, vh int) affine {
	kx, ky := float64(w)/float64(vw), float64(h)/float64(vh)
	cs, sn := math.Cos(t.Angle), math.Sin(t.Angle)
	cx, cy := float64(w)/2, float64(h)/2
	return affine{
		a: cs * kx, b: -sn * ky,
		c: sn * kx, d: cs * ky,
		e: -cs*cx + sn*cy + cx + t.DX,
		f: -sn*cx - cs*cy + cy + t.DY,
	}
}

// fromFrame is the inverse of toFrame: frame coordinates to view pixels.
func (t Transform) fromFrame(w, h, vw, vh int) affine {
	kx, ky := float64(vw)/float64(w), float64(vh)/float64(h)
	cs, sn := math.Cos(t.Angle), math.Sin(t.Angle)
	cx, cy := float64(w)/2, float64(h)/2
	// u = R(−θ)·(x − c − t) + c, then scaled.
	ox, oy := cx+t.DX, cy+t.DY
	return affine{
		a: cs * kx, b: sn * kx,
		c: -sn * ky, d: cs * ky,
		e: (-cs*ox - sn*oy + cx) * kx,
		f: (sn*ox - cs*oy + cy) * ky,
	}
}

// ViewSize is the size of the aligned view of a w×h frame resampled at
// scale (frame pixels per view pixel, at least 1).
func ViewSize(w, h int, scale float64) (int, int) {
	scale = max(scale, 1)
	return max(1, int(math.Round(float64(w)/scale))), max(1, int(math.Round(float64(h)/scale)))
}

// Warper resamples frames into the reference view. It reuses its output
// images: the result of Apply is valid until the next call. It does not
// allocate in steady state (same frame size and type).
type Warper struct {
	gray *image.Gray
	rgba *image.RGBA
	conv *image.RGBA // frames of other types, converted once
}

// Apply returns the reference view of img under t: each pixel of a view of
// ViewSize(w, h, scale) takes the frame bilinearly at its transformed
// centre; where that falls outside the frame, the nearest edge pixel is
// replicated (as the backbone pads letterboxed frames). Gray frames give
// *image.Gray, all others *image.RGBA.
func (wp *Warper) Apply(img image.Image, t Transform, scale float64) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	vw, vh := ViewSize(w, h, scale)
	m := t.toFrame(w, h, vw, vh)
	switch im := img.(type) {
	case *image.Gray:
		wp.gray = reuseGray(wp.gray, vw, vh)
		warpGray(wp.gray, im.Pix[im.PixOffset(b.Min.X, b.Min.Y):], im.Stride, w, h, m)
		return wp.gray
	case *image.RGBA:
		wp.rgba = reuseRGBA(wp.rgba, vw, vh)
		warpRGBA(wp.rgba, im.Pix[im.PixOffset(b.Min.X, b.Min.Y):], im.Stride, w, h, m)
		return wp.rgba
	case *image.NRGBA:
		wp.rgba = reuseRGBA(wp.rgba, vw, vh)
		warpRGBA(wp.rgba, im.Pix[im.PixOffset(b.Min.X, b.Min.Y):], im.Stride, w, h, m)
		return wp.rgba
	}
	wp.conv = reuseRGBA(wp.conv, w, h)
	draw.Draw(wp.conv, wp.conv.Rect, img, b.Min, draw.Src)
	wp.rgba = reuseRGBA(wp.rgba, vw, vh)
	warpRGBA(wp.rgba, wp.conv.Pix, wp.conv.Stride, w, h, m)
	return wp.rgba
}

func reuseGray(g *image.Gray, w, h int) *image.Gray {
	if g == nil || g.Rect.Dx() != w || g.Rect.Dy() != h {
		return image.NewGray(image.Rect(0, 0, w, h))
	}
	return g
}

func reuseRGBA(g *image.RGBA, w, h int) *image.RGBA {
	if g == nil || g.Rect.Dx() != w || g.Rect.Dy() != h {
		return image.NewRGBA(image.Rect(0, 0, w, h))
	}
	return g
}

// sampler walks one destination row: the source position of pixel x is
// (x0 + x·dx, y0 + x·dy) in pixel-index coordinates (centres at integers).
type sampler struct{ x0, y0, dx, dy float32 }

func rowSampler(m affine, y int) sampler {
	sx, sy := m.apply(0.5, float64(y)+0.5)
	return sampler{x0: float32(sx - 0.5), y0: float32(sy - 0.5), dx: float32(m.a), dy: float32(m.c)}
}

// clampTap returns the integer index, the next index and the weight of
// the next one for a source coordinate on an axis of n pixels, the edge
// pixel replicated beyond it.
func clampTap(v float32, n int) (int, int, float32) {
	if !(v > 0) { // also NaN
		return 0, 0, 0
	}
	if v >= float32(n-1) {
		return n - 1, n - 1, 0
	}
	i := int(v)
	return i, i + 1, v - float32(i)
}

func warpGray(dst *image.Gray, src []uint8, stride, w, h int, m affine) {
	vw, vh := dst.Rect.Dx(), dst.Rect.Dy()
	for y := 0; y < vh; y++ {
		s := rowSampler(m, y)
		out := dst.Pix[y*dst.Stride : y*dst.Stride+vw]
		sx, sy := s.x0, s.y0
		for x := range out {
			x0, x1, fx := clampTap(sx, w)
			y0, y1, fy := clampTap(sy, h)
			r0, r1 := src[y0*stride:], src[y1*stride:]
			a, b := float32(r0[x0]), float32(r0[x1])
			c, d := float32(r1[x0]), float32(r1[x1])
			top := a + fx*(b-a)
			bot := c + fx*(d-c)
			out[x] = uint8(top + fy*(bot-top) + 0.5)
			sx += s.dx
			sy += s.dy
		}
	}
}

func warpRGBA(dst *image.RGBA, src []uint8, stride, w, h int, m affine) {
	vw, vh := dst.Rect.Dx(), dst.Rect.Dy()
	for y := 0; y < vh; y++ {
		s := rowSampler(m, y)
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*vw]
		sx, sy := s.x0, s.y0
		for x := 0; x < vw; x++ {
			x0, x1, fx := clampTap(sx, w)
			y0, y1, fy := clampTap(sy, h)
			p00 := src[y0*stride+4*x0 : y0*stride+4*x0+3 : y0*stride+4*x0+3]
			p01 := src[y0*stride+4*x1 : y0*stride+4*x1+3 : y0*stride+4*x1+3]
			p10 := src[y1*stride+4*x0 : y1*stride+4*x0+3 : y1*stride+4*x0+3]
			p11 := src[y1*stride+4*x1 : y1*stride+4*x1+3 : y1*stride+4*x1+3]
			o := out[4*x : 4*x+4 : 4*x+4]
			for c := 0; c < 3; c++ {
				a, b := float32(p00[c]), float32(p01[c])
				cc, d := float32(p10[c]), float32(p11[c])
				top := a + fx*(b-a)
				bot := cc + fx*(d-cc)
				o[c] = uint8(top + fy*(bot-top) + 0.5)
			}
			o[3] = 255
			sx += s.dx
			sy += s.dy
		}
	}
}

// WarpBack resamples a map drawn on the reference view (vw×vh, row major)
// into the frame's own w×h pixels under t, bilinearly; frame pixels whose
// reference position lies outside the view take the view's nearest edge
// value. It returns dst resized to w×h.
func WarpBack(dst []float32, w, h int, src []float32, vw, vh int, t Transform) ([]float32, error) {
	if len(src) != vw*vh || vw <= 0 || vh <= 0 || w <= 0 || h <= 0 {
		return dst, fmt.Errorf("warp back: map of %d values for %dx%d, frame %dx%d", len(src), vw, vh, w, h)
	}
	if cap(dst) < w*h {
		dst = make([]float32, w*h)
	}
	dst = dst[:w*h]
	m := t.fromFrame(w, h, vw, vh)
	for y := 0; y < h; y++ {
		s := rowSampler(m, y)
		out := dst[y*w : (y+1)*w]
		sx, sy := s.x0, s.y0
		for x := range out {
			x0, x1, fx := clampTap(sx, vw)
			y0, y1, fy := clampTap(sy, vh)
			r0, r1 := src[y0*vw:], src[y1*vw:]
			top := r0[x0] + fx*(r0[x1]-r0[x0])
			bot := r1[x0] + fx*(r1[x1]-r1[x0])
			out[x] = top + fy*(bot-top)
			sx += s.dx
			sy += s.dy
		}
	}
	return dst, nil
}
