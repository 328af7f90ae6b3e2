package align

import (
	"math"
	"math/cmplx"

	"gonum.org/v1/gonum/dsp/fourier"
)

// phaseCorr finds translations between images of at most n×n pixels by
// phase correlation: the inverse transform of the normalized cross-power
// spectrum peaks at the shift. Both images have their mean removed and a
// Hann window over their own extent (so that their borders do not
// correlate), and are zero-padded to n×n. It reuses its buffers.
type phaseCorr struct {
	n    int
	fft  *fourier.CmplxFFT
	ref  []complex128 // conjugate spectrum of the reference
	buf  []complex128 // n×n work array
	col  []complex128 // one column
	colT []complex128
	surf []float32 // correlation surface
	winX []float32
	winY []float32
}

func newPhaseCorr(n int) *phaseCorr {
	return &phaseCorr{n: n, fft: fourier.NewCmplxFFT(n), ref: make([]complex128, n*n), buf: make([]complex128, n*n),
		col: make([]complex128, n), colT: make([]complex128, n), surf: make([]float32, n*n)}
}

// hann fills w (length m) with a Hann window.
func hann(w []float32) {
	m := len(w)
	for i := range w {
		w[i] = float32(0.5 - 0.5*math.Cos(2*math.Pi*(float64(i)+0.5)/float64(m)))
	}
}

// load writes g, mean removed and windowed, into buf and transforms it.
func (p *phaseCorr) load(g *Gray32) {
	n := p.n
	clear(p.buf)
	if cap(p.winX) < g.W {
		p.winX = make([]float32, g.W)
	}
	if cap(p.winY) < g.H {
		p.winY = make([]float32, g.H)
	}
	wx, wy := p.winX[:g.W], p.winY[:g.H]
	hann(wx)
	hann(wy)
	var mean float64
	for _, v := range g.Pix {
		mean += float64(v)
	}
	m := float32(mean / float64(len(g.Pix)))
	for y := 0; y < min(g.H, n); y++ {
		row := g.Pix[y*g.W:]
		out := p.buf[y*n:]
		for x := 0; x < min(g.W, n); x++ {
			out[x] = complex(float64((row[x]-m)*wx[x]*wy[y]), 0)
		}
	}
	p.fft2(false)
}

// fft2 transforms buf in place (inverse: unnormalized inverse).
func (p *phaseCorr) fft2(inverse bool) {
	n := p.n
	step := func(dst, src []complex128) {
		if inverse {
			p.fft.Sequence(dst, src)
		} else {
			p.fft.Coefficients(dst, src)
		}
	}
	for y := 0; y < n; y++ {
		row := p.buf[y*n : (y+1)*n]
		copy(p.col, row)
		step(row, p.col)
	}
	for x := 0; x < n; x++ {
		for y := 0; y < n; y++ {
			p.col[y] = p.buf[y*n+x]
		}
		step(p.colT, p.col)
		for y := 0; y < n; y++ {
			p.buf[y*n+x] = p.colT[y]
		}
	}
}

// setReference stores the reference's conjugate spectrum.
func (p *phaseCorr) setReference(g *Gray32) {
	p.load(g)
	for i, v := range p.buf {
		p.ref[i] = cmplx.Conj(v)
	}
}

// peak is a translation hypothesis: the frame's content sits at the
// reference's plus (DX, DY) pixels of the padded arrays; Height is the
// correlation peak (1 for identical images).
type peak struct {
	DX, DY, Height float64
}

// correlate returns up to k peaks of the correlation of g with the
// reference, highest first, into dst.
func (p *phaseCorr) correlate(dst []peak, g *Gray32, k int) []peak {
	p.load(g)
	for i, v := range p.buf {
		c := v * p.ref[i]
		if a := cmplx.Abs(c); a > 1e-9 {
			p.buf[i] = c / complex(a, 0)
		} else {
			p.buf[i] = 0
		}
	}
	p.fft2(true)
	n := p.n
	norm := float32(1 / float64(n*n))
	for i, v := range p.buf {
		p.surf[i] = float32(real(v)) * norm
	}
	return p.peaks(dst[:0], k)
}

// peaks picks the k highest local maxima (3×3, wrapping) of the surface,
// refined to sub-pixel by a parabola through each axis' neighbours.
func (p *phaseCorr) peaks(dst []peak, k int) []peak {
	n := p.n
	s := p.surf
	at := func(x, y int) float32 { return s[((y+n)%n)*n+(x+n)%n] }
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			v := s[y*n+x]
			if len(dst) == k && v <= float32(dst[k-1].Height) {
				continue
			}
			local := true
			for dy := -1; dy <= 1 && local; dy++ {
				for dx := -1; dx <= 1; dx++ {
					if (dx != 0 || dy != 0) && at(x+dx, y+dy) > v {
						local = false
						break
					}
				}
			}
			if !local {
				continue
			}
			q := peak{DX: float64(x) + parabola(at(x-1, y), v, at(x+1, y)), DY: float64(y) + parabola(at(x, y-1), v, at(x, y+1)), Height: float64(v)}
			// Shifts beyond half the array wrap to negative ones.
			if q.DX >= float64(n)/2 {
				q.DX -= float64(n)
			}
			if q.DY >= float64(n)/2 {
				q.DY -= float64(n)
			}
			i := len(dst)
			if i < k {
				dst = append(dst, q)
			} else {
				i = k - 1
				dst[i] = q
			}
			for ; i > 0 && dst[i].Height > dst[i-1].Height; i-- {
				dst[i], dst[i-1] = dst[i-1], dst[i]
			}
		}
	}
	return dst
}

// parabola is the offset of the vertex of the parabola through (−1, a),
// (0, b), (1, c), within ±0.5.
func parabola(a, b, c float32) float64 {
	d := float64(a - 2*b + c)
	if d >= 0 {
		return 0
	}
	return min(max(0.5*float64(a-c)/d, -0.5), 0.5)
}
