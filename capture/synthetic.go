package capture

import (
	"context"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// SyntheticMinSide and SyntheticMaxSide bound the synthetic source's frame
// sides in pixels (NewSynthetic refuses others); at the largest the scene's
// background alone is 256 MiB of float32. The daemon's configuration check
// refuses the same sizes.
const SyntheticMinSide, SyntheticMaxSide = 32, 8192

// DefectKind is a kind of defect the synthetic source injects.
type DefectKind int

// Defect kinds.
const (
	// Scratch is a thin dark groove across the surface.
	Scratch DefectKind = iota
	// Spot is a dark round stain.
	Spot
	// Chip is a piece broken out of the part's edge.
	Chip
	// Contamination is an irregular oily or rusty smear.
	Contamination
)

// DefectKinds lists every kind, in order (a new slice each call).
func DefectKinds() []DefectKind { return []DefectKind{Scratch, Spot, Chip, Contamination} }

// String returns the kind's name, used as Frame.Label.
func (k DefectKind) String() string {
	switch k {
	case Scratch:
		return "scratch"
	case Spot:
		return "spot"
	case Chip:
		return "chip"
	case Contamination:
		return "contamination"
	}
	return fmt.Sprintf("DefectKind(%d)", int(k))
}

// ParseDefectKind reads a kind's name.
func ParseDefectKind(s string) (DefectKind, error) {
	for _, k := range DefectKinds() {
		if strings.EqualFold(s, k.String()) {
			return k, nil
		}
	}
	return 0, fmt.Errorf("defect kind %q: want scratch, spot, chip or contamination", s)
}

// SyntheticOptions configure a Synthetic source.
type SyntheticOptions struct {
	// Width and Height of the frames. Default 256×256.
	Width, Height int
	// Seed makes the sequence of frames repeatable: the same seed gives the
	// same frames. Different seeds give different frames of the same scene,
	// e.g. one seed for fitting and another for testing.
	Seed uint64
	// SceneSeed selects the part's surface texture; keep the default (0) so
	// that every seed shows the same kind of part.
	SceneSeed uint64
	// DefectRate is the probability that a frame carries a defect (0..1).
	DefectRate float64
	// NormalOnly forces defect-free frames whatever DefectRate says, for
	// fitting a model on normal frames.
	NormalOnly bool
	// Kinds restricts the defects injected; empty means all kinds.
	Kinds []DefectKind
	// Color selects RGBA (default) or gray frames.
	Color Color
}

// Synthetic is a Source rendering a plausible inspection scene: a machined
// metal plate (brushed surface, four through holes, a turned recess) on a
// conveyor belt, with slight pose, lighting and surface-texture changes from
// frame to frame, and with defects injected at a configurable rate. Each
// frame's Mask is its ground truth (255 = defect, all 0 for normal frames)
// and Label names the defect. Frame n depends only on the options and n.
//
// Defects cover roughly 0.5–5% of the frame and contrast clearly with the
// surface, while the normal variation stays moderate, so that a model fitted
// on normal frames can find them.
type Synthetic struct {
	opts     SyntheticOptions
	kinds    []DefectKind
	seq      uint64
	counters Counters
	pcg      rand.PCG
	rng      *rand.Rand
	p        frameParams

	w, h    int
	s       float64 // the scene's scale: min(w, h)
	bg      []float32
	tex     []float32 // brushed surface, texW×texH, in part coordinates
	texW    int
	texH    int
	margin  int // texture jitter range
	hw, hh  float64
	corner  float64
	holeX   float64
	holeY   float64
	holeR   float64
	recessR float64
	rim     float64
	shadow  float64
	// plain[x] says that pixel x of the row being rendered is plain steel
	// (plainRow); reused from row to row.
	plain []bool
	// reference renders every pixel the whole way (tests compare the
	// shortcuts against it).
	reference bool
}

// NewSynthetic builds the scene.
func NewSynthetic(opts SyntheticOptions) (*Synthetic, error) {
	if opts.Width == 0 && opts.Height == 0 {
		opts.Width, opts.Height = 256, 256
	}
	if opts.Width < SyntheticMinSide || opts.Height < SyntheticMinSide || opts.Width > SyntheticMaxSide || opts.Height > SyntheticMaxSide {
		return nil, fmt.Errorf("synthetic source: size %dx%d: want %d..%d on each side", opts.Width, opts.Height, SyntheticMinSide, SyntheticMaxSide)
	}
	if !(opts.DefectRate >= 0 && opts.DefectRate <= 1) {
		return nil, fmt.Errorf("synthetic source: defect rate %v: want 0..1", opts.DefectRate)
	}
	kinds := slices.Clone(opts.Kinds)
	if len(kinds) == 0 {
		kinds = DefectKinds()
	}
	for _, k := range kinds {
		if k < Scratch || k > Contamination {
			return nil, fmt.Errorf("synthetic source: unknown defect kind %d", int(k))
		}
	}
	sy := &Synthetic{opts: opts, kinds: kinds, w: opts.Width, h: opts.Height}
	sy.rng = rand.New(&sy.pcg)
	sy.s = float64(min(sy.w, sy.h))
	s := sy.s
	sy.hw, sy.hh = 0.36*float64(sy.w), 0.32*float64(sy.h)
	sy.corner = 0.07 * s
	sy.holeX, sy.holeY, sy.holeR = sy.hw-0.11*s, sy.hh-0.11*s, 0.035*s
	sy.recessR = 0.13 * s
	sy.rim = max(1.2, 0.012*s)
	sy.shadow = 0.015 * s
	sy.margin = max(4, int(0.06*s))
	sy.plain = make([]bool, sy.w)

	scene := rand.New(rand.NewPCG(opts.SceneSeed, 0x5ce11e))
	sy.bg = make([]float32, sy.w*sy.h)
	addNoise(sy.bg, sy.w, sy.h, 2.5, 2.5, 5, scene)
	addNoise(sy.bg, sy.w, sy.h, 0.08*s, 0.08*s, 4, scene)
	sy.texW = int(2*sy.hw) + 2*sy.margin + 2
	sy.texH = int(2*sy.hh) + 2*sy.margin + 2
	sy.tex = make([]float32, sy.texW*sy.texH)
	// Brushing: long streaks along u, random from row to row.
	addNoise(sy.tex, sy.texW, sy.texH, 0.2*s, 1.3, 8, scene)
	addNoise(sy.tex, sy.texW, sy.texH, 0.025*s, 0.8, 3, scene)
	// Mottling.
	addNoise(sy.tex, sy.texW, sy.texH, 0.1*s, 0.1*s, 4, scene)
	return sy, nil
}

// addNoise adds smooth value noise of amplitude amp with lattice spacing
// sx×sy to a w×h field.
func addNoise(dst []float32, w, h int, sx, sy, amp float64, rng *rand.Rand) {
	gw, gh := int(float64(w)/sx)+3, int(float64(h)/sy)+3
	lat := make([]float32, gw*gh)
	for i := range lat {
		lat[i] = float32(rng.Float64()*2 - 1)
	}
	for y := 0; y < h; y++ {
		fy := float64(y) / sy
		y0 := int(fy)
		ty := float32(smooth(fy - float64(y0)))
		for x := 0; x < w; x++ {
			fx := float64(x) / sx
			x0 := int(fx)
			tx := float32(smooth(fx - float64(x0)))
			a := lat[y0*gw+x0] + (lat[y0*gw+x0+1]-lat[y0*gw+x0])*tx
			b := lat[(y0+1)*gw+x0] + (lat[(y0+1)*gw+x0+1]-lat[(y0+1)*gw+x0])*tx
			dst[y*w+x] += float32(amp) * (a + (b-a)*ty)
		}
	}
}

func smooth(t float64) float64 { return t * t * (3 - 2*t) }

// Counters returns the source's counters.
func (sy *Synthetic) Counters() *Counters { return &sy.counters }

// Lossless implements LosslessSource: rendered frames stand in for a live
// camera, whose frames may be dropped when inspection falls behind.
func (sy *Synthetic) Lossless() bool { return false }

// defect is one injected defect in part coordinates.
type defect struct {
	kind DefectKind
	// bounding box in part coordinates
	u0, v0, u1, v1 float64
	// scratch: segment and half width; spot/chip: centre and radii
	ax, ay, bx, by float64
	r, r2          float64
	cos, sin       float64
	depth          float64
	blobs          [6]blob
	nblobs         int
}

type blob struct{ x, y, r, a1, p1, a2, p2 float64 }

// frameParams are the per-frame random choices.
type frameParams struct {
	dx, dy, cosA, sinA   float64
	gain, gx, gy, offset float64
	tu, tv               int
	noise                uint64
	def                  *defect
	d                    defect
}

// Next implements Source; it never runs out.
func (sy *Synthetic) Next(ctx context.Context, f *Frame) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sy.seq++
	sy.renderSeq(f)
	return nil
}

// Frame renders frame n (1 is the first Next delivers) into f without
// moving the sequence: the same n gives the same frame every time, for
// fitting, which reads its images more than once.
func (sy *Synthetic) Frame(n uint64, f *Frame) {
	seq := sy.seq
	sy.seq = n
	sy.renderSeq(f)
	sy.seq = seq
}

// renderSeq renders frame sy.seq into f.
func (sy *Synthetic) renderSeq(f *Frame) {
	// The parameters live in the source, not on the stack: the defect
	// pointer into them would move them to the heap every frame.
	p := &sy.p
	*p = frameParams{}
	sy.params(p)
	gray := sy.opts.Color == ColorGray
	var rgba *image.RGBA
	var gimg *image.Gray
	if gray {
		gimg = grayBuffer(f.target(), sy.w, sy.h)
		f.setDecoded(gimg)
	} else {
		rgba = rgbaBuffer(f.target(), sy.w, sy.h)
		f.setDecoded(rgba)
	}
	f.setMask(maskBuffer(f.maskTarget(), sy.w, sy.h))
	f.Native, f.Decode = image.Point{}, 0
	sy.render(p, rgba, gimg, f.Mask)
	f.Label = ""
	if p.def != nil {
		f.Label = p.def.kind.String()
	}
	f.Seq, f.Time, f.Name, f.Replay = sy.seq, time.Now(), "", false
	f.Trigger, f.TriggerTime = "", time.Time{}
	sy.counters.Frames.Add(1)
}

// Close implements Source.
func (sy *Synthetic) Close() error { return nil }

func (sy *Synthetic) uniform(lo, hi float64) float64 { return lo + (hi-lo)*sy.rng.Float64() }

// params draws frame sy.seq's pose, lighting and defect from a generator
// seeded by (Seed, seq), so frames do not depend on what came before.
func (sy *Synthetic) params(p *frameParams) {
	sy.pcg.Seed(sy.opts.Seed, sy.seq)
	s := sy.s
	p.dx, p.dy = sy.uniform(-0.012, 0.012)*s, sy.uniform(-0.012, 0.012)*s
	a := sy.uniform(-1.2, 1.2) * math.Pi / 180
	p.cosA, p.sinA = math.Cos(a), math.Sin(a)
	p.gain = sy.uniform(0.95, 1.05)
	p.gx, p.gy = sy.uniform(-0.03, 0.03), sy.uniform(-0.03, 0.03)
	p.offset = sy.uniform(-3, 3)
	p.tu, p.tv = sy.rng.IntN(2*sy.margin+1), sy.rng.IntN(2*sy.margin+1)
	p.noise = sy.rng.Uint64() | 1
	defective := sy.rng.Float64() < sy.opts.DefectRate
	kind := sy.kinds[sy.rng.IntN(len(sy.kinds))]
	if !defective || sy.opts.NormalOnly {
		return
	}
	d := &p.d
	d.kind = kind
	switch kind {
	case Scratch:
		th := sy.uniform(0, math.Pi)
		c, sn := math.Cos(th), math.Sin(th)
		l := sy.uniform(0.3, 0.5) * s
		m := 0.05 * s
		// Shorten the scratch until it fits on the plate.
		for l/2*math.Abs(c) > sy.hw-m || l/2*math.Abs(sn) > sy.hh-m {
			l *= 0.9
		}
		ex, ey := l/2*math.Abs(c), l/2*math.Abs(sn)
		cx := sy.uniform(-(sy.hw - m - ex), sy.hw-m-ex)
		cy := sy.uniform(-(sy.hh - m - ey), sy.hh-m-ey)
		d.ax, d.ay, d.bx, d.by = cx-l/2*c, cy-l/2*sn, cx+l/2*c, cy+l/2*sn
		d.r = sy.uniform(0.008, 0.012) * s
		d.r = max(d.r, 1.2)
		d.depth = sy.uniform(0.4, 0.55)
		pad := d.r + 2
		d.u0, d.u1 = min(d.ax, d.bx)-pad, max(d.ax, d.bx)+pad
		d.v0, d.v1 = min(d.ay, d.by)-pad, max(d.ay, d.by)+pad
	case Spot:
		r := sy.uniform(0.04, 0.065) * s
		e := sy.uniform(1, 1.5)
		d.r, d.r2 = r*e, r/e
		th := sy.uniform(0, math.Pi)
		d.cos, d.sin = math.Cos(th), math.Sin(th)
		m := d.r + 0.03*s
		d.ax, d.ay = sy.uniform(-(sy.hw-m), sy.hw-m), sy.uniform(-(sy.hh-m), sy.hh-m)
		d.depth = sy.uniform(0.75, 0.9)
		d.u0, d.u1, d.v0, d.v1 = d.ax-d.r-2, d.ax+d.r+2, d.ay-d.r-2, d.ay+d.r+2
	case Chip:
		r := sy.uniform(0.07, 0.1) * s
		d.r = r
		out := sy.uniform(0, 0.2) * r
		switch side := sy.rng.IntN(4); side {
		case 0, 1: // top or bottom edge
			t := sy.uniform(-1, 1) * (sy.hw - sy.corner - 0.12*s - r)
			d.ax, d.ay = t, sy.hh+out
			if side == 0 {
				d.ay = -d.ay
			}
		default: // left or right edge
			t := sy.uniform(-1, 1) * (sy.hh - sy.corner - 0.12*s - r)
			d.ax, d.ay = sy.hw+out, t
			if side == 2 {
				d.ax = -d.ax
			}
		}
		pad := r + sy.rim + 2
		d.u0, d.u1, d.v0, d.v1 = d.ax-pad, d.ax+pad, d.ay-pad, d.ay+pad
	case Contamination:
		spread := 0.05 * s
		m := spread + 0.06*s
		d.ax, d.ay = sy.uniform(-(sy.hw-m), sy.hw-m), sy.uniform(-(sy.hh-m), sy.hh-m)
		d.nblobs = 3 + sy.rng.IntN(4)
		d.u0, d.v0, d.u1, d.v1 = math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
		for i := 0; i < d.nblobs; i++ {
			b := blob{
				x: d.ax + sy.uniform(-spread, spread), y: d.ay + sy.uniform(-spread, spread),
				r:  sy.uniform(0.025, 0.05) * s,
				a1: sy.uniform(0.1, 0.25), p1: sy.uniform(0, 2*math.Pi),
				a2: sy.uniform(0.05, 0.15), p2: sy.uniform(0, 2*math.Pi),
			}
			d.blobs[i] = b
			rr := b.r * (1 + b.a1 + b.a2)
			d.u0, d.u1 = min(d.u0, b.x-rr-1), max(d.u1, b.x+rr+1)
			d.v0, d.v1 = min(d.v0, b.y-rr-1), max(d.v1, b.y+rr+1)
		}
		d.depth = sy.uniform(0.5, 0.7)
	}
	p.def = d
}

// Scene colours (sRGB levels).
const (
	beltR, beltG, beltB       = 50, 53, 58
	steelR, steelG, steelB    = 166, 169, 174
	recessR, recessG, recessB = 146, 149, 155
	spotR, spotG, spotB       = 58, 46, 38
	contamR, contamG, contamB = 150, 108, 52
	fractureUp                = 34.0
)

// render draws the frame. Each pixel maps into part coordinates (u, v)
// through the frame's pose; the plate's shape is a signed distance so its
// edges are anti-aliased.
func (sy *Synthetic) render(p *frameParams, rgba *image.RGBA, gimg *image.Gray, mask *image.Gray) {
	w, h := sy.w, sy.h
	cx, cy := float64(w)/2+p.dx, float64(h)/2+p.dy
	hx, hy := float64(w)/2, float64(h)/2
	noise := p.noise
	var nbits uint64
	nleft := 0
	d := p.def
	for y := 0; y < h; y++ {
		py := float64(y) + 0.5 - cy
		light0 := p.gain + p.gy*(float64(y)+0.5-hy)/hy
		xlo, xhi := sy.plateSpan(p, py, cx)
		sy.plainRow(p, py, cx, xlo, xhi)
		if sy.reference {
			xlo, xhi = 0, w
			clear(sy.plain)
		}
		mrow := mask.Pix[y*mask.Stride : y*mask.Stride+w]
		for x := 0; x < w; x++ {
			// Belt behind everything.
			bgv := float64(sy.bg[y*w+x])
			br, bgc, bb := beltR+bgv, beltG+bgv, beltB+bgv

			// Away from the plate and its shadow only the belt shows.
			var mr, mg, mb, cov float64
			defectHere := false
			if x >= xlo && x < xhi {
				px := float64(x) + 0.5 - cx
				u := p.cosA*px + p.sinA*py
				v := -p.sinA*px + p.cosA*py
				if sy.plain[x] && (d == nil || u < d.u0 || u > d.u1 || v < d.v0 || v > d.v1) {
					// Plain steel (plainRow): the whole path below gives
					// full coverage, the shadow's darkest 0.7, brushed
					// steel and no shading, in the same operations.
					br, bgc, bb = br*0.7, bgc*0.7, bb*0.7
					ti := (int(v+sy.hh)+p.tv)*sy.texW + int(u+sy.hw) + p.tu
					t := 0.0
					if ti >= 0 && ti < len(sy.tex) {
						t = float64(sy.tex[ti])
					}
					mr, mg, mb = steelR+t, steelG+t, steelB+t
					cov = 1
					goto lit
				}
				// Plate coverage: outside the rounded rectangle and inside the
				// holes there is no metal.
				dOut := roundRectSDF(u, v, sy.hw, sy.hh, sy.corner)
				hxp, hyp := math.Abs(u)-sy.holeX, math.Abs(v)-sy.holeY
				dHole := math.Sqrt(hxp*hxp+hyp*hyp) - sy.holeR
				cov = clamp01(0.5-dOut) * clamp01(0.5+dHole)
				// The plate casts a soft shadow down and to the right.
				if dSh := roundRectSDF(u-sy.shadow, v-sy.shadow, sy.hw, sy.hh, sy.corner); dSh < 2*sy.shadow {
					k := 0.7 + 0.3*clamp01(dSh/(2*sy.shadow))
					br, bgc, bb = br*k, bgc*k, bb*k
				}
				if dHole < 0 {
					// The belt seen through a hole is in the plate's shadow.
					br, bgc, bb = br*0.55, bgc*0.55, bb*0.55
				}

				if cov > 0 {
					// Surface.
					ti := (int(v+sy.hh)+p.tv)*sy.texW + int(u+sy.hw) + p.tu
					t := 0.0
					if ti >= 0 && ti < len(sy.tex) {
						t = float64(sy.tex[ti])
					}
					r := math.Sqrt(u*u + v*v)
					if r < sy.recessR {
						// Turned recess: concentric tool marks, no brushing.
						t = 3*math.Sin(r*2.4) + 0.3*t
						mr, mg, mb = recessR+t, recessG+t, recessB+t
					} else {
						mr, mg, mb = steelR+t, steelG+t, steelB+t
					}
					shadeAdd := 0.0
					if g := math.Abs(r - sy.recessR); g < sy.rim {
						shadeAdd -= 28 * (1 - g/sy.rim) // groove around the recess
					}
					if -dOut < sy.rim {
						// Bevel on the outer edge, lit from the top left.
						if sy.hw-math.Abs(u) < sy.hh-math.Abs(v) {
							if u < 0 {
								shadeAdd += 22
							} else {
								shadeAdd -= 18
							}
						} else if v < 0 {
							shadeAdd += 22
						} else {
							shadeAdd -= 18
						}
					}
					if dHole > 0 && dHole < sy.rim {
						shadeAdd -= 26 // chamfer around the holes
					}
					mr, mg, mb = mr+shadeAdd, mg+shadeAdd, mb+shadeAdd

					if d != nil && u >= d.u0 && u <= d.u1 && v >= d.v0 && v <= d.v1 {
						switch d.kind {
						case Scratch:
							ds := segDist(u, v, d.ax, d.ay, d.bx, d.by)
							if ds < d.r {
								k := 1 - d.depth*(1-0.6*(ds/d.r)*(ds/d.r))
								mr, mg, mb = mr*k, mg*k, mb*k
								defectHere = cov >= 0.5
							} else if ds < d.r+1 {
								mr, mg, mb = mr+14, mg+14, mb+14 // burr
							}
						case Spot:
							du, dv := u-d.ax, v-d.ay
							a := (du*d.cos + dv*d.sin) / d.r
							b := (-du*d.sin + dv*d.cos) / d.r2
							q := a*a + b*b
							if q < 1 {
								al := d.depth * clamp01((1-q)*6)
								mr, mg, mb = mix(mr, spotR, al), mix(mg, spotG, al), mix(mb, spotB, al)
								defectHere = cov >= 0.5
							}
						case Chip:
							du, dv := u-d.ax, v-d.ay
							dc := math.Sqrt(du*du+dv*dv) - d.r
							if dc < 0 {
								defectHere = cov >= 0.5
							} else if dc < sy.rim {
								mr, mg, mb = mr+fractureUp, mg+fractureUp, mb+fractureUp
							}
							cov *= clamp01(0.5 + dc)
						case Contamination:
							inside := false
							for i := 0; i < d.nblobs; i++ {
								b := &d.blobs[i]
								du, dv := u-b.x, v-b.y
								if math.Abs(du) > 1.5*b.r || math.Abs(dv) > 1.5*b.r {
									continue
								}
								th := math.Atan2(dv, du)
								rr := b.r * (1 + b.a1*math.Sin(3*th+b.p1) + b.a2*math.Sin(5*th+b.p2))
								if du*du+dv*dv < rr*rr {
									inside = true
									break
								}
							}
							if inside {
								al := d.depth
								mr, mg, mb = mix(mr, contamR, al)*0.9, mix(mg, contamG, al)*0.9, mix(mb, contamB, al)*0.9
								defectHere = cov >= 0.5
							}
						}
					}
				}
			}
		lit:
			rr := mix(br, mr, cov)
			gg := mix(bgc, mg, cov)
			bb2 := mix(bb, mb, cov)

			// Lighting and sensor noise.
			light := light0 + p.gx*(float64(x)+0.5-hx)/hx
			if nleft == 0 {
				noise ^= noise << 13
				noise ^= noise >> 7
				noise ^= noise << 17
				nbits, nleft = noise, 4
			}
			n := (float64(nbits&0xff) + float64(nbits>>8&0xff) - 255) / 80
			nbits >>= 16
			nleft--
			off := p.offset + n
			rr, gg, bb2 = rr*light+off, gg*light+off, bb2*light+off
			if gimg != nil {
				gimg.Pix[y*gimg.Stride+x] = clampByte(0.299*rr + 0.587*gg + 0.114*bb2)
			} else {
				o := y*rgba.Stride + 4*x
				px := rgba.Pix[o : o+4 : o+4]
				px[0], px[1], px[2], px[3] = clampByte(rr), clampByte(gg), clampByte(bb2), 0xff
			}
			if defectHere {
				mrow[x] = 255
			} else {
				mrow[x] = 0
			}
		}
	}
}

// plateSpan returns the columns [xlo, xhi) of the row at py (relative to
// the plate's centre cx) that the plate, its bevel and its shadow can
// reach: the part-coordinate box |u| ≤ hw+3·shadow+2, |v| ≤ hh+3·shadow+2
// (a superset of every pixel where coverage or the shadow is not zero)
// turned by the frame's pose. Outside it a pixel is belt alone, which
// renders a frame the same, pixel for pixel
// (TestSyntheticShortcutsRenderTheSameFrames), for less.
func (sy *Synthetic) plateSpan(p *frameParams, py, cx float64) (int, int) {
	pad := 3*sy.shadow + 2
	lo, hi, ok := turnedBoxRow(p, py, sy.hw+pad, sy.hh+pad)
	if !ok {
		return 0, 0
	}
	// px = x + 0.5 − cx: whole columns, one more on each side.
	xlo := int(math.Floor(lo+cx-0.5)) - 1
	xhi := int(math.Ceil(hi+cx-0.5)) + 2
	return min(max(xlo, 0), sy.w), min(max(xhi, 0), sy.w)
}

// turnedBoxRow returns the frame offsets px (from the plate's centre) of
// the row at py whose part coordinates lie in the box |u| ≤ bu, |v| ≤ bv,
// an interval [lo, hi]; ok is false when the row misses the box. With
// u = cosA·px + sinA·py and v = −sinA·px + cosA·py, each bound is linear
// in px; cosA > 0 (the pose turns by at most a few degrees).
func turnedBoxRow(p *frameParams, py, bu, bv float64) (lo, hi float64, ok bool) {
	lo, hi = (-bu-p.sinA*py)/p.cosA, (bu-p.sinA*py)/p.cosA
	switch {
	case p.sinA > 0:
		lo, hi = max(lo, (p.cosA*py-bv)/p.sinA), min(hi, (p.cosA*py+bv)/p.sinA)
	case p.sinA < 0:
		lo, hi = max(lo, (p.cosA*py+bv)/p.sinA), min(hi, (p.cosA*py-bv)/p.sinA)
	default:
		if math.Abs(py) > bv {
			return 0, 0, false
		}
	}
	return lo, hi, hi >= lo
}

// plainRow marks in sy.plain the columns of [xlo, xhi) in the row at py
// whose pixels are plain steel: at least m = max(corner+shadow, rim+1)+1
// inside the plate's outline (so full coverage, no bevel, and inside the
// shadow's flat part, its factor 0.7), and more than rim+2 away from the
// holes and from the recess with its groove (no chamfer, no tool marks).
// Such a pixel is brushed steel and nothing else, unless a defect is
// there (render checks the defect's box).
func (sy *Synthetic) plainRow(p *frameParams, py, cx float64, xlo, xhi int) {
	clear(sy.plain[xlo:xhi])
	m := max(sy.corner+sy.shadow, sy.rim+1) + 1
	if sy.hw <= m || sy.hh <= m {
		return
	}
	lo, hi, ok := turnedBoxRow(p, py, sy.hw-m, sy.hh-m)
	if !ok || !(hi > lo) {
		return
	}
	// Whole columns strictly inside, one more off each side.
	a := min(max(int(math.Ceil(lo+cx-0.5))+1, xlo), xhi)
	b := min(max(int(math.Floor(hi+cx-0.5))-1, a), xhi)
	for x := a; x < b; x++ {
		sy.plain[x] = true
	}
	// The circles to keep clear of, in part coordinates: the four holes
	// and the recess with its groove. A circle stays a circle in the
	// frame, centred at the turned centre.
	hr, rr := sy.holeR+sy.rim+2, sy.recessR+sy.rim+2
	for _, c := range [5][3]float64{{0, 0, rr}, {sy.holeX, sy.holeY, hr}, {-sy.holeX, sy.holeY, hr},
		{sy.holeX, -sy.holeY, hr}, {-sy.holeX, -sy.holeY, hr}} {
		pxc, pyc := p.cosA*c[0]-p.sinA*c[1], p.sinA*c[0]+p.cosA*c[1]
		dy := py - pyc
		if math.Abs(dy) >= c[2] {
			continue
		}
		half := math.Sqrt(c[2]*c[2] - dy*dy)
		ca := min(max(int(math.Floor(pxc-half+cx-0.5))-1, a), b)
		cb := min(max(int(math.Ceil(pxc+half+cx-0.5))+2, ca), b)
		clear(sy.plain[ca:cb])
	}
}

// roundRectSDF is the signed distance from (u, v) to a rectangle of half
// size hw×hh with corners rounded by radius r (negative inside).
func roundRectSDF(u, v, hw, hh, r float64) float64 {
	qx := math.Abs(u) - (hw - r)
	qy := math.Abs(v) - (hh - r)
	if qx > 0 && qy > 0 {
		return math.Sqrt(qx*qx+qy*qy) - r
	}
	return max(qx, qy) - r
}

// segDist is the distance from (x, y) to the segment a–b.
func segDist(x, y, ax, ay, bx, by float64) float64 {
	vx, vy := bx-ax, by-ay
	wx, wy := x-ax, y-ay
	t := (wx*vx + wy*vy) / (vx*vx + vy*vy)
	t = min(max(t, 0), 1)
	dx, dy := wx-t*vx, wy-t*vy
	return math.Sqrt(dx*dx + dy*dy)
}

func clamp01(v float64) float64 { return min(max(v, 0), 1) }

func mix(a, b, t float64) float64 { return a + (b-a)*t }

func clampByte(v float64) uint8 {
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return uint8(v + 0.5)
}
