package padim

import "github.com/x448/float16"

// HalfSupported says whether a Scorer can score with half-precision
// inverse covariances on this CPU (ScorerOptions.Half): x86-64 with AVX2,
// FMA and F16C. Elsewhere the conversions would cost more than the bytes
// saved.
func HalfSupported() bool { return cpuHasHalf }

// halfInv holds a State's inverse covariances for scoring in half the
// bytes: PaDiM scoring streams every position's d(d+1)/2 values once per
// frame (64.6 MB at d = 100 on 56×56), which on a small box is bound by
// memory bandwidth, not arithmetic. The diagonal stays float32; each row's
// off-diagonal values are rounded to the nearest IEEE 754 binary16 (11
// significant bits, relative error ≤ 2⁻¹¹) and zero-padded to a multiple
// of 8 so the kernel needs no tail. The inverse covariances are bounded by
// 1/ε (ε = 0.01: 100), far inside binary16's range (65504); values below
// its smallest normal (6.1e-5) lose relative precision but weigh nothing
// beside the rest of their row. Measured on the four data sets' models:
// distances within 0.19% of float32's for Gaussian samples of each
// position's own covariance (worst of every 97th position).
type halfInv struct {
	off    []uint16  // P × stride halves
	diag   []float32 // P × d
	stride int       // halves per position
}

// halfRowLen is row i's padded length of off-diagonal values for d.
func halfRowLen(d, i int) int { return (d - 1 - i + 7) &^ 7 }

func newHalfInv(s *State) *halfInv {
	d, p, tri := s.D, s.Positions(), packedLen(s.D)
	stride := 0
	for i := range d {
		stride += halfRowLen(d, i)
	}
	// 8 halves beyond the last position keep &off[q*stride] valid when a
	// position has no off-diagonal values (d = 1).
	h := &halfInv{off: make([]uint16, p*stride+8), diag: make([]float32, p*d), stride: stride}
	for q := range p {
		a := s.InvCov[q*tri : (q+1)*tri]
		o := h.off[q*stride:]
		src, dst := 0, 0
		for i := range d {
			n := d - i
			h.diag[q*d+i] = a[src]
			for j, v := range a[src+1 : src+n] {
				o[dst+j] = uint16(float16.Fromfloat32(v))
			}
			src += n
			dst += halfRowLen(d, i)
		}
	}
	return h
}

// bytes is the memory the half-precision copy holds.
func (h *halfInv) bytes() int64 { return int64(len(h.off))*2 + int64(len(h.diag))*4 }
