package model

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/inspectd/inspectd/model/align"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/metrics"
	"github.com/inspectd/inspectd/model/synth"
)

// SearchOptions configure the recipe search (RecipeAuto).
type SearchOptions struct {
	// Holdout is the share of the good images held out of the candidates'
	// fits, each scored untouched and with synthetic defects (0: 0.2); at
	// least MinValidation and at most MaxValidation images.
	Holdout float64
	// MinValidation and MaxValidation bound the held-out images (0: 10
	// and 40).
	MinValidation, MaxValidation int
	// FitImages caps the images each candidate is fitted on, spread over
	// the rest (0: 160): the search then takes the same time on any number
	// of images, and the chosen recipe is fitted on all of them afterwards.
	FitImages int
	// LOOImages caps the fit images scored leave one out for each
	// candidate's per-position statistics and threshold (0: 48).
	LOOImages int
	// DefectsPerImage is the number of synthetic defects pasted into each
	// held-out image, one image each, cycling through the kinds (0: 2).
	DefectsPerImage int
	// MinImages is the fewest normal images the search runs on; with
	// fewer, the fixed recipe is fitted (0: 40).
	MinImages int
	// FalseAlarms is the share of untouched held-out good images above a
	// candidate's threshold beyond which the candidate ranks below every
	// one that keeps to it (0: 0.1).
	FalseAlarms float64
	// Margin is how much higher than the fixed recipe's (Options.Fixed,
	// the configured settings) a candidate's score must be to replace it
	// (0: DefaultMargin).
	Margin float64
	// Seed makes the synthetic defects repeatable.
	Seed uint64
	// Candidates replaces the candidate list (nil: Options.Candidates).
	Candidates []Recipe
	// OnFamily, when set, is called with each fitted family of candidates
	// before it is released (eval scores the real test set with it), one
	// call at a time.
	OnFamily func(*Family) error
	// Parallel is the number of candidate families fitted at once (0: two
	// on two or more cores), within the memory gate of runFamilies.
	Parallel int
	// NoEnsemble leaves out the ensemble candidate (ensembleOf): every
	// candidate is then one detector, one backbone pass per frame.
	NoEnsemble bool
}

// DefaultMargin is SearchOptions.Margin's default: how far a candidate's
// synthetic score must lie above the fixed recipe's to replace it. The
// fixed recipe is the one measured on every data set, and a candidate's
// lead over it moves from one draw of training images (and so of held-out
// images and synthetic defects) to the next: over five draws of 200 on
// each shared set, the paired difference of a candidate's score and the
// fixed recipe's varied by 0.002–0.014 (standard deviation) between
// draws, so 0.03 is about twice the widest. At 0.01, inside that noise,
// transistor's search chose four recipes in five draws, three of them
// registered by translation on a synthetic lead of 0.013–0.030 that the
// real defects contradict (pixel AUROC below plain PaDiM's in every draw
// for every registered candidate); at 0.03 it kept the fixed recipe's
// ensemble in all five, each at or above plain on image and pixel AUROC,
// PRO and region IoU. Kolektorsdd's tiles lead by 0.21–0.24 and are
// chosen at either margin (README, recipe search over draws).
const DefaultMargin = 0.03

func (s *SearchOptions) defaults() {
	if !(s.Holdout > 0 && s.Holdout < 1) {
		s.Holdout = 0.2
	}
	if s.MinValidation <= 0 {
		s.MinValidation = 10
	}
	if s.MaxValidation < s.MinValidation {
		s.MaxValidation = max(40, s.MinValidation)
	}
	if s.FitImages <= 0 {
		s.FitImages = 160
	}
	if s.LOOImages <= 0 {
		s.LOOImages = 48
	}
	if s.DefectsPerImage <= 0 {
		s.DefectsPerImage = 2
	}
	if s.MinImages <= 0 {
		s.MinImages = 40
	}
	if !(s.FalseAlarms > 0) {
		s.FalseAlarms = 0.1
	}
	if !(s.Margin >= 0) || s.Margin == 0 {
		s.Margin = DefaultMargin
	}
	if s.Parallel <= 0 {
		s.Parallel = defaultSearchParallel()
	}
}

// SearchReport is what the recipe search measured and chose.
type SearchReport struct {
	// Candidates are every candidate's figures, in the order fitted.
	Candidates []Candidate
	// Chosen is the best candidate; Reference names the fixed recipe's
	// candidate, which a candidate must beat by SearchOptions.Margin ("":
	// the fixed recipe was not among the candidates).
	Chosen    Candidate
	Reference string
	// FalseAlarms and Margin are the search's rules in force
	// (SearchOptions.FalseAlarms and Margin): the fixed recipe is kept
	// against a candidate within the margin only while its own false
	// alarms keep to the allowed share.
	FalseAlarms, Margin float64
	// Fallback, when set, says why no search ran: Chosen is then the
	// fixed recipe, unmeasured.
	Fallback string
	// Align is the registration the search tried ("": none): on every
	// candidate when Configured (capture.align named it), else beside
	// unregistered frames. Pose is the good images' pose spread (zero when
	// not measured).
	Align      align.Mode
	Configured bool
	Pose       PoseSpread
	// Denoise says the median filter (Recipe.Denoise, "-med") was tried
	// with every candidate beside the unfiltered frames: the line is
	// noisy (LineNoise.Low).
	Denoise bool
	// FitImages is the number of images each candidate was fitted on,
	// Good and Defects the validation images.
	FitImages, Good, Defects int
	Wall                     time.Duration
}

// Candidate returns the candidate named name.
func (r *SearchReport) Candidate(name string) (Candidate, bool) {
	for _, c := range r.Candidates {
		if c.Name == name && name != "" {
			return c, true
		}
	}
	return Candidate{}, false
}

// Candidate is one recipe's result in the search.
type Candidate struct {
	Recipe  Recipe        `json:"recipe"`
	Name    string        `json:"name"`
	Figures RecipeFigures `json:"figures"`
	// Threshold is the candidate's threshold (from its leave-one-out
	// scores, as a fit sets it).
	Threshold float64 `json:"threshold"`
	// Err says why the candidate could not be fitted ("" when it was).
	Err string `json:"error,omitempty"`
}

// Candidates lists the recipes the search tries on images whose long
// side is aspect times their short side along axis (square: every image
// is, so letterboxing and squashing onto the bundled backbones' square
// inputs are the same and only squash is tried): each bundled backbone
// (or only the configured one when it is not bundled) with letterboxed
// (fit) or, for square frames and parts at least twice as long as wide,
// squashed frames (squashMisjudged), each with and without standardization; tiles
// along the long side for parts at least twice as long as wide; plain
// PaDiM. Each of those preprocessings comes with four ways to score: raw
// distances, the per-position z-score, and the z-score with the context
// scale at weight 1 or 2. (Maps that follow the patch scale alone, -fine,
// measured worse in pixel AUROC and PRO on every data set, synthetic and
// real, and are not tried; they can be named.) Candidates sharing a
// preprocessing and backbone
// share one backbone pass and one Gaussian fit per scale.
func (o *Options) Candidates(aspect float64, axis string, square bool) []Recipe {
	type bb struct {
		name string
		taps []string
	}
	var bbs []bb
	custom := true
	for _, b := range o.Bundled {
		if b.Path == o.Backbone.Path {
			custom = false
		}
	}
	if custom && o.Backbone.Path != "" {
		taps := o.Backbone.Taps
		if len(taps) == 0 {
			taps = o.DefaultTaps
		}
		bbs = append(bbs, bb{"", taps})
	} else {
		for _, b := range o.Bundled {
			if bd, ok := backbone.BundleByName(b.Name); ok {
				bbs = append(bbs, bb{b.Name, bd.Taps})
			}
		}
	}
	var scorings []Recipe
	scorings = append(scorings, Recipe{}, Recipe{ZScore: true})
	for _, w := range []float64{1, 2} {
		scorings = append(scorings, Recipe{ZScore: true, ContextPool: DefaultContextPool, ContextWeight: w})
	}
	var out []Recipe
	add := func(base Recipe) {
		for _, s := range scorings {
			r := base
			r.ZScore, r.ContextPool, r.ContextWeight, r.FineMap = s.ZScore, s.ContextPool, s.ContextWeight, s.FineMap
			out = append(out, r)
		}
	}
	tiles := 0
	if aspect >= 2 {
		tiles = min(max(int(math.Round(aspect)), 2), 4)
	}
	for _, b := range bbs {
		for _, std := range []bool{false, true} {
			for _, rs := range []backbone.ResizeMode{backbone.ResizeFit, backbone.ResizeSquash} {
				if rs == backbone.ResizeFit && square && b.name != "" {
					continue
				}
				if rs == backbone.ResizeSquash && squashMisjudged(aspect, square) {
					continue
				}
				add(Recipe{Backbone: b.name, Taps: b.taps, Resize: rs, Standardize: std})
			}
			if tiles > 0 {
				add(Recipe{Backbone: b.name, Taps: b.taps, Resize: backbone.ResizeSquash, Tiles: tiles, TileAxis: axis, Standardize: std})
			}
		}
	}
	for _, b := range o.Bundled {
		if b.Name == backbone.MobileNetV1 && !custom {
			bd, _ := backbone.BundleByName(b.Name)
			out = append(out, Recipe{Backbone: b.Name, Taps: bd.PlainTaps, Resize: backbone.ResizeSquash})
		}
	}
	return out
}

// squashMisjudged says that squashing frames of this aspect onto the
// square input is left out of the candidates (plain PaDiM's squash stays):
// frames neither square nor long (aspect below 2). Synthetic defects rank
// squashed frames above letterboxed ones on both non-square sets of
// shared/data, and the real defects say the opposite on both: magnetic
// tile (aspect 1.28) fit 0.75–0.81 pixel AUROC against squash 0.72–0.78
// in every scoring, and kolektorsdd (aspect 2.5) fit 0.92–0.96 against
// squash 0.82–0.90; a pasted blob survives the distortion, a real
// defect's shape does not. Long parts keep squash all the same
// (letterboxing leaves most of the input empty) beside their tiles.
func squashMisjudged(aspect float64, square bool) bool { return !square && aspect < 2 }

// familyKey groups recipes that share a backbone pass and Gaussians.
func familyKey(r Recipe) string {
	return fmt.Sprintf("%s|%s|%s|%d|%s|%s|%t|%t", r.Backbone, strings.Join(r.Taps, ","), r.resize(), r.Tiles, r.TileAxis, alignToken(r.Align), r.Denoise, r.Standardize)
}

// Family is a set of candidate recipes fitted together: one backbone pass,
// one set of scales (the patch scale, and the context scale when a
// candidate uses it), and a detector per candidate that scores the shared
// distances its own way.
type Family struct {
	base *Detector
	// Variants are the family's candidates, fitted and thresholded.
	Variants []*Detector
	res      []*Inspection
}

// Inspect scores img with every candidate of the family (one backbone
// pass); result i is Variants[i]'s, valid until the next call.
func (f *Family) Inspect(img image.Image) ([]*Inspection, error) {
	if f.base == nil {
		// A candidate fitted on its own (an ensemble).
		r, err := f.Variants[0].Inspect(img)
		if err != nil {
			return nil, err
		}
		f.res = append(f.res[:0], r)
		return f.res, nil
	}
	reg, err := f.base.embed(img, nil)
	if err != nil {
		return nil, err
	}
	if err := f.base.score(); err != nil {
		return nil, err
	}
	f.res = f.res[:0]
	for _, v := range f.Variants {
		if err := v.combine(nil); err != nil {
			return nil, err
		}
		if err := v.finish(img.Bounds(), reg); err != nil {
			return nil, err
		}
		f.res = append(f.res, &v.res)
	}
	return f.res, nil
}

// variant is a detector that scores d's scales as recipe r does, sharing
// d's backbone and scales (d's Close releases them).
func (d *Detector) variant(r Recipe) *Detector {
	v := &Detector{opts: d.opts, recipe: r, bb: d.bb, med: d.med, std: d.std, al: d.al, tiles: d.tiles, scales: d.scales, shared: true,
		fmaps: d.fmaps, grid: make([]float32, len(d.grid)), zscore: r.ZScore && d.zscore, fineMap: r.FineMap}
	if d.layout != nil {
		v.layout = make([]float32, len(d.layout))
	}
	v.weights = make([]float32, len(d.scales))
	v.weights[0] = 1
	withContext := v.zscore && len(d.scales) > 1 && r.hasContext()
	if withContext {
		v.weights[1] = float32(r.ContextWeight)
	}
	v.recipe.ZScore = v.zscore
	if !withContext {
		v.recipe.ContextPool, v.recipe.ContextWeight, v.recipe.FineMap, v.fineMap = 0, 0, false, false
	}
	v.info = d.info
	v.info.Recipe = v.recipe.Name()
	v.info.PositionZScore = v.zscore
	v.describeScales()
	return v
}

// search runs the recipe search on src's images and reports every
// candidate's figures and the chosen one.
//
// On a noisy line (noise.Low) every candidate is tried again with the
// median filter (Recipe.Denoise) as well, and the fixed recipe the margin
// protects is the filtered one: elsewhere the filter is never offered,
// so the candidates and choices of clean lines are what they were.
func search(ctx context.Context, opts Options, src ImageSource, pc *progressCounter, noise LineNoise) (*SearchReport, error) {
	start := time.Now()
	so := opts.Search
	n := src.Len()
	rep := &SearchReport{}
	if n < so.MinImages {
		rep.Fallback = fmt.Sprintf("%d normal images, the search needs at least %d", n, so.MinImages)
		rep.Chosen = Candidate{Recipe: opts.Fixed(), Name: opts.Fixed().Name()}
		opts.Logger.Warn("recipe search skipped: the fixed recipe is fitted", "reason", rep.Fallback, "recipe", rep.Chosen.Name)
		return rep, nil
	}
	val := min(max(int(math.Round(so.Holdout*float64(n))), so.MinValidation), so.MaxValidation, n/2)
	hold := spreadIndices(n, val)
	var rest []int
	for i := range n {
		if !slices.Contains(hold, i) {
			rest = append(rest, i)
		}
	}
	fit := rest
	if len(rest) > so.FitImages {
		fit = make([]int, so.FitImages)
		for i, j := range spreadIndices(len(rest), so.FitImages) {
			fit[i] = rest[j]
		}
	}
	aspect, axis, square, err := aspectOf(src, fit)
	if err != nil {
		return nil, err
	}
	cands, err := opts.candidateList(ctx, rep, src, fit, aspect, axis, square, noise)
	if err != nil {
		return nil, err
	}
	var families [][]Recipe
	index := map[string]int{}
	for _, r := range cands {
		if r.Tiles > 1 && r.TileAxis == "" {
			r.TileAxis = axis
		}
		k := familyKey(r)
		if i, ok := index[k]; ok {
			families[i] = append(families[i], r)
		} else {
			index[k] = len(families)
			families = append(families, []Recipe{r})
		}
	}
	defects := len(hold) * so.DefectsPerImage
	rep.FitImages, rep.Good, rep.Defects = len(fit), len(hold), defects
	loo := fit
	if len(fit) > so.LOOImages {
		loo = make([]int, so.LOOImages)
		for i, j := range spreadIndices(len(fit), so.LOOImages) {
			loo[i] = fit[j]
		}
	}
	per := 0
	for _, f := range families {
		per += (len(fit) + len(loo) + len(hold) + defects) * f[0].views()
	}
	// The ensemble step's three members and validation, and the final
	// fit's two further members, are reserved now so that the progress
	// total never grows mid-run; what goes unused is skipped.
	var ensembleSteps, finalSteps int
	withEnsemble := so.Candidates == nil && !so.NoEnsemble
	if withEnsemble {
		ensembleSteps, finalSteps = 3*(len(fit)+len(loo))+len(hold)+defects, 2*2*n
	}
	pc.grow(per + ensembleSteps + finalSteps)
	opts.Logger.Info("recipe search", "candidates", len(cands), "families", len(families), "fit_images", len(fit),
		"held_out", len(hold), "synthetic_defects", defects, "aspect", fmt.Sprintf("%.2f", aspect))
	v := &validation{hold: hold, perImage: so.DefectsPerImage, seed: so.Seed}
	results, errs := runFamilies(ctx, opts, families, src, fit, loo, v, pc)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, fam := range families {
		if err := errs[i]; err != nil {
			opts.Logger.Warn("recipe family could not be fitted", "recipe", fam[0].Name(), "err", err)
			for _, r := range fam {
				rep.Candidates = append(rep.Candidates, Candidate{Recipe: r, Name: r.Name(), Err: err.Error()})
			}
			continue
		}
		rep.Candidates = append(rep.Candidates, results[i]...)
	}
	ref := opts.Fixed()
	if square && ref.Resize == backbone.ResizeFit {
		ref.Resize = backbone.ResizeSquash // the same on square frames
	}
	// On a noisy line the fixed recipe the margin protects is the
	// filtered one: the synthetic defects, far above the sensor's noise,
	// lose a little of their contrast to the filter and cannot see the
	// noise it removes from the real, faint ones (README, "A dark line":
	// dark screw's fixed recipe 0.8573 unfiltered against 0.8535 filtered
	// on synthetic defects, 0.675 against 0.705 image AUROC on the real).
	ref.Denoise = rep.Denoise
	best := choose(rep.Candidates, ref.Name(), so)
	if best < 0 {
		return nil, errors.New("recipe search: no candidate could be fitted (see the log)")
	}
	if withEnsemble {
		if best, err = opts.tryEnsemble(ctx, rep, best, src, fit, loo, v, pc, ensembleSteps); err != nil {
			return nil, err
		}
		if !rep.Candidates[best].Recipe.Ensemble() {
			pc.skip(finalSteps)
		}
	}
	if slices.ContainsFunc(rep.Candidates, func(c Candidate) bool { return c.Name == ref.Name() && c.Err == "" }) {
		rep.Reference = ref.Name()
	}
	rep.Chosen = rep.Candidates[best]
	rep.FalseAlarms, rep.Margin = so.FalseAlarms, so.Margin
	rep.Wall = time.Since(start)
	opts.Logger.Info("recipe chosen", "recipe", rep.Chosen.Name, "score", fmt.Sprintf("%.4f", rep.Chosen.Figures.Score),
		"false_alarms", fmt.Sprintf("%.3f", rep.Chosen.Figures.FalseAlarms), "pixel_ratio", rep.Chosen.Figures.PixelRatio,
		"region_iou", fmt.Sprintf("%.4f", rep.Chosen.Figures.RegionIoU), "wall", rep.Wall.Round(time.Millisecond))
	return rep, nil
}

// candidateList returns the recipes the search tries on the images fit of
// src: SearchOptions.Candidates when set, else searchCandidates' list,
// each also with the median filter on a noisy line (noise.Low). It records
// in rep the registration tried, the poses measured and whether the filter
// was offered. Errors: searchCandidates', and an ensemble among the given
// candidates.
func (o *Options) candidateList(ctx context.Context, rep *SearchReport, src ImageSource, fit []int, aspect float64, axis string, square bool, noise LineNoise) ([]Recipe, error) {
	cands := o.Search.Candidates
	if slices.ContainsFunc(cands, Recipe.Ensemble) {
		return nil, errors.New("recipe search: an ensemble among SearchOptions.Candidates: ensembles are tried by the ensemble step")
	}
	if cands != nil {
		return cands, nil
	}
	var err error
	if cands, rep.Align, rep.Pose, err = o.searchCandidates(ctx, src, fit, aspect, axis, square); err != nil {
		return nil, err
	}
	rep.Configured = rep.Align != "" && rep.Align == o.Align.Mode
	if noise.Low() {
		cands, rep.Denoise = withDenoise(cands), true
	}
	return cands, nil
}

// withDenoise is cands followed by each of them with the median filter
// (Recipe.Denoise): a family of its own each, since the filtered frames
// need a backbone pass and Gaussians of their own.
func withDenoise(cands []Recipe) []Recipe {
	out := slices.Clip(cands)
	for _, r := range cands {
		r.Denoise = true
		out = append(out, r)
	}
	return out
}

// ensembleOf is the ensemble the search tries beside its best single
// candidate w: w, the same recipe on the other bundled backbone, and plain
// PaDiM (ensemble.go). None when w is plain, registered (each member
// would register on its own) or tiled (three tiled members would not fit
// a fit's time), uses taps of the user's, or a backbone is not installed.
func (o *Options) ensembleOf(w Recipe) (Recipe, bool) {
	if w.Ensemble() || w.aligned() || w.Tiles > 1 || w.FineMap || w.Name() == RecipePlain {
		return Recipe{}, false
	}
	b, ok := backbone.BundleByName(w.Backbone)
	if !ok || !slices.Equal(w.Taps, b.Taps) {
		return Recipe{}, false
	}
	otherName := backbone.MobileNetV2
	if w.Backbone == backbone.MobileNetV2 {
		otherName = backbone.MobileNetV1
	}
	other, ok := backbone.BundleByName(otherName)
	installed := func(name string) bool {
		return slices.ContainsFunc(o.Bundled, func(p BundledPath) bool { return p.Name == name })
	}
	if !ok || !installed(otherName) || !installed(backbone.MobileNetV1) {
		return Recipe{}, false
	}
	second := w
	second.Backbone, second.Taps = other.Name, other.Taps
	plain, err := ParseRecipe(RecipePlain, nil)
	if err != nil {
		return Recipe{}, false
	}
	return Recipe{Members: []Recipe{w, second, plain}}, true
}

// tryEnsemble adds the ensemble of the chosen candidate rep.Candidates[best]
// (ensembleOf) to the report's candidates, fitted on the fit images with
// the leave-one-out images loo as every candidate, and returns the index
// of the choice: the ensemble when it scores at least as high as the
// single recipe without more false alarms than the search allows any
// candidate, else best. An ensemble that cannot be fitted is a failed
// candidate (logged); only ctx's end is an error. steps is the progress
// reserved for it, skipped when no ensemble is tried.
func (o *Options) tryEnsemble(ctx context.Context, rep *SearchReport, best int, src ImageSource, fit, loo []int, v *validation, pc *progressCounter, steps int) (int, error) {
	e, ok := o.ensembleOf(rep.Candidates[best].Recipe)
	if !ok {
		pc.skip(steps)
		return best, nil
	}
	c, err := runEnsemble(ctx, *o, e, src, fit, loo, v, pc)
	if err := ctx.Err(); err != nil {
		return best, err
	}
	if err != nil {
		o.Logger.Warn("ensemble candidate could not be fitted", "recipe", e.Name(), "err", err)
		c = Candidate{Recipe: e, Name: e.Name(), Err: err.Error()}
	}
	rep.Candidates = append(rep.Candidates, c)
	// The ensemble carries plain PaDiM's fine evidence, which the synthetic
	// defects do not value: their PRO does not rank the candidates' real
	// PRO (README, recipe search over draws). In the 12 of 20 draws (five
	// of 200 training images on each shared set) where the search tried
	// one, the ensemble's real PRO lay within 0.011 of plain's (at or
	// above it in 9) and its single recipe's up to 0.074 below (at or
	// above in 3); in 3 of them it scored above its single recipe by less
	// than the margin (then 0.01), and the single one was kept. So a tie
	// keeps the ensemble; its cost per frame (a backbone pass per member)
	// is what model.ensemble: false leaves out.
	if ensembleWins(c, rep.Candidates[best], o.Search) {
		return len(rep.Candidates) - 1, nil
	}
	return best, nil
}

// ensembleWins says whether the fitted ensemble candidate e replaces the
// single recipe it was built from: it was fitted, its false alarms on the
// held-out good images are within so.FalseAlarms, and it scores at least
// as high (a tie keeps the ensemble, tryEnsemble says why).
func ensembleWins(e, single Candidate, so SearchOptions) bool {
	return e.Err == "" && e.Figures.FalseAlarms <= so.FalseAlarms && e.Figures.Score >= single.Figures.Score
}

// runEnsemble fits ensemble e on the search's fit images and scores it on
// the validation images as any candidate.
func runEnsemble(ctx context.Context, opts Options, e Recipe, src ImageSource, fit, loo []int, v *validation, pc *progressCounter) (Candidate, error) {
	c := Candidate{Recipe: e, Name: e.Name()}
	o := opts
	o.Threshold.Explicit = 0 // as every candidate: each on its own scale
	opts.Logger.Info("recipe search: ensemble candidate", "recipe", e.Name(), "fit_images", len(fit))
	d, _, err := fitEnsemble(ctx, o, e, src, fit, loo, pc)
	if err != nil {
		return c, err
	}
	defer d.Close()
	fam := &Family{Variants: []*Detector{d}}
	figs, err := v.score(ctx, fam, src, pc)
	if err != nil {
		return c, err
	}
	c.Recipe, c.Threshold, c.Figures = d.recipe, d.th.Image, figs[0]
	if opts.Search.OnFamily != nil {
		if err := opts.Search.OnFamily(fam); err != nil {
			return c, err
		}
	}
	return c, nil
}

// searchCandidates lists the recipes the search tries on the images fit of
// src (Candidates): each registered when the configuration names a
// registration mode (the user's choice; a warning when the good images
// move beyond half its bounds), or also registered when Offer is set and
// the good images' poses vary (alignOffer). It returns the registration
// tried and the pose spread measured (zero when none was). Errors: ctx's,
// and a configured mode's reference view that cannot be built (every
// candidate would fail on it); under auto such a view leaves the offer out
// (logged).
func (o *Options) searchCandidates(ctx context.Context, src ImageSource, fit []int, aspect float64, axis string, square bool) ([]Recipe, align.Mode, PoseSpread, error) {
	cands := o.Candidates(aspect, axis, square)
	offer, ps, err := alignOffer(ctx, *o, src, fit)
	if ctx.Err() != nil {
		return nil, "", ps, ctx.Err()
	}
	if m := o.Align.Mode; m == align.Translate || m.Rotates() {
		if err != nil {
			// Every candidate would fail on the same reference view.
			return nil, "", ps, fmt.Errorf("capture.align.mode %s: reference view from the good images: %w", m, err)
		}
		maxShift, maxAngle := o.Align.bounds()
		if ps.Images > 0 && ps.SideShift > maxShift/2 {
			o.Logger.Warn("capture.align: the good images shift beyond half max_shift: registered frames beyond it will be refused",
				"align", string(m), "pose_shift_rms_of_side", fmt.Sprintf("%.3f", ps.SideShift), "max_shift", maxShift)
		}
		switch {
		case m == align.Rigid && ps.TurnSuggested(o.Align):
			o.Logger.Warn("capture.align: the good images turn beyond half the angle bound: registered frames beyond it will be refused; capture.align.mode: turn registers parts at any angle",
				"align", string(m), "pose_angle_rms_deg", fmt.Sprintf("%.2f", ps.Angle), "max_angle", maxAngle)
		case m == align.Rigid && ps.Angle > maxAngle/2:
			o.Logger.Warn("capture.align: the good images turn beyond half the angle bound: registered frames beyond it will be refused",
				"align", string(m), "pose_angle_rms_deg", fmt.Sprintf("%.2f", ps.Angle), "max_angle", maxAngle)
		case m == align.Translate && ps.Angle > poseAngleVaries:
			o.Logger.Warn("capture.align: the good images turn, which translate does not follow; capture.align.mode rigid (or turn, for parts at any angle) does",
				"pose_angle_rms_deg", fmt.Sprintf("%.2f", ps.Angle))
		}
		o.Logger.Info("recipe search: every candidate registered", "align", string(m), "configured", true)
		for i := range cands {
			cands[i].Align = m
		}
		return cands, m, ps, nil
	}
	switch {
	case err != nil:
		o.Logger.Info("recipe search: registration not offered, no reference view could be built from the good images", "err", err)
		return cands, "", ps, nil
	case offer != "":
		o.Logger.Info("recipe search: registration offered", "align", offer, "pose_shift_rms", fmt.Sprintf("%.3f", ps.Shift),
			"pose_angle_rms_deg", fmt.Sprintf("%.2f", ps.Angle))
		// Registration is one more setting: every candidate is tried with
		// it too, and the synthetic defects judge it like any other.
		for _, r := range cands[:len(cands):len(cands)] {
			r.Align = offer
			cands = append(cands, r)
		}
	case ps.TurnSuggested(o.Align):
		o.Logger.Info("recipe search: registration not offered: the parts turn beyond the angle bound; capture.align.mode: turn registers them at any angle",
			"pose_shift_rms", fmt.Sprintf("%.3f", ps.Shift), "pose_angle_rms_deg", fmt.Sprintf("%.2f", ps.Angle))
	case ps.Images > 0:
		o.Logger.Info("recipe search: registration not offered", "pose_shift_rms", fmt.Sprintf("%.3f", ps.Shift),
			"pose_angle_rms_deg", fmt.Sprintf("%.2f", ps.Angle), "one_frame_size", ps.OneSize, "aspect", fmt.Sprintf("%.2f", ps.Aspect))
	case !o.Align.Offer:
		o.warnOffWouldOffer(ctx, src, fit)
	}
	return cands, offer, ps, nil
}

// warnOffWouldOffer warns when registration is off but the good images'
// poses vary as those the search registers under auto: configuration
// files written before auto existed say off where they meant the search
// may register, and their next fit would drop registration silently.
func (o *Options) warnOffWouldOffer(ctx context.Context, src ImageSource, fit []int) {
	a := *o
	a.Align.Offer = true
	offer, ps, err := alignOffer(ctx, a, src, fit)
	if err != nil || offer == "" {
		o.Logger.Info("recipe search: registration not tried (capture.align.mode off)")
		return
	}
	o.Logger.Warn("recipe search: registration not tried (capture.align.mode off) although the good images' parts move; capture.align.mode auto lets the search try it (configuration files written before auto existed say off)",
		"would_offer", string(offer), "pose_shift_rms", fmt.Sprintf("%.3f", ps.Shift), "pose_angle_rms_deg", fmt.Sprintf("%.2f", ps.Angle))
}

// choose returns the index of the chosen candidate (-1: none fitted): the
// best by better, unless the reference (the fixed recipe) keeps to the
// false-alarm limit and the best does not beat its score by more than the
// margin.
func choose(cs []Candidate, ref string, so SearchOptions) int {
	best := -1
	for i, c := range cs {
		if c.Err != "" {
			continue
		}
		if best < 0 || better(c, cs[best], so.FalseAlarms) {
			best = i
		}
	}
	for i, c := range cs {
		if c.Name != ref || c.Err != "" || best < 0 {
			continue
		}
		if c.Figures.FalseAlarms <= so.FalseAlarms && !(cs[best].Figures.Score > c.Figures.Score+so.Margin) {
			best = i
		}
	}
	return best
}

// better ranks a above b: a candidate whose threshold flags at most the
// allowed share of untouched good images beats one that flags more, of two
// that both flag more the one that flags fewer; then the higher score wins.
func better(a, b Candidate, allowed float64) bool {
	okA, okB := a.Figures.FalseAlarms <= allowed, b.Figures.FalseAlarms <= allowed
	if okA != okB {
		return okA
	}
	if !okA && a.Figures.FalseAlarms != b.Figures.FalseAlarms {
		return a.Figures.FalseAlarms < b.Figures.FalseAlarms
	}
	return a.Figures.Score > b.Figures.Score
}

// spreadIndices picks k of n indices evenly spread.
func spreadIndices(n, k int) []int {
	out := make([]int, 0, k)
	for i := range k {
		out = append(out, (2*i+1)*n/(2*k))
	}
	return out
}

// aspectOf is the median ratio of long to short side over a sample of the
// images, the long side's axis by majority, and whether every sampled
// image is square (within 1%).
func aspectOf(src ImageSource, idx []int) (float64, string, bool, error) {
	var ratios []float64
	wide := 0
	for _, i := range spreadIndices(len(idx), min(len(idx), 9)) {
		img, err := src.Image(idx[i])
		if err != nil {
			return 0, "", false, fmt.Errorf("fit: image %d: %w", idx[i], err)
		}
		b := img.Bounds()
		w, h := float64(b.Dx()), float64(b.Dy())
		ratios = append(ratios, max(w, h)/max(min(w, h), 1))
		if w >= h {
			wide++
		}
	}
	sort.Float64s(ratios)
	axis := axisX
	if 2*wide < len(ratios) {
		axis = axisY
	}
	return ratios[len(ratios)/2], axis, ratios[len(ratios)-1] < 1.01, nil
}

// validation is the search's held-out set: the good images and, per
// image, the synthetic defects pasted into it.
type validation struct {
	hold     []int
	perImage int
	seed     uint64
}

// runFamily fits one family of candidates on the fit images, takes the
// per-position statistics and each candidate's threshold from the
// leave-one-out scores of looIdx (some of the fit images), scores the
// validation set with each and returns their figures.
func runFamily(ctx context.Context, opts Options, fam []Recipe, src ImageSource, fit, looIdx []int, v *validation, pc *progressCounter, mem *memGate) ([]Candidate, error) {
	base := fam[0]
	base.ZScore = len(looIdx) >= MinZScoreImages
	ctxPool := 0
	for _, r := range fam {
		if r.hasContext() {
			ctxPool = r.ContextPool
		}
	}
	base.ContextPool, base.ContextWeight = ctxPool, DefaultContextWeight
	d, err := newDetector(opts, base, base.ZScore && ctxPool > 1)
	if err != nil {
		return nil, err
	}
	release, err := mem.acquire(ctx, d.fitBytes())
	if err != nil {
		d.Close()
		return nil, err
	}
	defer func() {
		d.Close()
		release() // after the state is gone
	}()
	d.zscore = base.ZScore
	if err := d.attachAligner(ctx, src, fit); err != nil {
		return nil, err
	}
	var rep FitReport
	kept, err := d.accumulate(ctx, src, fit, pc, &rep)
	if err != nil {
		return nil, err
	}
	d.al.learnFloor(opts.Align)
	d.describe(len(kept))
	looIdx = slices.DeleteFunc(slices.Clone(looIdx), func(i int) bool { return !slices.Contains(kept, i) })
	loo, err := d.leaveOneOutPass(ctx, src, looIdx, len(kept), pc)
	if err != nil {
		return nil, err
	}
	if d.zscore {
		d.setPositionStats(loo)
	}
	fam2 := &Family{base: d}
	var out []Candidate
	seen := map[string]bool{}
	for _, r := range fam {
		vd := d.variant(r)
		if seen[vd.recipe.Name()] {
			continue // a context variant without a context scale (too few images, no room)
		}
		seen[vd.recipe.Name()] = true
		scores, fine, err := vd.looScores(loo)
		if err != nil {
			return nil, err
		}
		// An explicit threshold does not apply to the search: every
		// candidate scores on its own scale.
		o := opts.Threshold
		o.Explicit = 0
		if err := vd.setThresholds(o, scores, fine); err != nil {
			return nil, err
		}
		fam2.Variants = append(fam2.Variants, vd)
		out = append(out, Candidate{Recipe: vd.recipe, Name: vd.recipe.Name(), Threshold: vd.th.Image})
	}
	loo = nil
	figs, err := v.score(ctx, fam2, src, pc)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Figures = figs[i]
	}
	if opts.Search.OnFamily != nil {
		if err := opts.Search.OnFamily(fam2); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// score runs the validation images through a family: each held-out good
// image untouched and with its synthetic defects, every candidate scoring
// them, and returns each candidate's figures.
func (v *validation) score(ctx context.Context, f *Family, src ImageSource, pc *progressCounter) ([]RecipeFigures, error) {
	nv := len(f.Variants)
	pix := make([]*metrics.Pixels, nv)
	for i := range pix {
		pix[i] = metrics.NewPixelsBits(searchPixelBits)
	}
	good := make([][]float64, nv)
	bad := make([][]float64, nv)
	trials := make([]ratioTrial, nv)
	var zero []uint8
	add := func(img image.Image, mask []uint8) error {
		res, err := f.Inspect(img)
		if err != nil {
			return err
		}
		for i, r := range res {
			if mask == nil {
				good[i] = append(good[i], r.Score)
				if len(zero) != r.W*r.H {
					zero = make([]uint8, r.W*r.H)
				}
				if err := pix[i].Add(r.Map, zero, r.W, r.H); err != nil {
					return err
				}
				continue
			}
			bad[i] = append(bad[i], r.Score)
			if err := pix[i].Add(r.Map, mask, r.W, r.H); err != nil {
				return err
			}
			if err := trials[i].add(r, f.Variants[i].th.Image, mask); err != nil {
				return err
			}
		}
		pc.step()
		return nil
	}
	kinds := synth.Kinds()
	var donor image.Image
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k := 0
	for im := range prefetch(cctx, src, v.hold) {
		if im.err != nil {
			return nil, fmt.Errorf("fit: image %d: %w", im.i, im.err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := add(im.img, nil); err != nil {
			return nil, fmt.Errorf("fit: %s: %w", imageLabel(src, im.i), err)
		}
		for j := range v.perImage {
			kind := kinds[(k*v.perImage+j)%len(kinds)]
			rng := rand.New(rand.NewPCG(v.seed, uint64(im.i)<<8|uint64(j)))
			img, mask := synth.Apply(im.img, donor, kind, rng)
			if err := add(img, mask); err != nil {
				return nil, fmt.Errorf("fit: image %d with a synthetic %s: %w", im.i, kind, err)
			}
		}
		donor = im.img
		k++
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]RecipeFigures, nv)
	for i, vd := range f.Variants {
		fg := &out[i]
		fg.Good, fg.Defects = len(good[i]), len(bad[i])
		scores := append(append([]float64(nil), good[i]...), bad[i]...)
		labels := make([]bool, len(scores))
		for j := len(good[i]); j < len(labels); j++ {
			labels[j] = true
		}
		var err error
		if fg.ImageAUROC, err = metrics.AUROC(scores, labels); err != nil {
			return nil, err
		}
		if fg.PixelAUROC, err = pix[i].AUROC(); err != nil {
			return nil, err
		}
		if fg.PRO, err = pix[i].PRO(0.3); err != nil {
			return nil, err
		}
		t := vd.th.Image
		for _, s := range good[i] {
			if s > t {
				fg.FalseAlarms++
			}
		}
		for _, s := range bad[i] {
			if s <= t {
				fg.Misses++
			}
		}
		fg.FalseAlarms /= float64(max(fg.Good, 1))
		fg.Misses /= float64(max(fg.Defects, 1))
		fg.Score = (fg.ImageAUROC + fg.PixelAUROC + fg.PRO) / 3
		fg.PixelRatio, fg.RegionIoU, fg.RegionImages = trials[i].choose()
	}
	return out, nil
}

// searchPixelBits sizes the validation's pixel histograms: 2^16 bins
// (0.8% relative resolution, 1.5 MB per candidate) rank maps as well as
// the 2^20 that eval reports with.
const searchPixelBits = 16
