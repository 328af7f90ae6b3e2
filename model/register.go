package model

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"runtime"
	"slices"

	"github.com/inspectd/inspectd/model/align"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/padim"
)

// AlignOptions configure registration: every frame is aligned to a
// reference view of a good part, chosen at fit time and stored in the model
// file, before it reaches the backbone (model/align).
type AlignOptions struct {
	// Mode is align.Off, align.Translate, align.Rigid or align.Turn (fit;
	// a model file's own mode wins at load, since its Gaussians were fitted
	// on frames aligned that way). With a mode other than off, the recipe
	// search registers every candidate that way.
	Mode align.Mode
	// Offer lets the recipe search, with Mode off, try registration beside
	// unregistered frames when the good images' poses vary (alignOffer).
	Offer bool
	// MaxShift bounds the shift a frame may be corrected by, as a fraction
	// of its width and of its height (0: DefaultMaxShift).
	MaxShift float64
	// MaxAngle bounds the rotation, in degrees (0: DefaultMaxAngle).
	MaxAngle float64
	// MinConfidence is the lowest registration confidence (normalized
	// cross-correlation with the reference view, −1..1) a frame may have
	// to be scored; 0 takes the one learned at fit time from the training
	// images (Info.AlignMinConfidence).
	MinConfidence float64
}

// Default bounds of a registration: beyond them a frame is not scored.
// The Rd-MVTec protocol moves parts by up to ±10° and 12.5% of the frame
// against each other; half a quarter of the frame and 20° leave room for
// that and refuse a part lying somewhere else.
const (
	DefaultMaxShift = 0.25
	DefaultMaxAngle = 20
)

// confidenceMargin is how far below the 1st percentile of the training
// images' confidences the learned floor lies: measured on transistor
// (Rd-MVTec), training images 0.79-0.98, good test images from 0.76,
// misplaced transistors from −0.04 (median 0.54).
const confidenceMargin = 0.15

// Registration is what Inspect reports of a frame's registration to the
// reference view.
type Registration struct {
	// Mode is the model's registration mode ("" when it has none; the
	// other fields are then zero).
	Mode align.Mode `json:"mode,omitempty"`
	// ShiftX, ShiftY are the part's shift in the frame against the
	// reference view, in frame pixels (x right, y down).
	ShiftX float64 `json:"shift_x"`
	ShiftY float64 `json:"shift_y"`
	// Angle is the part's rotation in degrees, clockwise on the image.
	Angle float64 `json:"angle_deg"`
	// Confidence is the normalized cross-correlation of the aligned frame
	// with the reference view over their overlap, −1..1.
	Confidence float64 `json:"confidence"`
}

// ErrRegistration is wrapped by Inspect's error when a frame could not be
// aligned to the reference view, or only by more than the bounds allow: it
// was not scored (scoring it unaligned would judge the part against the
// wrong patches) and must be reported as an error.
var ErrRegistration = errors.New("registration failed")

// RegistrationError says why a frame was not aligned. Kind is a short
// stable name of the reason ("no_overlap", "low_confidence", "shift",
// "angle") for logs and metrics; Registration is the estimate (zero for
// no_overlap).
type RegistrationError struct {
	Kind         string
	Registration Registration
	msg          string
}

func (e *RegistrationError) Error() string { return ErrRegistration.Error() + ": " + e.msg }

// Unwrap makes errors.Is(err, ErrRegistration) hold.
func (e *RegistrationError) Unwrap() error { return ErrRegistration }

// aligner registers frames to the reference and warps them into it.
type aligner struct {
	ref *align.Reference
	reg *align.Registrar
	// shape is what the backbone makes of a view (viewSize); warp's
	// InputSide is the input's side.
	shape viewShape
	warp  align.Warper
	// Bounds in force: shift as a fraction of the frame, angle in degrees,
	// confidence floor (learned: the fit's; check off while fitting).
	maxShift, maxAngle, minConf float64
	learned                     float64
	check                       bool
	last                        align.Result
	lastW                       int
	lastH                       int
	// confs collects the confidences of the frames registered while
	// collecting is set (the training images, for the learned floor).
	confs      []float64
	collecting bool
	// unplaced: a frame no position of the reference overlaps is scored
	// where it lies (InspectUnbounded); noOverlap says the last one was.
	unplaced, noOverlap bool
}

func errNoOverlap() error {
	return &RegistrationError{Kind: "no_overlap", msg: "no position of the reference view overlaps the frame enough (is the part in view?)"}
}

func newAligner(ref *align.Reference, o AlignOptions, learned float64, shape viewShape) *aligner {
	a := &aligner{ref: ref, reg: align.NewRegistrar(ref), learned: learned, shape: shape,
		warp: align.Warper{InputSide: max(shape.inW, shape.inH), Workers: shape.workers}}
	a.setBounds(o)
	return a
}

// bounds are the shift and angle bounds in force: the configured ones,
// the defaults for zeros.
func (o AlignOptions) bounds() (maxShift, maxAngle float64) {
	maxShift, maxAngle = o.MaxShift, o.MaxAngle
	if !(maxShift > 0) {
		maxShift = DefaultMaxShift
	}
	if !(maxAngle > 0) {
		maxAngle = DefaultMaxAngle
	}
	return maxShift, maxAngle
}

// setBounds applies the configured bounds (defaults for zeros); a turn
// reference takes parts at any angle, whatever the angle bound.
func (a *aligner) setBounds(o AlignOptions) {
	a.maxShift, a.maxAngle = o.bounds()
	if a.ref.Mode() == align.Turn {
		a.maxAngle = 180
	}
	a.minConf = o.MinConfidence
	if a.minConf == 0 {
		a.minConf = a.learned
	}
	a.check = true
	a.reg.SetMaxAngle(a.maxAngle) // parts that may turn further are searched further
}

// viewShape is what the backbone makes of an aligned view: its input's
// size, whether it letterboxes the view (fit) or squashes it, and the
// tiles the view is cut into along one axis (each squashed).
type viewShape struct {
	inW, inH int
	fit      bool
	tiles    int
	axis     string
	// workers share the warp's rows (align.Warper.Workers).
	workers int
}

// viewSize is the size of the aligned view of a w×h frame: on each axis
// twice the network input's pixels that axis reaches, never more than the
// frame's. A finer view would cost time and change nothing the backbone
// sees after its antialiasing resample: a squashed 1280×720 frame's view
// is 448×448 (it was 796×448, its short side's resolution on both axes);
// a letterboxed one is scaled alike on both axes, by its long side.
func (a *aligner) viewSize(w, h int) image.Point {
	sh := a.shape
	tx, ty := 1, 1
	if sh.tiles > 1 {
		if sh.axis == axisY {
			ty = sh.tiles
		} else {
			tx = sh.tiles
		}
	}
	if sh.fit && sh.tiles <= 1 {
		s := max(1, float64(w)/float64(2*sh.inW), float64(h)/float64(2*sh.inH))
		vw, vh := align.ViewSize(w, h, s)
		return image.Pt(vw, vh)
	}
	return image.Pt(min(w, 2*sh.inW*tx), min(h, 2*sh.inH*ty))
}

// registration is the last frame's registration as Inspect reports it.
func (a *aligner) registration() Registration {
	r := a.last
	return Registration{Mode: a.ref.Mode(), ShiftX: r.DX, ShiftY: r.DY, Angle: r.AngleDegrees(), Confidence: r.Confidence}
}

// apply registers img, checks the bounds and returns its aligned view.
func (a *aligner) apply(img image.Image) (image.Image, error) {
	b := img.Bounds()
	a.lastW, a.lastH = b.Dx(), b.Dy()
	r, err := a.reg.Register(img)
	a.last, a.noOverlap = r, false
	if err == nil && a.collecting {
		a.confs = append(a.confs, r.Confidence)
	}
	if err != nil {
		if errors.Is(err, align.ErrNoOverlap) {
			a.noOverlap = true
			if a.unplaced {
				// Evaluation only: the frame is scored where it lies.
				a.last = align.Result{Confidence: math.NaN()}
				return a.warp.Apply(img, align.Identity, a.viewSize(b.Dx(), b.Dy())), nil
			}
			return nil, errNoOverlap()
		}
		return nil, fmt.Errorf("%w: %w", ErrRegistration, err)
	}
	if a.check {
		if err := a.bounds(r, b.Dx(), b.Dy()); err != nil {
			return nil, err
		}
	}
	return a.warp.Apply(img, r.Transform, a.viewSize(b.Dx(), b.Dy())), nil
}

// bounds returns the RegistrationError of a result beyond the bounds.
func (a *aligner) bounds(r align.Result, w, h int) error {
	reg := a.registration()
	switch {
	case math.IsNaN(r.Confidence) || r.Confidence < a.minConf:
		msg := fmt.Sprintf("confidence %.3f below %.3f: the frame does not match the reference view of a good part", r.Confidence, a.minConf)
		if fw, fh := a.ref.FrameSize(); fw != w || fh != h {
			msg += fmt.Sprintf(" (fitted on %dx%d frames, this one is %dx%d)", fw, fh, w, h)
		}
		return &RegistrationError{Kind: "low_confidence", Registration: reg, msg: msg}
	case math.Abs(reg.Angle) > a.maxAngle:
		return &RegistrationError{Kind: "angle", Registration: reg,
			msg: fmt.Sprintf("part turned by %.2f°, beyond the bound of %g°", reg.Angle, a.maxAngle)}
	case math.Abs(r.DX) > a.maxShift*float64(w) || math.Abs(r.DY) > a.maxShift*float64(h):
		return &RegistrationError{Kind: "shift", Registration: reg,
			msg: fmt.Sprintf("part shifted by (%.1f, %.1f) px, beyond the bound of %g of the frame (%.1f, %.1f px)",
				r.DX, r.DY, a.maxShift, a.maxShift*float64(w), a.maxShift*float64(h))}
	}
	return nil
}

// mapSize is the size the anomaly map of a w×h frame is drawn at on the
// reference view: the network input's resolution (its short side the
// input's side, where PaDiM draws it), never finer than the frame. At the
// view's size (short side twice that) it drew four times the pixels of a
// map blurred by 4 of them, which mapBack interpolates anyway.
func (a *aligner) mapSize(w, h int) (int, int) {
	return align.ViewSize(w, h, float64(min(w, h))/float64(max(a.shape.inW, a.shape.inH, 1)))
}

// pose is where a frame lay: its size and registration, what is needed to
// bring its map back.
type pose struct {
	w, h int
	t    align.Transform
}

// lastPose is the last frame's pose.
func (a *aligner) lastPose() pose { return pose{a.lastW, a.lastH, a.last.Transform} }

// mapBack warps a map drawn on the view of a frame at pose p (mapSize)
// into dst at the frame's size; sigma is the map's blur in its pixels.
// The map is smooth on that scale, so it is sampled at knots a quarter of
// the blur apart in the frame (align.StepFor) and interpolated between:
// at 1280×720 the warp back of every pixel cost 3–4 ms, as much as the
// map itself.
func (a *aligner) mapBack(dst, view []float32, p pose, sigma float64) ([]float32, error) {
	vw, vh := a.mapSize(p.w, p.h)
	k := min(float64(p.w)/float64(vw), float64(p.h)/float64(vh))
	return a.warp.WarpBack(dst, p.w, p.h, view, vw, vh, p.t, align.StepFor(sigma*k))
}

// score is the image score of a map drawn on the view of a frame at pose
// p (mapSize): its maximum over the map pixels the frame covers
// (align.MaxInFrame), so that pixels the frame does not reach (edge
// pixels replicated into the view) never decide it. It reads the view's map as it is: warping it
// back to the frame (three times per frame with the fine overlay) cost
// 2.7 ms each at 1280×720.
func (a *aligner) score(view []float32, p pose) (float32, error) {
	vw, vh := a.mapSize(p.w, p.h)
	return align.MaxInFrame(view, vw, vh, p.w, p.h, p.t)
}

// InspectUnbounded is Inspect with the registration's bounds (confidence,
// shift, angle) not enforced: a frame beyond them is scored at its
// estimated pose (one no position of the reference overlaps, where it
// lies), and the error Inspect would have returned comes back as refused
// (nil within the bounds). It is for evaluation, which measures
// the maps of frames the daemon refuses; the daemon never scores them.
// Without registration it is Inspect.
func (d *Detector) InspectUnbounded(img image.Image) (r *Inspection, refused, err error) {
	if d.al == nil {
		r, err = d.Inspect(img)
		return r, nil, err
	}
	d.al.check, d.al.unplaced = false, true
	r, err = d.Inspect(img)
	d.al.check, d.al.unplaced = true, false
	if err != nil {
		return nil, nil, err
	}
	if d.al.noOverlap {
		return r, errNoOverlap(), nil
	}
	b := img.Bounds()
	return r, d.al.bounds(d.al.last, b.Dx(), b.Dy()), nil
}

// viewShape is what the detector's backbone and tiles make of a view,
// and how many goroutines warp it: as many as score (Options.Workers),
// at most maxWarpWorkers.
func (d *Detector) viewShape() viewShape {
	inW, inH := d.bb.InputSize()
	workers := d.opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return viewShape{inW: inW, inH: inH, fit: d.opts.Backbone.Preprocess.Resize == backbone.ResizeFit,
		tiles: d.tiles.n, axis: d.tiles.axis, workers: min(workers, maxWarpWorkers)}
}

// maxWarpWorkers bounds the goroutines that share a view's rows: a view
// of 448×448 takes about 1 ms on one core of a 2-vCPU box, and each
// helper's share costs a hand-off.
const maxWarpWorkers = 4

// close stops the warp's helpers; nil-safe.
func (a *aligner) close() {
	if a != nil {
		a.warp.Close()
	}
}

// attachAligner gives a detector whose recipe registers frames its
// reference view, built from (up to align.BuildImages of) the images idx;
// the bounds stay unenforced until arm (every training image is fitted at
// its estimated pose) and the confidences of the frames registered until
// learnFloor are collected.
func (d *Detector) attachAligner(ctx context.Context, src ImageSource, idx []int) error {
	if !d.recipe.aligned() {
		return nil
	}
	ref, brep, err := buildReference(ctx, d.recipe.Align, d.opts.Align.MaxAngle, src, idx)
	if err != nil {
		return fmt.Errorf("fit: reference view: %w", err)
	}
	d.al = newAligner(ref, d.opts.Align, 0, d.viewShape())
	d.al.check, d.al.collecting = false, true
	d.opts.Logger.Debug("reference view built", "align", d.recipe.Align, "images", brep.Images)
	d.alignSizes = brep.FrameSizes
	return nil
}

// learnFloor sets the confidence floor from the confidences collected
// (learnedFloor) and the bounds of o; nil-safe.
func (a *aligner) learnFloor(o AlignOptions) {
	if a == nil {
		return
	}
	a.learned = learnedFloor(a.confs)
	a.confs, a.collecting = nil, false
	a.setBounds(o)
	a.check = false
}

// arm enforces the bounds from now on; nil-safe.
func (a *aligner) arm() {
	if a != nil {
		a.check = true
	}
}

// buildReference builds the reference view from up to align.BuildImages
// of the images idx of src, spread over them.
func buildReference(ctx context.Context, mode align.Mode, maxAngle float64, src ImageSource, idx []int) (*align.Reference, align.BuildReport, error) {
	b, err := align.NewBuilder(mode)
	if err != nil {
		return nil, align.BuildReport{}, err
	}
	b.SetMaxAngle(maxAngle)
	n := min(len(idx), align.BuildImages)
	pick := make([]int, n)
	for i := range pick {
		pick[i] = idx[i*len(idx)/n]
	}
	for im := range prefetch(ctx, src, pick) {
		if im.err != nil {
			return nil, align.BuildReport{}, fmt.Errorf("image %d: %w", im.i, im.err)
		}
		if err := b.Add(im.img); err != nil {
			return nil, align.BuildReport{}, fmt.Errorf("%s: %w", imageLabel(src, im.i), err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, align.BuildReport{}, err
	}
	return b.Build()
}

// PoseSpread is how much the parts of a line move between its good
// images: the root mean square of their registration to a rigid reference
// view built from them (BuildReport.Results), shift as a fraction of the
// frame's diagonal, angle in degrees.
type PoseSpread struct {
	Shift, Angle float64
	// SideShift is the same shift measured as registration's bounds are
	// (AlignOptions.MaxShift): the larger of its horizontal part over the
	// frame's width and its vertical part over the height, root mean
	// square over the images. Shift, a fraction of the diagonal, is
	// smaller by up to √2 on square frames.
	SideShift float64
	Images    int
	// OneSize says every image had the same size; Aspect is that frame's
	// long side over its short side.
	OneSize bool
	Aspect  float64
}

// Pose variation above which the recipe search offers registration when
// the configuration leaves it to the search (AlignOptions.Offer, mode auto) (measured by PoseSpread on the
// four sets of shared/data: see README, registration).
const (
	poseShiftVaries = 0.01
	poseAngleVaries = 1.0
)

// poseSpread measures the pose spread of the images idx of src.
func poseSpread(ctx context.Context, src ImageSource, idx []int) (PoseSpread, error) {
	ref, rep, err := buildReference(ctx, align.Rigid, 0, src, idx)
	if err != nil {
		return PoseSpread{}, err
	}
	fw, fh := ref.FrameSize()
	diag := math.Hypot(float64(fw), float64(fh))
	var ps PoseSpread
	for _, r := range rep.Results {
		ps.Shift += (r.DX*r.DX + r.DY*r.DY) / (diag * diag)
		side := max(math.Abs(r.DX)/float64(fw), math.Abs(r.DY)/float64(fh))
		ps.SideShift += side * side
		ps.Angle += r.AngleDegrees() * r.AngleDegrees()
	}
	n := float64(max(len(rep.Results), 1))
	ps.Shift, ps.Angle, ps.Images = math.Sqrt(ps.Shift/n), math.Sqrt(ps.Angle/n), len(rep.Results)
	ps.SideShift = math.Sqrt(ps.SideShift / n)
	ps.OneSize, ps.Aspect = rep.FrameSizes == 1, float64(max(fw, fh))/float64(max(min(fw, fh), 1))
	return ps, nil
}

// turnAspect bounds the frames registration at any angle is suggested
// for: a part that may lie at any angle is framed with room to turn (a
// square field of view, or near it); a long strip (a line-scan camera, a
// commutator's surface) is a texture or a part with one orientation.
const turnAspect = 1.5

// TurnSuggested says whether the parts turn beyond what rigid
// registration follows, in frames of one size that are near square
// (turnAspect): a line where registration at any angle (align.Turn) is
// worth trying. The search does not offer it by itself: on screw it lifted
// pixel AUROC and PRO but cost image AUROC (README, registration).
func (ps PoseSpread) TurnSuggested(o AlignOptions) bool {
	_, maxAngle := o.bounds()
	return ps.Images > 0 && ps.Angle > maxAngle/2 && ps.OneSize && ps.Aspect < turnAspect
}

// alignOffer is the registration the recipe search tries: the configured
// mode (every candidate registered; the spread is measured, except for
// turn, to warn of parts beyond the bounds), or with registration off and
// Offer set, rigid when the good images turn, translate when they only
// shift, none when they keep still or move more than half the bounds
// allow (then beside unregistered frames).
func alignOffer(ctx context.Context, o Options, src ImageSource, idx []int) (align.Mode, PoseSpread, error) {
	if o.Align.Mode == align.Turn {
		return o.Align.Mode, PoseSpread{}, nil
	}
	if o.Align.Mode == align.Translate || o.Align.Mode == align.Rigid {
		ps, err := poseSpread(ctx, src, idx)
		return o.Align.Mode, ps, err
	}
	if !o.Align.Offer {
		return "", PoseSpread{}, nil
	}
	ps, err := poseSpread(ctx, src, idx)
	if err != nil {
		return "", ps, err
	}
	maxShift, maxAngle := o.Align.bounds()
	// Poses spread beyond half the bounds (screws lying at any angle, a
	// texture with no pose of its own) are not something registration to
	// one view within the bounds can follow: it would refuse good parts
	// (31 of 40 screw test images at the default bounds) and its
	// candidates only cost time (TurnSuggested says when align.Turn may).
	if ps.Angle > maxAngle/2 || ps.SideShift > maxShift/2 {
		return "", ps, nil
	}
	switch {
	case ps.Angle > poseAngleVaries:
		return align.Rigid, ps, nil
	case ps.Shift > poseShiftVaries:
		return align.Translate, ps, nil
	}
	return "", ps, nil
}

// learnedFloor is the confidence floor from the training images'
// confidences: their 1st percentile less confidenceMargin.
func learnedFloor(conf []float64) float64 {
	if len(conf) == 0 {
		return 0
	}
	c := slices.Clone(conf)
	slices.Sort(c)
	return c[len(c)/100] - confidenceMargin
}

// Model file entries of the reference view.
const (
	tensorAlignTemplate = "align_template"
	tensorAlignWeight   = "align_weight"
	extraAlign          = "align"
)

// alignMeta is what the model file records of the registration besides
// its template.
type alignMeta struct {
	Mode          align.Mode `json:"mode"`
	FrameW        int        `json:"frame_w"`
	FrameH        int        `json:"frame_h"`
	MinConfidence float64    `json:"min_confidence"`
	// SpreadX, SpreadY are the reference's pose spread (align.Spread),
	// both or neither: files from before it have neither and register
	// without the prior.
	SpreadX *float64 `json:"spread_x,omitempty"`
	SpreadY *float64 `json:"spread_y,omitempty"`
}

// save writes the reference view into m.
func (a *aligner) save(m *padim.Model) error {
	w, h, pix, weight := a.ref.Template()
	fw, fh := a.ref.FrameSize()
	m0 := alignMeta{Mode: a.ref.Mode(), FrameW: fw, FrameH: fh, MinConfidence: a.learned}
	if sp := a.ref.Spread(); sp.Measured {
		m0.SpreadX, m0.SpreadY = &sp.X, &sp.Y
	}
	meta, err := json.Marshal(m0)
	if err != nil {
		return err
	}
	if m.Tensors == nil {
		m.Tensors = map[string]padim.Tensor{}
	}
	m.Tensors[tensorAlignTemplate] = padim.Tensor{Shape: []int{h, w}, Data: pix}
	m.Tensors[tensorAlignWeight] = padim.Tensor{Shape: []int{h, w}, Data: weight}
	if m.Meta.Extra == nil {
		m.Meta.Extra = map[string]string{}
	}
	m.Meta.Extra[extraAlign] = string(meta)
	return nil
}

// loadAligner reads the reference view of a model file; nil when the
// model has none.
func loadAligner(pm *padim.Model, o AlignOptions, shape viewShape) (*aligner, error) {
	raw, ok := pm.Meta.Extra[extraAlign]
	t, okT := pm.Tensors[tensorAlignTemplate]
	if !ok && !okT {
		return nil, nil
	}
	if ok != okT {
		return nil, fmt.Errorf("registration: metadata %q and tensor %q must come together", extraAlign, tensorAlignTemplate)
	}
	var meta alignMeta
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		return nil, fmt.Errorf("registration metadata %q: %w", extraAlign, err)
	}
	if len(t.Shape) != 2 {
		return nil, fmt.Errorf("registration: tensor %s has shape %v, want [height width]", tensorAlignTemplate, t.Shape)
	}
	if !(meta.MinConfidence >= -1 && meta.MinConfidence <= 1) {
		return nil, fmt.Errorf("registration: min_confidence %v, want −1..1", meta.MinConfidence)
	}
	var weight []float32 // absent: every pixel weighs alike
	if wt, ok := pm.Tensors[tensorAlignWeight]; ok {
		weight = wt.Data
	}
	ref, err := align.NewReference(meta.Mode, meta.FrameW, meta.FrameH, t.Shape[1], t.Shape[0], t.Data, weight)
	if err != nil {
		return nil, err
	}
	switch {
	case (meta.SpreadX == nil) != (meta.SpreadY == nil):
		return nil, fmt.Errorf("registration metadata %q: spread_x and spread_y must come together (a fraction of the frame each; neither in files from before the pose prior)", extraAlign)
	case meta.SpreadX != nil:
		if err := ref.SetSpread(align.Spread{X: *meta.SpreadX, Y: *meta.SpreadY, Measured: true}); err != nil {
			return nil, fmt.Errorf("registration metadata %q: %w", extraAlign, err)
		}
	}
	return newAligner(ref, o, meta.MinConfidence, shape), nil
}
