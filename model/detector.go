// Package model composes inspectd's anomaly detector the way anomalib's
// PaDiM does: a feature extractor (model/backbone: a TFLite CNN with taps),
// a multivariate Gaussian per patch (model/padim: embedding, streaming fit,
// Mahalanobis scoring) and an anomaly-map generator (model/padim: upsample,
// blur, thresholds). It fits detectors from normal images, saves and loads
// them, and inspects frames.
package model

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"time"

	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/padim"
)

// Options configure fitting and loading a detector.
type Options struct {
	// Backbone is the feature extractor's configuration.
	Backbone backbone.Options
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
	// Threshold picks the decision threshold from held-out normal images.
	Threshold padim.ThresholdOptions
	// Holdout is the fraction of normal images kept out of the Gaussian fit
	// to choose the threshold (0: 10%).
	Holdout float64
	// Standardize rescales each frame's brightness and contrast to one
	// level (backbone.Standardizer) before the backbone: parts whose overall
	// brightness varies from part to part are then judged by their texture
	// and local defects, not their exposure. Recorded in the model file.
	Standardize bool
	// DefaultTaps are the taps used when Backbone.Taps is empty (the daemon
	// names the bundled backbone's tuned taps here); empty leaves the choice
	// to the backbone (graph.AutoTaps). Load does not check them: a model
	// file's own taps always win.
	DefaultTaps []string
	// PositionZScore standardizes each grid position's distance by its
	// mean and spread over the held-out normal images: positions that vary
	// more on good parts (edges, borders of letterboxed images) then need
	// a larger deviation to light up, which evens out the map.
	PositionZScore bool
	// ContextPool adds a context scale (see contextScale): a second
	// Gaussian per cell of ContextPool×ContextPool finest-tap positions,
	// whose standardized distances are added to the fine ones. It needs the
	// position z-score (PositionZScore with enough held-out images); 0 or 1
	// leaves it out.
	ContextPool int
	// ContextFeatures is the context scale's largest d (0: 300); the
	// memory budget left by the patch scale may make it smaller.
	ContextFeatures int
	// ContextWeight multiplies the context scale's standardized distances
	// before they are added to the patch scale's (0: DefaultContextWeight).
	// Above 1 favours defects that cover a region over small ones.
	ContextWeight float64
	// Align registers every frame to a reference view of a good part
	// before the backbone (model/align); off by default.
	Align AlignOptions
	// Workers for scoring and fitting (0: all cores).
	Workers int
	Logger  *slog.Logger
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
	if o.Holdout <= 0 || o.Holdout >= 1 {
		o.Holdout = 0.1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Backbone.Logger == nil {
		o.Backbone.Logger = o.Logger
	}
}

// Timing is the latency of each stage of one inspection. Align is the
// registration and the warp into the reference view (0 without
// registration); Map includes warping the map back to the frame.
type Timing struct {
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
	Timing
}

// Detector is a fitted PaDiM model bound to its backbone. Inspect is not
// safe for concurrent use; one pipeline goroutine owns a Detector.
type Detector struct {
	opts   Options
	bb     *backbone.Backbone
	std    *backbone.Standardizer // nil: frames go to the backbone as they are
	emb    *padim.Embedder
	state  *padim.State
	scorer *padim.Scorer
	th     padim.Thresholds
	info   Info
	closer func() error

	fmaps []padim.FeatureMap
	vec   []float32
	dist  []float32
	// zMean and zInvStd standardize distances per position
	// (Options.PositionZScore); nil when off.
	zMean, zInvStd []float32
	// ctx is the context scale; nil when the model has none.
	ctx *contextScale
	// al registers frames to the reference view; nil without registration.
	al     *aligner
	maps   *padim.AnomalyMap
	mapKey mapKey
	// rmap is the rendered map (on the aligned view with registration).
	rmap []float32
	res  Inspection
}

type mapKey struct {
	w, h int
	r    backbone.Region
}

// Info describes a fitted detector: what it was fitted with and how big it is.
type Info struct {
	Backbone       string   `json:"backbone"`
	BackboneSHA256 string   `json:"backbone_sha256"`
	Taps           []string `json:"taps"`
	Resize         string   `json:"resize"`
	GridH          int      `json:"grid_h"`
	GridW          int      `json:"grid_w"`
	Pool           int      `json:"pool"`
	Features       int      `json:"features"`
	Epsilon        float64  `json:"epsilon"`
	Sigma          float64  `json:"sigma"`
	PositionZScore bool     `json:"position_zscore"`
	// ContextPool is the context scale's cell size in finest-tap
	// positions (0: none), on a ContextGridH×ContextGridW grid with
	// ContextFeatures features; StateBytes includes its state.
	ContextPool     int `json:"context_pool"`
	ContextGridH    int `json:"context_grid_h,omitempty"`
	ContextGridW    int `json:"context_grid_w,omitempty"`
	ContextFeatures int `json:"context_features,omitempty"`
	// ContextWeight multiplies the context scale's standardized distances.
	ContextWeight float64 `json:"context_weight,omitempty"`
	Standardize   bool    `json:"standardize"`
	// Align is the registration mode (off, translate, rigid) and
	// AlignMinConfidence the confidence floor learned at fit time.
	Align              string  `json:"align"`
	AlignMinConfidence float64 `json:"align_min_confidence,omitempty"`
	ImageThreshold     float64 `json:"image_threshold"`
	PixelThreshold     float64 `json:"pixel_threshold"`
	Images             int     `json:"images"`
	HeldOut            int     `json:"held_out"`
	Fitted             string  `json:"fitted"`
	StateBytes         int64   `json:"state_bytes"`
	ID                 string  `json:"id"`
}

// Info returns the detector's description.
func (d *Detector) Info() Info { return d.info }

// Backbone is the detector's feature extractor.
func (d *Detector) Backbone() *backbone.Backbone { return d.bb }

func tapShapes(bb *backbone.Backbone) []padim.TapShape {
	var s []padim.TapShape
	for _, t := range bb.Taps() {
		s = append(s, padim.TapShape{H: t.H, W: t.W, C: t.C})
	}
	return s
}

func (d *Detector) bindBuffers() {
	d.fmaps = make([]padim.FeatureMap, len(d.bb.Taps()))
	d.vec = make([]float32, d.emb.Len())
	d.dist = make([]float32, d.emb.Positions())
}

// embed runs the backbone and the embedder on one image.
func (d *Detector) embed(img image.Image, t *Timing) (backbone.Region, error) {
	s := time.Now()
	if d.al != nil {
		var err error
		if img, err = d.al.apply(img); err != nil {
			return backbone.Region{}, err
		}
		if t != nil {
			t.Align = time.Since(s)
		}
		s = time.Now()
	}
	if d.std != nil {
		img = d.std.Apply(img)
	}
	reg, err := d.bb.SetInput(img)
	if err != nil {
		return reg, err
	}
	m := time.Now()
	if err := d.bb.Invoke(); err != nil {
		return reg, err
	}
	for i, f := range d.bb.Features() {
		d.fmaps[i] = padim.FeatureMap{H: f.Tap.H, W: f.Tap.W, C: f.Tap.C, Data: f.Data}
	}
	if err := d.emb.Embed(d.vec, d.fmaps); err != nil {
		return reg, err
	}
	if t != nil {
		t.Preprocess, t.Backbone = m.Sub(s), time.Since(m)
	}
	return reg, nil
}

// Inspect scores one image: anomaly map at the image's size, image score,
// verdict and mask. It does not allocate in steady state (same frame size).
func (d *Detector) Inspect(img image.Image) (*Inspection, error) {
	if d.state == nil {
		return nil, errors.New("inspect: detector is not fitted")
	}
	r := &d.res
	reg, err := d.embed(img, &r.Timing)
	if d.al != nil {
		r.Registration = d.al.registration()
	}
	if err != nil {
		return nil, err
	}
	s := time.Now()
	if err := d.scorer.Score(d.dist, d.vec); err != nil {
		return nil, err
	}
	d.standardizeDistances()
	if d.ctx != nil {
		if err := d.ctx.score(d.fmaps); err != nil {
			return nil, err
		}
		if err := d.ctx.addTo(d.dist, d.ctx.dist); err != nil {
			return nil, err
		}
	}
	// A NaN distance would vanish in the map's maximum (NaN compares
	// false) and the frame pass as ok: one pass over the P distances.
	if i := padim.FirstNonFinite(d.dist); i >= 0 {
		return nil, fmt.Errorf("inspect: %w: distance %v at grid position %d of %d", ErrNonFinite, d.dist[i], i, len(d.dist))
	}
	m := time.Now()
	r.Timing.PaDiM = m.Sub(s)
	b := img.Bounds()
	w, h := d.mapSize(b)
	score, err := d.render(w, h, reg)
	if err != nil {
		return nil, err
	}
	if math.IsNaN(float64(score)) || math.IsInf(float64(score), 0) {
		return nil, fmt.Errorf("inspect: %w: image score %v", ErrNonFinite, score)
	}
	r.Map, r.W, r.H = d.rmap, w, h
	if d.al != nil {
		// The map and mask go out in the frame's coordinates, and the score
		// is their maximum (as the threshold was chosen).
		if r.Map, score, err = d.al.mapBack(d.al.back, d.rmap, d.al.lastPose()); err != nil {
			return nil, err
		}
		d.al.back = r.Map
		r.W, r.H = b.Dx(), b.Dy()
	}
	if err := d.th.Inspect(&r.Result, r.Map, r.W, r.H, score); err != nil {
		return nil, err
	}
	r.Timing.Map = time.Since(m)
	return r, nil
}

// standardizeDistances applies the per-position z-score, when fitted.
func (d *Detector) standardizeDistances() {
	if d.zMean == nil {
		return
	}
	for i, v := range d.dist {
		d.dist[i] = (v - d.zMean[i]) * d.zInvStd[i]
	}
}

// mapSize is the size the map of an image of bounds b is drawn at: the
// image's, or with registration its aligned view's.
func (d *Detector) mapSize(b image.Rectangle) (int, int) {
	if d.al != nil {
		return d.al.viewSize()
	}
	return b.Dx(), b.Dy()
}

// render draws the anomaly map of d.dist at w×h into d.rmap and returns
// its maximum.
func (d *Detector) render(w, h int, reg backbone.Region) (float32, error) {
	if err := d.ensureMap(w, h, reg); err != nil {
		return 0, err
	}
	return d.maps.Render(d.rmap, d.dist)
}

func (d *Detector) ensureMap(w, h int, reg backbone.Region) error {
	k := mapKey{w, h, reg}
	if d.maps != nil && d.mapKey == k {
		return nil
	}
	// The grid covers the network input; the image occupies reg of it.
	m, err := padim.NewAnomalyMap(padim.AnomalyMapOptions{GridW: d.state.GridW, GridH: d.state.GridH,
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
	if d.scorer != nil {
		d.scorer.Close()
	}
	if d.ctx != nil {
		d.ctx.close()
	}
	if d.bb != nil {
		d.bb.Close()
	}
	if d.closer != nil {
		return d.closer()
	}
	return nil
}

// ImageSource hands out the images to fit on, by index; Fit decodes ahead
// of the backbone in a second goroutine.
type ImageSource interface {
	Len() int
	Image(i int) (image.Image, error)
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

// SetThresholds replaces the image and pixel thresholds (scores above them
// are anomalous; both must be positive and finite), for an operator who
// tunes a line's false-alarm rate without refitting. Save writes them.
// Like Inspect it must not run concurrently with another call.
func (d *Detector) SetThresholds(image, pixel float64) error {
	for _, v := range []struct {
		name string
		x    float64
	}{{"image", image}, {"pixel", pixel}} {
		if !(v.x > 0) || math.IsInf(v.x, 0) {
			return fmt.Errorf("%s threshold %v: want a positive finite number", v.name, v.x)
		}
	}
	d.th = padim.Thresholds{Image: image, Pixel: pixel}
	d.info.ImageThreshold, d.info.PixelThreshold = image, pixel
	return nil
}
