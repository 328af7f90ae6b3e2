package backbone

import (
	"fmt"
	"image"
	"image/draw"
	"math"
	"unsafe"

	"github.com/mattn/go-tflite"
)

// The fused preprocess: one pass from a frame as the camera path delivers
// it to the interpreter's input tensor. It reads the frame's own planes
// (8-bit gray, RGBA, Y'CbCr planes of any subsampling, packed YUYV), only
// inside its region of interest, maps the network input onto them through
// the rotation, resamples each plane with an antialiasing triangle filter
// (two separable passes, the first along the rows as they lie in memory),
// converts to RGB at the input's size, applies the photometric map and
// quantizes into the tensor. No full-resolution copy of the frame is made.

// Photometric is an affine map of intensities applied to every channel
// before quantization: v·Gain + Offset, clipped to 0..255 (Standardizer).
// The zero value is the identity.
type Photometric struct {
	Gain, Offset float32
}

func (p Photometric) gain() float32 {
	if p.Gain == 0 {
		return 1
	}
	return p.Gain
}

// rotatedImage is an image turned clockwise without copying
// (capture.Rotated).
type rotatedImage interface {
	Unrotated() (image.Image, int)
}

// packedYUYV is a packed Y'CbCr 4:2:2 image (capture.YUYV): pairs of
// pixels Y0 Cb Y1 Cr aligned to even x in absolute coordinates, pix
// starting at the pair that holds rect.Min.
type packedYUYV interface {
	PackedYUYV() (pix []byte, stride int, rect image.Rectangle, fullRange bool)
}

// colour says how a frame's channels turn into RGB.
type colour int

const (
	colourGray  colour = iota // one channel: R = G = B
	colourRGB                 // three channels in one interleaved plane
	colourJFIF                // Y'CbCr, full range (JPEG)
	colourBT601               // Y'CbCr, studio range (YUYV)
)

// plane is one sampled plane of a frame: channels nch interleaved samples
// step bytes apart (channel c at byte chOff[c] of a sample), rows stride
// bytes apart. Sample (0, 0) of pix is absolute sample (bx, by), and
// sample (i, j) covers luma pixels [i·sx, (i+1)·sx) × [j·sy, (j+1)·sy).
type plane struct {
	pix            []byte
	stride, step   int
	nch            int
	chOff          [3]int
	sx, sy, bx, by int
}

// frame is an image as the fused pass reads it.
type frame struct {
	planes []plane
	col    colour
	rect   image.Rectangle // the image, in absolute luma pixels
	rot    int             // clockwise
	// exact: the image is a region whose edges ex (x0, y0, x1, y1) fall
	// between rect's pixels (exactRegion); zero otherwise.
	exact    bool
	ex       [4]float64
	planeBuf [3]plane
}

// studioPlanes is a Y'CbCr image whose samples are BT.601 studio range
// (align's view of a YUYV frame): its planes, converted with the studio
// matrix.
type studioPlanes interface {
	StudioYCbCr() *image.YCbCr
}

// exactRegion is a region of interest whose edges fall between the pixels
// of the view that holds it (capture.Region).
type exactRegion interface {
	Exact() (img image.Image, x0, y0, x1, y1 float64)
}

// describe reads img's layout; false for image types the pass cannot read
// in place.
func (f *frame) describe(img image.Image) bool {
	f.rot = 0
	if r, ok := img.(rotatedImage); ok {
		img, f.rot = r.Unrotated()
		if _, nested := img.(rotatedImage); nested {
			return false
		}
	}
	f.exact, f.ex = false, [4]float64{}
	if e, ok := img.(exactRegion); ok {
		var x0, y0, x1, y1 float64
		img, x0, y0, x1, y1 = e.Exact()
		b := img.Bounds()
		if x0 < float64(b.Min.X) || y0 < float64(b.Min.Y) || x1 > float64(b.Max.X) || y1 > float64(b.Max.Y) || !(x1 > x0 && y1 > y0) {
			return false
		}
		f.exact, f.ex = true, [4]float64{x0, y0, x1, y1}
	}
	studio := false
	if s, ok := img.(studioPlanes); ok {
		img, studio = s.StudioYCbCr(), true
	}
	f.rect = img.Bounds()
	p := f.planeBuf[:0]
	switch m := img.(type) {
	case *image.Gray:
		f.col = colourGray
		p = append(p, plane{pix: m.Pix, stride: m.Stride, step: 1, nch: 1, sx: 1, sy: 1, bx: m.Rect.Min.X, by: m.Rect.Min.Y})
	case *image.RGBA:
		f.col = colourRGB
		p = append(p, plane{pix: m.Pix, stride: m.Stride, step: 4, nch: 3, chOff: [3]int{0, 1, 2}, sx: 1, sy: 1, bx: m.Rect.Min.X, by: m.Rect.Min.Y})
	case *image.NRGBA:
		// Frames carry no transparency: the colour channels as they are,
		// as the pre-fused path read them.
		f.col = colourRGB
		p = append(p, plane{pix: m.Pix, stride: m.Stride, step: 4, nch: 3, chOff: [3]int{0, 1, 2}, sx: 1, sy: 1, bx: m.Rect.Min.X, by: m.Rect.Min.Y})
	case *image.YCbCr:
		sx, sy := 1, 1
		switch m.SubsampleRatio {
		case image.YCbCrSubsampleRatio444:
		case image.YCbCrSubsampleRatio422:
			sx = 2
		case image.YCbCrSubsampleRatio420:
			sx, sy = 2, 2
		case image.YCbCrSubsampleRatio440:
			sy = 2
		case image.YCbCrSubsampleRatio411:
			sx = 4
		case image.YCbCrSubsampleRatio410:
			sx, sy = 4, 2
		default:
			return false
		}
		f.col = colourJFIF
		if studio {
			f.col = colourBT601
		}
		r := m.Rect
		p = append(p,
			plane{pix: m.Y, stride: m.YStride, step: 1, nch: 1, sx: 1, sy: 1, bx: r.Min.X, by: r.Min.Y},
			plane{pix: m.Cb, stride: m.CStride, step: 1, nch: 1, sx: sx, sy: sy, bx: r.Min.X / sx, by: r.Min.Y / sy},
			plane{pix: m.Cr, stride: m.CStride, step: 1, nch: 1, sx: sx, sy: sy, bx: r.Min.X / sx, by: r.Min.Y / sy})
	case packedYUYV:
		pix, stride, r, full := m.PackedYUYV()
		f.rect = r
		f.col = colourBT601
		if full {
			f.col = colourJFIF
		}
		pair := r.Min.X / 2
		p = append(p,
			plane{pix: pix, stride: stride, step: 2, nch: 1, sx: 1, sy: 1, bx: 2 * pair, by: r.Min.Y},
			plane{pix: pix, stride: stride, step: 4, nch: 1, chOff: [3]int{1}, sx: 2, sy: 1, bx: pair, by: r.Min.Y},
			plane{pix: pix, stride: stride, step: 4, nch: 1, chOff: [3]int{3}, sx: 2, sy: 1, bx: pair, by: r.Min.Y})
	default:
		return false
	}
	f.planes = p
	return true
}

// weights resample one axis: output i reads taps samples from start[i],
// weighted by w (fixed point, summing to 1<<weightBits). Outputs outside
// [lo, hi) are the letterbox's padding: each repeats the nearest output
// inside, so the passes compute [lo, hi) and copy the rest.
type weights struct {
	n, taps int
	lo, hi  int
	start   []int32
	w       []int32
}

// weightBits is the fixed-point precision of the filter weights. Integer
// sums keep the inner loops short (an integer add is a one-cycle chain;
// a float add chains four), and 14 bits keep the error far below a level.
const weightBits = 14

// rowBits is the precision kept between the passes: a first-pass sum of
// 8-bit samples, 255<<weightBits at most, is shifted down to rowBits
// fractional bits, so that the second pass's sums fit 32 bits.
const rowBits = 7

// axisWeights builds a triangle filter from n source samples (indexes
// 0..n-1) onto the dst outputs of sp, the source span given in sample
// units [off, off+len). The filter's support widens with the reduction so
// that large frames are averaged, not aliased; samples outside 0..n-1 are
// left out and the weights renormalized, as the pre-fused path did. With
// reverse the outputs run backwards over the span (a rotation).
func axisWeights(wt *weights, n int, off, length float64, dst, dstOff, dstLen int, reverse bool) {
	scale := length / float64(dstLen)
	support := math.Max(1, scale)
	wide := min(int(math.Ceil(support))*2+1, n)
	// The float weights of every output over a window of wide samples.
	fw := make([]float64, dst*wide) // built once per geometry
	los := make([]int, dst)         // each output's wide window start
	firsts := make([]int, dst)      // and its first non-zero sample
	taps := 1
	for i := 0; i < dst; i++ {
		j := min(max(i, dstOff), dstOff+dstLen-1) - dstOff
		if reverse {
			j = dstLen - 1 - j
		}
		center := off + (float64(j)+0.5)*scale
		lo := int(math.Floor(center - support))
		lo = min(max(lo, 0), max(n-wide, 0))
		f := fw[i*wide : (i+1)*wide]
		var sum float64
		for k := 0; k < wide && lo+k < n; k++ {
			x := (float64(lo+k) + 0.5 - center) / support
			if v := 1 - math.Abs(x); v > 0 {
				f[k] = v
				sum += v
			}
		}
		if sum == 0 { // the span lies between samples: the nearest
			near := min(max(int(center), 0), n-1)
			f[near-lo] = 1
			sum = 1
		}
		first, last := wide, -1
		for k, v := range f {
			f[k] = v / sum
			if v != 0 {
				first, last = min(first, k), k
			}
		}
		// Start each window at its first non-zero weight; taps is the
		// widest span (a triangle of half-width s has at most 2s+1
		// samples, often fewer: no work on weights that are always zero).
		los[i], firsts[i] = lo, lo+first
		taps = max(taps, last-first+1)
	}
	wt.n, wt.taps = dst, taps
	wt.lo, wt.hi = min(max(dstOff, 0), dst), min(max(dstOff+dstLen, 0), dst)
	if wt.lo >= wt.hi {
		wt.lo, wt.hi = 0, dst
	}
	if cap(wt.start) < dst {
		wt.start = make([]int32, dst)
	}
	if cap(wt.w) < dst*taps {
		wt.w = make([]int32, dst*taps)
	}
	wt.start, wt.w = wt.start[:dst], wt.w[:dst*taps]
	clear(wt.w)
	for i := 0; i < dst; i++ {
		start := min(firsts[i], n-taps)
		wt.start[i] = int32(start)
		f, lo := fw[i*wide:(i+1)*wide], los[i]
		ws := wt.w[i*taps : (i+1)*taps]
		// Rounded to fixed point; the rounding error goes to the largest
		// weight so that every output's weights sum to exactly one.
		total, big := int32(0), 0
		for k := range ws {
			if idx := start + k - lo; idx >= 0 && idx < wide {
				ws[k] = int32(math.Round(f[idx] * (1 << weightBits)))
			}
			total += ws[k]
			if ws[k] > ws[big] {
				big = k
			}
		}
		ws[big] += 1<<weightBits - total
	}
}

// planePlan is how one plane is resampled: over samples [k0, k0+nx) ×
// [j0, j0+ny) of the plane, axis a along its rows, axis b down its
// columns.
type planePlan struct {
	k0, j0, nx, ny int
	a, b           weights
	tmp            []int32 // ny × a.n × nch, after the first pass (rowBits)
	out            []int32 // a.n × b.n × nch, after the second (rowBits+weightBits)
}

// fusedKey is what a plan depends on.
type fusedKey struct {
	rect          image.Rectangle
	rot           int
	col           colour
	sub           [3][4]int // sx, sy, bx, by per plane
	nplanes       int
	inW, inH, inC int
	mode          ResizeMode
	exact         [4]float64
}

// fused is the fused pass's state for one backbone; it is rebuilt when the
// frame's geometry changes and reused otherwise (no allocation).
type fused struct {
	key    fusedKey
	ok     bool
	plans  [3]planePlan
	region Region
	frame  frame
	row    []float32   // one row of RGB levels before quantization
	rgba   *image.RGBA // for image types read through image/draw
}

// plan builds the resampling of f into a inW×inH input.
func (fu *fused) plan(f *frame, inW, inH, inC int, mode ResizeMode) error {
	k := fusedKey{rect: f.rect, rot: f.rot, col: f.col, nplanes: len(f.planes), inW: inW, inH: inH, inC: inC, mode: mode, exact: f.ex}
	for i, p := range f.planes {
		k.sub[i] = [4]int{p.sx, p.sy, p.bx, p.by}
	}
	if fu.ok && fu.key == k {
		return nil
	}
	fu.ok = false
	// The image's extent along the source's x and y: its pixels, or its
	// exact edges (a region of a reduced frame), and the whole number of
	// pixels the geometry works with.
	r := f.rect
	ex0, ey0, ew, eh := float64(r.Min.X), float64(r.Min.Y), float64(r.Dx()), float64(r.Dy())
	if f.exact {
		ex0, ey0, ew, eh = f.ex[0], f.ex[1], f.ex[2]-f.ex[0], f.ex[3]-f.ex[1]
	}
	lw, lh := max(1, int(math.Round(ew))), max(1, int(math.Round(eh)))
	w, h := lw, lh
	if f.rot == 90 || f.rot == 270 {
		w, h = lh, lw
	}
	gx, gy, err := geometry(w, h, inW, inH, mode)
	if err != nil {
		return err
	}
	fu.region = region(gx, gy)
	// Which input axis runs along the source's rows (x), and backwards?
	// Clockwise rotation by 90: input x runs up the source's columns,
	// input y along its rows.
	ax, ay := gx, gy // spans along source x and source y
	revX, revY := false, false
	switch f.rot {
	case 90:
		ax, ay, revX, revY = gy, gx, false, true
	case 180:
		revX, revY = true, true
	case 270:
		ax, ay, revX, revY = gy, gx, true, false
	}
	kx, ky := ew/float64(lw), eh/float64(lh) // source pixels per geometry unit
	nplanes := len(f.planes)
	if f.col == colourGray || inC == 1 && f.col != colourRGB {
		nplanes = 1 // the luma is the gray
	}
	for i := 0; i < nplanes; i++ {
		p := &f.planes[i]
		pp := &fu.plans[i]
		// The plane's samples that overlap the image.
		x0, x1 := floorDiv(r.Min.X, p.sx), ceilDiv(r.Max.X, p.sx)
		y0, y1 := floorDiv(r.Min.Y, p.sy), ceilDiv(r.Max.Y, p.sy)
		pp.k0, pp.j0, pp.nx, pp.ny = x0-p.bx, y0-p.by, x1-x0, y1-y0
		// The spans in the source, reversed where the input runs
		// backwards, in the plane's sample units relative to x0, y0.
		offX := ax.off
		if revX {
			offX = float64(lw) - ax.off - ax.len
		}
		offY := ay.off
		if revY {
			offY = float64(lh) - ay.off - ay.len
		}
		fx := (ex0+offX*kx)/float64(p.sx) - float64(x0)
		fy := (ey0+offY*ky)/float64(p.sy) - float64(y0)
		axisWeights(&pp.a, pp.nx, fx, ax.len*kx/float64(p.sx), ax.dst, ax.dstOff, ax.dstLen, revX)
		axisWeights(&pp.b, pp.ny, fy, ay.len*ky/float64(p.sy), ay.dst, ay.dstOff, ay.dstLen, revY)
		if n := pp.ny * pp.a.n * p.nch; cap(pp.tmp) < n {
			pp.tmp = make([]int32, n)
		}
		if n := pp.a.n * pp.b.n * p.nch; cap(pp.out) < n {
			pp.out = make([]int32, n)
		}
	}
	fu.key, fu.ok = k, true
	return nil
}

func floorDiv(a, b int) int {
	if a >= 0 {
		return a / b
	}
	return -((-a + b - 1) / b)
}

func ceilDiv(a, b int) int { return -floorDiv(-a, b) }

// rowsNeeded is the range of a plane's rows the second pass reads.
func rowsNeeded(pp *planePlan) (lo, hi int) {
	bw := &pp.b
	lo, hi = pp.ny, 0
	for i := 0; i < bw.n; i++ {
		s := int(bw.start[i])
		lo, hi = min(lo, s), max(hi, s+bw.taps)
	}
	return lo, min(hi, pp.ny)
}

// resample runs both passes over one plane: out[b][a][c], fixed point
// with rowBits+weightBits fractional bits.
func resample(p *plane, pp *planePlan) {
	na, nch := pp.a.n, p.nch
	lo, hi := rowsNeeded(pp)
	for j := lo; j < hi; j++ {
		row := p.pix[(pp.j0+j)*p.stride+pp.k0*p.step:]
		t := pp.tmp[j*na*nch : (j+1)*na*nch]
		switch {
		case nch == 3:
			rowRGB(t, row, &pp.a, p.step)
		case p.step == 1:
			rowGray(t, row, &pp.a)
		default:
			rowStrided(t, row[p.chOff[0]:], &pp.a, p.step)
		}
	}
	columns(pp, nch)
}

// resamplePair resamples two single-channel planes that share their
// geometry (the chroma planes) in one sweep: the filter windows are
// computed once for both.
func resamplePair(p, q *plane, pp, qp *planePlan) {
	na := pp.a.n
	lo, hi := rowsNeeded(pp)
	for j := lo; j < hi; j++ {
		o := (pp.j0+j)*p.stride + pp.k0*p.step
		rowPair(pp.tmp[j*na:(j+1)*na], qp.tmp[j*na:(j+1)*na], p.pix[o+p.chOff[0]:], q.pix[o+q.chOff[0]:], &pp.a, p.step)
	}
	columns(pp, 1)
	columns(qp, 1)
}

// samePlaneGeometry says whether two planes are sampled alike.
func samePlaneGeometry(p, q *plane) bool {
	return p.stride == q.stride && p.step == q.step && p.sx == q.sx && p.sy == q.sy && p.bx == q.bx && p.by == q.by
}

const (
	passShift = weightBits - rowBits
	passRound = 1 << (passShift - 1)
)

// rowGray is the first pass over one row of 8-bit samples.
func rowGray(t []int32, row []byte, aw *weights) {
	wt := aw.w
	switch aw.taps {
	case 1:
		for a := range t {
			s := int(aw.start[a])
			x, w := row[s:s+1:s+1], wt[1*a:1*a+1:1*a+1]
			t[a] = (w[0]*int32(x[0]) + passRound) >> passShift
		}
	case 2:
		for a := range t {
			s := int(aw.start[a])
			x, w := row[s:s+2:s+2], wt[2*a:2*a+2:2*a+2]
			t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + passRound) >> passShift
		}
	case 3:
		for a := range t {
			s := int(aw.start[a])
			x, w := row[s:s+3:s+3], wt[3*a:3*a+3:3*a+3]
			t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + w[2]*int32(x[2]) + passRound) >> passShift
		}
	case 4:
		for a := range t {
			s := int(aw.start[a])
			x, w := row[s:s+4:s+4], wt[4*a:4*a+4:4*a+4]
			t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + w[2]*int32(x[2]) + w[3]*int32(x[3]) + passRound) >> passShift
		}
	case 5:
		for a := range t {
			s := int(aw.start[a])
			x, w := row[s:s+5:s+5], wt[5*a:5*a+5:5*a+5]
			t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + w[2]*int32(x[2]) + w[3]*int32(x[3]) + w[4]*int32(x[4]) + passRound) >> passShift
		}
	case 6:
		for a := range t {
			s := int(aw.start[a])
			x, w := row[s:s+6:s+6], wt[6*a:6*a+6:6*a+6]
			t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + w[2]*int32(x[2]) + w[3]*int32(x[3]) + w[4]*int32(x[4]) + w[5]*int32(x[5]) + passRound) >> passShift
		}
	case 7:
		for a := range t {
			s := int(aw.start[a])
			x, w := row[s:s+7:s+7], wt[7*a:7*a+7:7*a+7]
			t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + w[2]*int32(x[2]) + w[3]*int32(x[3]) + w[4]*int32(x[4]) + w[5]*int32(x[5]) + w[6]*int32(x[6]) + passRound) >> passShift
		}
	case 8:
		for a := range t {
			s := int(aw.start[a])
			x, w := row[s:s+8:s+8], wt[8*a:8*a+8:8*a+8]
			t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + w[2]*int32(x[2]) + w[3]*int32(x[3]) + w[4]*int32(x[4]) + w[5]*int32(x[5]) + w[6]*int32(x[6]) + w[7]*int32(x[7]) + passRound) >> passShift
		}
	default:
		taps := aw.taps
		for a := range t {
			s := int(aw.start[a])
			x, w := row[s:s+taps], wt[a*taps:(a+1)*taps]
			x = x[:len(w)]
			var v int32
			for k, wk := range w {
				v += wk * int32(x[k])
			}
			t[a] = (v + passRound) >> passShift
		}
	}
}

// rowStrided is rowGray for samples st bytes apart (YUYV's luma).
func rowStrided(t []int32, row []byte, aw *weights, st int) {
	taps := aw.taps
	for a := range t {
		s := int(aw.start[a]) * st
		x, w := row[s:s+(taps-1)*st+1], aw.w[a*taps:(a+1)*taps]
		var v int32
		for k, wk := range w {
			v += wk * int32(x[k*st])
		}
		t[a] = (v + passRound) >> passShift
	}
}

// rowPair is the first pass over two planes' rows at once, samples st
// bytes apart.
func rowPair(t, u []int32, p, q []byte, aw *weights, st int) {
	taps := aw.taps
	u = u[:len(t)]
	switch st {
	case 1:
		switch taps {
		case 1:
			for a := range t {
				s := int(aw.start[a])
				x, y, w := p[s:s+1:s+1], q[s:s+1:s+1], aw.w[1*a:1*a+1:1*a+1]
				t[a] = (w[0]*int32(x[0]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + passRound) >> passShift
			}
			return
		case 2:
			for a := range t {
				s := int(aw.start[a])
				x, y, w := p[s:s+2:s+2], q[s:s+2:s+2], aw.w[2*a:2*a+2:2*a+2]
				t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + w[1]*int32(y[1]) + passRound) >> passShift
			}
			return
		case 3:
			for a := range t {
				s := int(aw.start[a])
				x, y, w := p[s:s+3:s+3], q[s:s+3:s+3], aw.w[3*a:3*a+3:3*a+3]
				t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + w[2]*int32(x[2]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + w[1]*int32(y[1]) + w[2]*int32(y[2]) + passRound) >> passShift
			}
			return
		case 4:
			for a := range t {
				s := int(aw.start[a])
				x, y, w := p[s:s+4:s+4], q[s:s+4:s+4], aw.w[4*a:4*a+4:4*a+4]
				t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + w[2]*int32(x[2]) + w[3]*int32(x[3]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + w[1]*int32(y[1]) + w[2]*int32(y[2]) + w[3]*int32(y[3]) + passRound) >> passShift
			}
			return
		case 5:
			for a := range t {
				s := int(aw.start[a])
				x, y, w := p[s:s+5:s+5], q[s:s+5:s+5], aw.w[5*a:5*a+5:5*a+5]
				t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + w[2]*int32(x[2]) + w[3]*int32(x[3]) + w[4]*int32(x[4]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + w[1]*int32(y[1]) + w[2]*int32(y[2]) + w[3]*int32(y[3]) + w[4]*int32(y[4]) + passRound) >> passShift
			}
			return
		case 6:
			for a := range t {
				s := int(aw.start[a])
				x, y, w := p[s:s+6:s+6], q[s:s+6:s+6], aw.w[6*a:6*a+6:6*a+6]
				t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[1]) + w[2]*int32(x[2]) + w[3]*int32(x[3]) + w[4]*int32(x[4]) + w[5]*int32(x[5]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + w[1]*int32(y[1]) + w[2]*int32(y[2]) + w[3]*int32(y[3]) + w[4]*int32(y[4]) + w[5]*int32(y[5]) + passRound) >> passShift
			}
			return
		}
	case 4:
		switch taps {
		case 1:
			for a := range t {
				s := int(aw.start[a]) * 4
				x, y, w := p[s:s+1:s+1], q[s:s+1:s+1], aw.w[1*a:1*a+1:1*a+1]
				t[a] = (w[0]*int32(x[0]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + passRound) >> passShift
			}
			return
		case 2:
			for a := range t {
				s := int(aw.start[a]) * 4
				x, y, w := p[s:s+5:s+5], q[s:s+5:s+5], aw.w[2*a:2*a+2:2*a+2]
				t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[4]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + w[1]*int32(y[4]) + passRound) >> passShift
			}
			return
		case 3:
			for a := range t {
				s := int(aw.start[a]) * 4
				x, y, w := p[s:s+9:s+9], q[s:s+9:s+9], aw.w[3*a:3*a+3:3*a+3]
				t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[4]) + w[2]*int32(x[8]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + w[1]*int32(y[4]) + w[2]*int32(y[8]) + passRound) >> passShift
			}
			return
		case 4:
			for a := range t {
				s := int(aw.start[a]) * 4
				x, y, w := p[s:s+13:s+13], q[s:s+13:s+13], aw.w[4*a:4*a+4:4*a+4]
				t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[4]) + w[2]*int32(x[8]) + w[3]*int32(x[12]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + w[1]*int32(y[4]) + w[2]*int32(y[8]) + w[3]*int32(y[12]) + passRound) >> passShift
			}
			return
		case 5:
			for a := range t {
				s := int(aw.start[a]) * 4
				x, y, w := p[s:s+17:s+17], q[s:s+17:s+17], aw.w[5*a:5*a+5:5*a+5]
				t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[4]) + w[2]*int32(x[8]) + w[3]*int32(x[12]) + w[4]*int32(x[16]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + w[1]*int32(y[4]) + w[2]*int32(y[8]) + w[3]*int32(y[12]) + w[4]*int32(y[16]) + passRound) >> passShift
			}
			return
		case 6:
			for a := range t {
				s := int(aw.start[a]) * 4
				x, y, w := p[s:s+21:s+21], q[s:s+21:s+21], aw.w[6*a:6*a+6:6*a+6]
				t[a] = (w[0]*int32(x[0]) + w[1]*int32(x[4]) + w[2]*int32(x[8]) + w[3]*int32(x[12]) + w[4]*int32(x[16]) + w[5]*int32(x[20]) + passRound) >> passShift
				u[a] = (w[0]*int32(y[0]) + w[1]*int32(y[4]) + w[2]*int32(y[8]) + w[3]*int32(y[12]) + w[4]*int32(y[16]) + w[5]*int32(y[20]) + passRound) >> passShift
			}
			return
		}
	}
	for a := range t {
		s := int(aw.start[a]) * st
		n := (taps-1)*st + 1
		x, y, w := p[s:s+n], q[s:s+n], aw.w[a*taps:(a+1)*taps]
		y = y[:len(x)]
		var v, vv int32
		for k, wk := range w {
			v += wk * int32(x[k*st])
			vv += wk * int32(y[k*st])
		}
		t[a], u[a] = (v+passRound)>>passShift, (vv+passRound)>>passShift
	}
}

// rowRGB is the first pass over one row of interleaved RGB(A) samples.
func rowRGB(t []int32, row []byte, aw *weights, st int) {
	taps := aw.taps
	for a := 0; a < aw.n; a++ {
		s := int(aw.start[a]) * st
		x, w := row[s:s+taps*st], aw.w[a*taps:(a+1)*taps]
		var r, g, b int32
		for k, wk := range w {
			px := x[k*st : k*st+3 : k*st+3]
			r += wk * int32(px[0])
			g += wk * int32(px[1])
			b += wk * int32(px[2])
		}
		o := t[3*a : 3*a+3 : 3*a+3]
		o[0], o[1], o[2] = (r+passRound)>>passShift, (g+passRound)>>passShift, (b+passRound)>>passShift
	}
}

// columns is the second pass: each output row a weighted sum of first-pass
// rows.
func columns(pp *planePlan, nch int) {
	bw := &pp.b
	line := pp.a.n * nch
	tmp := pp.tmp
	row := func(i int) []int32 { return tmp[i*line : (i+1)*line] }
	for i := bw.lo; i < bw.hi; i++ {
		o := pp.out[i*line : (i+1)*line]
		s := int(bw.start[i])
		w := bw.w[i*bw.taps : (i+1)*bw.taps]
		switch len(w) {
		case 1:
			r0 := row(s + 0)[:len(o)]
			w0 := w[0]
			for x := range o {
				o[x] = w0 * r0[x]
			}
		case 2:
			r0, r1 := row(s + 0)[:len(o)], row(s + 1)[:len(o)]
			w0, w1 := w[0], w[1]
			for x := range o {
				o[x] = w0*r0[x] + w1*r1[x]
			}
		case 3:
			r0, r1, r2 := row(s + 0)[:len(o)], row(s + 1)[:len(o)], row(s + 2)[:len(o)]
			w0, w1, w2 := w[0], w[1], w[2]
			for x := range o {
				o[x] = w0*r0[x] + w1*r1[x] + w2*r2[x]
			}
		case 4:
			r0, r1, r2, r3 := row(s + 0)[:len(o)], row(s + 1)[:len(o)], row(s + 2)[:len(o)], row(s + 3)[:len(o)]
			w0, w1, w2, w3 := w[0], w[1], w[2], w[3]
			for x := range o {
				o[x] = w0*r0[x] + w1*r1[x] + w2*r2[x] + w3*r3[x]
			}
		case 5:
			r0, r1, r2, r3, r4 := row(s + 0)[:len(o)], row(s + 1)[:len(o)], row(s + 2)[:len(o)], row(s + 3)[:len(o)], row(s + 4)[:len(o)]
			w0, w1, w2, w3, w4 := w[0], w[1], w[2], w[3], w[4]
			for x := range o {
				o[x] = w0*r0[x] + w1*r1[x] + w2*r2[x] + w3*r3[x] + w4*r4[x]
			}
		case 6:
			r0, r1, r2, r3, r4, r5 := row(s + 0)[:len(o)], row(s + 1)[:len(o)], row(s + 2)[:len(o)], row(s + 3)[:len(o)], row(s + 4)[:len(o)], row(s + 5)[:len(o)]
			w0, w1, w2, w3, w4, w5 := w[0], w[1], w[2], w[3], w[4], w[5]
			for x := range o {
				o[x] = w0*r0[x] + w1*r1[x] + w2*r2[x] + w3*r3[x] + w4*r4[x] + w5*r5[x]
			}
		case 7:
			r0, r1, r2, r3, r4, r5, r6 := row(s + 0)[:len(o)], row(s + 1)[:len(o)], row(s + 2)[:len(o)], row(s + 3)[:len(o)], row(s + 4)[:len(o)], row(s + 5)[:len(o)], row(s + 6)[:len(o)]
			w0, w1, w2, w3, w4, w5, w6 := w[0], w[1], w[2], w[3], w[4], w[5], w[6]
			for x := range o {
				o[x] = w0*r0[x] + w1*r1[x] + w2*r2[x] + w3*r3[x] + w4*r4[x] + w5*r5[x] + w6*r6[x]
			}
		default:
			clear(o)
			for k, wk := range w {
				if wk == 0 {
					continue
				}
				r := row(s + k)[:len(o)]
				for x := range o {
					o[x] += wk * r[x]
				}
			}
		}
	}
	padRows(pp.out, line, bw.lo, bw.hi, bw.n)
}

// padRows fills rows [0, lo) and [hi, n) of a buffer of n rows of line
// elements with copies of rows lo and hi−1: the letterbox's padding, which
// repeats the image's edge.
func padRows[E any](buf []E, line, lo, hi, n int) {
	if lo >= hi {
		return
	}
	first, last := buf[lo*line:(lo+1)*line], buf[(hi-1)*line:hi*line]
	for i := 0; i < lo; i++ {
		copy(buf[i*line:(i+1)*line], first)
	}
	for i := hi; i < n; i++ {
		copy(buf[i*line:(i+1)*line], last)
	}
}

// fusedInput writes img into the input tensor through the fused pass and
// returns the region of the input that holds the image; false when img's
// type cannot be read in place (SetInput then converts it first).
func (b *Backbone) fusedInput(img image.Image, ph Photometric) (Region, bool, error) {
	fu := &b.fused
	f := &fu.frame
	if !f.describe(img) {
		return Region{}, false, nil
	}
	if f.rect.Empty() {
		return Region{}, true, fmt.Errorf("preprocess: empty image (%dx%d)", f.rect.Dx(), f.rect.Dy())
	}
	if err := fu.plan(f, b.inW, b.inH, b.inC, b.prep.Resize); err != nil {
		return Region{}, true, fmt.Errorf("preprocess: %w", err)
	}
	nplanes := len(f.planes)
	if f.col == colourGray || b.inC == 1 && f.col != colourRGB {
		nplanes = 1
	}
	resample(&f.planes[0], &fu.plans[0])
	if nplanes == 3 {
		if samePlaneGeometry(&f.planes[1], &f.planes[2]) {
			resamplePair(&f.planes[1], &f.planes[2], &fu.plans[1], &fu.plans[2])
		} else {
			resample(&f.planes[1], &fu.plans[1])
			resample(&f.planes[2], &fu.plans[2])
		}
	}
	fu.store(b, f, nplanes, ph)
	return fu.region, true, nil
}

// clamp255 clips a level to 0..255 (with comparisons: the min and max
// builtins' NaN handling costs more, and levels are never NaN here).
func clamp255(v float32) float32 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return v
}

// outScale turns the planes' fixed point into levels.
const outScale = 1.0 / (1 << (rowBits + weightBits))

// store converts the resampled planes to RGB (or gray), applies ph and
// quantizes into the input tensor, row by row.
func (fu *fused) store(b *Backbone, f *frame, nplanes int, ph Photometric) {
	w, h := b.inW, b.inH
	swap := f.rot == 90 || f.rot == 270
	gray := f.col == colourGray || nplanes == 1 && f.col != colourRGB
	if !gray && f.col != colourRGB && b.inC == 3 && (b.inType == tflite.UInt8 || b.inType == tflite.Int8) {
		fu.storeYCbCr8(b, f, ph)
		return
	}
	if cap(fu.row) < 3*w {
		fu.row = make([]float32, 3*w)
	}
	row := fu.row[:3*w]
	lo, hi := fu.tensorRows(f)
	for y := lo; y < hi; y++ {
		// Element (x, y) of a plane's output: a along the source rows, so
		// (y, x) under a quarter turn.
		idx, step := y*w, 1
		if swap {
			idx, step = y, h
		}
		switch {
		case gray:
			src := fu.plans[0].out
			studio := f.col == colourBT601
			for x := 0; x < w; x++ {
				v := float32(src[idx+x*step]) * outScale
				if studio {
					v = (v - 16) * (255.0 / 219)
				}
				v = clamp255(v)
				row[3*x], row[3*x+1], row[3*x+2] = v, v, v
			}
		case f.col == colourRGB:
			src := fu.plans[0].out
			for x := 0; x < w; x++ {
				o := 3 * (idx + x*step)
				row[3*x] = clamp255(float32(src[o]) * outScale)
				row[3*x+1] = clamp255(float32(src[o+1]) * outScale)
				row[3*x+2] = clamp255(float32(src[o+2]) * outScale)
			}
		default:
			ys, cbs, crs := fu.plans[0].out, fu.plans[1].out, fu.plans[2].out
			m := yccMatrix(f.col)
			for x := 0; x < w; x++ {
				o := idx + x*step
				yy, cb, cr := float32(ys[o]), float32(cbs[o]), float32(crs[o])
				row[3*x] = clamp255(m.y*yy + m.rv*cr + m.r0)
				row[3*x+1] = clamp255(m.y*yy + m.gu*cb + m.gv*cr + m.g0)
				row[3*x+2] = clamp255(m.y*yy + m.bu*cb + m.b0)
			}
		}
		fu.quantize(b, y, row, gray, ph)
	}
	padTensorRows(b, lo, hi)
}

// ycc is a Y'CbCr to RGB conversion on the planes' fixed point: a level is
// y·Y + rv·Cr + r0 and so on, the offsets taking the 128 of the chroma
// (and the 16 of studio-range luma) out.
type ycc struct{ y, rv, gu, gv, bu, r0, g0, b0 float32 }

func yccMatrix(col colour) ycc {
	ky, rv, gu, gv, bu := float32(1), float32(1.402), float32(-0.344136), float32(-0.714136), float32(1.772)
	y0 := float32(0)
	if col == colourBT601 {
		ky, rv, gu, gv, bu = 255.0/219, 1.596027, -0.391762, -0.812968, 2.017232
		y0 = -16 * 255.0 / 219
	}
	return ycc{y: ky * outScale, rv: rv * outScale, gu: gu * outScale, gv: gv * outScale, bu: bu * outScale,
		r0: y0 - 128*rv, g0: y0 - 128*(gu+gv), b0: y0 - 128*bu}
}

// storeYCbCr8 is store for Y'CbCr frames into an 8-bit RGB input, the
// camera path's common case, in one loop per row: conversion, the
// photometric map and the clipping of both folded into one multiply-add
// and one clamp per channel.
func (fu *fused) storeYCbCr8(b *Backbone, f *frame, ph Photometric) {
	w, h := b.inW, b.inH
	swap := f.rot == 90 || f.rot == 270
	m := yccMatrix(f.col)
	// clip(clip(v)·g + o) for g > 0 is clip(v·g + o) into [lo, hi].
	g, o := ph.gain(), ph.Offset
	lo, hi := clamp255(o), clamp255(255*g+o)
	m.y, m.rv, m.gu, m.gv, m.bu = m.y*g, m.rv*g, m.gu*g, m.gv*g, m.bu*g
	m.r0, m.g0, m.b0 = m.r0*g+o+0.5, m.g0*g+o+0.5, m.b0*g+o+0.5 // +0.5: rounding
	lo, hi = lo+0.5, hi+0.5
	var bias uint8
	if b.inType == tflite.Int8 {
		bias = 128 // int8 inputs are the uint8 levels shifted by −128
	}
	dst := unsafe.Slice((*uint8)(b.in), w*h*3)
	ys, cbs, crs := fu.plans[0].out, fu.plans[1].out, fu.plans[2].out
	rows0, rows1 := fu.tensorRows(f)
	for y := rows0; y < rows1; y++ {
		idx, step := y*w, 1
		if swap {
			idx, step = y, h
		}
		d := dst[y*w*3 : (y+1)*w*3]
		for x := 0; x < w; x++ {
			o := idx + x*step
			yy, cb, cr := m.y*float32(ys[o]), float32(cbs[o]), float32(crs[o])
			r := clampTo(yy+m.rv*cr+m.r0, lo, hi)
			gg := clampTo(yy+m.gu*cb+m.gv*cr+m.g0, lo, hi)
			bl := clampTo(yy+m.bu*cb+m.b0, lo, hi)
			p := d[3*x : 3*x+3 : 3*x+3]
			p[0], p[1], p[2] = uint8(r)-bias, uint8(gg)-bias, uint8(bl)-bias
		}
	}
	padTensorRows(b, rows0, rows1)
}

// tensorRows is the range of the input tensor's rows that hold the image;
// the rows outside it are the letterbox's padding (axis b of the planes
// runs down the tensor, or across it under a quarter turn).
func (fu *fused) tensorRows(f *frame) (lo, hi int) {
	if f.rot == 90 || f.rot == 270 {
		return fu.plans[0].a.lo, fu.plans[0].a.hi
	}
	return fu.plans[0].b.lo, fu.plans[0].b.hi
}

// padTensorRows copies the input tensor's rows lo and hi−1 over the
// padding rows before and after them, whatever the tensor's element type
// (sized from the backbone's fields: asking the interpreter allocates).
func padTensorRows(b *Backbone, lo, hi int) {
	size := 1
	if b.inType == tflite.Float32 {
		size = 4
	}
	line := b.inW * b.inC * size
	padRows(unsafe.Slice((*byte)(b.in), line*b.inH), line, lo, hi, b.inH)
}

// clampTo clips v into [lo, hi].
func clampTo(v, lo, hi float32) float32 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// quantize maps one row of RGB levels by ph and writes it into the input
// tensor's row y as its type wants it: raw levels for quantized inputs,
// (v−Mean)/Std for float ones; luma for one-channel inputs.
func (fu *fused) quantize(b *Backbone, y int, row []float32, gray bool, ph Photometric) {
	w, c := b.inW, b.inC
	gain, off := ph.gain(), ph.Offset
	identity := gain == 1 && off == 0
	if c == 1 {
		for x := 0; x < w; x++ {
			v := row[3*x]
			if !gray {
				v = 0.299*row[3*x] + 0.587*row[3*x+1] + 0.114*row[3*x+2]
			}
			row[x] = v
		}
		row = row[:w]
	}
	if !identity {
		for i, v := range row {
			row[i] = clamp255(v*gain + off)
		}
	}
	off0 := y * w * c
	switch b.inType {
	case tflite.UInt8:
		dst := unsafe.Slice((*uint8)(b.in), b.inW*b.inH*c)[off0 : off0+w*c]
		for i, v := range row[:len(dst)] {
			dst[i] = uint8(v + 0.5)
		}
	case tflite.Int8:
		dst := unsafe.Slice((*int8)(b.in), b.inW*b.inH*c)[off0 : off0+w*c]
		for i, v := range row[:len(dst)] {
			dst[i] = int8(int(v+0.5) - 128)
		}
	case tflite.Float32:
		dst := unsafe.Slice((*float32)(b.in), b.inW*b.inH*c)[off0 : off0+w*c]
		m, s := b.prep.Mean, b.prep.Std
		for i, v := range row[:len(dst)] {
			k := i % c
			dst[i] = (v - m[k]) / s[k]
		}
	}
}

// flatten draws an image of a type the fused pass cannot read into an
// RGBA buffer kept for the next frame.
func (fu *fused) flatten(img image.Image) *image.RGBA {
	b := img.Bounds()
	if fu.rgba == nil || fu.rgba.Rect.Dx() != b.Dx() || fu.rgba.Rect.Dy() != b.Dy() {
		fu.rgba = image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	}
	draw.Draw(fu.rgba, fu.rgba.Rect, img, b.Min, draw.Src)
	return fu.rgba
}

// standardSamples is about how many pixels Measure reads: enough that the
// mean and standard deviation are exact to a small fraction of a level.
const standardSamples = 16384

// Measure computes the photometric map that brings img to the target mean
// and contrast (the map Apply applies), from the luminance of a grid of
// about 16384 pixels spread over the image instead of every pixel. The
// fused preprocess applies it after resampling (SetInputWith), so no
// standardized copy of the frame is made. It allocates nothing.
func (s *Standardizer) Measure(img image.Image) Photometric {
	mean, std := s.Mean, s.Std
	if mean == 0 {
		mean = 128
	}
	if std == 0 {
		std = StandardStd
	}
	var sum, sq float64
	n := 0
	f := &s.frame
	if !f.describe(img) {
		b := img.Bounds()
		step := sampleStep(b.Dx(), b.Dy())
		for y := b.Min.Y; y < b.Max.Y; y += step {
			for x := b.Min.X; x < b.Max.X; x += step {
				r, g, bl, _ := img.At(x, y).RGBA()
				l := (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)) / 257
				sum, sq, n = sum+l, sq+l*l, n+1
			}
		}
	} else {
		r := f.rect
		p := &f.planes[0] // gray, RGB, or the luma of Y'CbCr
		step := sampleStep(r.Dx(), r.Dy())
		for y := r.Min.Y; y < r.Max.Y; y += step {
			row := p.pix[(y-p.by)*p.stride:]
			var rs, rq float64
			for x := r.Min.X; x < r.Max.X; x += step {
				o := (x-p.bx)*p.step + p.chOff[0]
				var l float64
				if p.nch == 3 {
					px := row[o : o+3 : o+3]
					l = 0.299*float64(px[0]) + 0.587*float64(px[1]) + 0.114*float64(px[2])
				} else {
					l = float64(row[o])
				}
				rs += l
				rq += l * l
				n++
			}
			sum, sq = sum+rs, sq+rq
		}
		if f.col == colourBT601 && n > 0 {
			// Studio-range luma onto 0..255: (Y−16)·255/219.
			k := 255.0 / 219
			m := sum / float64(n)
			sq = k * k * (sq - 2*16*sum + 256*float64(n))
			sum = k * (m - 16) * float64(n)
		}
	}
	if n == 0 {
		return Photometric{}
	}
	mu := sum / float64(n)
	sigma := math.Sqrt(max(sq/float64(n)-mu*mu, 0))
	k := gain(std, sigma, s.GainBound())
	return Photometric{Gain: float32(k), Offset: float32(mean - mu*k)}
}

// sampleStep spaces Measure's grid so that it reads about standardSamples
// pixels of a w×h image.
func sampleStep(w, h int) int {
	return max(1, int(math.Sqrt(float64(w)*float64(h)/standardSamples)))
}
