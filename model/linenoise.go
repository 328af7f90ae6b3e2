package model

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/inspectd/inspectd/model/noise"
)

// LineNoise is the good images' sensor noise against their contrast
// (noise.Measure, each the median over the images measured), in levels of
// 255. A fit measures it on up to LineNoiseImages training images: Images
// is how many it measured (0: none, nothing measured).
type LineNoise struct {
	Images   int     `json:"images"`
	Noise    float64 `json:"noise"`
	Contrast float64 `json:"contrast"`
}

// LineNoiseImages is how many training images, spread over them, a fit
// measures the line's noise on, at most; a model file's line_noise
// claiming more is refused.
const LineNoiseImages = 9

// LowSignalToNoise is the ratio of contrast to noise under which a line
// is noisy (LineNoise.Low): faint defects may drown in its noise, and the
// recipe search's synthetic defects, which stand far above any sensor's
// noise, cannot tell how a recipe fares on them. Measured (README, "A
// dark line"): the shared sets' ratios are 36–128 (magnetic tile's grain
// the lowest); darkened noisy copies of them 1.5–4.5 (eval --dim 19) and
// 4.9–10.9 (the hand-made copies, JPEG-compressed). On every copy of screw
// (ratios 1.9, 4.9 and 7.2) the search chose a recipe 0.01–0.04 under
// plain PaDiM's image AUROC; on the transistor copies (4.5 and 10.9) it
// held. Darkened without noise, screw's choice held too (the synthetic
// ranking agreed with the real one): the noise, not the darkness, is what
// the search cannot see. The bound sits above every copy where the
// search failed and far under every clean set.
const LowSignalToNoise = 8

// MarshalJSON writes the figures with what they mean: the ratio (left out
// for a noiseless line, whose ratio is infinite) and whether the line is
// noisy, so that a reader of a model file, eval's JSON, a refit's reply or
// the info topic need not know the bound.
func (n LineNoise) MarshalJSON() ([]byte, error) {
	type figures LineNoise // without this method
	n = n.unsigned()
	out := struct {
		figures
		Ratio *float64 `json:"ratio,omitempty"`
		Noisy bool     `json:"noisy"`
	}{figures: figures(n), Noisy: n.Low()}
	if r := n.Ratio(); !math.IsInf(r, 0) {
		out.Ratio = &r
	}
	return json.Marshal(out)
}

// Ratio is Contrast over Noise (+Inf for noiseless frames, 0 when
// nothing was measured).
func (n LineNoise) Ratio() float64 {
	switch {
	case n.Images == 0:
		return 0
	case n.noiseless():
		return math.Inf(1)
	}
	return n.Contrast / n.Noise
}

// noiseless says whether the noise is none: under what a measurement
// resolves (noise.Resolution), as a file's figures may be (a noise of
// 1e-320 gave a ratio of +Inf, printed as such).
func (n LineNoise) noiseless() bool { return n.Noise < noise.Resolution }

// Low says whether the line is noisy: measured, and its Ratio under
// LowSignalToNoise.
func (n LineNoise) Low() bool { return n.Images > 0 && n.Ratio() < LowSignalToNoise }

// String gives the figures in words. A noise of 0 is said as such, with
// no ratio: it is what frames whose flattest areas are perfectly flat
// without being clipped measure (rendered, or heavily denoised), and an
// infinite ratio printed as "+Inf" read as a fault.
func (n LineNoise) String() string {
	n = n.unsigned()
	switch {
	case n.Images == 0:
		return "not measured"
	case n.noiseless():
		return fmt.Sprintf("no sensor noise (its flattest areas perfectly flat, as rendered or heavily denoised frames are) against a contrast of %.1f over %d good images",
			n.Contrast, n.Images)
	}
	return fmt.Sprintf("sensor noise %.2f levels of 255 against a contrast of %.1f (ratio %.1f) over %d good images",
		n.Noise, n.Contrast, n.Ratio(), n.Images)
}

// unsigned is n with a noise or contrast of negative zero made zero: a
// file may hold -0, which check lets through as no less than 0, and
// which printed "-0.0" (and a ratio of -0.0) in fit's, eval's and model
// info's words and "-0" in JSON.
func (n LineNoise) unsigned() LineNoise {
	if n.Noise == 0 {
		n.Noise = 0
	}
	if n.Contrast == 0 {
		n.Contrast = 0
	}
	return n
}

// measureLineNoise measures LineNoise on up to LineNoiseImages of src's
// images idx, spread over them. An image that cannot be read or is too
// small to measure is left out: the measurement only informs, and the fit
// has judged every image already.
func measureLineNoise(ctx context.Context, src ImageSource, idx []int) (LineNoise, error) {
	var ns, cs []float64
	for _, k := range spreadIndices(len(idx), min(len(idx), LineNoiseImages)) {
		if err := ctx.Err(); err != nil {
			return LineNoise{}, err
		}
		img, err := src.Image(idx[k])
		if err != nil {
			continue
		}
		lv, err := noise.Measure(img)
		if err != nil {
			continue
		}
		ns, cs = append(ns, lv.Noise), append(cs, lv.Contrast)
	}
	if len(ns) == 0 {
		return LineNoise{}, nil
	}
	return LineNoise{Images: len(ns), Noise: median(ns), Contrast: median(cs)}.unsigned(), nil
}

// median is the median of v (the mean of the middle two for even
// lengths); v is sorted in place.
func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// parseLineNoise is the one decoder of a model file's line_noise figures
// (JSON as MarshalJSON writes them; the ratio and noisy it adds are
// derived and ignored): a single model's metadata line_noise and the
// line_noise in an ensemble's metadata ensemble both read through it, so
// that both refuse the same figures. Every figure a measurement writes
// must be there (a JSON null is none of them) and pass check. Its errors
// name the key (line_noise) and the figure; the caller adds the file and,
// in an ensemble, the key the figures sit in.
func parseLineNoise(b []byte) (*LineNoise, error) {
	bad := func(err error) (*LineNoise, error) { return nil, fmt.Errorf("%s: %w", metaLineNoise, err) }
	// The keys as written, exactly (encoding/json matched "Images" to
	// images), and each figure in words where it is not a number (Go's
	// "cannot unmarshal number 9.5 into Go struct field" before). A
	// figure left out, or null, is not taken for a zero: a noise read as
	// 0 where none is written would call the line noiseless.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return bad(fmt.Errorf("want an object of figures {\"images\",\"noise\",\"contrast\"}: %w", err))
	}
	var v [3]float64
	for i, name := range [...]string{"images", "noise", "contrast"} {
		r, ok := raw[name]
		if !ok || string(r) == "null" {
			return bad(fmt.Errorf("no %s: want images, noise and contrast", name))
		}
		if err := json.Unmarshal(r, &v[i]); err != nil {
			return bad(fmt.Errorf("%s %s: want a number", name, r))
		}
	}
	if v[0] != math.Trunc(v[0]) || math.Abs(v[0]) > math.MaxInt32 {
		return bad(fmt.Errorf("images %s: want a whole number from 1 to %d", raw["images"], LineNoiseImages))
	}
	ln := LineNoise{Images: int(v[0]), Noise: v[1], Contrast: v[2]}.unsigned()
	if err := ln.check(); err != nil {
		return bad(err)
	}
	return &ln, nil
}

// check refuses figures no measurement gives: an image count outside 1
// to LineNoiseImages, or a noise or contrast that is negative, not finite
// or beyond 255 levels. The image count's bound is the most a fit
// measures (measureLineNoise takes at most LineNoiseImages, 9 since
// line_noise was first written), so a file claiming more was not written
// by a fit; should LineNoiseImages ever shrink, this bound must stay at
// the largest it has been, or older files would be refused.
func (n LineNoise) check() error {
	if n.Images < 1 || n.Images > LineNoiseImages {
		return fmt.Errorf("images %d: want 1 to %d (a fit measures at most %d)", n.Images, LineNoiseImages, LineNoiseImages)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"noise", n.Noise}, {"contrast", n.Contrast}} {
		if !(f.v >= 0 && f.v <= 255) {
			return fmt.Errorf("%s %v: want 0 to 255 levels", f.name, f.v)
		}
	}
	return nil
}
