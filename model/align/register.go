package align

import (
	"errors"
	"fmt"
	"image"
	"math"
)

// Mode says what registration corrects.
type Mode string

// Registration modes.
const (
	// Off leaves frames as they are.
	Off Mode = "off"
	// Translate corrects shifts only.
	Translate Mode = "translate"
	// Rigid corrects shifts and rotations.
	Rigid Mode = "rigid"
	// Turn corrects shifts and rotations by any angle: parts that lie
	// anyhow (screws on a belt). It searches every StartAngles(180).
	Turn Mode = "turn"
)

// Rotates says whether the mode corrects rotations.
func (m Mode) Rotates() bool { return m == Rigid || m == Turn }

// ParseMode reads a mode name; "" is Off.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", Off:
		return Off, nil
	case Translate, Rigid, Turn:
		return Mode(s), nil
	}
	return Off, fmt.Errorf("align mode %q: want off, translate, rigid or turn", s)
}

// Thumb is the long side, in pixels, of the grid frames are registered
// on. On transistor images turned and cut by the Rd-MVTec protocol, 96
// put the good test images within 0.7 PaDiM patches of their true pose
// (median; 2.2 at worst), 128 as close (6.0 at worst: the finer grid sees
// more of the board's periodic holes), 64 worse (14.5 at worst); and 96
// costs half of 128.
const Thumb = 96

// Refinement: iterations on the coarsest level for every hypothesis, and
// on the two finer ones for the best; the hypotheses are judged
// selectDepth levels above the coarsest.
const (
	selectDepth = 1
	iterCoarse  = 30
	iterMiddle  = 15
	iterFinest  = 5
)

// levels is the number of pyramid levels (Thumb, Thumb/2, Thumb/4).
const levels = 3

// converge is how far, in pixels of level l (0 the finest), the last
// step may still move a template pixel when refinement stops. Only the
// finest level's result is kept; a coarser one is refined again on the
// finer levels, so 0.05 and 0.1 of its pixels (0.1 and 0.4 of the
// finest's) are enough. At 0.01 on every level the coarse refinement of
// each hypothesis, held at that precision by the robust reweighting, ran
// 24 of its 30 steps on average and made up most of the registration's
// time; at 0.1 it takes 6 and the registration 19–51% less time, with the
// same precision (TestRegisterPrecision: mean corner error 0.34 px at
// 640×480 either way).
func converge(l int) float64 {
	switch l {
	case 0:
		return 0.01
	case 1:
		return 0.05
	}
	return 0.1
}

// MinSide is the least width and height of a frame registration works on:
// a 32-pixel side keeps 8 pixels on the coarsest pyramid level, what the
// phase correlation and the refinement's gradients need. Smaller frames
// failed with "no image registered", a reason no user could act on.
const MinSide = 32

// MaxAspect is the longest a frame registration works on may be against
// its width: its Thumb-pixel grid keeps 13 rows of a 7.5:1 frame, 3 on
// the coarsest pyramid level. An 8:1 part failed to register at all
// (measured on the test scene; 1000×80 frames failed with "no image
// registered").
const MaxAspect = 7.5

// checkSize refuses frames registration cannot work on, saying why.
func checkSize(w, h int) error {
	if w < MinSide || h < MinSide {
		return fmt.Errorf("registration: a %dx%d frame is too small, it needs at least %d pixels on each side", w, h, MinSide)
	}
	if long, short := max(w, h), min(w, h); float64(long) > MaxAspect*float64(short) {
		return fmt.Errorf("registration: a %dx%d frame is %.1f times as long as wide, registration works on frames at most %g times: "+
			"register a region of interest (capture.roi) or leave capture.align off for such parts", w, h, float64(long)/float64(short), MaxAspect)
	}
	return nil
}

// pcSize is the phase correlation's array: the pyramid level whose long
// side fits in it is correlated.
const pcSize = 32

// hypotheses is the number of phase-correlation peaks refined: a periodic
// background (a perforated board, a grid) correlates at several shifts and
// only the refinement of the whole view tells them apart.
const hypotheses = 4

// Rotation search: refinement from one start angle finds rotations up to
// about turnReach; when the bounds allow parts to turn further (parts
// lying at any angle on a belt: max angle 180°), the registration starts
// from every turnStep within them, each start with its own phase
// correlation of the frame turned back by that angle, and keeps the
// best-matching pose.
const (
	turnReach = 20 * math.Pi / 180
	turnStep  = 30 * math.Pi / 180
	// turnHypotheses is the number of peaks refined per further start:
	// the start at the part's own turn matches clearly, the others only
	// need to be ruled out.
	turnHypotheses = 2
)

// StartAngles are the rotations, in radians, a registration with bounds of
// ±maxDeg degrees starts from: 0 alone up to turnReach, else every
// turnStep within the bounds (a full turn: 12 starts).
func StartAngles(maxDeg float64) []float64 {
	m := maxDeg * math.Pi / 180
	if !(m > turnReach) {
		return []float64{0}
	}
	out := []float64{0}
	// A further start while the one before it does not reach the bound.
	for k := 1; float64(k-1)*turnStep+turnReach < m && float64(k)*turnStep < math.Pi+1e-9; k++ {
		a := float64(k) * turnStep
		out = append(out, a)
		if a < math.Pi-1e-9 {
			out = append(out, -a)
		}
	}
	return out
}

// Transform is a frame's rigid transform to the reference view: a point u
// of the reference view, in the frame's pixel coordinates, lies in the
// frame at R(Angle)·(u − c) + c + (DX, DY), where c is the frame's centre.
// A positive Angle turns clockwise on the image (y points down).
type Transform struct {
	// Angle is in radians.
	Angle float64
	// DX, DY are in frame pixels.
	DX, DY float64
}

// Identity is the transform of a frame that is already aligned.
var Identity = Transform{}

// Result is the registration of one frame.
type Result struct {
	Transform
	// Confidence is the normalized cross-correlation of the registered
	// frame with the reference over their overlap, −1..1.
	Confidence float64
	// Overlap is the share of the reference view that the frame covers.
	Overlap float64
}

// AngleDegrees is the rotation in degrees.
func (r Result) AngleDegrees() float64 { return r.Angle * 180 / math.Pi }

// Reference is a good part's view that frames are registered to, on a
// grid of at most Thumb pixels along its long side. It is read-only once
// built and shared by any number of Registrars.
type Reference struct {
	mode Mode
	// frameW, frameH are the size of the frames it was built from.
	frameW, frameH int
	// template is the averaged luminance, 0..255, at the thumbnail scale
	// of a frameW×frameH frame.
	template Gray32
	// weight is each template pixel's say in the registration (mean 1):
	// where the good images agree after registration (the part) counts
	// more than what varies between them (a background the part slides
	// over, reflections).
	weight Gray32
	// spread is how far the good images the reference was built from lay
	// from it (not Measured in files from before it: no pose prior).
	spread  Spread
	lv      [levels]*tmplLevel
	pcLevel int
	pcRef   []complex128 // conjugate spectrum of level pcLevel
}

// Mode is what the reference registers.
func (r *Reference) Mode() Mode { return r.mode }

// Spread is how far from the reference view the good images it was built
// from lay: the largest shift of any of them, as a fraction of the frame's
// width (X) and height (Y). The registration prefers poses within it
// (plus spreadMargin): a part that moved further is registered there only
// when it matches clearly better than any pose the good parts took
// (spreadWeight). Without it (Measured false: models fitted before it
// existed) every pose within the bounds is judged by its match alone.
type Spread struct {
	X, Y float64
	// Measured says the spread was measured; a line whose parts never
	// moved has a measured spread of zero, the strongest prior.
	Measured bool
}

// Check returns an error unless both fractions are in 0..1 and finite.
func (s Spread) Check() error {
	if !(s.X >= 0 && s.X <= 1 && s.Y >= 0 && s.Y <= 1) {
		return fmt.Errorf("align spread (%v, %v): want fractions of the frame in 0..1", s.X, s.Y)
	}
	return nil
}

// Spread is the pose spread of the good images the reference was built
// from (not Measured when unknown).
func (r *Reference) Spread() Spread { return r.spread }

// SetSpread sets the pose spread of a reference loaded from a model file
// (Spread.Check).
func (r *Reference) SetSpread(s Spread) error {
	if err := s.Check(); err != nil {
		return err
	}
	r.spread = s
	return nil
}

// The pose prior. A periodic fixture (a perforated board, a tray, a
// grid) matches itself one period away; a part that moved on it, or is
// missing, then matches the reference better one period off than where
// the good parts lay (MVTec AD transistor: 6 of its 10 misplaced parts
// registered 105–126 px off in 512-px frames, the whole board misaligned
// and every pixel of the map lit, where the good parts lay within 34 px).
// So on each axis a hypothesis's match is discounted by spreadWeight times
// the fraction of the frame it lies beyond the spread plus spreadMargin,
// and the home pose (where the good parts lay on average) is always one
// of the hypotheses. The weight is a compromise measured both ways: at 2,
// 4 of those 6 stay home; at 4 all of transistor's registered maps are as
// good as unregistered ones (pixel AUROC 0.9854 against 0.9853), but a
// clean part moved 12% and 10% of the frame beyond a line whose parts
// never moved (a knocked camera: TestRegisterRecoversTransforms) is then
// registered to a spurious pose matching 0.58 instead of its own 0.95.
const (
	spreadMargin = 0.05
	spreadWeight = 2.0
)

// priorPenalty is the discount of a hypothesis shifted by (dx, dy)
// frame pixels in a w×h frame.
func (s Spread) priorPenalty(dx, dy float64, w, h int) float64 {
	if !s.Measured {
		return 0
	}
	ex := max(math.Abs(dx)/float64(w)-s.X-spreadMargin, 0)
	ey := max(math.Abs(dy)/float64(h)-s.Y-spreadMargin, 0)
	return spreadWeight * (ex + ey)
}

// FrameSize is the size of the frames the reference was built from.
func (r *Reference) FrameSize() (w, h int) { return r.frameW, r.frameH }

// Template is the reference view: its width, height, luminance (0..255,
// row major) and each pixel's weight in the registration. The slices are
// the reference's own; do not modify them.
func (r *Reference) Template() (w, h int, pix, weight []float32) {
	return r.template.W, r.template.H, r.template.Pix, r.weight.Pix
}

// maxWeight bounds a pixel's weight (the mean is 1).
const maxWeight = 64

// NewReference makes a reference from a stored template (Template's
// output) for frames of frameW×frameH pixels; nil weights weigh every
// pixel alike.
func NewReference(mode Mode, frameW, frameH, w, h int, pix, weight []float32) (*Reference, error) {
	if mode != Translate && !mode.Rotates() {
		return nil, fmt.Errorf("align reference: mode %q, want translate, rigid or turn", mode)
	}
	tw, th, _ := thumbGeometry(frameW, frameH, Thumb)
	if frameW <= 0 || frameH <= 0 || w != tw || h != th {
		return nil, fmt.Errorf("align reference: template %dx%d for %dx%d frames, want %dx%d", w, h, frameW, frameH, tw, th)
	}
	if len(pix) != w*h {
		return nil, fmt.Errorf("align reference: template has %d values, want %dx%d", len(pix), w, h)
	}
	for i, v := range pix {
		if !(v >= 0 && v <= 255) {
			return nil, fmt.Errorf("align reference: template value %v at %d, want 0..255", v, i)
		}
	}
	if weight != nil && len(weight) != w*h {
		return nil, fmt.Errorf("align reference: %d weights for a %dx%d template", len(weight), w, h)
	}
	var sum float64
	for i, v := range weight {
		if !(v >= 0 && v <= maxWeight) {
			return nil, fmt.Errorf("align reference: weight %v at %d, want 0..%d", v, i, maxWeight)
		}
		sum += float64(v)
	}
	if weight != nil && !(sum > 0) {
		return nil, errors.New("align reference: every weight is 0")
	}
	r := &Reference{mode: mode, frameW: frameW, frameH: frameH}
	r.template.resize(w, h)
	copy(r.template.Pix, pix)
	r.weight.resize(w, h)
	if weight == nil {
		for i := range r.weight.Pix {
			r.weight.Pix[i] = 1
		}
	} else {
		copy(r.weight.Pix, weight)
	}
	r.prepare()
	return r, nil
}

// prepare derives the pyramid and the phase-correlation spectrum.
func (r *Reference) prepare() {
	_, _, f := thumbGeometry(r.frameW, r.frameH, Thumb)
	cx, cy := float64(r.frameW)*f/2, float64(r.frameH)*f/2
	g, wg := r.template, r.weight
	r.pcLevel = levels - 1
	var pcImg Gray32
	for l := 0; l < levels; l++ {
		k := math.Ldexp(1, -l)
		r.lv[l] = newTmplLevel(&g, &wg, cx*k, cy*k)
		if max(g.W, g.H) <= pcSize && l < r.pcLevel {
			r.pcLevel = l
			pcImg = g
		}
		if l == levels-1 && r.pcLevel == l {
			pcImg = g
		}
		if l < levels-1 {
			var next, wnext Gray32
			halve(&next, &g)
			halve(&wnext, &wg)
			g, wg = next, wnext
		}
	}
	pc := newPhaseCorr(pcSize)
	pc.setReference(&pcImg)
	r.pcRef = pc.ref
}

// Registrar registers frames to a Reference. It reuses its buffers and is
// not safe for concurrent use; Register does not allocate in steady state.
type Registrar struct {
	ref   *Reference
	pyr   [levels]Gray32
	w, h  int // the frame's size
	pc    *phaseCorr
	peaks []peak
	lk    lkScratch
	plan  thumbPlan
	// starts are the start angles (StartAngles); rot the phase
	// correlation level turned back by one of them.
	starts []float64
	rot    Gray32
}

// NewRegistrar prepares the buffers for registering frames to ref.
func NewRegistrar(ref *Reference) *Registrar {
	pc := newPhaseCorr(pcSize)
	pc.ref = ref.pcRef
	g := &Registrar{ref: ref, pc: pc, peaks: make([]peak, 0, hypotheses)}
	g.SetMaxAngle(0)
	return g
}

// SetMaxAngle sets the rotations a rigid reference's frames are searched
// over to ±deg degrees (the bounds' max angle): beyond turnReach the
// registration starts from several angles (StartAngles), which costs one
// phase correlation and two coarse refinements per start. A turn
// reference always searches a full turn, a translate one none.
func (g *Registrar) SetMaxAngle(deg float64) {
	switch g.ref.mode {
	case Rigid:
		g.starts = StartAngles(deg)
	case Turn:
		g.starts = StartAngles(180)
	default:
		g.starts = []float64{0}
	}
}

// Reference is what the registrar registers to.
func (g *Registrar) Reference() *Reference { return g.ref }

// ErrNoOverlap is returned when no pose puts enough of the reference view
// inside the frame.
var ErrNoOverlap = errors.New("registration failed: no position of the reference view overlaps the frame enough")

// Register estimates img's transform to the reference view. The
// confidence tells how well the frame matches; bounds are the caller's
// (Bounds.Check).
func (g *Registrar) Register(img image.Image) (Result, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if err := checkSize(w, h); err != nil {
		return Result{}, err
	}
	g.w, g.h = w, h
	tw, th, f := thumbGeometry(w, h, Thumb)
	thumbnail(&g.pyr[0], img, tw, th, f, &g.plan)
	for l := 1; l < levels; l++ {
		halve(&g.pyr[l], &g.pyr[l-1])
	}
	return g.registerPyramid(f)
}

// registerPyramid registers the frame pyramid in g.pyr; f is the frame's
// thumbnail scale (thumbnail pixels per frame pixel).
func (g *Registrar) registerPyramid(f float64) (Result, error) {
	ref := g.ref
	rigid := ref.mode.Rotates()
	// Translation hypotheses from phase correlation, in pcLevel pixels.
	pl := ref.pcLevel
	tl := ref.lv[pl]
	g.peaks = g.pc.correlate(g.peaks, &g.pyr[pl], hypotheses)
	// A peak at shift d of the padded arrays says the image's content sits
	// at the template's plus d: t = d − (cI − cT).
	ci := [2]float64{float64(g.w) * f / 2, float64(g.h) * f / 2}
	scale := func(l int) float64 { return math.Ldexp(1, -l) }
	off := func(q peak, l int) pose {
		s := math.Ldexp(1, pl-l)
		k := scale(pl)
		return pose{tx: (q.DX - (ci[0]*k - tl.cx)) * s, ty: (q.DY - (ci[1]*k - tl.cy)) * s}
	}
	// Refine every hypothesis on the coarsest level and judge it on the
	// next finer one (a coarse level cannot tell a periodic background's
	// shifts apart); then refine the best on the finer levels.
	top := levels - 1
	sel := max(top-selectDepth, 0)
	best := lkResult{ncc: math.Inf(-1)}
	bestScore := math.Inf(-1)
	hyps := 0
	// judge refines a hypothesis at pose p0 (level top) down to level sel
	// and keeps it when its match, less the pose prior, is the best yet.
	judge := func(p0 pose) {
		r := g.lk.refine(ref.lv[top], &g.pyr[top], ci[0]*scale(top), ci[1]*scale(top), p0, rigid, iterCoarse, converge(top))
		if r.ncc == -1 {
			return
		}
		p := r.p
		for l := top - 1; l >= sel; l-- {
			p.tx, p.ty = 2*p.tx, 2*p.ty
			r = g.lk.refine(ref.lv[l], &g.pyr[l], ci[0]*scale(l), ci[1]*scale(l), p, rigid, 0, converge(l))
		}
		k := 1 / (scale(sel) * f) // level-sel pixels to frame pixels
		if s := r.ncc - ref.spread.priorPenalty(r.p.tx*k, r.p.ty*k, g.w, g.h); s > bestScore {
			best, bestScore = r, s
		}
	}
	home := ref.spread.Measured
	for si, a := range g.starts {
		if si > 0 {
			// The frame turned back by a: its content then sits at the
			// template's plus d, i.e. the pose (a, R(a)·d).
			rotateInto(&g.rot, &g.pyr[pl], a, ci[0]*scale(pl), ci[1]*scale(pl))
			g.peaks = g.pc.correlate(g.peaks, &g.rot, turnHypotheses)
		}
		cs, sn := math.Cos(a), math.Sin(a)
		hyps += len(g.peaks)
		for _, q := range g.peaks {
			p0 := off(q, top)
			if si == 0 && math.Abs(p0.tx) < 1 && math.Abs(p0.ty) < 1 {
				home = false // a peak starts there already
			}
			judge(pose{theta: a, tx: cs*p0.tx - sn*p0.ty, ty: sn*p0.tx + cs*p0.ty})
		}
	}
	if home {
		hyps++
		judge(pose{})
	}
	if hyps == 0 || best.ncc == -1 || math.IsInf(best.ncc, -1) {
		return Result{}, ErrNoOverlap
	}
	p := best.p
	iters := [levels]int{iterFinest, iterMiddle, iterCoarse}
	for l := sel; l >= 0; l-- {
		if l < sel {
			p.tx, p.ty = 2*p.tx, 2*p.ty
		}
		best = g.lk.refine(ref.lv[l], &g.pyr[l], ci[0]*scale(l), ci[1]*scale(l), p, rigid, iters[l], converge(l))
		if best.ncc == -1 {
			return Result{}, ErrNoOverlap
		}
		p = best.p
	}
	return Result{Transform: Transform{Angle: wrapAngle(p.theta), DX: p.tx / f, DY: p.ty / f}, Confidence: best.ncc, Overlap: best.overlap}, nil
}

// wrapAngle brings an angle into (−π, π].
func wrapAngle(a float64) float64 {
	a = math.Remainder(a, 2*math.Pi)
	if a <= -math.Pi {
		a += 2 * math.Pi
	}
	return a
}

// rotateInto writes src turned back by angle a about (cx, cy) into dst:
// dst(x) = src(R(a)·(x − c) + c), bilinear; what falls outside src takes
// its mean, which the phase correlation removes.
func rotateInto(dst, src *Gray32, a, cx, cy float64) {
	dst.resize(src.W, src.H)
	var mean float64
	for _, v := range src.Pix {
		mean += float64(v)
	}
	fill := float32(mean / float64(max(len(src.Pix), 1)))
	cs, sn := math.Cos(a), math.Sin(a)
	for y := 0; y < src.H; y++ {
		uy := float64(y) + 0.5 - cy
		for x := 0; x < src.W; x++ {
			ux := float64(x) + 0.5 - cx
			v, ok := src.sample(float32(cs*ux-sn*uy+cx), float32(sn*ux+cs*uy+cy))
			if !ok {
				v = fill
			}
			dst.Pix[y*src.W+x] = v
		}
	}
}
