package padim

import (
	"fmt"
	"image"
	"math"
	"slices"
)

// Default threshold settings: the 99th percentile of the held-out normal
// images' scores, with 10% headroom.
const (
	DefaultQuantile = 0.99
	DefaultMargin   = 1.1
)

// Quantile returns the q-quantile of scores with linear interpolation
// between order statistics (numpy's default, "type 7"). scores is not
// modified.
func Quantile(scores []float64, q float64) (float64, error) {
	if len(scores) == 0 {
		return 0, fmt.Errorf("quantile: no scores")
	}
	if !(q >= 0 && q <= 1) {
		return 0, fmt.Errorf("quantile: q=%g, want 0 ≤ q ≤ 1", q)
	}
	s := slices.Clone(scores)
	for _, v := range s {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("quantile: score %g is not finite", v)
		}
	}
	slices.Sort(s)
	h := q * float64(len(s)-1)
	lo := int(math.Floor(h))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (h-float64(lo))*(s[hi]-s[lo]), nil
}

// ThresholdOptions chooses the image threshold.
type ThresholdOptions struct {
	// Explicit, when > 0, is the threshold; the scores are then ignored.
	Explicit float64
	// Quantile of the held-out normal scores (0: DefaultQuantile).
	Quantile float64
	// Margin multiplies the quantile (0: DefaultMargin).
	Margin float64
	// PixelRatio is the pixel threshold as a share of the image threshold
	// (0: DefaultPixelRatio; see Thresholds.Pixel). The recipe search sets
	// it per line from its synthetic defects (model.PixelRatios).
	PixelRatio float64
}

// Pixel returns the pixel threshold that goes with image threshold image:
// image × PixelRatio (DefaultPixelRatio when PixelRatio is 0).
func (o ThresholdOptions) Pixel(image float64) float64 {
	if o.PixelRatio > 0 {
		return image * o.PixelRatio
	}
	return image * DefaultPixelRatio
}

// ImageThreshold picks the image threshold from the image scores of normal
// images that were not used for the Gaussian fit (scores of fitted images
// are biased low): quantile(scores, Quantile) × Margin, or Explicit.
func ImageThreshold(scores []float64, opts ThresholdOptions) (float64, error) {
	if opts.Explicit > 0 {
		if math.IsInf(opts.Explicit, 0) {
			return 0, fmt.Errorf("threshold: explicit value %g is not finite", opts.Explicit)
		}
		return opts.Explicit, nil
	}
	if opts.Explicit < 0 || math.IsNaN(opts.Explicit) {
		return 0, fmt.Errorf("threshold: explicit value %g, want > 0 (or 0 to derive it)", opts.Explicit)
	}
	q, m := opts.Quantile, opts.Margin
	if q == 0 {
		q = DefaultQuantile
	}
	if m == 0 {
		m = DefaultMargin
	}
	if !(m > 0) || math.IsInf(m, 0) {
		return 0, fmt.Errorf("threshold: margin %g, want > 0", m)
	}
	v, err := Quantile(scores, q)
	if err != nil {
		return 0, fmt.Errorf("threshold from %d held-out normal images: %w", len(scores), err)
	}
	t := v * m
	if !(t > 0) {
		if top := slices.Max(scores); top <= 0 {
			// Every good image matched the others exactly: identical
			// images, which a fit cannot tell defects from.
			return 0, fmt.Errorf("threshold: every one of the %d held-out images scored %g: the training images are all alike (a blank or frozen camera, one image copied?)", len(scores), top)
		}
		return 0, fmt.Errorf("threshold: quantile %g of the held-out scores × margin %g = %g, want > 0", q, m, t)
	}
	return t, nil
}

// DefaultPixelRatio is the pixel threshold a fit sets, as a share of the
// image threshold. The mask grows from the pixels above the image
// threshold into their neighbours above the pixel threshold (hysteresis,
// as Canny's edge linking), so a flagged defect is outlined by its whole
// bright area rather than by the tip that crossed the image threshold,
// and a passing image still shows no mask. 0.75 is the share at which the
// published regions' overlap with the defects (region IoU over the flagged
// defective images) rose on every data set of shared/data against masks at
// the image threshold: magnetic tile 0.243 → 0.275, screw 0.067 → 0.071,
// transistor 0.459 → 0.562, kolektorsdd 0.162 → 0.492; at 0.6 screw fell
// below its old figure (0.046). The recipe search moves it per line
// (ThresholdOptions.PixelRatio, model.PixelRatios).
const DefaultPixelRatio = 0.75

// Thresholds are the decision levels of a model.
type Thresholds struct {
	// Image flags an image whose score (the anomaly map's maximum) exceeds it.
	Image float64
	// Pixel bounds the mask of a flagged image: it holds the map's pixels
	// above Pixel that are 8-connected, through such pixels, to a pixel
	// above Image; a pass has an empty mask. Since the score is the map's
	// maximum, an alarm always comes with a region. Fits set
	// Pixel = DefaultPixelRatio × Image; with Pixel ≥ Image the mask is
	// simply the pixels above Pixel (models fitted before the ratio had
	// Pixel = Image).
	Pixel float64
}

// Result is the verdict on one image.
type Result struct {
	// Score is the raw image score (max of the anomaly map).
	Score float64
	// Threshold is the image threshold it was compared with.
	Threshold float64
	// Normalized is Score/Threshold: above 1 is anomalous, comparable
	// across models.
	Normalized float64
	// Anomalous is Score > Threshold.
	Anomalous bool
	// Mask is 255 on the defect regions (Thresholds.Pixel), else 0.
	// Inspect reuses it when its size matches.
	Mask *image.Gray
	// stack is the region growing's work list, kept between calls.
	stack []int32
}

// Inspect fills r from one anomaly map (w×h, row major) and its score,
// reusing r.Mask when it has the right size (no allocation then).
func (t Thresholds) Inspect(r *Result, amap []float32, w, h int, score float32) error {
	if len(amap) != w*h || w <= 0 || h <= 0 {
		return fmt.Errorf("inspect: map has %d values, want %dx%d", len(amap), w, h)
	}
	if !(t.Image > 0) {
		return fmt.Errorf("inspect: image threshold %g, want > 0", t.Image)
	}
	pt := t.Pixel
	if pt == 0 {
		pt = t.Image
	}
	r.Score = float64(score)
	r.Threshold = t.Image
	r.Normalized = r.Score / t.Image
	r.Anomalous = r.Score > t.Image
	if r.Mask == nil || r.Mask.Rect.Dx() != w || r.Mask.Rect.Dy() != h || r.Mask.Rect.Min != (image.Point{}) {
		r.Mask = image.NewGray(image.Rect(0, 0, w, h))
	}
	m := r.Mask
	if !r.Anomalous {
		// A pass shows no mask, even where a map that is not the score's
		// (a -fine recipe's patch-scale map) crosses the threshold.
		for y := range h {
			clear(m.Pix[y*m.Stride : y*m.Stride+w])
		}
		return nil
	}
	// Marks: 0 below the pixel threshold, candidate above it, 255 kept.
	p32, i32 := float32(pt), float32(t.Image)
	seeds := false
	for y := range h {
		row := amap[y*w : (y+1)*w]
		pix := m.Pix[y*m.Stride : y*m.Stride+w]
		for x, v := range row {
			switch {
			case v > p32 && v > i32:
				pix[x] = 255
				seeds = true
			case v > p32:
				pix[x] = candidate
			default:
				pix[x] = 0
			}
		}
	}
	if !(pt < t.Image) {
		return nil // every pixel above Pixel is above Image: no candidates
	}
	if seeds {
		r.growRegions(w, h)
	}
	for y := range h {
		pix := m.Pix[y*m.Stride : y*m.Stride+w]
		for x, v := range pix {
			switch v {
			case candidate:
				pix[x] = 0
			case grown:
				pix[x] = 255
			}
		}
	}
	return nil
}

// Marks of the mask while its regions grow: a candidate is above the
// pixel threshold, not yet reached; grown was reached from a kept pixel
// (255) and becomes one at the end, so that the scan for kept pixels does
// not start a flood again from every pixel a flood reached.
const (
	candidate = 1
	grown     = 2
)

// growRegions marks grown every candidate pixel of the mask that is
// 8-connected through candidates to a kept pixel (255), by scanline fill:
// the runs of candidates beside each kept pixel are seeds; a seed's run is
// extended along its row and marked, and the runs of candidates it touches
// in the rows above and below (diagonals included) become seeds. Each
// pixel is read a few times in row order. A flood pixel by pixel (a
// division per pixel, a flood from every pixel it reached) took three
// times as long on a 1280×720 map whose regions cover two fifths of it
// (BenchmarkThresholdRegions: 10.3 against 3.4 ms).
func (r *Result) growRegions(w, h int) {
	pix, st := r.Mask.Pix, r.Mask.Stride
	// runs pushes the first pixel of every run of candidates of row y
	// within [x0, x1].
	runs := func(y, x0, x1 int) {
		if y < 0 || y >= h {
			return
		}
		row := pix[y*st : y*st+w]
		x0, x1 = max(x0, 0), min(x1, w-1)
		for x := x0; x <= x1; x++ {
			if row[x] == candidate && (x == x0 || row[x-1] != candidate) {
				r.stack = append(r.stack, int32(x), int32(y))
			}
		}
	}
	for y := range h {
		for x, v := range pix[y*st : y*st+w] {
			if v != 255 {
				continue
			}
			r.stack = r.stack[:0]
			runs(y-1, x-1, x+1)
			runs(y, x-1, x+1)
			runs(y+1, x-1, x+1)
			for n := len(r.stack); n > 0; n = len(r.stack) {
				sx, sy := int(r.stack[n-2]), int(r.stack[n-1])
				r.stack = r.stack[:n-2]
				row := pix[sy*st : sy*st+w]
				if row[sx] != candidate {
					continue // reached since it was pushed
				}
				lx, rx := sx, sx
				for lx > 0 && row[lx-1] == candidate {
					lx--
				}
				for rx < w-1 && row[rx+1] == candidate {
					rx++
				}
				for i := lx; i <= rx; i++ {
					row[i] = grown
				}
				runs(sy-1, lx-1, rx+1)
				runs(sy+1, lx-1, rx+1)
			}
		}
	}
}
