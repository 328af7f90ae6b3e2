package align

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"sync"
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
	// InputSide is the network input's side, in pixels (0: unknown). A
	// packed YUYV frame's view is 4:2:0 when its chroma then keeps at
	// least that many rows, which is all the backbone reads of it (a view
	// of twice the input's side): a quarter fewer samples to warp and to
	// resample. Otherwise it keeps the frame's 4:2:2.
	InputSide int
	// Workers is how many goroutines share the rows of each view and map
	// (≤ 1: the caller's alone). The helpers start with the first Apply
	// or WarpBack and stop at Close; the backbone's interpreter uses the
	// same cores, but not while a frame is being warped for it.
	Workers int

	gray *image.Gray
	rgba *image.RGBA
	ycc  *image.YCbCr
	conv *image.RGBA // frames of other types, converted once
	job  warpJob
	pool *rowPool
}

// Close stops the helpers; the Warper must not be used afterwards.
func (wp *Warper) Close() {
	if wp.pool != nil {
		wp.pool.close()
		wp.pool = nil
	}
}

// run warps the rows of wp.job, shared among the workers.
func (wp *Warper) run() {
	if wp.Workers <= 1 {
		wp.job.rows(0, 1)
		return
	}
	if wp.pool == nil {
		wp.pool = newRowPool(wp.Workers)
	}
	wp.pool.run(&wp.job)
}

// Kinds of warp jobs.
const (
	jobPlane = iota // one 8-bit plane (gray)
	jobRGBA
	jobYCbCr
	jobBackKnots // WarpBack's knot rows
	jobBackFill  // WarpBack's rows between them
)

// warpJob is one frame's warp, cut into bands of rows.
type warpJob struct {
	kind int
	m    affine // view → frame (luma for jobYCbCr)
	// jobPlane: luma into gray; jobYCbCr: luma into ycc's Y, and cb, cr
	// at the chroma grid c2 into its chroma planes.
	luma, cb, cr plane8
	gray         *image.Gray
	ycc          *image.YCbCr
	c2           affine
	// jobRGBA: a w×h source, rows stride bytes apart.
	rgba         *image.RGBA
	src          []uint8
	stride, w, h int
	// jobBackKnots, jobBackFill: the w×h frame's map back, from the
	// vw×vh map mapSrc, knots step pixels apart.
	back, mapSrc []float32
	vw, vh, step int
}

// band is part k of n of the rows [0, rows).
func band(rows, k, n int) (int, int) { return rows * k / n, rows * (k + 1) / n }

// rows warps part k of n of the job's rows.
func (j *warpJob) rows(k, n int) {
	switch j.kind {
	case jobPlane:
		g := j.gray
		y0, y1 := band(g.Rect.Dy(), k, n)
		j.luma.rows(j.m, g.Pix, g.Stride, g.Rect.Dx(), y0, y1)
	case jobRGBA:
		y0, y1 := band(j.rgba.Rect.Dy(), k, n)
		warpRGBA(j.rgba, j.src, j.stride, j.w, j.h, j.m, y0, y1)
	case jobYCbCr:
		v := j.ycc
		vw := v.Rect.Dx()
		y0, y1 := band(v.Rect.Dy(), k, n)
		j.luma.rows(j.m, v.Y, v.YStride, vw, y0, y1)
		sx, sy, _ := subsampling(v.SubsampleRatio)
		cw := ceilDiv(vw, sx)
		c0, c1 := band(ceilDiv(v.Rect.Dy(), sy), k, n)
		for c := c0; c < c1; c++ {
			r := rowFix(j.c2, c, weightBias)
			j.cb.row(r, v.Cb[c*v.CStride:c*v.CStride+cw])
			j.cr.row(r, v.Cr[c*v.CStride:c*v.CStride+cw])
		}
	case jobBackKnots:
		j.backKnots(band(j.knots(), k, n))
	case jobBackFill:
		j.backFill(band(j.knots()-1, k, n))
	}
}

// rowPool is n−1 helper goroutines that each warp their band of a job's
// rows while the caller warps the first: no allocation per frame.
type rowPool struct {
	start []chan *warpJob
	wg    sync.WaitGroup
}

func newRowPool(n int) *rowPool {
	p := &rowPool{}
	for k := 1; k < n; k++ {
		c := make(chan *warpJob)
		p.start = append(p.start, c)
		go func() {
			for j := range c {
				j.rows(k, n)
				p.wg.Done()
			}
		}()
	}
	return p
}

func (p *rowPool) run(j *warpJob) {
	p.wg.Add(len(p.start))
	for _, c := range p.start {
		c <- j
	}
	j.rows(0, len(p.start)+1)
	p.wg.Wait()
}

func (p *rowPool) close() {
	for _, c := range p.start {
		close(c)
	}
}

// packedYUYV is a packed Y'CbCr 4:2:2 frame as V4L2 cameras send it
// (capture.YUYV): pairs of pixels Y0 Cb Y1 Cr aligned to even x in absolute
// coordinates, pix starting at the pair that holds rect.Min.
type packedYUYV interface {
	PackedYUYV() (pix []byte, stride int, rect image.Rectangle, fullRange bool)
}

// Apply returns the reference view of img under t: each pixel of a view of
// size (ViewSize's, or its axes scaled differently: the view covers the
// whole reference frame) takes the frame bilinearly at its transformed
// centre; where that falls outside the frame, the nearest edge pixel is
// replicated (as the backbone pads letterboxed frames). Gray frames give
// *image.Gray; Y'CbCr frames (JPEG, any subsampling) and packed YUYV
// frames (V4L2) give a Y'CbCr view of the frame's subsampling (4:2:2 for
// YUYV, or 4:2:0: see InputSide), the chroma interpolated at each chroma
// sample's centre, so that colour is converted once at the network's
// input size rather than for every view pixel: *image.YCbCr for full-range samples (JPEG), and for
// studio-range ones (YUYV's default) an image whose StudioYCbCr method
// returns the planes, samples unchanged; all others give *image.RGBA.
// Gray, RGBA, NRGBA, Y'CbCr and YUYV frames are read in place, others
// converted first.
func (wp *Warper) Apply(img image.Image, t Transform, size image.Point) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	vw, vh := max(size.X, 1), max(size.Y, 1)
	m := t.toFrame(w, h, vw, vh)
	switch im := img.(type) {
	case *image.Gray:
		wp.gray = reuseGray(wp.gray, vw, vh)
		wp.job = warpJob{kind: jobPlane, m: m, gray: wp.gray,
			luma: plane8{pix: im.Pix[im.PixOffset(b.Min.X, b.Min.Y):], stride: im.Stride, step: 1, w: w, h: h}}
		wp.run()
		return wp.gray
	case *image.RGBA:
		return wp.warpRGBA(vw, vh, im.Pix[im.PixOffset(b.Min.X, b.Min.Y):], im.Stride, w, h, m)
	case *image.NRGBA:
		return wp.warpRGBA(vw, vh, im.Pix[im.PixOffset(b.Min.X, b.Min.Y):], im.Stride, w, h, m)
	case *image.YCbCr:
		// image.YCbCr places the chroma of negative coordinates by
		// truncating division: such frames (never a camera's) are
		// converted first.
		if sx, sy, ok := subsampling(im.SubsampleRatio); ok && b.Min.X >= 0 && b.Min.Y >= 0 {
			cx0, cy0 := floorDiv(b.Min.X, sx), floorDiv(b.Min.Y, sy)
			cw, ch := ceilDiv(b.Max.X, sx)-cx0, ceilDiv(b.Max.Y, sy)-cy0
			co := im.COffset(b.Min.X, b.Min.Y)
			luma := plane8{pix: im.Y[im.YOffset(b.Min.X, b.Min.Y):], stride: im.YStride, step: 1, w: w, h: h}
			cb := plane8{pix: im.Cb[co:], stride: im.CStride, step: 1, w: cw, h: ch}
			cr := plane8{pix: im.Cr[co:], stride: im.CStride, step: 1, w: cw, h: ch}
			wp.warpYCbCr(vw, vh, im.SubsampleRatio, luma, cb, cr, m, chromaMap(m, b.Min, sx, sy))
			return wp.ycc
		}
	case packedYUYV:
		pix, stride, r, full := im.PackedYUYV()
		if r == b && r.Dx() > 0 && r.Dy() > 0 && r.Min.X >= 0 && r.Min.Y >= 0 {
			odd := r.Min.X & 1 // the pair holding Min starts one pixel before it
			pairs := ceilDiv(r.Max.X, 2) - floorDiv(r.Min.X, 2)
			luma := plane8{pix: pix[2*odd:], stride: stride, step: 2, w: w, h: h}
			cb := plane8{pix: pix[1:], stride: stride, step: 4, w: pairs, h: h}
			cr := plane8{pix: pix[3:], stride: stride, step: 4, w: pairs, h: h}
			ratio := image.YCbCrSubsampleRatio422
			if wp.InputSide > 0 && vh/2 >= wp.InputSide {
				ratio = image.YCbCrSubsampleRatio420
			}
			wp.warpYCbCr(vw, vh, ratio, luma, cb, cr, m, chromaMap(m, r.Min, 2, 1))
			if !full {
				return studioYCbCr{wp.ycc}
			}
			return wp.ycc
		}
	}
	wp.conv = reuseRGBA(wp.conv, w, h)
	draw.Draw(wp.conv, wp.conv.Rect, img, b.Min, draw.Src)
	return wp.warpRGBA(vw, vh, wp.conv.Pix, wp.conv.Stride, w, h, m)
}

// warpRGBA warps an RGBA source into the RGBA view.
func (wp *Warper) warpRGBA(vw, vh int, src []uint8, stride, w, h int, m affine) *image.RGBA {
	wp.rgba = reuseRGBA(wp.rgba, vw, vh)
	wp.job = warpJob{kind: jobRGBA, m: m, rgba: wp.rgba, src: src, stride: stride, w: w, h: h}
	wp.run()
	return wp.rgba
}

// subsampling is the chroma subsampling of a Y'CbCr ratio per axis.
func subsampling(r image.YCbCrSubsampleRatio) (sx, sy int, ok bool) {
	switch r {
	case image.YCbCrSubsampleRatio444:
		return 1, 1, true
	case image.YCbCrSubsampleRatio422:
		return 2, 1, true
	case image.YCbCrSubsampleRatio420:
		return 2, 2, true
	case image.YCbCrSubsampleRatio440:
		return 1, 2, true
	case image.YCbCrSubsampleRatio411:
		return 4, 1, true
	case image.YCbCrSubsampleRatio410:
		return 4, 2, true
	}
	return 0, 0, false
}

// chromaMap is m onto the chroma plane of a frame whose chroma samples
// each cover sx×sy luma pixels aligned to multiples of sx, sy in absolute
// coordinates (image.YCbCr, packed YUYV), the plane starting at the sample
// that holds min: a luma position u (continuous, relative to min) is the
// chroma position (u + min mod s)/s.
func chromaMap(m affine, min image.Point, sx, sy int) affine {
	ox := float64(min.X - floorDiv(min.X, sx)*sx)
	oy := float64(min.Y - floorDiv(min.Y, sy)*sy)
	kx, ky := float64(sx), float64(sy)
	return affine{a: m.a / kx, b: m.b / kx, e: (m.e + ox) / kx, c: m.c / ky, d: m.d / ky, f: (m.f + oy) / ky}
}

func floorDiv[T int | int64](a, b T) T {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func ceilDiv[T int | int64](a, b T) T { return -floorDiv(-a, b) }

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

// Source positions are fixed point with fixBits fractional bits: exact
// integer steps along a row (positions accumulated in floating point
// drifted past a row's end point and indexed beyond the frame), and the
// bilinear weights are their top 8 fractional bits.
const (
	fixBits = 32
	fixOne  = 1 << fixBits
	// fixLimit bounds positions, in pixels, so that no position inside a
	// frame comes from an overflowing product (a frame is far smaller; a
	// wild transform only clamps).
	fixLimit = 1 << 20
	// weightBias is half a step of the 8-bit weights.
	weightBias = 1 << (fixBits - 9)
)

// fixRow is one destination row's source positions: pixel x samples
// (x0 + x·dx, y0 + x·dy) in pixel-index coordinates (centres at
// integers), fixed point.
type fixRow struct{ x0, y0, dx, dy int64 }

func toFix(v float64) int64 {
	if !(v > -fixLimit) { // also NaN: far outside, clamped to the edge
		return -fixLimit * fixOne
	}
	return int64(math.Round(min(v, fixLimit) * fixOne))
}

// rowFix is row y's positions under m, their start moved by bias (in
// fixed-point units): the 8-bit samplers pass weightBias, half a weight
// step, so that truncating a weight to 8 bits rounds it; WarpBack, whose
// weights keep every bit, passes 0.
func rowFix(m affine, y int, bias int64) fixRow {
	sx, sy := m.apply(0.5, float64(y)+0.5)
	return fixRow{x0: toFix(sx-0.5) + bias, y0: toFix(sy-0.5) + bias, dx: toFix(m.a), dy: toFix(m.c)}
}

func (r fixRow) at(x int) (int64, int64) { return r.x0 + int64(x)*r.dx, r.y0 + int64(x)*r.dy }

// span is the pixels [lo, hi) of a row of n whose four bilinear taps all
// lie inside a w×h source: 0 ≤ position < (size−1) on both axes. The
// positions are linear in x and exact, so this is one interval.
func (r fixRow) span(n, w, h int) (lo, hi int) {
	lo, hi = within(0, n, r.x0, r.dx, int64(w-1)<<fixBits)
	return within(lo, hi, r.y0, r.dy, int64(h-1)<<fixBits)
}

// within narrows [lo, hi) to the x with 0 ≤ p0 + x·d < lim; an empty
// result still lies within [lo, hi].
func within(lo, hi int, p0, d, lim int64) (int, int) {
	l, h := int64(lo), int64(hi)
	switch {
	case lim <= 0:
		return lo, lo
	case d == 0:
		if p0 < 0 || p0 >= lim {
			return lo, lo
		}
	case d > 0:
		l = max(l, ceilDiv(-p0, d))
		h = min(h, floorDiv(lim-1-p0, d)+1)
	default:
		h = min(h, floorDiv(p0, -d)+1)
		l = max(l, ceilDiv(p0-lim+1, -d))
	}
	l = min(max(l, int64(lo)), int64(hi))
	return int(l), int(min(max(h, l), int64(hi)))
}

// clampFix is the tap index, the next index and the next one's 8-bit
// weight at position p on an axis of n samples, the edge replicated.
func clampFix(p int64, n int) (int, int, uint32) {
	if p <= 0 {
		return 0, 0, 0
	}
	if p >= int64(n-1)<<fixBits {
		return n - 1, n - 1, 0
	}
	i := int(p >> fixBits)
	return i, i + 1, uint32(p>>(fixBits-8)) & 0xff
}

// lerp8 mixes a and b by f/256.
func lerp8(a, b uint8, f uint32) uint32 { return uint32(a)*(256-f) + uint32(b)*f }

// plane8 is one 8-bit plane of w×h samples: sample (i, j) at
// pix[j·stride + i·step].
type plane8 struct {
	pix                []uint8
	stride, step, w, h int
}

// rows samples rows [y0, y1) of an 8-bit view vw pixels wide, rows
// stride bytes apart in pix, from the plane under m.
func (p plane8) rows(m affine, pix []uint8, stride, vw, y0, y1 int) {
	for y := y0; y < y1; y++ {
		p.row(rowFix(m, y, weightBias), pix[y*stride:y*stride+vw])
	}
}

// row samples the plane bilinearly at row r's positions into out: the
// pixels whose taps lie inside without clamping, the rest with the edge
// replicated.
func (p plane8) row(r fixRow, out []uint8) {
	lo, hi := r.span(len(out), p.w, p.h)
	for x := range lo {
		out[x] = p.clamped(r.at(x))
	}
	st, sd := p.step, p.stride
	px, py := r.at(lo)
	if st == 1 {
		// Both rows' pixel pairs in one word, mixed along x two lanes at a
		// time (each lane stays below 1<<16).
		for x := lo; x < hi; x++ {
			o := int(py>>fixBits)*sd + int(px>>fixBits)
			q := p.pix[o : o+sd+2 : o+sd+2]
			v := uint32(binary.LittleEndian.Uint16(q)) | uint32(binary.LittleEndian.Uint16(q[sd:]))<<16
			fx, fy := uint32(px>>(fixBits-8))&0xff, uint32(py>>(fixBits-8))&0xff
			h := (v&0x00ff00ff)*(256-fx) + (v>>8&0x00ff00ff)*fx
			out[x] = uint8(((h&0xffff)*(256-fy) + (h>>16)*fy + 1<<15) >> 16)
			px, py = px+r.dx, py+r.dy
		}
	} else {
		for x := lo; x < hi; x++ {
			o := int(py>>fixBits)*sd + int(px>>fixBits)*st
			q := p.pix[o : o+sd+st+1 : o+sd+st+1]
			fx, fy := uint32(px>>(fixBits-8))&0xff, uint32(py>>(fixBits-8))&0xff
			top, bot := lerp8(q[0], q[st], fx), lerp8(q[sd], q[sd+st], fx)
			out[x] = uint8((top*(256-fy) + bot*fy + 1<<15) >> 16)
			px, py = px+r.dx, py+r.dy
		}
	}
	for x := hi; x < len(out); x++ {
		out[x] = p.clamped(r.at(x))
	}
}

func (p plane8) clamped(px, py int64) uint8 {
	x0, x1, fx := clampFix(px, p.w)
	y0, y1, fy := clampFix(py, p.h)
	r0, r1 := y0*p.stride, y1*p.stride
	top := lerp8(p.pix[r0+x0*p.step], p.pix[r0+x1*p.step], fx)
	bot := lerp8(p.pix[r1+x0*p.step], p.pix[r1+x1*p.step], fx)
	return uint8((top*(256-fy) + bot*fy + 1<<15) >> 16)
}

// lerpRGBA mixes two packed 8-bit RGBA pixels by f/256, two channels per
// 32-bit lane pair (each product stays below 1<<16).
func lerpRGBA(a, b, f uint32) uint32 {
	g := 256 - f
	rb := ((a&0x00ff00ff)*g + (b&0x00ff00ff)*f + 0x00800080) >> 8 & 0x00ff00ff
	ga := ((a>>8&0x00ff00ff)*g + (b>>8&0x00ff00ff)*f + 0x00800080) & 0xff00ff00
	return rb | ga
}

func pixelAt(src []uint8, o int) uint32 { return binary.LittleEndian.Uint32(src[o : o+4 : o+4]) }

// warpRGBA samples an RGBA (or NRGBA: frames carry no transparency)
// source of w×h pixels, rows stride bytes apart, into rows [y0, y1) of
// the view; the view is opaque.
func warpRGBA(dst *image.RGBA, src []uint8, stride, w, h int, m affine, y0, y1 int) {
	vw := dst.Rect.Dx()
	for y := y0; y < y1; y++ {
		r := rowFix(m, y, weightBias)
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*vw]
		lo, hi := r.span(vw, w, h)
		for x := range lo {
			binary.LittleEndian.PutUint32(out[4*x:], clampedRGBA(src, stride, w, h, r, x))
		}
		px, py := r.at(lo)
		for x := lo; x < hi; x++ {
			o := int(py>>fixBits)*stride + 4*int(px>>fixBits)
			q := src[o : o+stride+8 : o+stride+8]
			t, b := binary.LittleEndian.Uint64(q), binary.LittleEndian.Uint64(q[stride:])
			fx, fy := uint32(px>>(fixBits-8))&0xff, uint32(py>>(fixBits-8))&0xff
			top := lerpRGBA(uint32(t), uint32(t>>32), fx)
			bot := lerpRGBA(uint32(b), uint32(b>>32), fx)
			binary.LittleEndian.PutUint32(out[4*x:4*x+4:4*x+4], lerpRGBA(top, bot, fy)|0xff000000)
			px, py = px+r.dx, py+r.dy
		}
		for x := hi; x < vw; x++ {
			binary.LittleEndian.PutUint32(out[4*x:], clampedRGBA(src, stride, w, h, r, x))
		}
	}
}

func clampedRGBA(src []uint8, stride, w, h int, r fixRow, x int) uint32 {
	px, py := r.at(x)
	x0, x1, fx := clampFix(px, w)
	y0, y1, fy := clampFix(py, h)
	top := lerpRGBA(pixelAt(src, y0*stride+4*x0), pixelAt(src, y0*stride+4*x1), fx)
	bot := lerpRGBA(pixelAt(src, y1*stride+4*x0), pixelAt(src, y1*stride+4*x1), fx)
	return lerpRGBA(top, bot, fy) | 0xff000000
}

// warpYCbCr samples the luma plane at each view pixel's position and the
// chroma planes (whose grid cm maps view positions onto) at the centre of
// each block of view pixels one chroma sample of ratio covers, into a
// vw×vh view with that subsampling (the frame's own, or for YUYV 4:2:0
// where the backbone reads no more; see InputSide).
func (wp *Warper) warpYCbCr(vw, vh int, ratio image.YCbCrSubsampleRatio, luma, cb, cr plane8, m, cm affine) {
	if wp.ycc == nil || wp.ycc.Rect.Dx() != vw || wp.ycc.Rect.Dy() != vh || wp.ycc.SubsampleRatio != ratio {
		wp.ycc = image.NewYCbCr(image.Rect(0, 0, vw, vh), ratio)
	}
	// A chroma sample's centre (i+½, j+½) is the view position
	// (sx·(i+½), sy·(j+½)).
	sx, sy, _ := subsampling(ratio)
	kx, ky := float64(sx), float64(sy)
	c2 := affine{a: kx * cm.a, b: ky * cm.b, c: kx * cm.c, d: ky * cm.d, e: cm.e, f: cm.f}
	wp.job = warpJob{kind: jobYCbCr, m: m, c2: c2, ycc: wp.ycc, luma: luma, cb: cb, cr: cr}
	wp.run()
}

// studioYCbCr is a Y'CbCr view whose samples are BT.601 studio range
// (luma 16..235, chroma 16..240, and beyond: cameras send superwhites), as
// V4L2's YUYV frames are. The backbone reads its planes through
// StudioYCbCr and converts with the studio matrix; At converts as
// capture.YUYV does. Expanding the samples to full range instead would
// clip what lies beyond the nominal range before the conversion (up to 30
// levels off). The planes are a field, not embedded: *image.YCbCr's
// colour methods (RGBA64At, YCbCrAt) would be promoted and image/draw
// would read them as full range.
type studioYCbCr struct{ m *image.YCbCr }

// StudioYCbCr returns the view's planes, studio range.
func (s studioYCbCr) StudioYCbCr() *image.YCbCr { return s.m }

// ColorModel implements image.Image.
func (s studioYCbCr) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image.
func (s studioYCbCr) Bounds() image.Rectangle { return s.m.Rect }

// At implements image.Image: BT.601 studio range to RGB in 16.16 fixed
// point, R = 1.164383·(Y'−16) + 1.596027·(Cr−128), G = … − 0.391762·(Cb−128)
// − 0.812968·(Cr−128), B = … + 2.017232·(Cb−128), rounded and clipped.
func (s studioYCbCr) At(x, y int) color.Color {
	if !(image.Point{x, y}.In(s.m.Rect)) {
		return color.RGBA{}
	}
	yi, ci := s.m.YOffset(x, y), s.m.COffset(x, y)
	yy := (int32(s.m.Y[yi])-16)*76309 + 1<<15
	u, v := int32(s.m.Cb[ci])-128, int32(s.m.Cr[ci])-128
	return color.RGBA{sat16(yy + 104597*v), sat16(yy - 25675*u - 53279*v), sat16(yy + 132201*u), 0xff}
}

// SubImage returns the part of the view inside r, still studio range.
func (s studioYCbCr) SubImage(r image.Rectangle) image.Image {
	return studioYCbCr{s.m.SubImage(r).(*image.YCbCr)}
}

// sat16 takes a 16.16 value to a byte, saturating.
func sat16(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	return uint8(^(v >> 31))
}

// WarpBack resamples a map drawn on the reference view (vw×vh, row major)
// into the frame's own w×h pixels under t, bilinearly; frame pixels whose
// reference position lies outside the view take the view's nearest edge
// value. It returns dst resized to w×h.
//
// With step > 1 the view is sampled only at every step-th frame pixel on
// both axes (and the last column and row), and the pixels between these
// knots are interpolated bilinearly from them: about 1/step² of the
// samples, each pixel then an add or a multiply-add. For a map blurred by
// a Gaussian of σ frame pixels the interpolation's error is at most about
// step²/(4σ²) of its peak (twice the 1-D bound, step²/8 times the second
// derivative, which is A/σ² at a peak of height A), so StepFor keeps it
// under 2%; a step of 1 samples every pixel.
func WarpBack(dst []float32, w, h int, src []float32, vw, vh int, t Transform, step int) ([]float32, error) {
	var j warpJob
	dst, err := j.backJob(dst, w, h, src, vw, vh, t, step)
	if err != nil {
		return dst, err
	}
	j.rows(0, 1)
	if j.step > 1 {
		j.kind = jobBackFill
		j.rows(0, 1)
	}
	return dst, nil
}

// WarpBack is the package's WarpBack with the rows shared among the
// warper's workers: the knot rows first, then the rows between them.
func (wp *Warper) WarpBack(dst []float32, w, h int, src []float32, vw, vh int, t Transform, step int) ([]float32, error) {
	dst, err := wp.job.backJob(dst, w, h, src, vw, vh, t, step)
	if err != nil {
		return dst, err
	}
	wp.run()
	if wp.job.step > 1 {
		wp.job.kind = jobBackFill
		wp.run()
	}
	return dst, nil
}

// backJob checks a warp back's sizes, sizes dst and makes j its knot
// rows' job.
func (j *warpJob) backJob(dst []float32, w, h int, src []float32, vw, vh int, t Transform, step int) ([]float32, error) {
	if len(src) != vw*vh || vw <= 0 || vh <= 0 || w <= 0 || h <= 0 {
		return dst, fmt.Errorf("warp back: map of %d values for %dx%d, frame %dx%d", len(src), vw, vh, w, h)
	}
	if cap(dst) < w*h {
		dst = make([]float32, w*h)
	}
	dst = dst[:w*h]
	*j = warpJob{kind: jobBackKnots, m: t.fromFrame(w, h, vw, vh), back: dst, w: w, h: h, mapSrc: src, vw: vw, vh: vh, step: max(step, 1)}
	return dst, nil
}

// knots is the number of knot rows of a warp back: every step-th row and
// the last.
func (j *warpJob) knots() int { return (j.h-1+j.step-1)/j.step + 1 }

// knotY is the frame row of knot row i.
func (j *warpJob) knotY(i int) int { return min(i*j.step, j.h-1) }

// backKnots warps knot rows [i0, i1) of a warp back: every pixel of
// each row for step 1, else every step-th and the last, filled linearly.
func (j *warpJob) backKnots(i0, i1 int) {
	w := j.w
	for i := i0; i < i1; i++ {
		y := j.knotY(i)
		out, r := j.back[y*w:(y+1)*w], rowFix(j.m, y, 0)
		if j.step <= 1 {
			warpBackRow(out, j.mapSrc, j.vw, j.vh, r)
		} else {
			knotRow(out, j.mapSrc, j.vw, j.vh, r, j.step)
		}
	}
}

// backFill interpolates the rows between knot rows g and g+1 for the
// gaps g in [g0, g1).
func (j *warpJob) backFill(g0, g1 int) {
	w := j.w
	for g := g0; g < g1; g++ {
		ya, yb := j.knotY(g), j.knotY(g+1)
		top, bot := j.back[ya*w:(ya+1)*w], j.back[yb*w:(yb+1)*w]
		n := float32(yb - ya)
		for y := ya + 1; y < yb; y++ {
			a := float32(y-ya) / n
			mid := j.back[y*w : (y+1)*w]
			t, o := top[:len(mid)], bot[:len(mid)]
			for x := range mid {
				mid[x] = t[x] + a*(o[x]-t[x])
			}
		}
	}
}

// StepFor is the WarpBack step for a map blurred by a Gaussian of sigma
// frame pixels: at most a quarter of sigma, so that the interpolation's
// error stays within 1/64 of the map's peak, at least 1.
func StepFor(sigma float64) int {
	if !(sigma >= 8) {
		return 1
	}
	return int(min(sigma/4, 64))
}

// warpBackRow samples every pixel of one frame row from the view map.
func warpBackRow(out, src []float32, vw, vh int, r fixRow) {
	lo, hi := r.span(len(out), vw, vh)
	for x := range lo {
		out[x] = clampedMap(src, vw, vh, r, x)
	}
	for x := lo; x < hi; x++ {
		out[x] = mapAt(src, vw, r, x)
	}
	for x := hi; x < len(out); x++ {
		out[x] = clampedMap(src, vw, vh, r, x)
	}
}

// knotRow samples one frame row at every step-th pixel and the last, and
// fills the pixels between linearly.
func knotRow(out, src []float32, vw, vh int, r fixRow, step int) {
	n := len(out)
	lo, hi := r.span(n, vw, vh)
	sample := func(x int) float32 {
		if x >= lo && x < hi {
			return mapAt(src, vw, r, x)
		}
		return clampedMap(src, vw, vh, r, x)
	}
	prev := sample(0)
	out[0] = prev
	inv := 1 / float32(step)
	x0 := 0
	for ; x0+step < n; x0 += step {
		x1 := x0 + step
		v := sample(x1)
		d := (v - prev) * inv
		seg := out[x0+1 : x1+1 : x1+1]
		acc := prev
		for i := range seg {
			acc += d
			seg[i] = acc
		}
		seg[len(seg)-1] = v
		prev = v
	}
	if x0 < n-1 { // the last, shorter span ends on the last pixel
		v := sample(n - 1)
		d := (v - prev) / float32(n-1-x0)
		for i, x := float32(1), x0+1; x < n; i, x = i+1, x+1 {
			out[x] = prev + i*d
		}
		out[n-1] = v
	}
}

// mapAt is pixel x of row r sampled from the view map, its four taps
// inside the map (x within the row's span).
func mapAt(src []float32, vw int, r fixRow, x int) float32 {
	const frac = 1.0 / fixOne
	px, py := r.at(x)
	o := int(py>>fixBits)*vw + int(px>>fixBits)
	q := src[o : o+vw+2 : o+vw+2]
	fx, fy := float32(px&(fixOne-1))*frac, float32(py&(fixOne-1))*frac
	top := q[0] + fx*(q[1]-q[0])
	bot := q[vw] + fx*(q[vw+1]-q[vw])
	return top + fy*(bot-top)
}

func clampedMap(src []float32, vw, vh int, r fixRow, x int) float32 {
	px, py := r.at(x)
	x0, x1, _ := clampFix(px, vw)
	y0, y1, _ := clampFix(py, vh)
	const frac = 1.0 / fixOne
	fx := float32(min(max(px-int64(x0)<<fixBits, 0), fixOne)) * frac
	fy := float32(min(max(py-int64(y0)<<fixBits, 0), fixOne)) * frac
	if x1 == x0 {
		fx = 0
	}
	if y1 == y0 {
		fy = 0
	}
	r0, r1 := src[y0*vw:], src[y1*vw:]
	top := r0[x0] + fx*(r0[x1]-r0[x0])
	bot := r1[x0] + fx*(r1[x1]-r1[x0])
	return top + fy*(bot-top)
}

// MaxInFrame is the maximum of a map drawn on the reference view (vw×vh,
// row major) of a w×h frame at t, over the view pixels whose centre lies
// in the frame: the image score without warping the map back (WarpBack
// interpolates between these same values, and frame pixels beyond the
// view take its edge, so the two maxima differ by the interpolation
// only). View pixels the frame does not reach (edge pixels replicated into
// the view) never count. When none lies in the frame it is the maximum of
// the whole map.
func MaxInFrame(src []float32, vw, vh, w, h int, t Transform) (float32, error) {
	if len(src) != vw*vh || vw <= 0 || vh <= 0 || w <= 0 || h <= 0 {
		return 0, fmt.Errorf("max in frame: map of %d values for %dx%d, frame %dx%d", len(src), vw, vh, w, h)
	}
	m := t.toFrame(w, h, vw, vh)
	best := float32(math.Inf(-1))
	found := false
	for y := range vh {
		r := rowFix(m, y, fixOne/2) // centres in [0, size) after the half-pixel shift
		lo, hi := within(0, vw, r.x0, r.dx, int64(w)<<fixBits)
		lo, hi = within(lo, hi, r.y0, r.dy, int64(h)<<fixBits)
		for _, v := range src[y*vw+lo : y*vw+hi] {
			best = max(best, v)
		}
		found = found || hi > lo
	}
	if !found {
		for _, v := range src {
			best = max(best, v)
		}
	}
	return best, nil
}
