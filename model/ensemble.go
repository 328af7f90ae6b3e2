package model

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/inspectd/inspectd/model/padim"
)

// An ensemble is a detector made of members, each a detector of its own
// recipe (its backbone pass, Gaussians and threshold). A frame's anomaly
// map is the mean of the members' maps, each divided by its member's image
// threshold, so that every member counts in units of its own decision
// level; the image score is that map's maximum, as for any detector, so an
// alarm always has a region. Members that err in different places (a
// context scale's coarse cells, another backbone's features, plain PaDiM's
// raw distances) then average out where one alone lights up.
//
// Measured on the four sets of shared/data with the search's chosen
// recipe, the same on MobileNet V2 and plain PaDiM (200 training images,
// image / pixel AUROC / PRO): magnetic tile 0.9277 / 0.8044 / 0.7399
// against the chosen recipe's 0.9184 / 0.8076 / 0.6862 and plain's PRO
// 0.7375; screw 0.8328 / 0.9793 / 0.9125 against 0.8791 / 0.9797 / 0.9077.
// It helps some lines and costs others, at three backbone passes a frame:
// the recipe search offers it as one more candidate (SearchOptions.Ensemble)
// and its synthetic defects decide.

// metaEnsemble is the model file's key for an ensemble's own figures
// (ensembleMeta); the file's main model is the first member, the others
// are the file's members (padim.Model.Members).
const metaEnsemble = "ensemble"

// ensembleMeta is what an ensemble's model file records beyond its
// members: its thresholds (the main model's are the first member's own, so
// a reader without ensembles runs that member alone, correctly) and how
// its recipe was chosen.
type ensembleMeta struct {
	ImageThreshold  float64        `json:"image_threshold"`
	PixelThreshold  float64        `json:"pixel_threshold"`
	ThresholdImages int            `json:"threshold_images"`
	ID              string         `json:"id"`
	RecipeChoice    string         `json:"recipe_choice,omitempty"`
	RecipeFigures   *RecipeFigures `json:"recipe_figures,omitempty"`
	// LineNoise is the line's noise figures as LineNoise.MarshalJSON
	// writes them (absent: not measured), kept raw so that reading them
	// goes through parseLineNoise, as a single model's line_noise does.
	LineNoise json.RawMessage `json:"line_noise,omitempty"`
}

// parts is the detectors that run a frame: the members of an ensemble, or
// the detector itself.
func (d *Detector) parts() []*Detector {
	if d.members != nil {
		return d.members
	}
	return []*Detector{d}
}

// inspectEnsemble scores img with every member and averages their maps in
// threshold units. The members run side by side (memberRuns) unless the
// detector runs on one core or measures CPU time per stage (SetCPUClock:
// concurrent members would count each other's time).
func (d *Detector) inspectEnsemble(img image.Image) (*Inspection, error) {
	r := &d.res
	r.Timing = Timing{}
	n := float64(len(d.members))
	if d.runs == nil && !d.serial && runtime.GOMAXPROCS(0) > 1 {
		d.runs = startMemberRuns(d.members)
	}
	var mean, wall time.Duration
	var err error
	if d.runs != nil && d.cpu == nil && !d.serial {
		s := time.Now()
		err = d.runs.inspect(img)
		wall = time.Since(s)
	} else {
		err = d.runMembers(img)
	}
	if err != nil {
		return nil, err
	}
	for k, m := range d.members {
		mr := &m.res
		r.Timing.add(mr.Timing)
		if k == 0 {
			r.InputMismatch, r.Mismatch = mr.InputMismatch, mr.Mismatch
		}
	}
	if wall > 0 {
		r.Timing.fitWall(wall)
	}
	for k, m := range d.members {
		mr := &m.res
		s := time.Now()
		if err := d.addMemberMap(k, mr.Map, mr.W, mr.H, m.th.Image*n); err != nil {
			return nil, err
		}
		mean += time.Since(s)
	}
	s := time.Now().Add(-mean) // the averaging counts in the map stage
	score, err := maxFinite(d.rmap)
	if err != nil {
		return nil, err
	}
	r.Map, r.W, r.H, r.Registration = d.rmap, d.res.W, d.res.H, Registration{}
	if err := d.th.Inspect(&r.Result, r.Map, r.W, r.H, score); err != nil {
		return nil, err
	}
	r.Timing.Map += time.Since(s)
	return r, nil
}

// runMembers inspects img with each member in turn; each member's result
// is its own (m.res).
func (d *Detector) runMembers(img image.Image) error {
	for _, m := range d.members {
		if _, err := m.Inspect(img); err != nil {
			return memberError(m, err)
		}
	}
	return nil
}

// memberError names the member an error came from.
func memberError(m *Detector, err error) error {
	return fmt.Errorf("ensemble member %s: %w", m.recipe.Name(), err)
}

// memberRuns inspects a frame with an ensemble's members side by side: the
// first on the caller's goroutine, each other on a goroutine of its own
// that lives as long as the ensemble (a goroutine started per frame would
// allocate on every frame). Each member's backbone runs on half the cores
// (model.threads) and waits for its input between frames, so members one
// after another left a core idle through every backbone pass: on two
// cores, BenchmarkInspectEnsemble measures what running them together
// saves. The results are the members' own (m.res); the ensemble averages
// them in member order, so the map does not depend on which finished first.
type memberRuns struct {
	members []*Detector
	req     []chan image.Image // req[k] feeds member k (k ≥ 1)
	errs    []error            // errs[k] is member k's last error
	wg      sync.WaitGroup
}

func startMemberRuns(members []*Detector) *memberRuns {
	mr := &memberRuns{members: members, req: make([]chan image.Image, len(members)), errs: make([]error, len(members))}
	for k := 1; k < len(members); k++ {
		c := make(chan image.Image)
		mr.req[k] = c
		go func() {
			for img := range c {
				_, mr.errs[k] = members[k].Inspect(img)
				mr.wg.Done()
			}
		}()
	}
	return mr
}

// inspect runs every member on img and waits for all of them; the error is
// the first member's, in member order.
func (mr *memberRuns) inspect(img image.Image) error {
	mr.wg.Add(len(mr.members) - 1)
	for k := 1; k < len(mr.members); k++ {
		mr.req[k] <- img
	}
	_, mr.errs[0] = mr.members[0].Inspect(img)
	mr.wg.Wait()
	for k, err := range mr.errs {
		if err != nil {
			return memberError(mr.members[k], err)
		}
	}
	return nil
}

// stop ends the members' goroutines; the members are not closed.
func (mr *memberRuns) stop() {
	if mr == nil {
		return
	}
	for _, c := range mr.req[1:] {
		close(c)
	}
}

// addMemberMap adds member k's w×h map divided by div into the ensemble's
// map (the first member sets its size).
func (d *Detector) addMemberMap(k int, m []float32, w, h int, div float64) error {
	if k == 0 {
		if cap(d.rmap) < w*h {
			d.rmap = make([]float32, w*h)
		}
		d.rmap = d.rmap[:w*h]
		clear(d.rmap)
		d.res.W, d.res.H = w, h
	} else if w != d.res.W || h != d.res.H || len(m) != w*h {
		return fmt.Errorf("ensemble member %s drew a %dx%d map, the first member %dx%d", d.members[k].recipe.Name(), w, h, d.res.W, d.res.H)
	}
	f := float32(1 / div)
	for i, v := range m {
		d.rmap[i] += v * f
	}
	return nil
}

// maxFinite is the maximum of a map, an error when it holds a value that
// is not finite (it would vanish in the maximum and the frame pass).
func maxFinite(m []float32) (float32, error) {
	if i := padim.FirstNonFinite(m); i >= 0 {
		return 0, fmt.Errorf("inspect: %w: ensemble map value %v at pixel %d", ErrNonFinite, m[i], i)
	}
	top := float32(math.Inf(-1))
	for _, v := range m {
		top = max(top, v)
	}
	return top, nil
}

// add accumulates another stage timing (an ensemble's members').
func (t *Timing) add(o Timing) {
	t.Align += o.Align
	t.Preprocess += o.Preprocess
	t.Backbone += o.Backbone
	t.PaDiM += o.PaDiM
	t.Map += o.Map
	t.CPU.Align += o.CPU.Align
	t.CPU.Preprocess += o.CPU.Preprocess
	t.CPU.Backbone += o.CPU.Backbone
	t.CPU.PaDiM += o.CPU.PaDiM
	t.CPU.Map += o.CPU.Map
}

// fitWall scales the stage times (wall clock) down in proportion so that
// they add up to wall, when the members' sums exceed it: members that ran
// side by side overlapped, and a frame's stages must add up to at most its
// time (latency_ms). The CPU times stay the members' sums.
func (t *Timing) fitWall(wall time.Duration) {
	total := t.Align + t.Preprocess + t.Backbone + t.PaDiM + t.Map
	if total <= wall || total <= 0 {
		return
	}
	f := float64(wall) / float64(total)
	for _, d := range []*time.Duration{&t.Align, &t.Preprocess, &t.Backbone, &t.PaDiM, &t.Map} {
		*d = time.Duration(float64(*d) * f)
	}
}

// fitEnsemble fits every member of r on the images idx of src (each with
// an equal share of the memory budget, and its own threshold from the
// leave-one-out scores of looIdx, nil: all of idx), then the ensemble's
// threshold from the same images' leave-one-out maps of the members
// averaged. The caller counts its progress: each member steps once per
// image of idx and of looIdx.
func fitEnsemble(ctx context.Context, opts Options, r Recipe, src ImageSource, idx, looIdx []int, pc *progressCounter) (*Detector, FitReport, error) {
	start := time.Now()
	rep := FitReport{Recipe: r}
	if err := r.checkMembers(); err != nil {
		return nil, rep, fmt.Errorf("fit: recipe %s: %w", r.Name(), err)
	}
	d := &Detector{opts: opts, recipe: r}
	d.recipe.Members = slices.Clone(r.Members)
	fail := func(err error) (*Detector, FitReport, error) {
		d.Close()
		return nil, rep, err
	}
	mo := opts
	mo.Threshold.Explicit = 0 // a member's threshold is its unit in the mean
	if mo.MemoryBudget > 0 {
		mo.MemoryBudget /= int64(len(r.Members))
	}
	var loos []*looGrids
	for i, mr := range r.Members {
		if mr.Tiles > 1 && mr.TileAxis == "" {
			img, err := src.Image(idx[0])
			if err != nil {
				return fail(fmt.Errorf("fit: %s: %w", imageLabel(src, idx[0]), err))
			}
			mr.TileAxis = tileAxis(img.Bounds().Dx(), img.Bounds().Dy())
		}
		m, mrep, loo, err := fitOne(ctx, mo, mr, src, idx, looIdx, pc)
		if err != nil {
			return fail(fmt.Errorf("ensemble member %s: %w", mr.Name(), err))
		}
		m.member = true
		d.members = append(d.members, m)
		d.recipe.Members[i] = m.recipe
		loos = append(loos, loo)
		rep.Extract += mrep.Extract
		rep.Accumulate += mrep.Accumulate
		rep.Finalize += mrep.Finalize
		rep.Threshold += mrep.Threshold
		rep.StateBytes += mrep.StateBytes
		if i == 0 {
			rep.Features, rep.Pool, rep.ContextPool, rep.InputCoverage = mrep.Features, mrep.Pool, mrep.ContextPool, mrep.InputCoverage
		}
	}
	s := time.Now()
	scores, err := d.ensembleLOOScores(loos)
	if err != nil {
		return fail(err)
	}
	t, err := padim.ImageThreshold(scores, opts.Threshold)
	if err != nil {
		return fail(fmt.Errorf("fit: ensemble threshold from %d leave-one-out scores: %w", len(scores), err))
	}
	images := len(scores)
	if opts.Threshold.Explicit > 0 {
		images = 0
	}
	d.th = padim.Thresholds{Image: t, Pixel: opts.Threshold.Pixel(t)}
	d.describeEnsemble(len(idx), images, "")
	rep.Threshold += time.Since(s)
	rep.Images, rep.ThresholdImages = len(idx), images
	if images > 0 {
		rep.Highest, rep.MedianScore = highestScores(src, loos[0].idx, scores)
	}
	d.info.ThresholdImages = images
	rep.Wall = time.Since(start)
	return d, rep, nil
}

// ensembleLOOScores returns the ensemble's score of every training image
// from the members' leave-one-out distances (loos[k] is member k's, over
// the same images): the maximum of the mean of the members' leave-one-out
// maps in threshold units.
func (d *Detector) ensembleLOOScores(loos []*looGrids) ([]float64, error) {
	n := len(loos[0].dist)
	scorers := make([]*looScorer, len(d.members))
	for k, m := range d.members {
		if len(loos[k].dist) != n {
			return nil, fmt.Errorf("fit: ensemble member %s kept %d of the training images, the first member %d", m.recipe.Name(), len(loos[k].dist), n)
		}
		scorers[k] = m.newLOOScorer(loos[k])
	}
	div := float64(len(d.members))
	scores := make([]float64, n)
	for i := range n {
		for k, m := range d.members {
			if _, err := scorers[k].render(i); err != nil {
				return nil, err
			}
			w, h := m.mapSize(loos[k].geom[i].b)
			if err := d.addMemberMap(k, m.rmap, w, h, m.th.Image*div); err != nil {
				return nil, err
			}
		}
		top, err := maxFinite(d.rmap)
		if err != nil {
			return nil, err
		}
		scores[i] = float64(top)
	}
	return scores, nil
}

// describeEnsemble fills an ensemble's Info: the first member's
// description, with the ensemble's recipe, thresholds, summed state and
// the members' own descriptions.
func (d *Detector) describeEnsemble(images, thresholdImages int, id string) {
	i := d.members[0].Info()
	i.RecipeChoice, i.RecipeFigures, i.LineNoise = "", nil, nil
	i.Recipe, i.Images, i.ThresholdImages = d.recipe.Name(), images, thresholdImages
	i.ImageThreshold, i.PixelThreshold = d.th.Image, d.th.Pixel
	i.StateBytes = 0
	i.Members = nil
	var ids []string
	for _, m := range d.members {
		mi := m.Info()
		i.StateBytes += mi.StateBytes
		i.Members = append(i.Members, mi)
		ids = append(ids, mi.ID)
	}
	if id == "" {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s|%g", strings.Join(ids, ","), d.th.Image)))
		id = hex.EncodeToString(h[:6])
	}
	i.ID = id
	d.info = i
}

// ensembleModel is an ensemble's model file: the first member as the main
// model, the others as its members, and the ensemble's figures.
func (d *Detector) ensembleModel() (*padim.Model, error) {
	m, err := d.members[0].fileModel()
	if err != nil {
		return nil, err
	}
	for _, mem := range d.members[1:] {
		mm, err := mem.fileModel()
		if err != nil {
			return nil, fmt.Errorf("ensemble member %s: %w", mem.recipe.Name(), err)
		}
		m.Members = append(m.Members, mm)
	}
	em := ensembleMeta{ImageThreshold: d.th.Image, PixelThreshold: d.th.Pixel, ThresholdImages: d.info.ThresholdImages,
		ID: d.info.ID, RecipeChoice: d.info.RecipeChoice, RecipeFigures: d.info.RecipeFigures}
	if d.info.LineNoise != nil {
		if em.LineNoise, err = json.Marshal(d.info.LineNoise); err != nil {
			return nil, fmt.Errorf("metadata %s: %s: %w", metaEnsemble, metaLineNoise, err)
		}
	}
	js, err := json.Marshal(em)
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", metaEnsemble, err)
	}
	m.Meta.Extra[metaEnsemble] = string(js)
	return m, nil
}

// loadEnsemble builds an ensemble from a model file with members: the
// main model is the first member.
func loadEnsemble(path string, pm *padim.Model, opts Options) (*Detector, error) {
	d := &Detector{opts: opts, closer: pm.Close}
	fail := func(err error) (*Detector, error) {
		d.Close()
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	js, ok := pm.Meta.Extra[metaEnsemble]
	if !ok || len(pm.Members) == 0 {
		return fail(fmt.Errorf("metadata %s and members go together: the file has %d member(s) and %s %q", metaEnsemble, len(pm.Members), metaEnsemble, js))
	}
	var em ensembleMeta
	if err := json.Unmarshal([]byte(js), &em); err != nil {
		return fail(fmt.Errorf("metadata %s: %w", metaEnsemble, err))
	}
	if err := CheckThreshold("ensemble image", em.ImageThreshold); err != nil {
		return fail(fmt.Errorf("metadata %s: %w", metaEnsemble, err))
	}
	if err := CheckThreshold("ensemble pixel", em.PixelThreshold); err != nil {
		return fail(fmt.Errorf("metadata %s: %w", metaEnsemble, err))
	}
	if err := CheckPixelThreshold(em.ImageThreshold, em.PixelThreshold); err != nil {
		return fail(fmt.Errorf("metadata %s: %w", metaEnsemble, err))
	}
	if len(pm.Members)+1 > maxMembers {
		return fail(fmt.Errorf("%d ensemble members, at most %d", len(pm.Members)+1, maxMembers))
	}
	for k, mm := range append([]*padim.Model{pm}, pm.Members...) {
		m, err := fromFile(mm, pm, opts, path)
		if err != nil {
			d.Close()
			// Its keys named: member K+1's metadata and tensors are the
			// file's own (the first) or those under memberK. (a trial:
			// "ensemble member 2: …: metadata line_noise: …" for a bad
			// member1.line_noise, where padim says "member 1").
			keys := "the file's own keys"
			if k > 0 {
				keys = "keys " + padim.MemberPrefix(k) + "…"
			}
			return nil, fmt.Errorf("ensemble member %d (%s): %w", k+1, keys, err)
		}
		m.member = true
		d.members = append(d.members, m)
		d.recipe.Members = append(d.recipe.Members, m.recipe)
	}
	if err := d.recipe.checkMembers(); err != nil {
		return fail(err)
	}
	d.th = padim.Thresholds{Image: em.ImageThreshold, Pixel: em.PixelThreshold}
	d.describeEnsemble(d.members[0].info.Images, em.ThresholdImages, em.ID)
	d.info.Fitted = d.members[0].info.Fitted
	d.info.RecipeChoice, d.info.RecipeFigures = em.RecipeChoice, em.RecipeFigures
	// Left out or null: not measured, as a pointer field would read it.
	if len(em.LineNoise) > 0 && string(em.LineNoise) != "null" {
		ln, err := parseLineNoise(em.LineNoise)
		if err != nil {
			return fail(fmt.Errorf("metadata %s: %w", metaEnsemble, err)) // "metadata ensemble: line_noise: …"
		}
		d.info.LineNoise = ln
	}
	var scales []padim.ScaleState
	for k, m := range d.members {
		scales = append(scales, m.scaleStates(memberPrefix(k))...)
	}
	if err := padim.CheckBudget(scales, len(d.members)-1, opts.MemoryBudget); err != nil {
		return fail(err)
	}
	return d, nil
}
