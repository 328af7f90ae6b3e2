package model

import (
	"fmt"
	"strconv"

	"github.com/inspectd/inspectd/model/padim"
)

// contextScale is a second Gaussian per position, over the embedding
// average-pooled into large cells (Options.ContextPool). A fine patch sees a
// few dozen pixels, so a defect that is a whole region of another finish
// (uneven grinding, a discoloured area) looks normal patch by patch and
// lights up only along its border. Averaging over a cell cancels the
// patch-to-patch noise that a shift shared by the whole cell survives, so
// the coarse Gaussian sees such regions. Its distances are standardized per
// position like the fine ones, upsampled bilinearly onto the fine grid and
// added: the anomaly map is the sum of both scales' standardized distances.
type contextScale struct {
	pool         int // cell size in fine-grid positions
	fineH, fineW int
	d            int
	state        *padim.State
	scorer       *padim.Scorer
	// zMean and zInvStd standardize the coarse distances per position.
	zMean, zInvStd []float32

	vec  []float32 // pooled embedding
	dist []float32 // coarse distances of the last score
	z    []float32 // standardized coarse distances
	up   *padim.AnomalyMap
	fine []float32 // z upsampled onto the fine grid
}

// Tensors and metadata key of the context scale in a model file.
const (
	tensorContextMean      = "context_mean"
	tensorContextInvCov    = "context_inv_cov"
	tensorContextDistMean  = "context_dist_mean"
	tensorContextDistInvSD = "context_dist_inv_std"
	metaContextPool        = "context_pool"
)

// newContextScale prepares the buffers for a fine grid of fineH×fineW
// positions of d features pooled by pool; the state comes later (fit or
// file).
func newContextScale(fineH, fineW, d, pool int) (*contextScale, error) {
	if pool < 2 || fineH/pool < 1 || fineW/pool < 1 {
		return nil, fmt.Errorf("context scale: cells of %d positions do not fit a %dx%d grid at least once, or are not larger than one position", pool, fineH, fineW)
	}
	gh, gw := fineH/pool, fineW/pool
	up, err := padim.NewAnomalyMap(padim.AnomalyMapOptions{GridW: gw, GridH: gh, OutW: fineW, OutH: fineH})
	if err != nil {
		return nil, err
	}
	return &contextScale{pool: pool, fineH: fineH, fineW: fineW, d: d,
		vec: make([]float32, gh*gw*d), dist: make([]float32, gh*gw), z: make([]float32, gh*gw),
		up: up, fine: make([]float32, fineH*fineW)}, nil
}

// gridH and gridW are the coarse grid's size.
func (c *contextScale) gridH() int { return c.fineH / c.pool }
func (c *contextScale) gridW() int { return c.fineW / c.pool }

// pooled averages the fine embedding into c.vec.
func (c *contextScale) pooled(vec []float32) []float32 {
	padim.AvgPool(c.vec, vec, c.fineH, c.fineW, c.d, c.pool)
	return c.vec
}

// setState binds a fitted or loaded state and starts its scorer.
func (c *contextScale) setState(s *padim.State, workers int) error {
	if s.GridH != c.gridH() || s.GridW != c.gridW() || s.D != c.d {
		return fmt.Errorf("context scale: state is %dx%d d=%d, want %dx%d d=%d", s.GridH, s.GridW, s.D, c.gridH(), c.gridW(), c.d)
	}
	sc, err := padim.NewScorer(s, workers)
	if err != nil {
		return fmt.Errorf("context scale: %w", err)
	}
	c.state, c.scorer = s, sc
	return nil
}

// score computes the coarse distances of one fine embedding into c.dist.
func (c *contextScale) score(vec []float32) error {
	return c.scorer.Score(c.dist, c.pooled(vec))
}

// addTo adds the standardized coarse distances dist (one per coarse
// position), upsampled to the fine grid, to fine.
func (c *contextScale) addTo(fine, dist []float32) error {
	for i, v := range dist {
		c.z[i] = (v - c.zMean[i]) * c.zInvStd[i]
	}
	if _, err := c.up.Render(c.fine, c.z); err != nil {
		return err
	}
	for i, v := range c.fine {
		fine[i] += v
	}
	return nil
}

// bytes is the size of the coarse scoring state.
func (c *contextScale) bytes() int64 { return padim.StateBytes(c.gridH()*c.gridW(), c.d) }

func (c *contextScale) close() {
	if c.scorer != nil {
		c.scorer.Close()
	}
}

// save adds the context scale's tensors and pool factor to a model file.
func (c *contextScale) save(m *padim.Model) {
	p := c.gridH() * c.gridW()
	if m.Tensors == nil {
		m.Tensors = map[string]padim.Tensor{}
	}
	m.Tensors[tensorContextMean] = padim.Tensor{Shape: []int{c.gridH(), c.gridW(), c.d}, Data: c.state.Mean}
	m.Tensors[tensorContextInvCov] = padim.Tensor{Shape: []int{c.gridH(), c.gridW(), len(c.state.InvCov) / p}, Data: c.state.InvCov}
	m.Tensors[tensorContextDistMean] = padim.Tensor{Shape: []int{p}, Data: c.zMean}
	m.Tensors[tensorContextDistInvSD] = padim.Tensor{Shape: []int{p}, Data: c.zInvStd}
	m.Meta.Extra[metaContextPool] = strconv.Itoa(c.pool)
}

// loadContextScale restores the context scale of a model file, or returns
// nil when the file has none. Missing or mis-sized tensors are errors
// naming them.
func loadContextScale(pm *padim.Model, workers int) (*contextScale, error) {
	v, ok := pm.Meta.Extra[metaContextPool]
	if !ok {
		for _, n := range []string{tensorContextMean, tensorContextInvCov, tensorContextDistMean, tensorContextDistInvSD} {
			if _, ok := pm.Tensors[n]; ok {
				return nil, fmt.Errorf("tensor %s present but metadata %s missing", n, metaContextPool)
			}
		}
		return nil, nil
	}
	pool, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("metadata %s %q: want an integer", metaContextPool, v)
	}
	c, err := newContextScale(pm.State.GridH, pm.State.GridW, pm.State.D, pool)
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", metaContextPool, err)
	}
	p := c.gridH() * c.gridW()
	get := func(name string, n int) ([]float32, error) {
		t, ok := pm.Tensors[name]
		if !ok {
			return nil, fmt.Errorf("tensor %s missing (metadata %s is set)", name, metaContextPool)
		}
		if len(t.Data) != n {
			return nil, fmt.Errorf("tensor %s has %d values, want %d for a %dx%d context grid at d=%d", name, len(t.Data), n, c.gridH(), c.gridW(), c.d)
		}
		return t.Data, nil
	}
	s := &padim.State{GridH: c.gridH(), GridW: c.gridW(), D: c.d}
	if s.Mean, err = get(tensorContextMean, p*c.d); err != nil {
		return nil, err
	}
	if s.InvCov, err = get(tensorContextInvCov, int(padim.StateBytes(p, c.d)/4)-p*c.d); err != nil {
		return nil, err
	}
	if c.zMean, err = get(tensorContextDistMean, p); err != nil {
		return nil, err
	}
	if c.zInvStd, err = get(tensorContextDistInvSD, p); err != nil {
		return nil, err
	}
	if err := c.setState(s, workers); err != nil {
		return nil, err
	}
	return c, nil
}
