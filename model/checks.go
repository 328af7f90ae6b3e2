package model

import (
	"errors"
	"fmt"

	"github.com/inspectd/inspectd/model/padim"
)

// ErrNonFinite is wrapped by Inspect's error when a patch distance or the
// image score is NaN or infinite. Such a frame was not judged: it must be
// reported as an error, never as ok (a NaN compares below every threshold).
var ErrNonFinite = errors.New("non-finite score")

// ErrTooFewImages is wrapped by Fit's error when the image source holds
// fewer normal images than the options need (see Options.MinImages).
var ErrTooFewImages = errors.New("too few normal images")

// MinFrameSide is the fewest pixels a frame may have along each side.
// Scaled up to the network's input, each pixel of a smaller frame spans
// more than three cells of the patch grid, so no defect the model could
// tell apart fits in it; a 1×1 frame is one uniform patch that scores as
// an ordinary stretch of surface and passed as good (a trial: single-pixel
// images judged ok).
const MinFrameSide = 16

// ErrFrameTooSmall is wrapped by Inspect's and Fit's error for a frame or
// image smaller than MinFrameSide on a side: it is not judged.
var ErrFrameTooSmall = errors.New("frame too small to inspect")

// CheckFrameSize returns an error wrapping ErrFrameTooSmall, giving the
// size, when a w×h frame (pixels) is under MinFrameSide on a side; what
// reads images for a fit, an evaluation or a refit skips such an image
// with it, as Inspect would refuse it.
func CheckFrameSize(w, h int) error {
	if w < MinFrameSide || h < MinFrameSide {
		return fmt.Errorf("%w: %dx%d, at least %d pixels a side", ErrFrameTooSmall, w, h, MinFrameSide)
	}
	return nil
}

// ErrOverBudget is wrapped by Load when the model's scoring state is
// larger than Options.MemoryBudget (padim.ErrOverBudget).
var ErrOverBudget = padim.ErrOverBudget

// MinImages returns the fewest normal images Fit accepts: the Gaussians
// are fitted on every image and each image's threshold score is taken
// leave one out, which needs 3. The per-position z-score and the context
// scale need MinZScoreImages and are left out below that (with a log
// line); the recipe search needs SearchOptions.MinImages and fits the
// fixed recipe below that.
func (o Options) MinImages() int { return minFitImages }

// checkImageCount refuses n images when they are too few, with a message
// that names the minimum and the way out. Fit calls it before it opens the
// backbone.
func (o *Options) checkImageCount(n int) error {
	need := o.MinImages()
	if n >= need {
		return nil
	}
	return fmt.Errorf("fit: %w: %d given; the Gaussian fit needs at least %d (every image is fitted and scored leave one out for the threshold), "+
		"the per-position z-score and the context scale %d, the recipe search %d. Add images of good parts",
		ErrTooFewImages, n, need, MinZScoreImages, o.Search.MinImages)
}
