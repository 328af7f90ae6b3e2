// Package model composes inspectd's anomaly detector the way anomalib's
// PaDiM does: a feature extractor (model/backbone: a TFLite CNN with taps),
// multivariate Gaussians per patch (model/padim: embedding, streaming fit,
// Mahalanobis scoring) and an anomaly-map generator (model/padim: upsample,
// blur, thresholds). A detector is a list of scales over the same taps (the
// patch scale, optionally a coarser context scale), fitted by a recipe that
// Search chooses per line from its good images. It fits detectors from
// normal images, saves and loads them, and inspects frames.
package model

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/inspectd/inspectd/model/align"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/padim"
)

// Options configure fitting and loading a detector.
type Options struct {
	// Backbone is the feature extractor's configuration. Its Path, Taps
	// and Preprocess.Resize are the fixed recipe's; a recipe naming a
	// bundled backbone takes that one's path from Bundled instead.
	Backbone backbone.Options
	// Bundled are the bundled backbones found on this machine, by name
	// (backbone.Bundles), with their paths. Recipes that name one, and the
	// recipe search, use them.
	Bundled []BundledPath
	// Installed are every bundled backbone found on this machine, when
	// Bundled is restricted to fewer (a configuration naming one for the
	// search): Load runs a model file on the bundled backbone it was
	// fitted on among them, whichever bundled one is configured. Empty:
	// Bundled.
	Installed []BundledPath
	// Recipe is RecipeAuto (choose per line, Search), RecipeFixed (the
	// settings below as written; also "") or a recipe's name (ParseRecipe).
	Recipe string
	// Search configures RecipeAuto.
	Search SearchOptions
	// Features is the largest embedding dimension d; memory sizing may pick
	// less, down to MinFeatures.
	Features, MinFeatures int
	// Seed chooses the random channel subset.
	Seed uint64
	// Epsilon regularizes each covariance (Σ + ε·I).
	Epsilon float64
	// MemoryBudget bounds the scoring state in bytes (0: no bound).
	MemoryBudget int64
	// Sigma is the anomaly map's blur at 224 pixels (padim.DefaultSigma).
	Sigma float64
	// Threshold picks the decision threshold from the leave-one-out scores
	// of the training images.
	Threshold padim.ThresholdOptions
	// Standardize rescales each frame's brightness and contrast to one
	// level (backbone.Standardizer) before the backbone: parts whose overall
	// brightness varies from part to part are then judged by their texture
	// and local defects, not their exposure (fixed recipe).
	Standardize bool
	// Tiles > 1 cuts each frame along its long side into that many views
	// (fixed recipe; Recipe.Tiles).
	Tiles int
	// DefaultTaps are the taps used when Backbone.Taps is empty (the daemon
	// names the bundled backbone's tuned taps here); empty leaves the choice
	// to the backbone (graph.AutoTaps). Load does not check them: a model
	// file's own taps always win.
	DefaultTaps []string
	// PositionZScore standardizes each grid position's distance by its
	// mean and spread over the training images, each scored leave-one-out
	// (fixed recipe): positions that vary more on good parts (edges, borders
	// of letterboxed images) then need a larger deviation to light up.
	PositionZScore bool
	// ContextPool adds a context scale (fixed recipe): a second Gaussian per
	// cell of ContextPool×ContextPool finest-tap positions, whose
	// standardized distances are added to the patch scale's. It needs
	// PositionZScore; 0 or 1 leaves it out.
	ContextPool int
	// ContextFeatures is the context scale's largest d (0: 300); the
	// memory budget left by the patch scale may make it smaller.
	ContextFeatures int
	// ContextWeight multiplies the context scale's standardized distances
	// before they are added to the patch scale's (0: DefaultContextWeight).
	ContextWeight float64
	// Align registers every frame to a reference view of a good part
	// before the backbone (model/align): its Mode is the fixed recipe's,
	// and the recipe search's offer (off: only when the good images'
	// poses vary); its bounds apply to every recipe that registers.
	Align AlignOptions
	// Workers for scoring and fitting (0: all cores).
	Workers int
	// HalfPrecision scores frames with the inverse covariances rounded to
	// float16 where padim.HalfSupported (padim.ScorerOptions.Half). Fits
	// (the search, the leave-one-out statistics and thresholds) score in
	// float32 regardless, so a model file does not depend on the CPU it
	// was fitted on; frames then score within 0.2% of float32's distances.
	HalfPrecision bool
	Logger        *slog.Logger
	// describeOnly builds a detector from a model file to describe it, not
	// to run it (DescribeFile): no backbone is opened, and the taps'
	// shapes are the file's own.
	describeOnly bool
}

// scorer is the scorer configuration of every scale.
func (o *Options) scorer() padim.ScorerOptions {
	return padim.ScorerOptions{Workers: o.Workers, Half: o.HalfPrecision}
}

// BundledPath is a bundled backbone found on this machine.
type BundledPath struct {
	Name, Path string
}

// DefaultContextFeatures is the context scale's d when Options leave it
// unset: measured on magnetic tile, 100/200/300/500 features gave pixel
// AUROC 0.804/0.812/0.816/0.821 at 1.0/4.0/8.9/24.6 MB of state.
const DefaultContextFeatures = 300

func (o *Options) defaults() {
	if o.Features <= 0 {
		o.Features = 100
	}
	if o.MinFeatures <= 0 || o.MinFeatures > o.Features {
		o.MinFeatures = min(32, o.Features)
	}
	if o.ContextFeatures <= 0 {
		o.ContextFeatures = DefaultContextFeatures
	}
	if !(o.ContextWeight > 0) {
		o.ContextWeight = DefaultContextWeight
	}
	if o.Epsilon <= 0 {
		o.Epsilon = 0.01
	}
	if o.Sigma < 0 {
		o.Sigma = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Backbone.Logger == nil {
		o.Backbone.Logger = o.Logger
	}
	o.Search.defaults()
}

// Fixed is the recipe the options spell out (RecipeFixed).
func (o *Options) Fixed() Recipe {
	taps := o.Backbone.Taps
	if len(taps) == 0 {
		taps = o.DefaultTaps
	}
	r := Recipe{Taps: taps, Resize: o.Backbone.Preprocess.Resize, Tiles: o.Tiles, Standardize: o.Standardize, ZScore: o.PositionZScore}
	if o.Align.Mode != align.Off {
		r.Align = o.Align.Mode
	}
	if r.Resize == "" {
		r.Resize = backbone.ResizeSquash
	}
	for _, b := range o.Bundled {
		if b.Path == o.Backbone.Path {
			r.Backbone = b.Name
		}
	}
	if o.ContextPool > 1 && o.PositionZScore {
		r.ContextPool, r.ContextWeight = o.ContextPool, o.ContextWeight
	}
	return r
}

// RecipeBackbones checks that the bundled backbones a named recipe
// (Options.Recipe, ParseRecipe; each member of an ensemble) runs on are
// among Bundled, as a fit with it needs them: `inspectd config check`
// said ok for "plain" on a box without the bundled MobileNet v1, and the
// start failed in its fit. Nil for RecipeAuto and RecipeFixed, which run
// on what is there. The error names the recipe and the backbone missing.
func (o *Options) RecipeBackbones() error {
	if o.Recipe == "" || o.Recipe == RecipeFixed || o.Recipe == RecipeAuto {
		return nil
	}
	r, err := ParseRecipe(o.Recipe, o.Backbone.Taps)
	if err != nil {
		return err
	}
	members := r.Members
	if len(members) == 0 {
		members = []Recipe{r}
	}
	for _, m := range members {
		if _, err := o.backboneFor(m); err != nil {
			return err
		}
	}
	return nil
}

// backboneFor is the backbone configuration a recipe runs: its bundled
// backbone's path (or the configured one), its taps and its resize mode.
func (o *Options) backboneFor(r Recipe) (backbone.Options, error) {
	bo := o.Backbone
	if r.Backbone != "" {
		path := ""
		for _, b := range o.Bundled {
			if b.Name == r.Backbone {
				path = b.Path
			}
		}
		if path == "" {
			return bo, fmt.Errorf("recipe %s: bundled backbone %s is not installed (run 'make deps')", r.Name(), r.Backbone)
		}
		bo.Path, bo.Bytes = path, nil
	}
	bo.Taps = r.Taps
	bo.Preprocess.Resize = r.resize()
	return bo, nil
}

// Timing is the latency of each stage of one inspection. Align is the
// registration and the warp into the reference view (0 without
// registration); Map includes warping the map back to the frame.
type Timing struct {
	Align, Preprocess, Backbone, PaDiM, Map time.Duration
	// CPU is the CPU time of the same stages, read from the clock given to
	// SetCPUClock (zero without one).
	CPU StageCPU
}

// StageCPU is the CPU time of each stage of one inspection.
type StageCPU struct {
	Align, Preprocess, Backbone, PaDiM, Map time.Duration
}

// Inspection is the verdict on one frame. Its buffers (Map, Mask) are reused
// by the next Inspect call.
type Inspection struct {
	padim.Result
	// Map is the anomaly map at the image's size (W×H, row major), in the
	// frame's own coordinates (with registration, warped back from the
	// reference view the frame was scored in).
	Map  []float32
	W, H int
	// Registration is the frame's registration to the reference view
	// (zero when the model has none).
	Registration Registration
	// InputMismatch, when set, says how the frame differs from the
	// training images, in kind (a grayscale frame on a model fitted on
	// colour images, or the reverse) or in shape (a width/height beyond
	// the training images' by more than aspectSlack): scores are then not
	// comparable, good parts may be flagged and defective ones passed. ""
	// when it matches, or the model file does not say (fitted before this
	// was recorded).
	InputMismatch string
	// Mismatch says which kinds of difference InputMismatch names, for a
	// caller that reports each kind once (a frame's message names its
	// size, so two messages may differ while saying the same kind).
	Mismatch Mismatch
	Timing
}

// Detector is a fitted PaDiM model bound to its backbone. Inspect is not
// safe for concurrent use; one pipeline goroutine owns a Detector.
type Detector struct {
	opts   Options
	recipe Recipe
	bb     *backbone.Backbone
	std    *backbone.Standardizer // nil: frames go to the backbone as they are
	// med filters frames before anything reads their levels (after
	// registration, which warps them); nil: frames are taken as they are.
	med   *backbone.Median3
	tiles tiling
	// al registers frames to the reference view; nil without registration.
	al *aligner
	// alignSizes is the number of frame sizes the reference view was
	// built from (fit only).
	alignSizes int
	// scales[0] is the patch scale; its grid is the anomaly map's.
	scales []*scale
	// weights are each scale's weight in this detector's map (0: left
	// out), zscore whether distances are standardized; the scales' own
	// weights are those of the fitted recipe (a search variant differs).
	weights []float32
	zscore  bool
	// fineMap: when a coarser scale counts in the score, the published map
	// and mask follow the patch scale's evidence, rescaled so that its own
	// threshold fineTh lands on the image threshold; an image flagged on
	// coarse evidence alone shows the combined map.
	fineMap bool
	fineTh  float64
	th      padim.Thresholds
	info    Info
	closer  func() error
	// shared marks a variant of a search family: the backbone and scales
	// belong to the family, whose Close releases them.
	shared bool
	// members, when set, make the detector an ensemble (ensemble.go): it
	// has no backbone or scales of its own.
	members []*Detector
	// member marks an ensemble's member: its maps feed the ensemble's,
	// which alone decides (Inspect leaves its verdict and mask out).
	member bool
	// runs inspect the members side by side (started at the first frame);
	// serial keeps them one after another (a baseline for benchmarks).
	runs   *memberRuns
	serial bool
	// trainInput is what the training images were: inputGray, inputColour
	// or "" (unknown: a file from before it was recorded).
	trainInput string
	// trainAspect is the least and greatest width/height of the training
	// images (zero: not recorded, a file from before); trainKinds counts
	// the grayscale and the colour ones (fit only: trainInput is the kind
	// most of them were).
	trainAspect [2]float64
	trainKinds  [2]int
	// mismatch is the last frame's inputMismatch, by its kind and size: a
	// line whose frames differ says the same of every one, and saying it
	// again would allocate per frame.
	mismatch struct {
		kind  string
		w, h  int
		msg   string
		kinds Mismatch
	}

	fmaps  []padim.FeatureMap
	grid   []float32 // combined distances on the patch grid, view after view
	layout []float32 // grid in the image's layout when views sit side by side
	alt    []float32 // the combined map while the fine one is drawn
	rmap   []float32 // the rendered map (of the aligned view with registration)
	back   []float32 // the map warped back to the frame (registration)
	maps   *padim.AnomalyMap
	mapKey mapKey
	res    Inspection
	cpu    func() time.Duration // SetCPUClock's
	// referenceInput preprocesses frames the way inspectd did before the
	// fused pass (backbone.SetInputReference): the legacy model files'
	// test scores them exactly as when they were written.
	referenceInput bool
}

// SetCPUClock makes Inspect read clock (CPU time, such as the process's
// CPU clock) at the same points as the wall clock and report each stage's
// CPU time in Timing.CPU: for benchmarks, where one frame is inspected at
// a time. nil turns it off.
func (d *Detector) SetCPUClock(clock func() time.Duration) {
	d.cpu = clock
	for _, m := range d.members {
		m.SetCPUClock(clock)
	}
}

// cpuNow reads the CPU clock (0 without one).
func (d *Detector) cpuNow() time.Duration {
	if d.cpu == nil {
		return 0
	}
	return d.cpu()
}

type mapKey struct {
	w, h int
	r    backbone.Region
}

// Info returns the detector's description.
func (d *Detector) Info() Info {
	i := d.info
	if len(d.scales) > 0 {
		i.Precision = d.scales[0].precision()
	}
	if len(d.members) > 0 {
		i.Precision = d.members[0].Info().Precision
		i.Members = make([]Info, len(d.members))
		for k, m := range d.members {
			i.Members[k] = m.Info()
		}
	}
	return i
}

// ID is the model's id (Info().ID without copying the rest, for the
// per-frame path).
func (d *Detector) ID() string { return d.info.ID }

// Recipe is the recipe the detector was fitted with.
func (d *Detector) Recipe() Recipe { return d.recipe }

// Backbone is the detector's feature extractor (an ensemble's first
// member's).
func (d *Detector) Backbone() *backbone.Backbone { return d.parts()[0].bb }

// Standardizer is the photometric standardization frames get before the
// backbone, nil when the model has none (an ensemble's first member's).
func (d *Detector) Standardizer() *backbone.Standardizer { return d.parts()[0].std }

// Denoiser is the 3×3 median filter frames get before the standardization
// (Recipe.Denoise), nil when the model has none (an ensemble's first
// member's).
func (d *Detector) Denoiser() *backbone.Median3 { return d.parts()[0].med }

// SourceNeed is the smallest size a w×h frame can be delivered at without
// losing resolution the detector uses (backbone.SourceNeed): a camera that
// decodes frames reduced keeps at least this much. It reads only the
// detector's fixed geometry, so it is safe while another goroutine
// inspects. With tiles each view is squashed onto the whole input, so the
// frame needs n views' worth along the tiling axis. With registration the
// frame is needed whole: the reference view was built at the training
// frames' size, and registration was measured at it. So it is with the
// median filter (Recipe.Denoise): a hot pixel is one pixel only at the
// sensor's resolution, a frame decoded reduced has blended it into its
// neighbours where the median no longer removes it, and the training
// frames were filtered whole.
func (d *Detector) SourceNeed(w, h int) (int, int) {
	if d.members != nil {
		var nw, nh int
		for _, m := range d.members {
			mw, mh := m.SourceNeed(w, h)
			nw, nh = max(nw, mw), max(nh, mh)
		}
		return nw, nh
	}
	n := d.tiles.views()
	switch {
	case d.al != nil, d.med != nil:
		return w, h
	case n <= 1:
		return d.bb.SourceNeed(w, h)
	case d.tiles.axis == axisY:
		nw, nh := d.bb.SourceNeed(w, max(h/n, 1))
		return nw, min(h, nh*n)
	default:
		nw, nh := d.bb.SourceNeed(max(w/n, 1), h)
		return min(w, nw*n), nh
	}
}

func tapShapes(bb *backbone.Backbone) []padim.TapShape {
	var s []padim.TapShape
	for _, t := range bb.Taps() {
		s = append(s, padim.TapShape{H: t.H, W: t.W, C: t.C})
	}
	return s
}

// bindBuffers sizes the per-frame buffers once the scales exist, and
// takes the combination from the scales' weights and z-scores.
func (d *Detector) bindBuffers() {
	if d.bb != nil { // none on a detector that only describes its file
		d.fmaps = make([]padim.FeatureMap, len(d.bb.Taps()))
	}
	d.grid = make([]float32, d.scales[0].positions())
	if d.tiles.n > 1 && d.tiles.axis == axisX {
		d.layout = make([]float32, len(d.grid))
	}
	d.weights = make([]float32, len(d.scales))
	for i, s := range d.scales {
		d.weights[i] = s.weight
	}
}

// embed runs the backbone on each view of one image and embeds it for
// every scale. It returns the region of the network input that holds the
// image (all of it with tiles).
func (d *Detector) embed(img image.Image, t *Timing) (backbone.Region, error) {
	if err := CheckFrameSize(img.Bounds().Dx(), img.Bounds().Dy()); err != nil {
		return backbone.Region{}, err
	}
	s, cs := time.Now(), d.cpuNow()
	if d.al != nil {
		var err error
		if img, err = d.al.apply(img); err != nil {
			return backbone.Region{}, err
		}
		if t != nil {
			t.Align, t.CPU.Align = time.Since(s), d.cpuNow()-cs
		}
		s, cs = time.Now(), d.cpuNow()
	}
	if d.med != nil {
		// Before the standardization measures the frame: a hot pixel
		// would count in its spread.
		img = d.med.Apply(img)
	}
	var ph backbone.Photometric
	switch {
	case d.std == nil:
	case d.referenceInput:
		img = d.std.Apply(img)
	default:
		ph = d.std.Measure(img) // of the whole frame, as Apply is
	}
	var reg backbone.Region
	var inBackbone, cpuBackbone time.Duration
	for v := range d.tiles.views() {
		var r backbone.Region
		var err error
		if d.referenceInput {
			r, err = d.bb.SetInputReference(d.tiles.view(img, v), nil)
		} else {
			r, err = d.bb.SetInputWith(d.tiles.view(img, v), ph)
		}
		if err != nil {
			return reg, err
		}
		reg = r
		m, cm := time.Now(), d.cpuNow()
		if err := d.bb.Invoke(); err != nil {
			return reg, err
		}
		inBackbone, cpuBackbone = inBackbone+time.Since(m), cpuBackbone+d.cpuNow()-cm
		for i, f := range d.bb.Features() {
			d.fmaps[i] = padim.FeatureMap{H: f.Tap.H, W: f.Tap.W, C: f.Tap.C, Data: f.Data}
		}
		for _, sc := range d.scales {
			if err := sc.embedView(v, d.fmaps); err != nil {
				return reg, err
			}
		}
	}
	if d.tiles.n > 1 {
		reg = backbone.Region{X0: 0, Y0: 0, X1: 1, Y1: 1}
	}
	if t != nil {
		t.Backbone, t.CPU.Backbone = inBackbone, cpuBackbone
		t.Preprocess, t.CPU.Preprocess = time.Since(s)-inBackbone, d.cpuNow()-cs-cpuBackbone
	}
	return reg, nil
}

// score computes every scale's raw distances of the last embedding.
func (d *Detector) score() error {
	for _, s := range d.scales {
		if err := s.score(); err != nil {
			return err
		}
	}
	return nil
}

// Inspect scores one image: anomaly map at the image's size, image score,
// verdict and mask. It does not allocate in steady state (same frame size).
func (d *Detector) Inspect(img image.Image) (*Inspection, error) {
	if d.members != nil {
		return d.inspectEnsemble(img)
	}
	if d.scales == nil || d.scales[0].state == nil {
		return nil, errors.New("inspect: detector is not fitted")
	}
	r := &d.res
	r.InputMismatch, r.Mismatch = d.inputMismatch(img)
	reg, err := d.embed(img, &r.Timing)
	if d.al != nil {
		r.Registration = d.al.registration()
	}
	if err != nil {
		return nil, err
	}
	s, cs := time.Now(), d.cpuNow()
	if err := d.score(); err != nil {
		return nil, err
	}
	if err := d.combine(nil); err != nil {
		return nil, err
	}
	// A NaN distance would vanish in the map's maximum (NaN compares
	// false) and the frame pass as ok: one pass over the P distances.
	if i := padim.FirstNonFinite(d.grid); i >= 0 {
		return nil, fmt.Errorf("inspect: %w: distance %v at grid position %d of %d", ErrNonFinite, d.grid[i], i, len(d.grid))
	}
	m, cm := time.Now(), d.cpuNow()
	r.Timing.PaDiM, r.Timing.CPU.PaDiM = m.Sub(s), cm-cs
	if err := d.finish(img.Bounds(), reg); err != nil {
		return nil, err
	}
	r.Timing.Map, r.Timing.CPU.Map = time.Since(m), d.cpuNow()-cm
	return r, nil
}

// finish renders the combined grid onto an image of bounds b and fills
// the verdict. With registration the map is drawn on the aligned view,
// scored over the view pixels the frame covers (view pixels the frame does
// not reach never decide it) and warped back to the frame.
func (d *Detector) finish(b image.Rectangle, reg backbone.Region) error {
	r := &d.res
	w, h := d.mapSize(b)
	score, err := d.render(w, h, reg)
	if err != nil {
		return err
	}
	var p pose
	if d.al != nil {
		p = d.al.lastPose()
		if score, err = d.al.score(d.rmap, p); err != nil {
			return err
		}
	}
	if math.IsNaN(float64(score)) || math.IsInf(float64(score), 0) {
		return fmt.Errorf("inspect: %w: image score %v", ErrNonFinite, score)
	}
	if d.localizesFine() {
		if err := d.fineOverlay(w, h, reg, score, p); err != nil {
			return err
		}
	}
	r.Map, r.W, r.H = d.rmap, w, h
	if d.al != nil {
		// The map goes back to the frame's own pixels once, when its
		// score is known.
		if d.back, err = d.al.mapBack(d.back, d.rmap, p, d.maps.SigmaPixels()); err != nil {
			return err
		}
		r.Map, r.W, r.H = d.back, b.Dx(), b.Dy()
	}
	if d.member {
		// The ensemble judges the mean of its members' maps: a member's
		// own verdict and mask would be drawn for nothing on every frame.
		r.Score = float64(score)
		return nil
	}
	return d.th.Inspect(&r.Result, r.Map, r.W, r.H, score)
}

// Kinds of training input a model records.
const (
	inputGray   = "gray"
	inputColour = "colour"
)

// inputKind is inputGray for a single-channel image, else inputColour.
// It goes by the colour model, not the type: a grayscale frame cut or
// turned by capture (capture.Rotated, capture.Region) is a view with the
// *image.Gray's model, and was taken for a colour frame.
func inputKind(img image.Image) string {
	if img.ColorModel() == color.GrayModel {
		return inputGray
	}
	return inputColour
}

// aspectSlack is how far a frame's width/height may lie outside the
// training images' range before inspections say so: a model fitted on
// 2000×100 strips scored 512×512 frames at its threshold whatever they
// showed, while the four shared sets' test frames lie within their
// training range.
const aspectSlack = 1.25

// Mismatch is a set of the kinds of difference between a frame and the
// training images (Inspection.Mismatch).
type Mismatch uint8

const (
	// MismatchInput: a grayscale frame on a model fitted on colour
	// images, or the reverse.
	MismatchInput Mismatch = 1 << iota
	// MismatchAspect: a frame whose width/height lies beyond the training
	// images' range by more than aspectSlack.
	MismatchAspect
)

// inputMismatch says how img differs from the training images, in kind
// (grayscale or colour) and in shape (width/height beyond the training
// images' range by more than aspectSlack), and which of these kinds it
// names: "" and none when it does not, or the model does not know.
func (d *Detector) inputMismatch(img image.Image) (string, Mismatch) {
	k, b := inputKind(img), img.Bounds()
	if m := &d.mismatch; m.kind == k && m.w == b.Dx() && m.h == b.Dy() {
		return m.msg, m.kinds
	}
	var why []string
	var kinds Mismatch
	switch {
	case d.trainInput == "" || d.trainInput == k:
	case k == inputGray:
		why = append(why, "a grayscale frame, the model was fitted on colour images")
		kinds |= MismatchInput
	default:
		why = append(why, "a colour frame, the model was fitted on grayscale images")
		kinds |= MismatchInput
	}
	if lo, hi := d.trainAspect[0], d.trainAspect[1]; lo > 0 {
		if a := float64(b.Dx()) / float64(max(b.Dy(), 1)); a < lo/aspectSlack || a > hi*aspectSlack {
			fitted := fmt.Sprintf("%.2f", lo)
			if hi > lo*1.01 {
				fitted += fmt.Sprintf("–%.2f", hi)
			}
			why = append(why, fmt.Sprintf("a %dx%d frame (width/height %.2f), the model was fitted on images of width/height %s", b.Dx(), b.Dy(), a, fitted))
			kinds |= MismatchAspect
		}
	}
	d.mismatch.kind, d.mismatch.w, d.mismatch.h, d.mismatch.msg, d.mismatch.kinds = k, b.Dx(), b.Dy(), strings.Join(why, "; "), kinds
	return d.mismatch.msg, kinds
}

// mapSize is the size the map of an image of bounds b is drawn at: the
// image's, or with registration on its reference view (aligner.mapSize).
func (d *Detector) mapSize(b image.Rectangle) (int, int) {
	if d.al != nil {
		return d.al.mapSize(b.Dx(), b.Dy())
	}
	return b.Dx(), b.Dy()
}

// localizesFine says whether the published map follows the patch scale
// while coarser scales count in the score.
func (d *Detector) localizesFine() bool {
	if !d.fineMap || !(d.fineTh > 0) {
		return false
	}
	for _, w := range d.weights[1:] {
		if w != 0 {
			return true
		}
	}
	return false
}

// fineOverlay replaces the combined map (whose maximum, score, decides the
// verdict) by the patch scale's map in threshold units: a coarse scale
// raises whole cells, and a small defect would otherwise light up a region
// many times its size. When the image is flagged although no fine
// evidence reaches its threshold (a defect only the coarse scale sees), the
// combined map stays, so an alarm always shows where it comes from.
func (d *Detector) fineOverlay(w, h int, reg backbone.Region, score float32, pp pose) error {
	m := d.rmap
	if cap(d.alt) < len(m) {
		d.alt = make([]float32, len(m))
	}
	d.alt = d.alt[:len(m)]
	copy(d.alt, m)
	p := d.scales[0]
	if err := p.addTo(d.grid, p.dist, p.zMean, p.zInvStd, 1, true); err != nil {
		return err
	}
	fine, err := d.render(w, h, reg)
	if err != nil {
		return err
	}
	if d.al != nil {
		if fine, err = d.al.score(d.rmap, pp); err != nil {
			return err
		}
	}
	if float64(score) > d.th.Image && float64(fine) <= d.fineTh {
		copy(m, d.alt)
		return nil
	}
	k := float32(d.th.Image / d.fineTh)
	for i := range m {
		m[i] *= k
	}
	return nil
}

// zstats are the per-position distance statistics of one scale.
type zstats struct{ mean, invStd []float32 }

// combine writes the map grid from the scales' last distances: each
// scale's distances, standardized per position when the detector has the
// z-score (by z[i] when given, else by the scale's own statistics),
// weighted and brought onto the patch grid, summed.
func (d *Detector) combine(z []zstats) error {
	return d.combineDists(func(i int) []float32 { return d.scales[i].dist }, z)
}

func (d *Detector) combineDists(dist func(i int) []float32, z []zstats) error {
	first := true
	for i, s := range d.scales {
		w := d.weights[i]
		if w == 0 {
			continue
		}
		var mean, inv []float32
		if d.zscore {
			mean, inv = s.zMean, s.zInvStd
			if z != nil {
				mean, inv = z[i].mean, z[i].invStd
			}
		}
		if err := s.addTo(d.grid, dist(i), mean, inv, w, first); err != nil {
			return err
		}
		first = false
	}
	return nil
}

// mapGrid is the combined grid in the image's layout and its size.
func (d *Detector) mapGrid() ([]float32, int, int) {
	p := d.scales[0]
	gh, gw := p.emb.GridH(), p.emb.GridW()
	if d.tiles.n <= 1 {
		return d.grid, gh, gw
	}
	if d.tiles.axis == axisY {
		return d.grid, d.tiles.n * gh, gw
	}
	// Views side by side: row y of the map is row y of every view.
	n := d.tiles.n
	for v := range n {
		for y := range gh {
			copy(d.layout[y*n*gw+v*gw:y*n*gw+(v+1)*gw], d.grid[(v*gh+y)*gw:(v*gh+y+1)*gw])
		}
	}
	return d.layout, gh, n * gw
}

// render draws the anomaly map of the combined grid at w×h and returns
// its maximum.
func (d *Detector) render(w, h int, reg backbone.Region) (float32, error) {
	g, gh, gw := d.mapGrid()
	if err := d.ensureMap(w, h, gh, gw, reg); err != nil {
		return 0, err
	}
	return d.maps.Render(d.rmap, g)
}

func (d *Detector) ensureMap(w, h, gh, gw int, reg backbone.Region) error {
	k := mapKey{w, h, reg}
	if d.maps != nil && d.mapKey == k {
		return nil
	}
	// The grid covers the network input; the image occupies reg of it.
	m, err := padim.NewAnomalyMap(padim.AnomalyMapOptions{GridW: gw, GridH: gh,
		OutW: w, OutH: h, Sigma: d.info.Sigma, Region: padim.Rect{X0: reg.X0, Y0: reg.Y0, X1: reg.X1, Y1: reg.Y1}})
	if err != nil {
		return err
	}
	d.maps, d.mapKey = m, k
	if cap(d.rmap) < w*h {
		d.rmap = make([]float32, w*h)
	}
	d.rmap = d.rmap[:w*h]
	return nil
}

// Close releases the backbone, the scoring workers and the mapped file.
func (d *Detector) Close() error {
	if d.shared {
		return nil
	}
	d.runs.stop()
	d.runs = nil
	for _, m := range d.members {
		m.Close() // a member's own close has nothing to fail on: the file is the ensemble's
	}
	for _, s := range d.scales {
		s.close()
	}
	d.al.close()
	if d.bb != nil {
		d.bb.Close()
	}
	if d.closer != nil {
		return d.closer()
	}
	return nil
}

// ImageSource hands out the images to fit on, by index; Fit decodes ahead
// of the backbone in a second goroutine. Image(i) must give the same image
// every time: Fit reads each image at least twice (the Gaussians, then its
// leave-one-out score), the recipe search more often.
type ImageSource interface {
	Len() int
	Image(i int) (image.Image, error)
}

// ImageNamer is an ImageSource that names its images (a file's path), so
// that an error about one image says which.
type ImageNamer interface {
	ImageName(i int) string
}

// imageLabel is "image i", with the image's name when src gives one.
func imageLabel(src ImageSource, i int) string {
	if n, ok := src.(ImageNamer); ok {
		if name := n.ImageName(i); name != "" {
			return fmt.Sprintf("image %d (%s)", i, name)
		}
	}
	return fmt.Sprintf("image %d", i)
}

// prefetch decodes images ahead of their use.
func prefetch(ctx context.Context, src ImageSource, idx []int) <-chan decoded {
	out := make(chan decoded, 2)
	go func() {
		defer close(out)
		for _, i := range idx {
			img, err := src.Image(i)
			select {
			case out <- decoded{i, img, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

type decoded struct {
	i   int
	img image.Image
	err error
}

// Progress reports fit progress: images done of total.
type Progress func(done, total int)

// The range of a threshold. Scores are (standardized) Mahalanobis
// distances, typically 1 to 1000: a threshold far outside would flag every
// part or none, and one near 0 would make score/threshold overflow to Inf,
// which no result can carry.
const (
	MinThreshold = 1e-6
	MaxThreshold = 1e9
)

// CheckThreshold says whether v is a usable threshold (within
// [MinThreshold, MaxThreshold]); the error names what (name) and the range.
func CheckThreshold(name string, v float64) error {
	if !(v >= MinThreshold && v <= MaxThreshold) {
		return fmt.Errorf("%s threshold %g: want a number in [%g, %g]", name, v, MinThreshold, MaxThreshold)
	}
	return nil
}

// CheckPixelThreshold refuses a pixel threshold above the image
// threshold: a mask grows from the pixels above both, so flagged frames
// scoring between them would have empty masks (alarms without regions).
func CheckPixelThreshold(image, pixel float64) error {
	if pixel > image {
		return fmt.Errorf("pixel threshold %g is above the image threshold %g: flagged frames scoring between them would have empty masks and alarms without regions; give at most %g", pixel, image, image)
	}
	return nil
}

// SetThresholds replaces the image and pixel thresholds (scores above them
// are anomalous; see CheckThreshold), for an operator who tunes a line's
// false-alarm rate without refitting. Save writes them. Like Inspect it
// must not run concurrently with another call.
func (d *Detector) SetThresholds(image, pixel float64) error {
	if err := CheckThreshold("image", image); err != nil {
		return err
	}
	if err := CheckThreshold("pixel", pixel); err != nil {
		return err
	}
	if err := CheckPixelThreshold(image, pixel); err != nil {
		return err
	}
	if d.fineTh > 0 {
		// The patch scale's map keeps its place relative to the threshold.
		d.fineTh *= image / d.th.Image
	}
	d.th = padim.Thresholds{Image: image, Pixel: pixel}
	d.info.ImageThreshold, d.info.PixelThreshold = image, pixel
	return nil
}
