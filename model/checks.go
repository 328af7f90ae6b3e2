package model

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// ErrNonFinite is wrapped by Inspect's error when a patch distance or the
// image score is NaN or infinite. Such a frame was not judged: it must be
// reported as an error, never as ok (a NaN compares below every threshold).
var ErrNonFinite = errors.New("non-finite score")

// ErrTooFewImages is wrapped by Fit's error when the image source holds
// fewer normal images than the options need (see Options.MinImages).
var ErrTooFewImages = errors.New("too few normal images")

// minFitImages is the fewest images the Gaussian fit takes: the mean and
// covariance of fewer say nothing about a surface.
const minFitImages = 3

// holdoutEvery is splitHoldout's k: every k-th image is held out at
// fraction frac (> 0), bounded so that a tiny fraction cannot overflow.
func holdoutEvery(frac float64) int {
	return max(2, int(math.Round(min(1/frac, 1e12))))
}

// holdoutCounts is how many of n images splitHoldout keeps in the fit and
// holds out, without listing them.
func holdoutCounts(n int, frac float64) (fit, hold int) {
	if frac > 0 && n >= 4 {
		hold = n / holdoutEvery(frac)
	}
	return n - hold, hold
}

// minImages is the fewest images that leave at least minFit in the fit and
// minHold held out at hold-out fraction frac (> 0 when minHold is).
func minImages(frac float64, minFit, minHold int) int {
	n := minFit
	if minHold > 0 {
		n = max(n, 4, minHold*holdoutEvery(frac))
	}
	// From there each image adds to the fit or the hold-out: a few steps.
	for {
		if f, h := holdoutCounts(n, frac); f >= minFit && h >= minHold {
			return n
		}
		n++
	}
}

// MinImages returns the fewest normal images Fit accepts with these
// options: with an explicit threshold every image goes into the Gaussian
// fit, which needs 3; otherwise every k-th image (k = 1/Holdout) is held out
// to choose the threshold, and at least one must be, beside the 3 fitted.
func (o Options) MinImages() int {
	o.defaults()
	if o.Threshold.Explicit > 0 {
		return minFitImages
	}
	return minImages(o.Holdout, minFitImages, 1)
}

// checkImageCount refuses n images when they are too few for the options
// (defaults applied), with a message that names the minimum and the ways
// out. Fit calls it before it opens the backbone.
func (o *Options) checkImageCount(n int) error {
	need := o.MinImages()
	if n >= need {
		return nil
	}
	if o.Threshold.Explicit > 0 {
		return fmt.Errorf("fit: %w: %d given; the Gaussian fit needs at least %d (model.threshold.value is set, so none are held out): add images of good parts",
			ErrTooFewImages, n, need)
	}
	fit, hold := holdoutCounts(need, o.Holdout)
	k := holdoutEvery(o.Holdout)
	var b strings.Builder
	fmt.Fprintf(&b, "%d given; the threshold is chosen on held-out images, and with model.threshold.holdout %g "+
		"(every %d%s image held out) that takes at least %d (%d fitted, %d held out)",
		n, o.Holdout, k, ordinalSuffix(k), need, fit, hold)
	if o.PositionZScore {
		fmt.Fprintf(&b, "; the per-position z-score and the context scale need %d held out (%d images) and are left out below that",
			minZScoreHeldOut, minImages(o.Holdout, minFitImages, minZScoreHeldOut))
	}
	fmt.Fprintf(&b, ". Add images of good parts, set model.threshold.value to a fixed threshold (then %d suffice)", minFitImages)
	if o.Holdout < 0.5 {
		fmt.Fprintf(&b, ", or raise model.threshold.holdout (at 0.5, %d suffice)", minImages(0.5, minFitImages, 1))
	}
	return fmt.Errorf("fit: %w: %s", ErrTooFewImages, b.String())
}

// ordinalSuffix is the English suffix of an ordinal number: st, nd, rd, th.
func ordinalSuffix(n int) string {
	if n%100 >= 11 && n%100 <= 13 {
		return "th"
	}
	switch n % 10 {
	case 1:
		return "st"
	case 2:
		return "nd"
	case 3:
		return "rd"
	}
	return "th"
}
