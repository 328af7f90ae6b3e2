package model

import (
	"fmt"

	"github.com/inspectd/inspectd/model/padim"
)

// scale is one level of the detector: an embedder over the backbone's taps
// (with its pooling: cells of Pool×Pool finest-tap positions), a Gaussian
// per position of its grid, a scorer, the per-position standardization of
// its distances and its weight in the anomaly map. A detector is a list of
// scales; the first, the patch scale, sets the map's grid (pooled only when
// the memory budget asks). Coarser ones, like the context scale, are
// upsampled onto it.
//
// With tiles, each frame gives several views (network inputs); a scale
// embeds each view into its own block, and its Gaussians cover views×grid
// positions: the state's grid is the views' grids stacked vertically.
type scale struct {
	emb   *padim.Embedder
	views int
	// weight multiplies the scale's (standardized) distances in the map;
	// the patch scale's is 1.
	weight float32
	state  *padim.State
	scorer *padim.Scorer
	// zMean and zInvStd standardize the distances per position; nil: the
	// raw distances are used.
	zMean, zInvStd []float32

	vec  []float32 // embedding of the last frame, view after view
	dist []float32 // raw distances of the last frame

	// up renders one view's distances onto the part of the patch grid its
	// cells cover (coverH×coverW from the top left); nil for a scale on the
	// patch grid itself. The patch grid's last rows and columns that no
	// whole cell covers take the nearest value.
	up             *padim.AnomalyMap
	z, fine        []float32
	coverH, coverW int
	fineH, fineW   int
}

// newScale prepares a scale over the taps for views views and a patch grid
// of fineH×fineW per view; channels nil picks d at random with seed. A
// scale whose grid equals the patch grid (or fineH, fineW ≤ 0) is the
// patch scale. The state comes later (fit or file).
func newScale(taps []padim.TapShape, pool, d int, seed uint64, channels []int32, weight float64, views, fineH, fineW int) (*scale, error) {
	if !(weight > 0 && weight <= maxContextWeight) {
		return nil, fmt.Errorf("weight %g, want above 0 and at most %d", weight, maxContextWeight)
	}
	emb, err := padim.NewEmbedder(padim.EmbedderOptions{Taps: taps, D: d, Seed: seed, Channels: channels, Pool: pool})
	if err != nil {
		return nil, err
	}
	views = max(views, 1)
	if fineH <= 0 || fineW <= 0 {
		fineH, fineW = emb.GridH(), emb.GridW()
	}
	s := &scale{emb: emb, views: views, weight: float32(weight), vec: make([]float32, views*emb.Len()),
		dist: make([]float32, views*emb.Positions()), fineH: fineH, fineW: fineW}
	if emb.GridH() == fineH && emb.GridW() == fineW {
		return s, nil
	}
	// The cells cover whole finest-tap positions from the top left; the
	// patch grid spans all of them, pooled when the budget is small.
	th, tw := emb.FineGrid()
	s.coverH = cover(emb.GridH()*emb.Pool(), th, fineH)
	s.coverW = cover(emb.GridW()*emb.Pool(), tw, fineW)
	if s.up, err = padim.NewAnomalyMap(padim.AnomalyMapOptions{GridW: emb.GridW(), GridH: emb.GridH(), OutW: s.coverW, OutH: s.coverH}); err != nil {
		return nil, err
	}
	s.z, s.fine = make([]float32, emb.Positions()), make([]float32, s.coverH*s.coverW)
	return s, nil
}

// cover converts the first covered of total finest-tap positions into
// positions of a patch grid of n that spans all total (rounded, at least 1).
func cover(covered, total, n int) int {
	return max(1, min(n, (covered*n+total/2)/total))
}

// positions is the number of Gaussians: views × grid.
func (s *scale) positions() int { return s.views * s.emb.Positions() }

// embedView embeds view v of the last backbone outputs.
func (s *scale) embedView(v int, fmaps []padim.FeatureMap) error {
	n := s.emb.Len()
	return s.emb.Embed(s.vec[v*n:(v+1)*n], fmaps)
}

// setState binds a fitted or loaded state and starts its scorer.
func (s *scale) setState(st *padim.State, so padim.ScorerOptions) error {
	if st.GridH != s.views*s.emb.GridH() || st.GridW != s.emb.GridW() || st.D != s.emb.D() {
		return fmt.Errorf("state is %dx%d d=%d, want %dx%d d=%d", st.GridH, st.GridW, st.D, s.views*s.emb.GridH(), s.emb.GridW(), s.emb.D())
	}
	sc, err := padim.NewScorerWith(st, so)
	if err != nil {
		return err
	}
	if s.scorer != nil {
		s.scorer.Close()
	}
	s.state, s.scorer = st, sc
	return nil
}

// precision names how the scale's scorer scores (Info.Precision).
func (s *scale) precision() string {
	if s.scorer != nil && s.scorer.Half() {
		return "float16"
	}
	return "float32"
}

// score computes the raw distances of the last embedding into s.dist.
func (s *scale) score() error { return s.scorer.Score(s.dist, s.vec) }

// addTo adds weight × the distances dist (one per position of this
// scale), standardized by mean and invStd when those are set, onto the
// patch grid grid (views × fineH×fineW); with set it writes instead of
// adding (the first scale).
func (s *scale) addTo(grid, dist, mean, invStd []float32, weight float32, set bool) error {
	if s.up == nil {
		for i, v := range dist {
			if mean != nil {
				v = (v - mean[i]) * invStd[i]
			}
			if set {
				grid[i] = weight * v
			} else {
				grid[i] += weight * v
			}
		}
		return nil
	}
	p, fp := s.emb.Positions(), s.fineH*s.fineW
	for v := range s.views {
		for i, x := range dist[v*p : (v+1)*p] {
			if mean != nil {
				s.z[i] = weight * (x - mean[v*p+i]) * invStd[v*p+i]
			} else {
				s.z[i] = weight * x
			}
		}
		if _, err := s.up.Render(s.fine, s.z); err != nil {
			return err
		}
		g := grid[v*fp : (v+1)*fp]
		for y := range s.fineH {
			cy := min(y, s.coverH-1)
			src := s.fine[cy*s.coverW : (cy+1)*s.coverW]
			dst := g[y*s.fineW : (y+1)*s.fineW]
			for x := range s.fineW {
				val := src[min(x, s.coverW-1)]
				if set {
					dst[x] = val
				} else {
					dst[x] += val
				}
			}
		}
	}
	return nil
}

// bytes is the size of the scale's scoring state.
func (s *scale) bytes() int64 { return padim.StateBytes(s.positions(), s.emb.D()) }

func (s *scale) close() {
	if s.scorer != nil {
		s.scorer.Close()
	}
}
