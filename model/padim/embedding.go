package padim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// FeatureMap is one tap's output, dequantized, NHWC with N=1:
// Data[(y*W+x)*C+c].
type FeatureMap struct {
	H, W, C int
	Data    []float32
}

// TapShape is the H×W×C shape of one backbone tap.
type TapShape struct {
	H, W, C int
}

// EmbedderOptions configures an Embedder.
type EmbedderOptions struct {
	// Taps are the shapes of the backbone taps, in the order Embed receives
	// them. The tap with the most positions sets the grid; every other tap
	// must be no larger in either direction.
	Taps []TapShape
	// D is the number of channels kept, 1 ≤ D ≤ total channels. Ignored when
	// Channels is set.
	D int
	// Seed picks the random channel subset (PCG). The chosen indices are
	// stored in the model file, so a loaded model never depends on the
	// generator staying the same across Go versions.
	Seed uint64
	// Channels, when non-nil, are the channel indices to keep (into the
	// concatenation of all taps' channels, in tap order), e.g. from a loaded
	// model. They must be distinct and in range.
	Channels []int32
	// Pool is the average-pooling factor applied to the finest grid
	// (0 or 1: none). The memory sizing picks it when the full grid does not
	// fit the budget; a context scale uses it for its coarse cells. The pooled grid is ⌊H/Pool⌋×⌊W/Pool⌋.
	Pool int
}

// tapPlan says which channels of one tap land where in the embedding.
type tapPlan struct {
	shape TapShape
	local []int     // channels of this tap to keep, ascending
	slot  int       // offset of this tap's block inside an embedding vector
	gath  []float32 // H×W×len(local) gathered channels, reused per frame
	srcY  []int     // finest-grid row -> this tap's row (nearest)
	srcX  []int     // finest-grid column -> this tap's column (nearest)
	// ySpan and xSpan are, per pooled cell row and column, the tap rows
	// and columns it covers with their weights (see Embedder.embedPooled).
	ySpan, xSpan []span
}

// span is a run of tap positions along one axis, starting at lo, with the
// share of a pooled cell's finest-grid positions that each stands for.
type span struct {
	lo int
	w  []float32
}

// spans lists, for each of n cells of pool finest-grid positions, the tap
// positions src maps them to (nearest upsampling) and how many each gets.
func spans(src []int, n, pool int) []span {
	out := make([]span, n)
	for g := range out {
		first := src[g*pool]
		sp := span{lo: first, w: make([]float32, src[g*pool+pool-1]-first+1)}
		for _, t := range src[g*pool : g*pool+pool] {
			sp.w[t-first] += 1 / float32(pool)
		}
		out[g] = sp
	}
	return out
}

// Embedder builds PaDiM patch embeddings from tap outputs: a fixed subset of
// d channels across the concatenated taps, at the finest tap's grid (coarser
// taps nearest-upsampled), optionally average-pooled. It reuses its buffers,
// so Embed allocates nothing; it is not safe for concurrent use.
type Embedder struct {
	taps       []tapPlan
	channels   []int32
	d          int
	fineH      int
	fineW      int
	pool       int
	gridH      int
	gridW      int
	totalChans int
}

// NewEmbedder validates the options and plans the gather.
func NewEmbedder(opts EmbedderOptions) (*Embedder, error) {
	if len(opts.Taps) == 0 {
		return nil, errors.New("embedder: no taps")
	}
	fine := 0
	total := 0
	for i, t := range opts.Taps {
		if t.H <= 0 || t.W <= 0 || t.C <= 0 {
			return nil, fmt.Errorf("embedder: tap %d has shape %dx%dx%d, want positive H, W, C", i, t.H, t.W, t.C)
		}
		if t.H*t.W > opts.Taps[fine].H*opts.Taps[fine].W {
			fine = i
		}
		total += t.C
	}
	fh, fw := opts.Taps[fine].H, opts.Taps[fine].W
	for i, t := range opts.Taps {
		if t.H > fh || t.W > fw {
			return nil, fmt.Errorf("embedder: tap %d is %dx%d, larger than the finest tap's %dx%d in one direction", i, t.H, t.W, fh, fw)
		}
	}
	channels := opts.Channels
	if channels == nil {
		if opts.D <= 0 || opts.D > total {
			return nil, fmt.Errorf("embedder: d=%d, want 1..%d (the taps' total channels)", opts.D, total)
		}
		r := rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15))
		perm := r.Perm(total)[:opts.D]
		channels = make([]int32, opts.D)
		for i, c := range perm {
			channels[i] = int32(c)
		}
	} else {
		channels = slices.Clone(channels)
	}
	slices.Sort(channels)
	if len(channels) == 0 {
		return nil, errors.New("embedder: empty channel list")
	}
	for i, c := range channels {
		if c < 0 || int(c) >= total {
			return nil, fmt.Errorf("embedder: channel index %d out of range 0..%d", c, total-1)
		}
		if i > 0 && channels[i-1] == c {
			return nil, fmt.Errorf("embedder: channel index %d repeated", c)
		}
	}
	pool := opts.Pool
	if pool <= 0 {
		pool = 1
	}
	if fh/pool < 1 || fw/pool < 1 {
		return nil, fmt.Errorf("embedder: pool factor %d leaves no positions of the %dx%d grid", pool, fh, fw)
	}
	e := &Embedder{
		channels:   channels,
		d:          len(channels),
		fineH:      fh,
		fineW:      fw,
		pool:       pool,
		gridH:      fh / pool,
		gridW:      fw / pool,
		totalChans: total,
	}
	base := 0
	slot := 0
	ci := 0
	for _, t := range opts.Taps {
		tp := tapPlan{shape: t, slot: slot}
		for ci < len(channels) && int(channels[ci]) < base+t.C {
			tp.local = append(tp.local, int(channels[ci])-base)
			ci++
		}
		base += t.C
		slot += len(tp.local)
		if len(tp.local) > 0 {
			tp.gath = make([]float32, t.H*t.W*len(tp.local))
			tp.srcY = make([]int, fh)
			tp.srcX = make([]int, fw)
			// Nearest neighbour as torch.nn.functional.interpolate(mode="nearest").
			for y := range fh {
				tp.srcY[y] = y * t.H / fh
			}
			for x := range fw {
				tp.srcX[x] = x * t.W / fw
			}
		}
		e.taps = append(e.taps, tp)
	}
	if pool > 1 {
		for i := range e.taps {
			tp := &e.taps[i]
			if len(tp.local) == 0 {
				continue
			}
			tp.gath = nil // read straight from the taps
			tp.ySpan, tp.xSpan = spans(tp.srcY, e.gridH, pool), spans(tp.srcX, e.gridW, pool)
		}
	}
	return e, nil
}

// D is the embedding dimension.
func (e *Embedder) D() int { return e.d }

// GridH is the height of the embedding grid (after pooling).
func (e *Embedder) GridH() int { return e.gridH }

// GridW is the width of the embedding grid (after pooling).
func (e *Embedder) GridW() int { return e.gridW }

// Positions is GridH×GridW.
func (e *Embedder) Positions() int { return e.gridH * e.gridW }

// FineGrid is the finest tap's grid, which pooling divides.
func (e *Embedder) FineGrid() (h, w int) { return e.fineH, e.fineW }

// Pool is the average-pooling factor (1: none).
func (e *Embedder) Pool() int { return e.pool }

// Channels returns a copy of the kept channel indices, ascending; store them
// in the model.
func (e *Embedder) Channels() []int32 { return slices.Clone(e.channels) }

// Len is the length of an embedding: Positions()×D().
func (e *Embedder) Len() int { return e.gridH * e.gridW * e.d }

// Embed writes the embedding of one frame into dst (length Len()):
// dst[p*D()+k] is kept channel k at grid position p = y*GridW()+x.
func (e *Embedder) Embed(dst []float32, maps []FeatureMap) error {
	if len(dst) != e.Len() {
		return fmt.Errorf("embed: destination has %d values, want %d", len(dst), e.Len())
	}
	if len(maps) != len(e.taps) {
		return fmt.Errorf("embed: got %d feature maps, want %d taps", len(maps), len(e.taps))
	}
	for i, m := range maps {
		s := e.taps[i].shape
		if m.H != s.H || m.W != s.W || m.C != s.C || len(m.Data) != s.H*s.W*s.C {
			return fmt.Errorf("embed: tap %d is %dx%dx%d with %d values, want %dx%dx%d", i, m.H, m.W, m.C, len(m.Data), s.H, s.W, s.C)
		}
	}
	if e.pool > 1 {
		e.embedPooled(dst, maps)
		return nil
	}
	out := dst
	d := e.d
	for i := range e.taps {
		tp := &e.taps[i]
		k := len(tp.local)
		if k == 0 {
			continue
		}
		// Gather first, at the tap's own resolution: the upsampling then
		// copies k values per position instead of all C.
		g, _ := tp.gather(maps[i])
		tw := tp.shape.W
		for y := range e.fineH {
			srow := tp.srcY[y] * tw
			for x := range e.fineW {
				sp := srow + tp.srcX[x]
				o := (y*e.fineW + x) * d
				copy(out[o+tp.slot:o+tp.slot+k], g[sp*k:sp*k+k])
			}
		}
	}
	return nil
}

// gather copies the kept channels of one tap into its plan's buffer, at
// the tap's resolution, and returns it with the number of channels.
func (tp *tapPlan) gather(m FeatureMap) ([]float32, int) {
	k := len(tp.local)
	c := tp.shape.C
	g := tp.gath
	for p := range tp.shape.H * tp.shape.W {
		row := m.Data[p*c : p*c+c]
		gr := g[p*k : p*k+k]
		for j, ch := range tp.local {
			gr[j] = row[ch]
		}
	}
	return g, k
}

// embedPooled averages every tap over the tap positions each pooled cell
// covers, each weighted by how many of the cell's finest-grid positions
// nearest upsampling would give it: the same numbers as pooling the
// finest-grid embedding, without building it (a context scale at d=300
// would otherwise write and reread ~1M floats per frame).
func (e *Embedder) embedPooled(dst []float32, maps []FeatureMap) {
	d := e.d
	for i := range e.taps {
		tp := &e.taps[i]
		if len(tp.local) == 0 {
			continue
		}
		// Gathering and summing in one pass: the kept channels are read
		// straight from the tap, never copied.
		k, c, tw, src := len(tp.local), tp.shape.C, tp.shape.W, maps[i].Data
		for gy, ys := range tp.ySpan {
			for gx, xs := range tp.xSpan {
				o := dst[(gy*e.gridW+gx)*d+tp.slot : (gy*e.gridW+gx)*d+tp.slot+k]
				clear(o)
				for a, wy := range ys.w {
					ty := ys.lo + a
					for b, wx := range xs.w {
						tx := xs.lo + b
						w := wy * wx
						row := src[(ty*tw+tx)*c : (ty*tw+tx)*c+c]
						for j, ch := range tp.local {
							o[j] += w * row[ch]
						}
					}
				}
			}
		}
	}
}
