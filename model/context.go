package model

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/inspectd/inspectd/model/padim"
)

// contextScale is a second Gaussian per position over a coarse grid: the
// taps averaged over cells of Options.ContextPool×ContextPool finest-tap
// positions, with a channel subset of its own, wider than the patch
// scale's (a coarse grid has few positions, so many features stay cheap). A
// fine patch sees a few dozen pixels, so a defect that is a whole region of
// another finish (uneven grinding, a discoloured area) looks normal patch by
// patch and lights up only along its border. Averaging over a cell cancels
// the patch-to-patch noise that a shift shared by the whole cell survives,
// so the coarse Gaussian sees such regions. Its distances are standardized
// per position like the fine ones, upsampled bilinearly onto the fine grid
// and added with a weight: the anomaly map is the patch scale's
// standardized distances plus weight times the context scale's.
type contextScale struct {
	emb    *padim.Embedder // its Pool is the cell size in finest-tap positions
	weight float32
	state  *padim.State
	scorer *padim.Scorer
	// zMean and zInvStd standardize the coarse distances per position.
	zMean, zInvStd []float32

	vec  []float32 // coarse embedding
	dist []float32 // coarse distances of the last score
	z    []float32 // standardized coarse distances
	up   *padim.AnomalyMap
	// fine is z upsampled onto the part of the fine grid the cells cover
	// (coverH×coverW: whole cells from the top left); the fine grid's last
	// rows and columns that no whole cell covers take the nearest value.
	fine           []float32
	coverH, coverW int
	fineH, fineW   int
}

// Tensors and metadata keys of the context scale in a model file.
const (
	tensorContextMean      = "context_mean"
	tensorContextInvCov    = "context_inv_cov"
	tensorContextDistMean  = "context_dist_mean"
	tensorContextDistInvSD = "context_dist_inv_std"
	metaContextPool        = "context_pool"
	metaContextChannels    = "context_channels"
	metaContextWeight      = "context_weight"
)

// DefaultContextWeight is the context scale's weight when Options leave it
// unset. Measured on magnetic tile (image / pixel AUROC, channel seeds 1, 2,
// 3): cells of 6 at weight 2 0.973 / 0.827, 0.969 / 0.823, 0.972 / 0.820;
// at weight 1 0.969 / 0.821 (seed 1); cells of 8 at weight 1 (the earlier
// default) 0.967 / 0.817, 0.964 / 0.817, 0.968 / 0.809. Model files without
// the key were fitted with weight 1.
const DefaultContextWeight = 2

// maxContextWeight bounds a weight read from a model file, far above any
// useful one, so that weighted scores stay finite in float32.
const maxContextWeight = 1000

// newContextScale prepares a context scale over the taps for a fine
// (scoring) grid of fineH×fineW; channels nil picks d at random with seed.
// The state comes later (fit or file).
func newContextScale(taps []padim.TapShape, pool, d int, seed uint64, channels []int32, weight float64, fineH, fineW int) (*contextScale, error) {
	if pool < 2 {
		return nil, fmt.Errorf("context scale: cells of %d positions, want at least 2", pool)
	}
	if !(weight > 0 && weight <= maxContextWeight) {
		return nil, fmt.Errorf("context scale: weight %g, want above 0 and at most %d", weight, maxContextWeight)
	}
	emb, err := padim.NewEmbedder(padim.EmbedderOptions{Taps: taps, D: d, Seed: seed, Channels: channels, Pool: pool})
	if err != nil {
		return nil, fmt.Errorf("context scale: %w", err)
	}
	// The cells cover whole finest-tap positions from the top left; the
	// patch grid spans all of them, pooled when the budget is small.
	th, tw := emb.FineGrid()
	ch := cover(emb.GridH()*pool, th, fineH)
	cw := cover(emb.GridW()*pool, tw, fineW)
	up, err := padim.NewAnomalyMap(padim.AnomalyMapOptions{GridW: emb.GridW(), GridH: emb.GridH(), OutW: cw, OutH: ch})
	if err != nil {
		return nil, fmt.Errorf("context scale: %w", err)
	}
	p := emb.Positions()
	return &contextScale{emb: emb, weight: float32(weight), vec: make([]float32, emb.Len()), dist: make([]float32, p), z: make([]float32, p),
		up: up, fine: make([]float32, ch*cw), coverH: ch, coverW: cw, fineH: fineH, fineW: fineW}, nil
}

// cover converts the first covered of total finest-tap positions into
// positions of a patch grid of n that spans all total (rounded, at least 1).
func cover(covered, total, n int) int {
	return max(1, min(n, (covered*n+total/2)/total))
}

// contextSeed derives the context scale's channel seed from the patch
// scale's, so that the two subsets differ.
func contextSeed(seed uint64) uint64 { return seed ^ 0x636f6e74657874 }

// embed computes the coarse embedding of the backbone's last tap outputs.
func (c *contextScale) embed(fmaps []padim.FeatureMap) ([]float32, error) {
	if err := c.emb.Embed(c.vec, fmaps); err != nil {
		return nil, fmt.Errorf("context scale: %w", err)
	}
	return c.vec, nil
}

// setState binds a fitted or loaded state and starts its scorer.
func (c *contextScale) setState(s *padim.State, workers int) error {
	if s.GridH != c.emb.GridH() || s.GridW != c.emb.GridW() || s.D != c.emb.D() {
		return fmt.Errorf("context scale: state is %dx%d d=%d, want %dx%d d=%d", s.GridH, s.GridW, s.D, c.emb.GridH(), c.emb.GridW(), c.emb.D())
	}
	sc, err := padim.NewScorer(s, workers)
	if err != nil {
		return fmt.Errorf("context scale: %w", err)
	}
	c.state, c.scorer = s, sc
	return nil
}

// score computes the coarse distances of the last tap outputs into c.dist.
func (c *contextScale) score(fmaps []padim.FeatureMap) error {
	v, err := c.embed(fmaps)
	if err != nil {
		return err
	}
	return c.scorer.Score(c.dist, v)
}

// addTo adds the standardized coarse distances dist (one per coarse
// position), upsampled to the fine grid and weighted, to fine.
func (c *contextScale) addTo(fine, dist []float32) error {
	for i, v := range dist {
		c.z[i] = c.weight * (v - c.zMean[i]) * c.zInvStd[i]
	}
	if _, err := c.up.Render(c.fine, c.z); err != nil {
		return err
	}
	for y := range c.fineH {
		src := c.fine[min(y, c.coverH-1)*c.coverW : (min(y, c.coverH-1)+1)*c.coverW]
		dst := fine[y*c.fineW : (y+1)*c.fineW]
		for x, v := range src {
			dst[x] += v
		}
		for x := c.coverW; x < c.fineW; x++ {
			dst[x] += src[c.coverW-1]
		}
	}
	return nil
}

// describe records the context scale in a detector's Info.
func (c *contextScale) describe(info *Info) {
	info.ContextPool, info.ContextGridH, info.ContextGridW, info.ContextFeatures = c.emb.Pool(), c.emb.GridH(), c.emb.GridW(), c.emb.D()
	info.ContextWeight = float64(c.weight)
	info.StateBytes += c.bytes()
}

// bytes is the size of the coarse scoring state.
func (c *contextScale) bytes() int64 { return padim.StateBytes(c.emb.Positions(), c.emb.D()) }

func (c *contextScale) close() {
	if c.scorer != nil {
		c.scorer.Close()
	}
}

// save adds the context scale's tensors, cell size and channels to a
// model file.
func (c *contextScale) save(m *padim.Model) {
	gh, gw, d := c.emb.GridH(), c.emb.GridW(), c.emb.D()
	if m.Tensors == nil {
		m.Tensors = map[string]padim.Tensor{}
	}
	m.Tensors[tensorContextMean] = padim.Tensor{Shape: []int{gh, gw, d}, Data: c.state.Mean}
	m.Tensors[tensorContextInvCov] = padim.Tensor{Shape: []int{gh, gw, d * (d + 1) / 2}, Data: c.state.InvCov}
	m.Tensors[tensorContextDistMean] = padim.Tensor{Shape: []int{gh * gw}, Data: c.zMean}
	m.Tensors[tensorContextDistInvSD] = padim.Tensor{Shape: []int{gh * gw}, Data: c.zInvStd}
	m.Meta.Extra[metaContextPool] = strconv.Itoa(c.emb.Pool())
	m.Meta.Extra[metaContextWeight] = strconv.FormatFloat(float64(c.weight), 'g', -1, 32)
	ch := c.emb.Channels()
	s := make([]string, len(ch))
	for i, v := range ch {
		s[i] = strconv.Itoa(int(v))
	}
	m.Meta.Extra[metaContextChannels] = strings.Join(s, ",")
}

// loadContextScale restores the context scale of a model file for the
// taps, or returns nil when the file has none. Missing or mis-sized entries
// are errors naming them.
func loadContextScale(pm *padim.Model, taps []padim.TapShape, workers int) (*contextScale, error) {
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
	list, ok := pm.Meta.Extra[metaContextChannels]
	if !ok || list == "" {
		return nil, fmt.Errorf("metadata %s missing (metadata %s is set)", metaContextChannels, metaContextPool)
	}
	var channels []int32
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("metadata %s: %q is not a channel index", metaContextChannels, f)
		}
		channels = append(channels, int32(n))
	}
	weight := 1.0 // files from before the weight summed the scales
	if w, ok := pm.Meta.Extra[metaContextWeight]; ok {
		if weight, err = strconv.ParseFloat(w, 64); err != nil || !(weight > 0 && weight <= maxContextWeight) {
			return nil, fmt.Errorf("metadata %s %q: want a number above 0 and at most %d", metaContextWeight, w, maxContextWeight)
		}
	}
	c, err := newContextScale(taps, pool, 0, 0, channels, weight, pm.State.GridH, pm.State.GridW)
	if err != nil {
		return nil, fmt.Errorf("metadata %s/%s: %w", metaContextPool, metaContextChannels, err)
	}
	p, d := c.emb.Positions(), c.emb.D()
	get := func(name string, n int) ([]float32, error) {
		t, ok := pm.Tensors[name]
		if !ok {
			return nil, fmt.Errorf("tensor %s missing (metadata %s is set)", name, metaContextPool)
		}
		if len(t.Data) != n {
			return nil, fmt.Errorf("tensor %s has %d values, want %d for a %dx%d context grid at d=%d", name, len(t.Data), n, c.emb.GridH(), c.emb.GridW(), d)
		}
		return t.Data, nil
	}
	s := &padim.State{GridH: c.emb.GridH(), GridW: c.emb.GridW(), D: d}
	if s.Mean, err = get(tensorContextMean, p*d); err != nil {
		return nil, err
	}
	if s.InvCov, err = get(tensorContextInvCov, p*d*(d+1)/2); err != nil {
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
