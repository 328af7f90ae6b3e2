package padim

import (
	"fmt"
	"image"
	"math"

	"gonum.org/v1/gonum/blas/gonum"
)

// DefaultSigma is the PaDiM blur: σ = 4 pixels at 224 pixels.
const DefaultSigma = 4.0

// Rect is a sub-rectangle of the grid in grid-fractional coordinates: (0,0)
// is the grid's top-left corner, (1,1) its bottom-right one.
type Rect struct {
	X0, Y0, X1, Y1 float64
}

// AnomalyMapOptions configures an AnomalyMap.
type AnomalyMapOptions struct {
	// GridW, GridH are the distance grid's size (the State's).
	GridW, GridH int
	// OutW, OutH are the map's size: the original image's.
	OutW, OutH int
	// Sigma is the Gaussian blur's standard deviation in pixels at 224
	// pixels of the output's shorter side; it scales as
	// Sigma×min(OutW,OutH)/224. 0: no blur. PaDiM uses DefaultSigma.
	Sigma float64
	// Region is the part of the grid that holds the image, e.g. when the
	// image was letterboxed into the square network input: only distances
	// inside it are used, stretched onto the whole output. The zero value
	// is the whole grid.
	Region Rect
}

// band is a banded linear operator from a grid axis to an output axis:
// out[o] = Σ_t w[o*width+t]·in[start[o]+t].
type band struct {
	start []int
	w     []float32
	width int
}

// AnomalyMap renders distance grids into anomaly maps: bilinear upsampling
// (half-pixel centres, as torch's align_corners=False) to the output size,
// then a separable Gaussian blur with reflected borders (as anomalib). Both
// steps are linear and separable, so they are precomputed per axis into one
// banded operator; a frame then costs two banded passes instead of a wide
// blur over every pixel. It reuses its buffers and is not safe for
// concurrent use.
type AnomalyMap struct {
	opts     AnomalyMapOptions
	x, y     band
	rows     [2]int    // grid rows the vertical operator reads: [lo, hi)
	tmp      []float32 // GridH×OutW, horizontally resampled rows
	blas     gonum.Implementation
	sigmaPx  float64
	kernelSz int
}

// NewAnomalyMap precomputes the operators for one grid and output size.
func NewAnomalyMap(opts AnomalyMapOptions) (*AnomalyMap, error) {
	if opts.GridW <= 0 || opts.GridH <= 0 || opts.OutW <= 0 || opts.OutH <= 0 {
		return nil, fmt.Errorf("anomaly map: grid %dx%d, output %dx%d, want positive sizes", opts.GridW, opts.GridH, opts.OutW, opts.OutH)
	}
	if opts.Sigma < 0 || math.IsNaN(opts.Sigma) || math.IsInf(opts.Sigma, 0) {
		return nil, fmt.Errorf("anomaly map: sigma %g, want ≥ 0", opts.Sigma)
	}
	r := opts.Region
	if r == (Rect{}) {
		r = Rect{0, 0, 1, 1}
		opts.Region = r
	}
	if !(0 <= r.X0 && r.X0 < r.X1 && r.X1 <= 1 && 0 <= r.Y0 && r.Y0 < r.Y1 && r.Y1 <= 1) {
		return nil, fmt.Errorf("anomaly map: region %+v, want 0 ≤ X0 < X1 ≤ 1 and 0 ≤ Y0 < Y1 ≤ 1", r)
	}
	m := &AnomalyMap{opts: opts}
	m.sigmaPx = opts.Sigma * float64(min(opts.OutW, opts.OutH)) / 224
	kernel := gaussianKernel(m.sigmaPx)
	m.kernelSz = len(kernel)
	m.x = makeBand(opts.GridW, opts.OutW, r.X0, r.X1, kernel)
	m.y = makeBand(opts.GridH, opts.OutH, r.Y0, r.Y1, kernel)
	m.rows = [2]int{opts.GridH, 0}
	for _, s := range m.y.start {
		m.rows[0] = min(m.rows[0], s)
		m.rows[1] = max(m.rows[1], s+m.y.width)
	}
	m.tmp = make([]float32, opts.GridH*opts.OutW)
	return m, nil
}

// SigmaPixels is the blur's σ at the output size.
func (m *AnomalyMap) SigmaPixels() float64 { return m.sigmaPx }

// Size is the output's width and height.
func (m *AnomalyMap) Size() (w, h int) { return m.opts.OutW, m.opts.OutH }

// Render writes the anomaly map of one distance grid (GridH×GridW, row
// major, from Scorer.Score) into dst (OutH×OutW, row major) and returns the
// image score, the map's maximum.
func (m *AnomalyMap) Render(dst, dist []float32) (float32, error) {
	o := &m.opts
	if len(dist) != o.GridW*o.GridH {
		return 0, fmt.Errorf("anomaly map: distance grid has %d values, want %dx%d", len(dist), o.GridW, o.GridH)
	}
	if len(dst) != o.OutW*o.OutH {
		return 0, fmt.Errorf("anomaly map: destination has %d values, want %dx%d", len(dst), o.OutW, o.OutH)
	}
	// Horizontal pass: every grid row the vertical pass reads, to OutW.
	bw := m.x.width
	for gy := m.rows[0]; gy < m.rows[1]; gy++ {
		src := dist[gy*o.GridW : (gy+1)*o.GridW]
		out := m.tmp[gy*o.OutW : (gy+1)*o.OutW]
		for ox := range out {
			s := m.x.start[ox]
			w := m.x.w[ox*bw : ox*bw+bw : ox*bw+bw]
			in := src[s : s+bw : s+bw]
			var v float32
			for t, wt := range w {
				v += wt * in[t]
			}
			out[ox] = v
		}
	}
	// Vertical pass: each output row is a short weighted sum of whole
	// resampled rows (contiguous axpys).
	bh := m.y.width
	best := float32(math.Inf(-1))
	for oy := range o.OutH {
		row := dst[oy*o.OutW : (oy+1)*o.OutW]
		clear(row)
		s := m.y.start[oy]
		for t, wt := range m.y.w[oy*bh : oy*bh+bh] {
			if wt != 0 {
				m.blas.Saxpy(o.OutW, wt, m.tmp[(s+t)*o.OutW:(s+t+1)*o.OutW], 1, row, 1)
			}
		}
		for _, v := range row {
			best = max(best, v)
		}
	}
	return best, nil
}

// gaussianKernel is anomalib's: size 2⌊4σ+0.5⌋+1, normalized. σ=0 gives
// the identity.
func gaussianKernel(sigma float64) []float64 {
	if sigma == 0 {
		return []float64{1}
	}
	r := int(4*sigma + 0.5)
	k := make([]float64, 2*r+1)
	var sum float64
	for i := range k {
		x := float64(i - r)
		k[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	return k
}

// reflect maps an index onto [0, n) as torch's "reflect" padding does
// (mirroring without repeating the edge), repeatedly if needed.
func reflect(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// makeBand builds blur∘bilinear for one axis: n grid cells of which
// [r0, r1] (fractions) map onto out output pixels.
func makeBand(n, out int, r0, r1 float64, kernel []float64) band {
	// Cells whose centres lie inside the region; sampling is clamped to
	// them so cells outside (letterbox padding) never leak in.
	kmin := int(math.Ceil(r0*float64(n) - 0.5))
	kmax := int(math.Floor(r1*float64(n) - 0.5))
	if kmin > kmax {
		c := min(max(int((r0+r1)/2*float64(n)), 0), n-1)
		kmin, kmax = c, c
	}
	kmin, kmax = max(kmin, 0), min(kmax, n-1)
	up := make([]float64, out*n) // bilinear, dense
	for o := range out {
		f := (float64(o) + 0.5) / float64(out)
		g := (r0+f*(r1-r0))*float64(n) - 0.5
		g = min(max(g, float64(kmin)), float64(kmax))
		k0 := int(math.Floor(g))
		t := g - float64(k0)
		k1 := min(k0+1, kmax)
		up[o*n+k0] += 1 - t
		up[o*n+k1] += t
	}
	r := len(kernel) / 2
	full := make([]float64, out*n)
	for o := range out {
		dst := full[o*n : o*n+n]
		for t, w := range kernel {
			src := up[reflect(o+t-r, out)*n:]
			for k := range dst {
				dst[k] += w * src[k]
			}
		}
	}
	b := band{start: make([]int, out)}
	lo, hi := make([]int, out), make([]int, out)
	for o := range out {
		row := full[o*n : o*n+n]
		lo[o], hi[o] = n, -1
		for k, v := range row {
			if v != 0 {
				lo[o] = min(lo[o], k)
				hi[o] = max(hi[o], k)
			}
		}
		if hi[o] < 0 {
			lo[o], hi[o] = 0, 0
		}
		b.width = max(b.width, hi[o]-lo[o]+1)
	}
	b.w = make([]float32, out*b.width)
	for o := range out {
		s := min(lo[o], n-b.width) // keep the window inside the grid
		b.start[o] = s
		for t := range b.width {
			b.w[o*b.width+t] = float32(full[o*n+s+t])
		}
	}
	return b
}

// RegionOf is the Rect of the sub-rectangle r of a w×h network input: the
// part an image occupies after being letterboxed into the input.
func RegionOf(r image.Rectangle, w, h int) Rect {
	return Rect{
		X0: float64(r.Min.X) / float64(w), Y0: float64(r.Min.Y) / float64(h),
		X1: float64(r.Max.X) / float64(w), Y1: float64(r.Max.Y) / float64(h),
	}
}
