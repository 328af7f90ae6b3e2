package align

import (
	"fmt"
	"image"
	"image/color"
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
// *image.Gray, all others *image.RGBA (Gray, RGBA, NRGBA and YCbCr frames
// are read directly, others converted first).
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
	case *image.YCbCr:
		wp.rgba = reuseRGBA(wp.rgba, vw, vh)
		warpYCbCr(wp.rgba, im, m)
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
// (x0 + x·dx, y0 + x·dy) in pixel-index coordinates (centres at integers),
// computed from the row's start for every pixel (at): accumulated pixel by
// pixel in float32 it drifts by up to a few thousandths of a pixel, enough
// to step past the frame's edge on a row that inside judged within it.
type sampler struct{ x0, y0, dx, dy float32 }

// at is pixel x's source position; for x in [0, n) it lies between the
// row's end points (rounding is monotonic), which inside checks.
func (s sampler) at(x int) (float32, float32) {
	return s.x0 + float32(x)*s.dx, s.y0 + float32(x)*s.dy
}

func rowSampler(m affine, y int) sampler {
	sx, sy := m.apply(0.5, float64(y)+0.5)
	return sampler{x0: float32(sx - 0.5), y0: float32(sy - 0.5), dx: float32(m.a), dy: float32(m.c)}
}

// inside reports whether every sample of a row of n pixels has all four
// bilinear taps inside a w×h source (no clamping needed), with a margin of
// insideMargin pixels (the compiler may fuse at's multiply-add in one place
// and not another, a difference of an ulp).
func (s sampler) inside(n, w, h int) bool {
	ex, ey := s.at(n - 1)
	lo := func(a, b float32) float32 { return min(a, b) }
	hi := func(a, b float32) float32 { return max(a, b) }
	return lo(s.x0, ex) >= insideMargin && lo(s.y0, ey) >= insideMargin &&
		hi(s.x0, ex) < float32(w-1)-insideMargin && hi(s.y0, ey) < float32(h-1)-insideMargin
}

const insideMargin = 1.0 / 256

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

// taps is one bilinear sample in fixed point: the offsets of its four
// source pixels (in pixels) and their weights, which sum to 1<<16.
type taps struct {
	o00, o01, o10, o11 int
	w00, w01, w10, w11 uint32
}

// tapsAt computes the taps at (sx, sy) of a w×h source with stride (in
// pixels), clamping at the edges when clamp is set.
func tapsAt(sx, sy float32, w, h, stride int, clamp bool) taps {
	var x0, x1, y0, y1 int
	var fx, fy float32
	if clamp {
		x0, x1, fx = clampTap(sx, w)
		y0, y1, fy = clampTap(sy, h)
	} else {
		x0, y0 = int(sx), int(sy)
		x1, y1 = x0+1, y0+1
		fx, fy = sx-float32(x0), sy-float32(y0)
	}
	ax, ay := uint32(fx*256+0.5), uint32(fy*256+0.5)
	return taps{
		o00: y0*stride + x0, o01: y0*stride + x1, o10: y1*stride + x0, o11: y1*stride + x1,
		w00: (256 - ax) * (256 - ay), w01: ax * (256 - ay), w10: (256 - ax) * ay, w11: ax * ay,
	}
}

func (t *taps) mix(p []uint8, k int) uint8 {
	return uint8((uint32(p[t.o00+k])*t.w00 + uint32(p[t.o01+k])*t.w01 + uint32(p[t.o10+k])*t.w10 + uint32(p[t.o11+k])*t.w11 + 1<<15) >> 16)
}

func warpGray(dst *image.Gray, src []uint8, stride, w, h int, m affine) {
	vw, vh := dst.Rect.Dx(), dst.Rect.Dy()
	for y := 0; y < vh; y++ {
		s := rowSampler(m, y)
		clamp := !s.inside(vw, w, h)
		out := dst.Pix[y*dst.Stride : y*dst.Stride+vw]
		for x := range out {
			sx, sy := s.at(x)
			t := tapsAt(sx, sy, w, h, stride, clamp)
			out[x] = t.mix(src, 0)
		}
	}
}

func warpRGBA(dst *image.RGBA, src []uint8, stride, w, h int, m affine) {
	vw, vh := dst.Rect.Dx(), dst.Rect.Dy()
	for y := 0; y < vh; y++ {
		s := rowSampler(m, y)
		clamp := !s.inside(vw, w, h)
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*vw]
		for x := 0; x < vw; x++ {
			sx, sy := s.at(x)
			t := tapsAt(sx, sy, w, h, stride/4, clamp)
			t.o00, t.o01, t.o10, t.o11 = 4*t.o00, 4*t.o01, 4*t.o10, 4*t.o11
			o := out[4*x : 4*x+4 : 4*x+4]
			o[0], o[1], o[2], o[3] = t.mix(src, 0), t.mix(src, 1), t.mix(src, 2), 255
		}
	}
}

// warpYCbCr samples the luma and chroma planes of a JPEG frame and writes
// RGB (image/color's conversion).
func warpYCbCr(dst *image.RGBA, src *image.YCbCr, m affine) {
	b := src.Rect
	w, h := b.Dx(), b.Dy()
	// Chroma planes are subsampled by an integer factor per axis.
	cw := (src.COffset(b.Max.X-1, b.Min.Y) - src.COffset(b.Min.X, b.Min.Y)) + 1
	ch := (src.COffset(b.Min.X, b.Max.Y-1)-src.COffset(b.Min.X, b.Min.Y))/src.CStride + 1
	kx, ky := float32(w)/float32(max(cw, 1)), float32(h)/float32(max(ch, 1))
	yp := src.Y[src.YOffset(b.Min.X, b.Min.Y):]
	cb := src.Cb[src.COffset(b.Min.X, b.Min.Y):]
	cr := src.Cr[src.COffset(b.Min.X, b.Min.Y):]
	vw, vh := dst.Rect.Dx(), dst.Rect.Dy()
	for y := 0; y < vh; y++ {
		s := rowSampler(m, y)
		clamp := !s.inside(vw, w, h)
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*vw]
		for x := 0; x < vw; x++ {
			sx, sy := s.at(x)
			t := tapsAt(sx, sy, w, h, src.YStride, clamp)
			c := tapsAt((sx+0.5)/kx-0.5, (sy+0.5)/ky-0.5, cw, ch, src.CStride, true)
			r, g, bb := color.YCbCrToRGB(t.mix(yp, 0), c.mix(cb, 0), c.mix(cr, 0))
			o := out[4*x : 4*x+4 : 4*x+4]
			o[0], o[1], o[2], o[3] = r, g, bb, 255
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
		for x := range out {
			sx, sy := s.at(x)
			x0, x1, fx := clampTap(sx, vw)
			y0, y1, fy := clampTap(sy, vh)
			r0, r1 := src[y0*vw:], src[y1*vw:]
			top := r0[x0] + fx*(r0[x1]-r0[x0])
			bot := r1[x0] + fx*(r1[x1]-r1[x0])
			out[x] = top + fy*(bot-top)
		}
	}
	return dst, nil
}
