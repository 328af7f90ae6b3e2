package padim

import (
	"math"
	"math/rand/v2"
)

// featureGen makes embeddings that look like dequantized ReLU6 backbone
// features: correlated through a few latent factors, sparse (many zeros),
// quantized to the backbone's step of ~0.0235 and clipped at 6, with the
// statistics varying from position to position.
type featureGen struct {
	p, d, k int
	w       []float64 // per position d×k loadings
	bias    []float64 // per position d
	r       *rand.Rand
}

func newFeatureGen(p, d int, seed uint64) *featureGen {
	const k = 12
	g := &featureGen{p: p, d: d, k: k, w: make([]float64, p*d*k), bias: make([]float64, p*d), r: rand.New(rand.NewPCG(seed, 7))}
	for i := range g.w {
		g.w[i] = g.r.NormFloat64() * 0.4
	}
	for i := range g.bias {
		g.bias[i] = g.r.Float64()*1.5 - 0.3
	}
	return g
}

// next fills e (P×d) with one image; shift moves the latent factors, which
// is how an anomaly shows up.
func (g *featureGen) next(e []float32, shift float64) {
	z := make([]float64, g.k)
	for q := range g.p {
		for j := range z {
			z[j] = g.r.NormFloat64() + shift
		}
		for i := range g.d {
			v := g.bias[q*g.d+i] + 0.15*g.r.NormFloat64()
			wq := g.w[(q*g.d+i)*g.k : (q*g.d+i+1)*g.k]
			for j, zj := range z {
				v += wq[j] * zj
			}
			v = math.Min(math.Max(v, 0), 6)
			e[q*g.d+i] = float32(math.Round(v/0.0235) * 0.0235)
		}
	}
}

func relDiff(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}
