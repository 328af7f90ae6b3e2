package model

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

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
	Standardize bool   `json:"standardize,omitempty"`
	Path        string `json:"backbone_path"`
}

// Tensors of the per-position distance statistics (Options.PositionZScore).
const (
	tensorDistMean   = "dist_mean"
	tensorDistInvStd = "dist_inv_std"
)

// Save writes the detector to one safetensors file, atomically.
func (d *Detector) Save(path string) error {
	p := d.opts.Backbone.Preprocess
	pre, err := json.Marshal(preprocessing{Resize: string(p.Resize), Mean: p.Mean, Std: p.Std, Sigma: d.info.Sigma,
		Standardize: d.info.Standardize, Path: d.info.Backbone})
	if err != nil {
		return err
	}
	fitted, _ := time.Parse(time.RFC3339, d.info.Fitted)
	shapes := tapShapes(d.bb)
	m := &padim.Model{
		State:    *d.state,
		Channels: d.emb.Channels(),
		Meta: padim.Metadata{Pool: d.info.Pool, Eps: d.info.Epsilon, ImageThreshold: d.th.Image, PixelThreshold: d.th.Pixel,
			BackboneSHA256: d.info.BackboneSHA256, Taps: d.info.Taps, TapShapes: shapes, Preprocessing: string(pre),
			FitDate: fitted, Images: d.info.Images, Seed: d.opts.Seed,
			Extra: map[string]string{"inspectd_id": d.info.ID, "held_out": strconv.Itoa(d.info.HeldOut)}},
	}
	if d.zMean != nil {
		p := []int{len(d.zMean)}
		m.Tensors = map[string]padim.Tensor{tensorDistMean: {Shape: p, Data: d.zMean}, tensorDistInvStd: {Shape: p, Data: d.zInvStd}}
	}
	if d.ctx != nil {
		d.ctx.save(m)
	}
	if d.al != nil {
		if err := d.al.save(m); err != nil {
			return fmt.Errorf("save model %s: %w", path, err)
		}
	}
	if err := padim.Save(path, m); err != nil {
		return fmt.Errorf("save model %s: %w", path, err)
	}
	return nil
}

// Load opens a model file for the configured backbone. A model fitted for
// another backbone or taps, a corrupt file, or one whose scoring state
// exceeds the memory budget is refused with an error saying which.
func Load(path string, opts Options) (*Detector, error) {
	opts.defaults()
	bb, err := backbone.Open(opts.Backbone)
	if err != nil {
		return nil, err
	}
	var taps []string
	for _, t := range bb.Taps() {
		taps = append(taps, t.Name)
	}
	// Taps are checked only when configured: automatic taps resolve to
	// whatever the fitted backbone's were.
	expect := padim.Expect{BackboneSHA256: bb.SHA256()}
	if len(opts.Backbone.Taps) > 0 {
		expect.Taps = taps
	}
	pm, err := padim.Load(path, padim.LoadOptions{Expect: expect, MaxStateBytes: opts.MemoryBudget})
	if err != nil {
		bb.Close()
		return nil, err
	}
	d := &Detector{opts: opts, closer: pm.Close}
	fail := func(err error) (*Detector, error) {
		bb.Close()
		d.bb = nil
		d.Close()
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	for _, th := range []struct {
		key string
		v   float64
	}{{"image_threshold", pm.Meta.ImageThreshold}, {"pixel_threshold", pm.Meta.PixelThreshold}} {
		// The file format reads 0 as unset; a detector compares every frame
		// against both, so neither may be.
		if !(th.v > 0) || math.IsInf(th.v, 0) {
			return fail(fmt.Errorf("metadata %s=%g, want a positive finite threshold: refit the model", th.key, th.v))
		}
	}
	var pre preprocessing
	if err := json.Unmarshal([]byte(pm.Meta.Preprocessing), &pre); err != nil {
		return fail(fmt.Errorf("preprocessing metadata: %w", err))
	}
	// The fit's taps and preprocessing win over the configuration's.
	want := opts.Backbone
	want.Taps = pm.Meta.Taps
	want.Preprocess = backbone.Preprocess{Resize: backbone.ResizeMode(pre.Resize), Mean: pre.Mean, Std: pre.Std}
	if !sameStrings(taps, pm.Meta.Taps) || want.Preprocess != opts.Backbone.Preprocess {
		if want.Preprocess != opts.Backbone.Preprocess {
			opts.Logger.Warn("model file's preprocessing differs from the configuration; using the model's", "model", path, "resize", pre.Resize)
		}
		bb.Close()
		if bb, err = backbone.Open(want); err != nil {
			return fail(err)
		}
	}
	d.bb = bb
	d.opts.Backbone = want
	d.opts.Standardize = pre.Standardize
	if pre.Standardize {
		d.std = &backbone.Standardizer{}
	}
	shapes := tapShapes(bb)
	d.emb, err = padim.NewEmbedder(padim.EmbedderOptions{Taps: shapes, Channels: pm.Channels, Pool: pm.Meta.Pool})
	if err != nil {
		return fail(err)
	}
	if d.emb.GridH() != pm.State.GridH || d.emb.GridW() != pm.State.GridW {
		return fail(fmt.Errorf("grid %dx%d in the file, but the backbone gives %dx%d", pm.State.GridH, pm.State.GridW, d.emb.GridH(), d.emb.GridW()))
	}
	d.state = &pm.State
	if d.scorer, err = padim.NewScorer(d.state, opts.Workers); err != nil {
		return fail(err)
	}
	d.bindBuffers()
	d.th = padim.Thresholds{Image: pm.Meta.ImageThreshold, Pixel: pm.Meta.PixelThreshold}
	zm, okm := pm.Tensors[tensorDistMean]
	zs, oks := pm.Tensors[tensorDistInvStd]
	if okm != oks || (okm && (len(zm.Data) != pm.State.Positions() || len(zs.Data) != pm.State.Positions())) {
		return fail(fmt.Errorf("tensors %s and %s must both hold one value per grid position (%d)", tensorDistMean, tensorDistInvStd, pm.State.Positions()))
	}
	if okm {
		d.zMean, d.zInvStd = zm.Data, zs.Data
	}
	if d.ctx, err = loadContextScale(pm, shapes, opts.Workers); err != nil {
		return fail(err)
	}
	if d.ctx != nil && !okm {
		return fail(fmt.Errorf("context scale without the position z-score tensors %s and %s", tensorDistMean, tensorDistInvStd))
	}
	inW, inH := bb.InputSize()
	if d.al, err = loadAligner(pm, opts.Align, max(inW, inH)); err != nil {
		return fail(err)
	}
	fileAlign := align.Off
	if d.al != nil {
		fileAlign = d.al.ref.Mode()
	}
	if want := opts.Align.Mode; want != "" && want != fileAlign {
		opts.Logger.Warn("model file's registration differs from the configuration; using the model's (refit to change it)",
			"model", path, "model_align", fileAlign, "configured", want)
	}
	held, _ := strconv.Atoi(pm.Meta.Extra["held_out"])
	d.info = Info{Backbone: opts.Backbone.Path, BackboneSHA256: pm.Meta.BackboneSHA256, Taps: pm.Meta.Taps, Resize: pre.Resize,
		GridH: pm.State.GridH, GridW: pm.State.GridW, Pool: pm.Meta.Pool, Features: pm.State.D, Epsilon: pm.Meta.Eps,
		Sigma: pre.Sigma, Standardize: pre.Standardize, PositionZScore: okm, ImageThreshold: pm.Meta.ImageThreshold, PixelThreshold: pm.Meta.PixelThreshold,
		Images: pm.Meta.Images, HeldOut: held, Fitted: pm.Meta.FitDate.UTC().Format(time.RFC3339),
		StateBytes: padim.StateBytes(pm.State.Positions(), pm.State.D), ID: pm.Meta.Extra["inspectd_id"]}
	if d.ctx != nil {
		d.ctx.describe(&d.info)
		if opts.MemoryBudget > 0 && d.info.StateBytes > opts.MemoryBudget {
			return fail(fmt.Errorf("scoring state with the context scale is %d bytes, over the memory budget of %d bytes", d.info.StateBytes, opts.MemoryBudget))
		}
	}
	d.info.Align = string(fileAlign)
	if d.al != nil {
		d.info.AlignMinConfidence = d.al.learned
	}
	if d.info.ID == "" {
		d.info.ID = d.id()
	}
	return d, nil
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
