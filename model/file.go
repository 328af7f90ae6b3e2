package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/model/align"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/padim"
)

// preprocessing is what the model file records of how frames became network
// input; a loaded model applies it, whatever the configuration says now,
// because scores are only meaningful under the preprocessing of the fit.
type preprocessing struct {
	Resize string     `json:"resize"`
	Mean   [3]float32 `json:"mean"`
	Std    [3]float32 `json:"std"`
	Sigma  float64    `json:"sigma"`
	// Standardize is absent (false) in files written before it existed.
	Standardize bool `json:"standardize,omitempty"`
	// Denoise names the filter every frame gets first (denoiseMedian3);
	// absent in files without one, and in every file written before it
	// existed, which load as they were fitted.
	Denoise string `json:"denoise,omitempty"`
	// StandardizeMaxGain is the bound on the standardization's contrast
	// stretch the model was fitted under (backbone.Standardizer.MaxGain);
	// absent in files written before the bound was lowered to
	// backbone.DefaultMaxGain, which stretch up to backbone.LegacyMaxGain
	// as they were fitted.
	StandardizeMaxGain float64 `json:"standardize_max_gain,omitempty"`
	// TrainInput is what the training images were (gray or colour);
	// absent in files written before it was recorded.
	TrainInput string `json:"train_input,omitempty"`
	// TrainAspect is the least and greatest width/height of the training
	// images; absent in files written before it was recorded.
	TrainAspect []float64 `json:"train_aspect,omitempty"`
	// Tiles and TileAxis are absent in files written before tiling.
	Tiles    int    `json:"tiles,omitempty"`
	TileAxis string `json:"tile_axis,omitempty"`
	Path     string `json:"backbone_path"`
}

// Tensors and metadata of the scales in a model file. The patch scale is
// the file's main state (padim.TensorMean, TensorInvCov, channels, pool)
// with its per-position statistics in dist_mean and dist_inv_std; each
// further scale k ≥ 1 has the same under the prefix scalePrefix(k), plus
// its cell size, channels and weight as metadata. The first further scale
// keeps the names the context scale had before detectors were lists of
// scales, so those files load as they are.
const (
	tensorDistMean   = "dist_mean"
	tensorDistInvStd = "dist_inv_std"
	suffixMean       = "mean"
	suffixInvCov     = "inv_cov"
	suffixPool       = "pool"
	suffixChannels   = "channels"
	suffixWeight     = "weight"
	// Context scale names (scale 1), as files have them.
	tensorContextMean      = "context_mean"
	tensorContextInvCov    = "context_inv_cov"
	tensorContextDistMean  = "context_dist_mean"
	tensorContextDistInvSD = "context_dist_inv_std"
	metaContextPool        = "context_pool"
	metaContextChannels    = "context_channels"
	metaContextWeight      = "context_weight"
	// Recipe metadata.
	metaRecipe          = "recipe"
	metaRecipeChoice    = "recipe_choice"
	metaRecipeFigures   = "recipe_figures"
	metaLineNoise       = "line_noise"
	metaThresholdImages = "threshold_images"
	// metaFineThreshold is set when the published map follows the patch
	// scale (Detector.fineMap): that map's own threshold.
	metaFineThreshold = "fine_threshold"
)

// denoiseMedian3 is preprocessing.Denoise's value for the 3×3 median
// (backbone.Median3), the one filter there is.
const denoiseMedian3 = "median3"

// maxStandardizeGain bounds a model file's standardize_max_gain: a larger
// stretch only amplifies a frame's noise.
const maxStandardizeGain = 255

// maxScales bounds the scales a model file may declare.
const maxScales = 8

func scalePrefix(k int) string {
	if k == 1 {
		return "context_"
	}
	return "context" + strconv.Itoa(k) + "_"
}

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

// Save writes the detector to one safetensors file, atomically (an
// ensemble's members in the same file). It refuses a path that is there
// and is not a regular file (CheckSaveTarget).
func (d *Detector) Save(path string) error {
	return d.SaveWith(path, atomicfile.Options{Perm: 0o644})
}

// SaveWith is Save with the file's permissions, and what is done to it
// before a byte is written (atomicfile.WriteWith), so that a model that
// replaces an operator's file is never readable more widely than it.
func (d *Detector) SaveWith(path string, opts atomicfile.Options) error {
	if err := CheckSaveTarget(path); err != nil {
		return fmt.Errorf("model not saved: %w", err)
	}
	m, err := d.fileModel()
	if err != nil {
		return fmt.Errorf("save model %s: %w", path, err)
	}
	return padim.SaveWith(path, m, opts) // its errors name the file
}

// CheckSaveTarget says why path cannot take a saved model, or nil: it is
// a folder, or something a model renamed into place would wrongly replace
// (ReplaceRefusal). A model is saved to a temporary file renamed over
// path, which would put a regular file in place of a device such as
// /dev/null (a trial did so as root) or a pipe, and fails on a folder
// only after the fit. A symbolic link to a file is replaced and what it
// points to left alone, as the rename does.
func CheckSaveTarget(path string) error {
	if st, err := os.Lstat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a folder, not a model file: name a file in it, such as %s", path, filepath.Join(path, "model.safetensors"))
	}
	if why := ReplaceRefusal(path); why != "" {
		return fmt.Errorf("%s %s, not a model file: saving would put a regular file in its place; name a model file or a new one", path, why)
	}
	return nil
}

// ReplaceRefusal says, in words that follow path ("is a named pipe", "is
// a link to a device", "is a link to /proc/self/fd/1, a process's open
// file"), what is at path that a file written elsewhere and renamed into
// place would wrongly replace, or "": atomicfile.ReplaceRefusal, which
// capture snapshot's --out shares (capture may not import model).
func ReplaceRefusal(path string) string { return atomicfile.ReplaceRefusal(path) }

// FileKind names the kind of a file that is neither regular nor a folder,
// as a refusal words it: "a device", "a named pipe", "a socket", or "not a
// regular file". The daemon's model file checks and padim.Load's refusal
// share it, so that a save, a load and a config push name the same file
// alike.
func FileKind(m os.FileMode) string { return padim.FileKind(m) }

// trainAspectMeta is trainAspect as the file records it (nil: unknown).
func (d *Detector) trainAspectMeta() []float64 {
	if d.trainAspect[0] == 0 {
		return nil
	}
	return d.trainAspect[:]
}

// fileModel is what the detector's model file holds.
func (d *Detector) fileModel() (*padim.Model, error) {
	if d.members != nil {
		return d.ensembleModel()
	}
	p := d.opts.Backbone.Preprocess
	var maxGain float64
	if d.std != nil {
		maxGain = d.std.GainBound()
	}
	var denoise string
	if d.med != nil {
		denoise = denoiseMedian3
	}
	pre, err := json.Marshal(preprocessing{Resize: string(d.recipe.resize()), Mean: p.Mean, Std: p.Std, Sigma: d.info.Sigma, Denoise: denoise,
		Standardize: d.recipe.Standardize, StandardizeMaxGain: maxGain, Tiles: d.info.Tiles, TileAxis: d.info.TileAxis,
		Path: d.info.Backbone, TrainInput: d.trainInput, TrainAspect: d.trainAspectMeta()})
	if err != nil {
		return nil, err
	}
	recipe, err := json.Marshal(d.recipe)
	if err != nil {
		return nil, err
	}
	fitted, _ := time.Parse(time.RFC3339, d.info.Fitted)
	patch := d.scales[0]
	m := &padim.Model{
		State:    *patch.state,
		Channels: patch.emb.Channels(),
		Meta: padim.Metadata{Pool: d.info.Pool, Eps: d.info.Epsilon, ImageThreshold: d.th.Image, PixelThreshold: d.th.Pixel,
			BackboneSHA256: d.info.BackboneSHA256, Taps: d.info.Taps, TapShapes: tapShapes(d.bb), Preprocessing: string(pre),
			FitDate: fitted, Images: d.info.Images, Seed: d.opts.Seed,
			Extra: map[string]string{"inspectd_id": d.info.ID, metaRecipe: string(recipe),
				metaThresholdImages: strconv.Itoa(d.info.ThresholdImages)}},
		Tensors: map[string]padim.Tensor{},
	}
	if d.info.RecipeChoice != "" {
		m.Meta.Extra[metaRecipeChoice] = d.info.RecipeChoice
	}
	if d.info.RecipeFigures != nil {
		f, err := json.Marshal(d.info.RecipeFigures)
		if err != nil {
			return nil, err
		}
		m.Meta.Extra[metaRecipeFigures] = string(f)
	}
	if d.info.LineNoise != nil {
		f, err := json.Marshal(d.info.LineNoise)
		if err != nil {
			return nil, err
		}
		m.Meta.Extra[metaLineNoise] = string(f)
	}
	if d.localizesFine() {
		m.Meta.Extra[metaFineThreshold] = strconv.FormatFloat(d.fineTh, 'g', -1, 64)
	}
	if d.zscore {
		n := []int{patch.positions()}
		m.Tensors[tensorDistMean] = padim.Tensor{Shape: n, Data: patch.zMean}
		m.Tensors[tensorDistInvStd] = padim.Tensor{Shape: n, Data: patch.zInvStd}
	}
	k := 1
	for i, s := range d.scales[1:] {
		if d.weights[i+1] == 0 {
			continue
		}
		s.save(m, scalePrefix(k), d.weights[i+1])
		k++
	}
	if d.al != nil {
		if err := d.al.save(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// save adds a further scale's tensors, cell size, channels and weight to
// a model file under prefix.
func (s *scale) save(m *padim.Model, prefix string, weight float32) {
	gh, gw, d := s.views*s.emb.GridH(), s.emb.GridW(), s.emb.D()
	m.Tensors[prefix+suffixMean] = padim.Tensor{Shape: []int{gh, gw, d}, Data: s.state.Mean}
	m.Tensors[prefix+suffixInvCov] = padim.Tensor{Shape: []int{gh, gw, d * (d + 1) / 2}, Data: s.state.InvCov}
	m.Tensors[prefix+tensorDistMean] = padim.Tensor{Shape: []int{gh * gw}, Data: s.zMean}
	m.Tensors[prefix+tensorDistInvStd] = padim.Tensor{Shape: []int{gh * gw}, Data: s.zInvStd}
	m.Meta.Extra[prefix+suffixPool] = strconv.Itoa(s.emb.Pool())
	m.Meta.Extra[prefix+suffixWeight] = strconv.FormatFloat(float64(weight), 'g', -1, 32)
	ch := s.emb.Channels()
	out := make([]string, len(ch))
	for i, v := range ch {
		out[i] = strconv.Itoa(int(v))
	}
	m.Meta.Extra[prefix+suffixChannels] = strings.Join(out, ",")
}

// Load opens a model file. It runs the backbone the model was fitted for:
// the bundled one with the file's backbone sha256 when there is one, else
// the configured backbone, which must be that file. A model fitted for
// another backbone or taps, a corrupt file, or one whose scoring state
// exceeds the memory budget is refused with an error saying which.
func Load(path string, opts Options) (*Detector, error) {
	opts.defaults()
	pm, err := padim.Load(path, padim.LoadOptions{MaxStateBytes: opts.MemoryBudget})
	if err != nil {
		return nil, err
	}
	_, ensemble := pm.Meta.Extra[metaEnsemble]
	if ensemble || len(pm.Members) > 0 {
		return loadEnsemble(path, pm, opts)
	}
	d, err := fromFile(pm, pm, opts, path)
	if err != nil {
		pm.Close()
		return nil, err
	}
	d.closer = pm.Close
	return d, nil
}

// DescribeFile describes the model file at path from the file alone, as
// Load's detector would (Info), without the backbone it was fitted on:
// where that backbone is not on this machine (a binary run outside its
// install, a bundled backbone not installed), a model file is still
// described. Backbone is then the bundled backbone's name, or the path
// the fit recorded; that the backbone in use is the one fitted on (its
// sha256, the taps' shapes) is not checked, nor is any budget. Options
// give what Load's would (Workers, HalfPrecision, Logger); Backbone and
// MemoryBudget are not used. The file's own faults are refused as Load
// refuses them.
func DescribeFile(path string, opts Options) (Info, error) {
	opts.MemoryBudget, opts.describeOnly = 0, true
	d, err := Load(path, opts)
	if err != nil {
		return Info{}, err
	}
	defer d.Close()
	return d.Info(), nil
}

// fromFile builds the detector of one model of a file (the file's main
// model, or a member: root is the file's, whose mapping the pages of the
// inverse covariances are dropped from). On error it releases what it
// opened, not the file.
func fromFile(pm, root *padim.Model, opts Options, path string) (*Detector, error) {
	d := &Detector{opts: opts}
	var err error
	fail := func(err error) (*Detector, error) {
		d.Close()
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	for _, th := range []struct {
		key string
		v   float64
	}{{"image_threshold", pm.Meta.ImageThreshold}, {"pixel_threshold", pm.Meta.PixelThreshold}} {
		// The file format reads 0 as unset; a detector compares every frame
		// against both, so neither may be, nor be out of range.
		if err := CheckThreshold(th.key, th.v); err != nil {
			return fail(fmt.Errorf("metadata %s=%g: %w: refit the model or set it with the threshold command", th.key, th.v, err))
		}
	}
	var pre preprocessing
	if err := json.Unmarshal([]byte(pm.Meta.Preprocessing), &pre); err != nil {
		return fail(fmt.Errorf("preprocessing metadata: %w", err))
	}
	switch pre.Denoise {
	case "":
	case denoiseMedian3:
		d.med = &backbone.Median3{}
	default:
		return fail(fmt.Errorf("preprocessing metadata: denoise %q, want %s or none", pre.Denoise, denoiseMedian3))
	}
	if pre.Tiles < 0 || pre.Tiles > MaxTiles || (pre.Tiles > 1 && pre.TileAxis != axisX && pre.TileAxis != axisY) {
		return fail(fmt.Errorf("preprocessing metadata: tiles %d along %q, want 0..%d along x or y", pre.Tiles, pre.TileAxis, MaxTiles))
	}
	// The fit's backbone, taps and preprocessing win over the
	// configuration's. When a bundled backbone is configured (the recipe
	// search may have chosen another bundled one), the bundled backbone
	// the file was fitted for runs; a backbone of the user's must be the
	// file's.
	bo := opts.Backbone
	recipe := Recipe{Taps: pm.Meta.Taps, Resize: backbone.ResizeMode(pre.Resize), Tiles: pre.Tiles, TileAxis: pre.TileAxis, Standardize: pre.Standardize,
		Denoise: pre.Denoise == denoiseMedian3}
	installed := opts.Installed
	if len(installed) == 0 {
		installed = opts.Bundled
	}
	configuredBundled := slices.ContainsFunc(installed, func(b BundledPath) bool { return b.Path == opts.Backbone.Path })
	if configuredBundled {
		for _, b := range installed {
			if bd, ok := backbone.BundleByName(b.Name); ok && bd.SHA256 == pm.Meta.BackboneSHA256 {
				bo.Path, bo.Bytes, recipe.Backbone = b.Path, nil, b.Name
			}
		}
	}
	if recipe.Backbone == "" && (opts.Recipe == "" || opts.Recipe == RecipeFixed) && len(opts.Backbone.Taps) > 0 && !slices.Equal(opts.Backbone.Taps, pm.Meta.Taps) {
		return fail(fmt.Errorf("fitted with taps %q, but the backbone is configured with taps %q: refit the model", pm.Meta.Taps, opts.Backbone.Taps))
	}
	bo.Taps = pm.Meta.Taps
	bo.Preprocess = backbone.Preprocess{Resize: backbone.ResizeMode(pre.Resize), Mean: pre.Mean, Std: pre.Std}
	if bo.Preprocess != opts.Backbone.Preprocess && (opts.Recipe == "" || opts.Recipe == RecipeFixed) && !opts.describeOnly {
		opts.Logger.Info("model file's preprocessing differs from the configuration; using the model's", "model", path, "resize", pre.Resize)
	}
	// otherBundled says which bundled backbone the file was fitted on
	// when the one opened is not it: the configured backbone is a file of
	// the user's, or that bundled one is not installed here.
	// A configured backbone file that is not there is said first, with
	// the key, before which backbone the file was fitted on: that the
	// file is missing is what the user mends.
	otherBundled := func(err error) error {
		fb, ok := backbone.BundleBySHA256(pm.Meta.BackboneSHA256)
		missing := !configuredBundled && bo.Bytes == nil && errors.Is(err, os.ErrNotExist)
		switch {
		case missing && ok:
			return fmt.Errorf("model.backbone %s does not exist; the model was fitted on the bundled backbone %s: set model.backbone to %s (or leave it empty), or put the file back: %w", opts.Backbone.Path, fb.Name, fb.Name, err)
		case missing:
			return fmt.Errorf("model.backbone %s does not exist: put the backbone file the model was fitted on (sha256 %s) there, or set model.backbone to where it is: %w", opts.Backbone.Path, pm.Meta.BackboneSHA256, err)
		case !ok || recipe.Backbone != "":
			return err
		case configuredBundled:
			return fmt.Errorf("fitted on the bundled backbone %s, which is not installed on this machine (no %s): install it (make deps, or the package) or refit the model: %w", fb.Name, fb.File, err)
		}
		return fmt.Errorf("fitted on the bundled backbone %s, but model.backbone is %s: set model.backbone to %s (or leave it empty), or refit the model: %w", fb.Name, opts.Backbone.Path, fb.Name, err)
	}
	if !opts.describeOnly {
		if d.bb, err = backbone.Open(bo); err != nil {
			return fail(otherBundled(err))
		}
		if d.bb.SHA256() != pm.Meta.BackboneSHA256 {
			return fail(otherBundled(fmt.Errorf("fitted for backbone sha256 %s, but the backbone in use is %s: refit the model", pm.Meta.BackboneSHA256, d.bb.SHA256())))
		}
	}
	d.opts.Backbone = bo
	if pre.Standardize {
		g := pre.StandardizeMaxGain
		if g == 0 {
			g = backbone.LegacyMaxGain
		}
		if !(g >= 1 && g <= maxStandardizeGain) {
			return fail(fmt.Errorf("preprocessing metadata: standardize_max_gain %g, want 1 to %g", pre.StandardizeMaxGain, float64(maxStandardizeGain)))
		}
		d.std = &backbone.Standardizer{MaxGain: g}
	} else if pre.StandardizeMaxGain != 0 {
		return fail(fmt.Errorf("preprocessing metadata: standardize_max_gain %g without standardize", pre.StandardizeMaxGain))
	}
	switch pre.TrainInput {
	case "", inputGray, inputColour:
		d.trainInput = pre.TrainInput
	default:
		return fail(fmt.Errorf("preprocessing metadata: train_input %q, want %s or %s", pre.TrainInput, inputGray, inputColour))
	}
	if a := pre.TrainAspect; a != nil {
		if len(a) != 2 || !(a[0] > 0) || !(a[1] >= a[0]) || math.IsInf(a[1], 0) {
			return fail(fmt.Errorf("preprocessing metadata: train_aspect %v, want [least, greatest] width/height, both above 0", a))
		}
		d.trainAspect = [2]float64{a[0], a[1]}
	}
	d.tiles = tiling{n: pre.Tiles, axis: pre.TileAxis}
	views := d.tiles.views()
	shapes := pm.Meta.TapShapes // as the backbone gave them at the fit
	if d.bb != nil {
		shapes = tapShapes(d.bb)
	}
	patch, err := newScale(shapes, pm.Meta.Pool, 0, 0, pm.Channels, 1, views, 0, 0)
	if err != nil {
		return fail(err)
	}
	d.scales = []*scale{patch}
	if err := patch.setState(&pm.State, opts.scorer()); err != nil {
		return fail(fmt.Errorf("grid %dx%d d=%d in the file, but the backbone and pool %d give %d views of %dx%d: %w",
			pm.State.GridH, pm.State.GridW, pm.State.D, pm.Meta.Pool, views, patch.emb.GridH(), patch.emb.GridW(), err))
	}
	zm, okm := pm.Tensors[tensorDistMean]
	zs, oks := pm.Tensors[tensorDistInvStd]
	if okm != oks || (okm && (len(zm.Data) != pm.State.Positions() || len(zs.Data) != pm.State.Positions())) {
		return fail(fmt.Errorf("tensors %s and %s must both hold one value per grid position (%d)", tensorDistMean, tensorDistInvStd, pm.State.Positions()))
	}
	if okm {
		patch.zMean, patch.zInvStd = zm.Data, zs.Data
	}
	d.zscore = okm
	recipe.ZScore = okm
	for k := 1; ; k++ {
		s, err := loadScale(pm, scalePrefix(k), shapes, views, patch, opts.scorer())
		if err != nil {
			return fail(err)
		}
		if s == nil {
			break
		}
		if k >= maxScales {
			return fail(fmt.Errorf("more than %d scales", maxScales))
		}
		if !okm {
			return fail(fmt.Errorf("%s scale without the position z-score tensors %s and %s", strings.TrimSuffix(scalePrefix(k), "_"), tensorDistMean, tensorDistInvStd))
		}
		d.scales = append(d.scales, s)
		if k == 1 {
			recipe.ContextPool, recipe.ContextWeight = s.emb.Pool(), float64(s.weight)
		}
	}
	d.bindBuffers()
	for _, s := range d.scales {
		if s.scorer.Half() {
			// The scorer holds its own half-precision copy; the float32
			// pages read to make it need not stay resident.
			root.DontNeed(s.state.InvCov)
		}
	}
	// The file's own recipe, when it has one, names what was fitted;
	// files from before recipes get one from the above.
	if js, ok := pm.Meta.Extra[metaRecipe]; ok {
		var r Recipe
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			return fail(fmt.Errorf("metadata %s: %w", metaRecipe, err))
		}
		recipe.Backbone = r.Backbone
	}
	shape := viewShape{} // an aligner that only describes warps nothing
	if d.bb != nil {
		shape = d.viewShape()
	}
	if d.al, err = loadAligner(pm, opts.Align, shape); err != nil {
		return fail(err)
	}
	if d.al != nil {
		recipe.Align = d.al.ref.Mode()
		d.al.arm()
	}
	if want := opts.Align.Mode; (opts.Recipe == "" || opts.Recipe == RecipeFixed || opts.Recipe == RecipeAuto) && want != "" && want != align.Off && want != recipe.Align && !opts.describeOnly {
		opts.Logger.Warn("model file's registration differs from the configuration; using the model's (refit to change it)",
			"model", path, "model_align", string(recipe.Align), "configured", string(want))
	}
	d.recipe = recipe
	d.opts.Epsilon, d.opts.Sigma, d.opts.Seed = pm.Meta.Eps, pre.Sigma, pm.Meta.Seed
	d.describe(pm.Meta.Images)
	d.info.Backbone = bo.Path
	if d.bb == nil {
		// Described from the file alone: the backbone it names.
		d.info.BackboneSHA256 = pm.Meta.BackboneSHA256
		d.info.Backbone = pre.Path
		if b, ok := backbone.BundleBySHA256(pm.Meta.BackboneSHA256); ok {
			d.info.Backbone = b.Name
		}
	}
	d.info.Fitted = pm.Meta.FitDate.UTC().Format(time.RFC3339)
	d.info.RecipeChoice = pm.Meta.Extra[metaRecipeChoice]
	if f, ok := pm.Meta.Extra[metaRecipeFigures]; ok {
		var rf RecipeFigures
		if err := json.Unmarshal([]byte(f), &rf); err != nil {
			return fail(fmt.Errorf("metadata %s: %w", metaRecipeFigures, err))
		}
		d.info.RecipeFigures = &rf
	}
	if f, ok := pm.Meta.Extra[metaLineNoise]; ok {
		ln, err := parseLineNoise([]byte(f))
		if err != nil {
			return fail(fmt.Errorf("metadata %w", err)) // "metadata line_noise: …"
		}
		d.info.LineNoise = ln
	}
	d.info.HeldOut, _ = strconv.Atoi(pm.Meta.Extra["held_out"])
	d.info.ThresholdImages, _ = strconv.Atoi(pm.Meta.Extra[metaThresholdImages])
	if _, ok := pm.Meta.Extra[metaThresholdImages]; !ok {
		d.info.ThresholdImages = d.info.HeldOut // chosen from the held-out images then
	}
	if v, ok := pm.Meta.Extra[metaFineThreshold]; ok {
		ft, err := strconv.ParseFloat(v, 64)
		if err != nil || !(ft > 0) || math.IsInf(ft, 0) || len(d.scales) < 2 {
			return fail(fmt.Errorf("metadata %s %q: want a finite number above 0, with a context scale", metaFineThreshold, v))
		}
		d.fineMap, d.fineTh, d.recipe.FineMap = true, ft, true
		d.info.Recipe = d.recipe.Name()
	}
	d.th = padim.Thresholds{Image: pm.Meta.ImageThreshold, Pixel: pm.Meta.PixelThreshold}
	d.info.ImageThreshold, d.info.PixelThreshold = pm.Meta.ImageThreshold, pm.Meta.PixelThreshold
	d.info.ID = pm.Meta.Extra["inspectd_id"]
	if d.info.ID == "" {
		d.info.ID = d.id()
	}
	// padim.Load refused, from the header, a file over the budget; this
	// holds to it for the scales as built (the same sum as StateBytes).
	if err := padim.CheckBudget(d.scaleStates(""), 0, opts.MemoryBudget); err != nil {
		return fail(err)
	}
	return d, nil
}

// scaleStates lists the detector's scales in use, each one's share of
// Info.StateBytes, as padim.Load's refusal of a model file over the
// memory budget names them (names after namePrefix).
func (d *Detector) scaleStates(namePrefix string) []padim.ScaleState {
	var out []padim.ScaleState
	for k, s := range d.scales {
		if k < len(d.weights) && d.weights[k] == 0 {
			continue
		}
		name := "patch"
		if k > 0 {
			name = strings.TrimSuffix(scalePrefix(k), "_")
		}
		out = append(out, padim.ScaleState{Name: namePrefix + name, GridH: s.views * s.emb.GridH(), GridW: s.emb.GridW(), D: s.emb.D(), Bytes: s.bytes()})
	}
	return out
}

// memberPrefix names member k of an ensemble (0: the file's main model)
// in a refusal, as padim.Load does.
func memberPrefix(k int) string {
	if k == 0 {
		return "main model "
	}
	return fmt.Sprintf("member %d ", k)
}

// CheckStateBudget refuses, as Load would and in its words, the model file
// at path (pm: padim.Load's reading of it, which refuses from the header
// a model whose scales and members together are over its MaxStateBytes)
// whose scoring state of all scales, and of all ensemble members, exceeds
// budget (0: no bound). The sizes come from the tensor shapes the header
// gives: no backbone is opened and no scorer built, so that a dry run can
// tell what loading the file would refuse. A file that Load would refuse
// for another reason first (a scale's metadata, a member's recipe) is not
// judged here: nil.
func CheckStateBudget(path string, pm *padim.Model, budget int64) error {
	if budget <= 0 {
		return nil
	}
	var scales []padim.ScaleState
	if _, ensemble := pm.Meta.Extra[metaEnsemble]; !ensemble && len(pm.Members) == 0 {
		scales = fileScales(pm, "")
	} else {
		for k, mm := range append([]*padim.Model{pm}, pm.Members...) {
			scales = append(scales, fileScales(mm, memberPrefix(k))...)
		}
	}
	if err := padim.CheckBudget(scales, len(pm.Members), budget); err != nil {
		return fmt.Errorf("load model %s: %w", path, err)
	}
	return nil
}

// fileScales lists the scales of one model of a file (the main one or a
// member) with their scoring state as Info.StateBytes counts it once
// loaded: its patch scale and each further scale, from their mean
// tensors' shapes (views × grid height, grid width, d).
func fileScales(pm *padim.Model, namePrefix string) []padim.ScaleState {
	s := pm.State
	out := []padim.ScaleState{{Name: namePrefix + "patch", GridH: s.GridH, GridW: s.GridW, D: s.D, Bytes: padim.StateBytes(s.Positions(), s.D)}}
	for k := 1; k < maxScales; k++ {
		prefix := scalePrefix(k)
		if _, ok := pm.Meta.Extra[prefix+suffixPool]; !ok {
			break
		}
		t, ok := pm.Tensors[prefix+suffixMean]
		if !ok || len(t.Shape) != 3 {
			break // refused by Load as a malformed scale
		}
		out = append(out, padim.ScaleState{Name: namePrefix + strings.TrimSuffix(prefix, "_"), GridH: t.Shape[0], GridW: t.Shape[1], D: t.Shape[2],
			Bytes: padim.StateBytes(t.Shape[0]*t.Shape[1], t.Shape[2])})
	}
	return out
}

// loadScale restores further scale prefix of a model file for the taps,
// or returns nil when the file has none. Missing or mis-sized entries are
// errors naming them.
func loadScale(pm *padim.Model, prefix string, taps []padim.TapShape, views int, patch *scale, so padim.ScorerOptions) (*scale, error) {
	poolKey, chKey, wKey := prefix+suffixPool, prefix+suffixChannels, prefix+suffixWeight
	names := []string{prefix + suffixMean, prefix + suffixInvCov, prefix + tensorDistMean, prefix + tensorDistInvStd}
	v, ok := pm.Meta.Extra[poolKey]
	if !ok {
		for _, n := range names {
			if _, ok := pm.Tensors[n]; ok {
				return nil, fmt.Errorf("tensor %s present but metadata %s missing", n, poolKey)
			}
		}
		return nil, nil
	}
	pool, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("metadata %s %q: want an integer", poolKey, v)
	}
	if pool < 2 {
		return nil, fmt.Errorf("metadata %s %q: cells of %d positions, want at least 2", poolKey, v, pool)
	}
	list, ok := pm.Meta.Extra[chKey]
	if !ok || list == "" {
		return nil, fmt.Errorf("metadata %s missing (metadata %s is set)", chKey, poolKey)
	}
	var channels []int32
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("metadata %s: %q is not a channel index", chKey, f)
		}
		channels = append(channels, int32(n))
	}
	weight := 1.0 // files from before the weight summed the scales
	if w, ok := pm.Meta.Extra[wKey]; ok {
		if weight, err = strconv.ParseFloat(w, 64); err != nil || !(weight > 0 && weight <= maxContextWeight) {
			return nil, fmt.Errorf("metadata %s %q: want a number above 0 and at most %d", wKey, w, maxContextWeight)
		}
	}
	s, err := newScale(taps, pool, 0, 0, channels, weight, views, patch.emb.GridH(), patch.emb.GridW())
	if err != nil {
		return nil, fmt.Errorf("metadata %s/%s: %w", poolKey, chKey, err)
	}
	p, d := s.positions(), s.emb.D()
	get := func(name string, n int) ([]float32, error) {
		t, ok := pm.Tensors[name]
		if !ok {
			return nil, fmt.Errorf("tensor %s missing (metadata %s is set)", name, poolKey)
		}
		if len(t.Data) != n {
			return nil, fmt.Errorf("tensor %s has %d values, want %d for %d views of a %dx%d grid at d=%d", name, len(t.Data), n, views, s.emb.GridH(), s.emb.GridW(), d)
		}
		return t.Data, nil
	}
	st := &padim.State{GridH: views * s.emb.GridH(), GridW: s.emb.GridW(), D: d}
	if st.Mean, err = get(names[0], p*d); err != nil {
		return nil, err
	}
	if st.InvCov, err = get(names[1], p*d*(d+1)/2); err != nil {
		return nil, err
	}
	if s.zMean, err = get(names[2], p); err != nil {
		return nil, err
	}
	if s.zInvStd, err = get(names[3], p); err != nil {
		return nil, err
	}
	if err := s.setState(st, so); err != nil {
		return nil, fmt.Errorf("%s: %w", strings.TrimSuffix(prefix, "_"), err)
	}
	return s, nil
}
