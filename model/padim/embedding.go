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
	// by, bx are the tap positions per pooled cell when the embedding can
	// be pooled at the tap's own resolution (see Embedder.direct).
	by, bx int
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
	full       []float32 // finest-grid embedding when pooling, else nil
	totalChans int
	// direct pools each tap at its own resolution: possible when every
	// pooled cell covers whole tap positions, and then the finest-grid
	// embedding is never built (a context scale at d=300 would otherwise
	// write and reread ~1M floats per frame).
	direct bool
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
		e.direct = true
		for i := range e.taps {
			tp := &e.taps[i]
			t := tp.shape
			sy, sx := fh/t.H, fw/t.W
			if sy*t.H != fh || sx*t.W != fw || pool%sy != 0 || pool%sx != 0 {
				e.direct = false
				break
			}
			tp.by, tp.bx = pool/sy, pool/sx
		}
		if e.direct {
			for i := range e.taps {
				e.taps[i].gath = nil // read straight from the taps
			}
		} else {
			e.full = make([]float32, fh*fw*e.d)
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
	if e.direct {
		e.embedPooled(dst, maps)
		return nil
	}
	out := dst
	if e.pool > 1 {
		out = e.full
	}
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
	if e.pool > 1 {
		poolGrid(dst, e.full, e.fineH, e.fineW, e.d, e.pool)
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
// covers. Nearest upsampling repeats each tap position equally often inside
// a cell, so this equals pooling the finest-grid embedding.
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
		inv := 1 / float32(tp.by*tp.bx)
		for gy := range e.gridH {
			for gx := range e.gridW {
				o := dst[(gy*e.gridW+gx)*d+tp.slot : (gy*e.gridW+gx)*d+tp.slot+k]
				clear(o)
				for ty := gy * tp.by; ty < (gy+1)*tp.by; ty++ {
					for tx := gx * tp.bx; tx < (gx+1)*tp.bx; tx++ {
						row := src[(ty*tw+tx)*c : (ty*tw+tx)*c+c]
						for j, ch := range tp.local {
							o[j] += row[ch]
						}
					}
				}
				for j := range o {
					o[j] *= inv
				}
			}
		}
	}
}

// poolGrid averages k×k blocks of an h×w grid of d-vectors (src[p*d+c])
// into dst, an (h/k)×(w/k) grid; rows and columns beyond the last whole
// block are left out, as the Embedder's own pooling does.
func poolGrid(dst, src []float32, h, w, d, k int) {
	gh, gw := h/k, w/k
	inv := 1 / float32(k*k)
	for gy := range gh {
		for gx := range gw {
			o := dst[(gy*gw+gx)*d : (gy*gw+gx+1)*d]
			clear(o)
			for dy := range k {
				for dx := range k {
					p := (gy*k+dy)*w + gx*k + dx
					v := src[p*d : p*d+d]
					for c := range o {
						o[c] += v[c]
					}
				}
			}
			for c := range o {
				o[c] *= inv
			}
		}
	}
}
