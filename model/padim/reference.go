package padim

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// ReferenceDistances scores one embedding against s the plain way: each
// position's packed float32 inverse is unpacked into a full float64 matrix
// and xᵀAx is a double loop in float64. It exists to check Scorer (which
// must agree within 1e-3 relative); it allocates and is slow.
func ReferenceDistances(s *State, emb []float32) ([]float64, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if len(emb) != len(s.Mean) {
		return nil, fmt.Errorf("reference: embedding has %d values, want %d", len(emb), len(s.Mean))
	}
	d, tri := s.D, packedLen(s.D)
	a := make([]float64, d*d)
	x := make([]float64, d)
	out := make([]float64, s.Positions())
	for q := range out {
		pk := s.InvCov[q*tri : q*tri+tri]
		k := 0
		for i := range d {
			for j := i; j < d; j++ {
				a[i*d+j] = float64(pk[k])
				a[j*d+i] = float64(pk[k])
				k++
			}
		}
		for i := range d {
			x[i] = float64(emb[q*d+i]) - float64(s.Mean[q*d+i])
		}
		var v float64
		for i := range d {
			for j := range d {
				v += x[i] * a[i*d+j] * x[j]
			}
		}
		out[q] = math.Sqrt(max(v, 0))
	}
	return out, nil
}

// Reference is a float64 PaDiM fitted the textbook way from all embeddings
// held in memory (two-pass mean and covariance, full inverse matrices). It
// exists to check the streaming float32 path end to end; it needs
// P×d²×8 bytes (250 MB at d=100 on 56×56).
type Reference struct {
	gridW, d int
	mean     [][]float64
	inv      []*mat.SymDense
}

// FitReference fits a Reference from embeddings of P×d values each.
func FitReference(embs [][]float32, gridH, gridW, d int, eps float64) (*Reference, error) {
	if len(embs) < 2 {
		return nil, fmt.Errorf("reference fit: %d embeddings, need at least 2", len(embs))
	}
	p := gridH * gridW
	for i, e := range embs {
		if len(e) != p*d {
			return nil, fmt.Errorf("reference fit: embedding %d has %d values, want %d", i, len(e), p*d)
		}
	}
	r := &Reference{gridW: gridW, d: d, mean: make([][]float64, p), inv: make([]*mat.SymDense, p)}
	n := float64(len(embs))
	for q := range p {
		mu := make([]float64, d)
		for _, e := range embs {
			for i := range d {
				mu[i] += float64(e[q*d+i])
			}
		}
		for i := range mu {
			mu[i] /= n
		}
		cov := mat.NewSymDense(d, nil)
		for i := range d {
			for j := i; j < d; j++ {
				var c float64
				for _, e := range embs {
					c += (float64(e[q*d+i]) - mu[i]) * (float64(e[q*d+j]) - mu[j])
				}
				c /= n - 1
				if i == j {
					c += eps
				}
				cov.SetSym(i, j, c)
			}
		}
		var chol mat.Cholesky
		if !chol.Factorize(cov) {
			return nil, fmt.Errorf("reference fit: position (y=%d, x=%d) not positive definite", q/gridW, q%gridW)
		}
		inv := mat.NewSymDense(d, nil)
		if err := chol.InverseTo(inv); err != nil {
			return nil, fmt.Errorf("reference fit: position (y=%d, x=%d): %w", q/gridW, q%gridW, err)
		}
		r.mean[q], r.inv[q] = mu, inv
	}
	return r, nil
}

// Distances returns the Mahalanobis distance of each position of emb.
func (r *Reference) Distances(emb []float32) ([]float64, error) {
	d := r.d
	if len(emb) != len(r.mean)*d {
		return nil, fmt.Errorf("reference: embedding has %d values, want %d", len(emb), len(r.mean)*d)
	}
	out := make([]float64, len(r.mean))
	x := mat.NewVecDense(d, nil)
	for q := range out {
		for i := range d {
			x.SetVec(i, float64(emb[q*d+i])-r.mean[q][i])
		}
		out[q] = math.Sqrt(max(mat.Inner(x, r.inv[q], x), 0))
	}
	return out, nil
}
