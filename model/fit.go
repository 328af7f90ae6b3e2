package model

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/inspectd/inspectd/model/align"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/padim"
)

// FitReport says what a fit chose and how long its parts took.
type FitReport struct {
	// Recipe is the recipe fitted; Search the recipe search behind it
	// (RecipeAuto only).
	Recipe Recipe
	Search *SearchReport
	// Images is the number of images in the Gaussians, ThresholdImages
	// the number of good images the threshold was chosen from (all of
	// them, each scored leave one out).
	Images, ThresholdImages int
	// HeldOut is the number of images kept out of the Gaussians: none
	// since the threshold comes from leave-one-out scores.
	HeldOut        int
	Features, Pool int
	// ContextPool is the context scale's cell size in finest-tap
	// positions (0: none).
	ContextPool int
	StateBytes  int64
	// InputCoverage is the mean share of the network input that held image
	// (below 1 when letterboxing pads the frame).
	InputCoverage float64
	// Noise is the training images' sensor noise against their contrast
	// (also Info.LineNoise); Noise.Low() lines are warned of.
	Noise LineNoise
	// Highest are the training images with the highest leave-one-out
	// scores, highest first (at most HighestImages; none with an explicit
	// threshold), and MedianScore the median of all of them: the
	// threshold is a high quantile of these scores, so one good image that
	// holds dirt, a defect or an unusual pose lifts it for every part.
	Highest     []ScoredImage
	MedianScore float64
	// Extract is the backbone and embedding time, Accumulate the Gaussian
	// sums, Finalize the inversions, Threshold the leave-one-out scoring
	// of the training images; Search the recipe search; Wall is the whole
	// fit.
	Extract, Accumulate, Finalize, Threshold, SearchTime, Wall time.Duration
}

// ScoredImage is a training image and its leave-one-out image score (the
// maximum of its anomaly map, in the threshold's units).
type ScoredImage struct {
	// Index is the image's index in the ImageSource, Name its name where
	// the source is an ImageNamer ("" otherwise).
	Index int
	Name  string
	Score float64
}

// HighestImages is how many of the highest-scoring training images a fit
// reports (FitReport.Highest).
const HighestImages = 5

// highestScores returns the images idx[i] of src with the HighestImages
// highest scores[i], highest first, and the median of scores.
func highestScores(src ImageSource, idx []int, scores []float64) ([]ScoredImage, float64) {
	if len(scores) == 0 || len(idx) != len(scores) {
		return nil, 0
	}
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	var top []ScoredImage
	for _, i := range order[:min(HighestImages, len(order))] {
		si := ScoredImage{Index: idx[i], Score: scores[i]}
		if n, ok := src.(ImageNamer); ok {
			si.Name = n.ImageName(idx[i])
		}
		top = append(top, si)
	}
	med, _ := padim.Quantile(scores, 0.5)
	return top, med
}

// MinZScoreImages is the fewest training images the per-position z-score
// (and so the context scale) is fitted with: with fewer, the spread of
// each position is too noisy and hurts more than it helps (measured: 10
// held-out tiles of magnetic_tile dropped image AUROC from 0.87 to 0.76).
const MinZScoreImages = 20

// minFitImages is the fewest images a Gaussian per position is fitted on:
// leave-one-out scoring needs n ≥ 3.
const minFitImages = 3

// lowCoverage is the share of the network input under which fit warns
// that letterboxing leaves most of the input without image.
const lowCoverage = 0.35

// Fit builds a detector from normal images with the recipe Options.Recipe
// names: RecipeAuto searches the candidates first (Search), RecipeFixed
// fits the options' own settings. The Gaussian fit streams: its memory
// does not depend on the number of images (beyond one distance grid, a few
// KB, per image for the threshold).
func Fit(ctx context.Context, opts Options, src ImageSource, progress Progress) (*Detector, FitReport, error) {
	opts.defaults()
	// The fit scores in float32 whatever the precision: its leave-one-out
	// distances divide by 1 − leverage, which near the leverage bound (few
	// images for d) magnifies float16's rounding into per-position
	// statistics tens of percent off. The fitted detector then scores as
	// configured.
	half := opts.HalfPrecision
	opts.HalfPrecision = false
	if opts.Backbone.Memo == nil {
		// The search opens a backbone per candidate family: the variant
		// is measured once per backbone.
		opts.Backbone.Memo = &backbone.VariantMemo{}
	}
	start := time.Now()
	if err := opts.checkImageCount(src.Len()); err != nil {
		return nil, FitReport{}, err
	}
	all := make([]int, src.Len())
	for i := range all {
		all[i] = i
	}
	// The line's noise first: the search offers the median filter only
	// on a noisy line.
	noise, err := measureLineNoise(ctx, src, all)
	if err != nil {
		return nil, FitReport{}, err
	}
	var r Recipe
	var sr *SearchReport
	choice := opts.Recipe
	pc := &progressCounter{f: progress, total: 2 * src.Len()}
	switch opts.Recipe {
	case "", RecipeFixed:
		r, choice = opts.Fixed(), RecipeFixed
	case RecipeAuto:
		rep, err := search(ctx, opts, src, pc, noise)
		if err != nil {
			return nil, FitReport{}, err
		}
		sr, r = rep, rep.Chosen.Recipe
		if rep.Fallback != "" {
			choice = RecipeFixed
		}
		if opts.Threshold.PixelRatio == 0 {
			// The alarm regions as the search measured them best.
			opts.Threshold.PixelRatio = rep.Chosen.Figures.PixelRatio
		}
	default:
		var err error
		if r, err = ParseRecipe(opts.Recipe, opts.Backbone.Taps); err != nil {
			return nil, FitReport{}, fmt.Errorf("fit: %w", err)
		}
		choice = "named"
		if m := opts.Align.Mode; r.Ensemble() && m != "" && m != align.Off {
			opts.Logger.Warn("an ensemble's members take frames as they come: capture.align.mode is not applied", "recipe", r.Name(), "align", string(m))
		} else if m != "" && m != align.Off && r.Align != m {
			// The name spells out the whole recipe, registration included.
			named := r
			named.Align = m
			opts.Logger.Warn("the named recipe decides the registration: capture.align.mode is not applied",
				"recipe", r.Name(), "align", string(m), "recipe_with_it", named.Name())
		}
	}
	if r.Tiles > 1 && r.TileAxis == "" {
		img, err := src.Image(0)
		if err != nil {
			return nil, FitReport{}, fmt.Errorf("fit: image 0: %w", err)
		}
		r.TileAxis = tileAxis(img.Bounds().Dx(), img.Bounds().Dy())
	}
	if r.Ensemble() && sr == nil {
		// A named ensemble: its further members' passes (the search
		// reserves them for an ensemble it may choose).
		pc.grow(2 * len(all) * (len(r.Members) - 1))
	}
	d, rep, err := fitRecipe(ctx, opts, r, src, all, pc)
	if err != nil {
		return nil, rep, err
	}
	if k := d.parts()[0].trainKinds; k[0] > 0 && k[1] > 0 {
		// Once per fit, here: an ensemble fits each member on the images.
		opts.Logger.Warn("the training images are grayscale and colour both: the model is taken for one of the kind most of them were, and the other kind's frames are warned of and may be flagged; fit on images from the camera the line uses, all of one kind",
			"grayscale", k[0], "colour", k[1], "fitted_on", d.parts()[0].trainInput)
	}
	if half {
		for _, p := range d.parts() {
			p.opts.HalfPrecision = true
			for _, s := range p.scales {
				if err := s.setState(s.state, p.opts.scorer()); err != nil {
					d.Close()
					return nil, rep, fmt.Errorf("fit: %w", err)
				}
			}
		}
		d.opts.HalfPrecision = true
	}
	d.info.RecipeChoice = choice
	if rep.Noise = noise; rep.Noise.Images > 0 {
		ln := rep.Noise
		d.info.LineNoise = &ln
	}
	if rep.Noise.Low() {
		opts.Logger.Warn("the line is noisy: its sensor noise is a large share of what its frames show, faint defects may drown in it, and the recipe search's synthetic defects cannot tell how a recipe fares on them; a recipe named with -med (model.recipe, such as v1-fit-med-std-z-ctx2) filters frames by a 3x3 median, which the recipe search tries on such a line; check the model on real defective images (inspectd eval --compare plain); more light or less camera gain helps most",
			"noise", fmt.Sprintf("%.2f", rep.Noise.Noise), "contrast", fmt.Sprintf("%.1f", rep.Noise.Contrast),
			"ratio", fmt.Sprintf("%.1f", rep.Noise.Ratio()), "bound", LowSignalToNoise, "images", rep.Noise.Images)
	}
	if sr != nil {
		rep.Search = sr
		rep.SearchTime = sr.Wall
		if sr.Fallback == "" {
			f := sr.Chosen.Figures
			d.info.RecipeFigures = &f
		}
	}
	rep.Wall = time.Since(start)
	opts.Logger.Info("fit done", "recipe", d.info.Recipe, "images", rep.Images, "threshold_images", rep.ThresholdImages,
		"features", rep.Features, "grid", fmt.Sprintf("%dx%d", d.info.GridH, d.info.GridW), "threshold", d.info.ImageThreshold,
		"wall", rep.Wall.Round(time.Millisecond))
	return d, rep, nil
}

// progressCounter turns the steps of a fit (search passes, the final fit's
// two passes) into one running count.
type progressCounter struct {
	mu          sync.Mutex // the recipe search fits families at once
	f           Progress
	done, total int
}

// skip counts n steps reserved and not taken as done.
func (p *progressCounter) skip(n int) {
	if n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.f != nil {
		p.f(min(p.done, p.total), p.total)
	}
}

func (p *progressCounter) step() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.f != nil {
		p.f(min(p.done, p.total), p.total)
	}
}

// grow adds n steps to the total.
func (p *progressCounter) grow(n int) {
	p.mu.Lock()
	p.total += n
	p.mu.Unlock()
}

// newDetector opens the backbone a recipe runs and prepares its scales
// (without state) for views of the given number, sized to the memory
// budget: the patch scale takes the largest d ≤ Features that fits (and
// pools its grid when even MinFeatures does not), the context scale what
// is left.
func newDetector(opts Options, r Recipe, withContext bool) (*Detector, error) {
	bo, err := opts.backboneFor(r)
	if err != nil {
		return nil, err
	}
	bb, err := backbone.Open(bo)
	if err != nil {
		return nil, err
	}
	d := &Detector{opts: opts, recipe: r, bb: bb, tiles: tiling{n: r.Tiles, axis: r.TileAxis}, fineMap: r.FineMap}
	d.opts.Backbone = bo
	if r.Denoise {
		d.med = &backbone.Median3{}
	}
	if r.Standardize {
		d.std = &backbone.Standardizer{}
	}
	fail := func(err error) (*Detector, error) {
		d.Close()
		return nil, err
	}
	views := d.tiles.views()
	shapes := tapShapes(bb)
	finest := shapes[0]
	for _, s := range shapes {
		if s.H*s.W > finest.H*finest.W {
			finest = s
		}
	}
	budget := opts.MemoryBudget
	if budget <= 0 {
		budget = math.MaxInt64
	}
	total := totalChannels(shapes)
	size, err := padim.ChooseSize(finest.H, finest.W, min(opts.MinFeatures, total), min(opts.Features, total), budget/int64(views))
	if err != nil {
		return fail(fmt.Errorf("memory budget %d bytes for %d views: %w", opts.MemoryBudget, views, err))
	}
	patch, err := newScale(shapes, size.Pool, size.D, opts.Seed, nil, 1, views, size.GridH, size.GridW)
	if err != nil {
		return fail(err)
	}
	d.scales = []*scale{patch}
	opts.Logger.Debug("fit size chosen", "recipe", r.Name(), "features", size.D, "pool", size.Pool, "grid", fmt.Sprintf("%dx%d", size.GridH, size.GridW),
		"views", views, "state_bytes", patch.bytes(), "budget_bytes", opts.MemoryBudget)
	if withContext && r.ContextPool > 1 {
		c, err := contextScale(opts, r, shapes, patch, budget-patch.bytes())
		if err != nil {
			return fail(err)
		}
		if c != nil {
			d.scales = append(d.scales, c)
		}
	}
	d.bindBuffers()
	return d, nil
}

// contextScale prepares the context scale with the largest d up to
// ContextFeatures whose state fits in what the patch scale left of the
// budget (bytes), or returns nil (logged) when its cells would not be
// coarser than the patch grid or it does not fit.
func contextScale(o Options, r Recipe, taps []padim.TapShape, patch *scale, bytes int64) (*scale, error) {
	emb := patch.emb
	gh, gw := emb.FineGrid()
	if r.ContextPool <= emb.Pool() || gh/r.ContextPool < 1 || gw/r.ContextPool < 1 {
		o.Logger.Info("context scale skipped: its cells would not be coarser than the patch grid",
			"grid", fmt.Sprintf("%dx%d", emb.GridH(), emb.GridW()), "context_pool", r.ContextPool, "grid_pool", emb.Pool())
		return nil, nil
	}
	maxD := min(o.ContextFeatures, totalChannels(taps))
	size, err := padim.ChooseSize(gh/r.ContextPool, gw/r.ContextPool, min(o.MinFeatures, maxD), maxD, max(bytes/int64(patch.views), 1))
	if err != nil || size.Pool != 1 {
		o.Logger.Warn("context scale skipped: it does not fit in what the memory budget leaves", "bytes_left", bytes)
		return nil, nil
	}
	w := r.ContextWeight
	if !(w > 0) {
		w = DefaultContextWeight
	}
	c, err := newScale(taps, r.ContextPool, size.D, contextSeed(o.Seed), nil, w, patch.views, emb.GridH(), emb.GridW())
	if err != nil {
		return nil, fmt.Errorf("context scale: %w", err)
	}
	o.Logger.Debug("context scale", "cell", r.ContextPool, "grid", fmt.Sprintf("%dx%d", c.emb.GridH(), c.emb.GridW()), "weight", w,
		"features", size.D, "state_bytes", c.bytes())
	return c, nil
}

// contextSeed derives the context scale's channel seed from the patch
// scale's, so that the two subsets differ.
func contextSeed(seed uint64) uint64 { return seed ^ 0x636f6e74657874 }

// fitRecipe fits recipe r on the images idx of src: the Gaussians on all
// of them, then each scored leave one out for the per-position statistics
// and the threshold.
func fitRecipe(ctx context.Context, opts Options, r Recipe, src ImageSource, idx []int, pc *progressCounter) (*Detector, FitReport, error) {
	if r.Ensemble() {
		return fitEnsemble(ctx, opts, r, src, idx, nil, pc)
	}
	d, rep, _, err := fitOne(ctx, opts, r, src, idx, nil, pc)
	return d, rep, err
}

// fitOne is fitRecipe for a recipe that is not an ensemble, with the
// leave-one-out scores (the per-position statistics and the threshold)
// taken on looIdx, some of idx (nil: all of them, as a fit does; the
// search takes fewer). It also returns those leave-one-out distances (nil
// when an explicit threshold left them out), for an ensemble's own
// threshold.
func fitOne(ctx context.Context, opts Options, r Recipe, src ImageSource, idx, looIdx []int, pc *progressCounter) (*Detector, FitReport, *looGrids, error) {
	start := time.Now()
	rep := FitReport{Recipe: r}
	if len(idx) < minFitImages {
		return nil, rep, nil, fmt.Errorf("fit: %d normal images, need at least %d", len(idx), minFitImages)
	}
	zscore := r.ZScore && len(idx) >= MinZScoreImages
	if r.ZScore && !zscore {
		opts.Logger.Warn("position z-score skipped: too few normal images for per-position statistics (the context scale needs them too)",
			"images", len(idx), "need", MinZScoreImages)
		r.ZScore, r.ContextPool, r.ContextWeight = false, 0, 0
	}
	d, err := newDetector(opts, r, zscore)
	if err != nil {
		return nil, rep, nil, fmt.Errorf("fit: %w", err)
	}
	fail := func(err error) (*Detector, FitReport, *looGrids, error) {
		d.Close()
		return nil, rep, nil, err
	}
	if len(d.scales) == 1 && r.ContextPool > 0 {
		d.recipe.ContextPool, d.recipe.ContextWeight, d.recipe.FineMap, d.fineMap = 0, 0, false, false
	}
	d.zscore = zscore
	if err := d.attachAligner(ctx, src, idx); err != nil {
		return fail(err)
	}
	if d.alignSizes > 1 {
		// Registration runs on thumbnails of any frame, so nothing fails:
		// the part of a frame of another size just lies at another scale
		// than the reference view's, which no shift or turn corrects.
		fw, fh := d.al.ref.FrameSize()
		opts.Logger.Warn("registration: the good images come in several frame sizes, and registration aligns every frame to one reference view without scaling it: fit and inspect frames of one size (a camera's, or cut by capture.roi)",
			"sizes", d.alignSizes, "reference", fmt.Sprintf("%dx%d", fw, fh), "align", string(d.recipe.Align))
	}
	if idx, err = d.accumulate(ctx, src, idx, pc, &rep); err != nil {
		return fail(err)
	}
	d.al.learnFloor(opts.Align)
	d.describe(len(idx))
	if !zscore && opts.Threshold.Explicit > 0 {
		// Nothing needs the leave-one-out scores.
		d.setThreshold(opts.Threshold.Explicit, 0)
		d.al.arm()
		rep.Images, rep.Features, rep.Pool, rep.StateBytes = len(idx), d.info.Features, d.info.Pool, d.info.StateBytes
		rep.Wall = time.Since(start)
		return d, rep, nil, nil
	}
	s := time.Now()
	scored := idx
	if looIdx != nil {
		scored = slices.DeleteFunc(slices.Clone(looIdx), func(i int) bool { return !slices.Contains(idx, i) })
	}
	loo, err := d.leaveOneOutPass(ctx, src, scored, len(idx), pc)
	if err != nil {
		return fail(err)
	}
	rep.InputCoverage = loo.coverage
	if zscore {
		d.setPositionStats(loo)
	}
	scores, fine, err := d.looScores(loo)
	if err != nil {
		return fail(err)
	}
	if err := d.setThresholds(opts.Threshold, scores, fine); err != nil {
		return fail(err)
	}
	rep.ThresholdImages = d.info.ThresholdImages
	if rep.ThresholdImages > 0 {
		rep.Highest, rep.MedianScore = highestScores(src, loo.idx, scores)
	}
	rep.Threshold = time.Since(s)
	if d.recipe.resize() == backbone.ResizeFit && loo.coverage < lowCoverage {
		opts.Logger.Warn("little of the network input carries image: the frames are far from square and letterboxing pads the rest; a recipe with squash or tiles keeps more detail",
			"coverage", fmt.Sprintf("%.0f%%", 100*loo.coverage), "recipe", d.recipe.Name())
	}
	rep.Images, rep.Features, rep.Pool, rep.StateBytes = len(idx), d.info.Features, d.info.Pool, d.info.StateBytes
	rep.ContextPool = d.info.ContextPool
	rep.Wall = time.Since(start)
	d.al.arm()
	return d, rep, loo, nil
}

// accumulate streams the images through the backbone into every scale's
// Gaussians and finalizes them. It returns the images in them: all of idx,
// less those registration cannot place (not the part the others show;
// logged).
func (d *Detector) accumulate(ctx context.Context, src ImageSource, idx []int, pc *progressCounter, rep *FitReport) ([]int, error) {
	accs := make([]*padim.Accumulator, len(d.scales))
	for i, s := range d.scales {
		a, err := padim.NewAccumulator(padim.AccumulatorOptions{GridH: s.views * s.emb.GridH(), GridW: s.emb.GridW(), D: s.emb.D(), Workers: d.opts.Workers})
		if err != nil {
			return nil, fmt.Errorf("fit: %w", err)
		}
		accs[i] = a
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kept := make([]int, 0, len(idx))
	for im := range prefetch(cctx, src, idx) {
		if im.err != nil {
			return nil, fmt.Errorf("fit: image %d: %w", im.i, im.err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := time.Now()
		if _, err := d.embed(im.img, nil); err != nil {
			if errors.Is(err, ErrRegistration) {
				d.opts.Logger.Warn("training image left out: registration cannot place it", "image", imageLabel(src, im.i), "err", err)
				pc.step()
				continue
			}
			return nil, fmt.Errorf("fit: %s: %w", imageLabel(src, im.i), err)
		}
		kept = append(kept, im.i)
		if inputKind(im.img) == inputGray {
			d.trainKinds[0]++
		} else {
			d.trainKinds[1]++
		}
		d.trainInput = inputColour // the kind most training images were; colour on a tie
		if d.trainKinds[0] > d.trainKinds[1] {
			d.trainInput = inputGray
		}
		if b := im.img.Bounds(); b.Dy() > 0 {
			a := float64(b.Dx()) / float64(b.Dy())
			if d.trainAspect[0] == 0 {
				d.trainAspect = [2]float64{a, a}
			}
			d.trainAspect = [2]float64{min(d.trainAspect[0], a), max(d.trainAspect[1], a)}
		}
		d.mismatch.kind = "" // said of the training images so far
		m := time.Now()
		for i, a := range accs {
			if err := a.Add(d.scales[i].vec); err != nil {
				return nil, fmt.Errorf("fit: %w", err)
			}
		}
		rep.Extract += m.Sub(s)
		rep.Accumulate += time.Since(m)
		pc.step()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := time.Now()
	if len(kept) < minFitImages {
		return nil, fmt.Errorf("fit: registration placed %d of %d normal images, need at least %d", len(kept), len(idx), minFitImages)
	}
	for i, a := range accs {
		st, err := a.Finalize(padim.FinalizeOptions{Eps: d.opts.Epsilon, Logger: d.opts.Logger, Workers: d.opts.Workers, Context: ctx})
		if err != nil {
			return nil, fmt.Errorf("fit: %w", err)
		}
		accs[i] = nil // the sums are garbage now
		if err := d.scales[i].setState(st, d.opts.scorer()); err != nil {
			return nil, fmt.Errorf("fit: %w", err)
		}
	}
	rep.Finalize += time.Since(s) // includes the last batch's accumulation
	return kept, nil
}

// looGrids are the leave-one-out distances of the training images, per
// scale, with each image's geometry: what the per-position statistics and
// the threshold are computed from.
type looGrids struct {
	dist     [][][]float32 // [image][scale] distances
	idx      []int         // each one's image in the source
	geom     []looGeom
	coverage float64
}

type looGeom struct {
	b   image.Rectangle
	reg backbone.Region
	// pose brings the map back to the frame (registration).
	pose pose
}

// leaveOneOutPass scores training images idx again with the Gaussians
// fitted on n images including them and turns the distances into
// leave-one-out ones (leaveOneOut): per image, one distance per position of
// each scale.
func (d *Detector) leaveOneOutPass(ctx context.Context, src ImageSource, idx []int, n int, pc *progressCounter) (*looGrids, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &looGrids{}
	for im := range prefetch(cctx, src, idx) {
		if im.err != nil {
			return nil, fmt.Errorf("fit: image %d: %w", im.i, im.err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		reg, err := d.embed(im.img, nil)
		if err != nil {
			return nil, fmt.Errorf("fit: %s: %w", imageLabel(src, im.i), err)
		}
		if err := d.score(); err != nil {
			return nil, err
		}
		g := make([][]float32, len(d.scales))
		for k, s := range d.scales {
			g[k] = append([]float32(nil), s.dist...)
			leaveOneOut(g[k], n)
		}
		out.dist = append(out.dist, g)
		out.idx = append(out.idx, im.i)
		geo := looGeom{b: im.img.Bounds(), reg: reg}
		if d.al != nil {
			geo.pose = d.al.lastPose()
		}
		out.geom = append(out.geom, geo)
		out.coverage += (reg.X1 - reg.X0) * (reg.Y1 - reg.Y0)
		pc.step()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out.coverage /= float64(max(len(out.dist), 1))
	return out, nil
}

// setPositionStats sets every scale's per-position statistics from the
// leave-one-out distances of all training images.
func (d *Detector) setPositionStats(loo *looGrids) {
	for k, s := range d.scales {
		st := newDistStats(s.positions())
		for _, g := range loo.dist {
			st.add(g[k])
		}
		s.zMean, s.zInvStd = make([]float32, s.positions()), make([]float32, s.positions())
		st.stats(nil, s.zMean, s.zInvStd)
	}
}

// looScores returns the image score of every training image from its
// leave-one-out distances, and, when the detector's map follows the fine
// evidence, the maximum of each one's patch-scale map (for that map's own
// threshold). With the z-score, an image must not be standardized by
// statistics it helped set (its score would be low by construction, and
// the threshold too), so each is standardized by the statistics of all
// the others.
func (d *Detector) looScores(loo *looGrids) (scores, fine []float64, err error) {
	ls := d.newLOOScorer(loo)
	withFine := d.fineMap && slices.ContainsFunc(d.weights[1:], func(w float32) bool { return w != 0 })
	scores = make([]float64, len(loo.dist))
	for i, g := range loo.dist {
		sc, err := ls.render(i)
		if err != nil {
			return nil, nil, err
		}
		scores[i] = float64(sc)
		if !withFine {
			continue
		}
		p := d.scales[0]
		var mean, inv []float32
		if ls.z != nil {
			mean, inv = ls.z[0].mean, ls.z[0].invStd
		}
		if err := p.addTo(d.grid, g[0], mean, inv, 1, true); err != nil {
			return nil, nil, err
		}
		f, err := d.renderFrame(loo.geom[i])
		if err != nil {
			return nil, nil, err
		}
		fine = append(fine, float64(f))
	}
	return scores, fine, nil
}

// looScorer draws training images' leave-one-out maps: with the z-score,
// each image is standardized by the statistics of all the others.
type looScorer struct {
	d     *Detector
	loo   *looGrids
	stats []*distStats
	z     []zstats
}

func (d *Detector) newLOOScorer(loo *looGrids) *looScorer {
	ls := &looScorer{d: d, loo: loo}
	if d.zscore {
		for k, s := range d.scales {
			st := newDistStats(s.positions())
			for _, g := range loo.dist {
				st.add(g[k])
			}
			ls.stats = append(ls.stats, st)
			ls.z = append(ls.z, zstats{make([]float32, s.positions()), make([]float32, s.positions())})
		}
	}
	return ls
}

// render draws training image i's leave-one-out map (d.rmap, at the size
// mapSize gives its frame) and returns its score.
func (ls *looScorer) render(i int) (float32, error) {
	g := ls.loo.dist[i]
	for k, st := range ls.stats {
		st.stats(g[k], ls.z[k].mean, ls.z[k].invStd)
	}
	if err := ls.d.combineDists(func(k int) []float32 { return g[k] }, ls.z); err != nil {
		return 0, err
	}
	return ls.d.renderFrame(ls.loo.geom[i])
}

// renderFrame draws the combined grid of a training image of geometry geo
// and returns its maximum over the frame's own pixels.
func (d *Detector) renderFrame(geo looGeom) (float32, error) {
	w, h := d.mapSize(geo.b)
	sc, err := d.render(w, h, geo.reg)
	if err != nil || d.al == nil {
		return sc, err
	}
	return d.al.score(d.rmap, geo.pose)
}

// setThresholds sets the image threshold from the leave-one-out scores
// (or the explicit one) and, when the map follows the fine evidence, that
// map's own threshold from the fine maxima by the same rule.
func (d *Detector) setThresholds(opts padim.ThresholdOptions, scores, fine []float64) error {
	t, err := padim.ImageThreshold(scores, opts)
	if err != nil {
		return fmt.Errorf("fit: threshold from %d leave-one-out scores: %w", len(scores), err)
	}
	images := len(scores)
	if opts.Explicit > 0 {
		images = 0
	}
	d.fineTh = 0
	if len(fine) > 0 {
		o := opts
		o.Explicit = 0
		if d.fineTh, err = padim.ImageThreshold(fine, o); err != nil {
			return fmt.Errorf("fit: threshold of the patch scale's map: %w", err)
		}
	}
	d.setThreshold(t, images)
	return nil
}

// describe fills the detector's Info from its recipe and scales.
func (d *Detector) describe(images int) {
	p := d.scales[0]
	// A detector that only describes its file has no backbone (Load's
	// caller sets the file's checksum, and its taps are the recipe's).
	sha, taps := "", d.recipe.Taps
	if d.bb != nil {
		sha, taps = d.bb.SHA256(), nil
		for _, t := range d.bb.Taps() {
			taps = append(taps, t.Name)
		}
	}
	d.info = Info{Recipe: d.recipe.Name(), Backbone: d.opts.Backbone.Path, BackboneSHA256: sha, Resize: string(d.recipe.resize()),
		GridH: p.emb.GridH(), GridW: p.emb.GridW(), Pool: p.emb.Pool(), Features: p.emb.D(), Epsilon: d.opts.Epsilon, Sigma: d.opts.Sigma,
		Denoise: d.recipe.Denoise, Standardize: d.recipe.Standardize, PositionZScore: d.zscore, Images: images, Fitted: time.Now().UTC().Format(time.RFC3339),
		Align: string(align.Off), TrainInput: d.trainInput, TrainAspect: d.trainAspectMeta()}
	if d.al != nil {
		d.info.Align, d.info.AlignMinConfidence = string(d.al.ref.Mode()), d.al.learned
	}
	if d.tiles.n > 1 {
		d.info.Tiles, d.info.TileAxis = d.tiles.n, d.tiles.axis
	}
	d.info.Taps = slices.Clone(taps)
	d.describeScales()
}

// describeScales records the scales' sizes in Info.
func (d *Detector) describeScales() {
	d.info.StateBytes = 0
	d.info.ContextPool, d.info.ContextGridH, d.info.ContextGridW, d.info.ContextFeatures, d.info.ContextWeight = 0, 0, 0, 0, 0
	for i, s := range d.scales {
		if d.weights[i] == 0 {
			continue
		}
		d.info.StateBytes += s.bytes()
		if i > 0 {
			d.info.ContextPool, d.info.ContextGridH, d.info.ContextGridW, d.info.ContextFeatures = s.emb.Pool(), s.emb.GridH(), s.emb.GridW(), s.emb.D()
			d.info.ContextWeight = float64(d.weights[i])
		}
	}
}

// setThreshold sets the image threshold, the pixel threshold at the
// options' pixel ratio of it (padim.ThresholdOptions.Pixel), and the
// model's id.
func (d *Detector) setThreshold(t float64, images int) {
	d.th = padim.Thresholds{Image: t, Pixel: d.opts.Threshold.Pixel(t)}
	d.info.ImageThreshold, d.info.PixelThreshold, d.info.ThresholdImages = t, d.th.Pixel, images
	d.info.ID = d.id()
}

func totalChannels(s []padim.TapShape) int {
	n := 0
	for _, t := range s {
		n += t.C
	}
	return n
}

// id names a fitted model: a short hash of its backbone, fit time and
// threshold, carried in every published result.
func (d *Detector) id() string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%d|%g", d.info.BackboneSHA256, d.info.Fitted, d.info.Features, d.info.ImageThreshold)))
	return hex.EncodeToString(h[:6])
}
