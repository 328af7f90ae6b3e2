// Package metrics computes the anomaly-detection figures the field reports:
// image AUROC and F1-max, pixel AUROC and PRO (per-region overlap integrated
// up to a false-positive rate of 0.3), and ROC curves for plots. Pixel
// metrics stream: images are added one at a time into fixed-size
// histograms, so memory does not grow with the data set.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrNoDefectPixels is wrapped by the pixel figures' error when no mask
// added marks a defect pixel (a data set without ground-truth masks, or
// with only empty ones): the figures do not exist, which a caller may
// report as such rather than fail.
var ErrNoDefectPixels = errors.New("no mask marks a defect pixel")

// ROCPoint is one point of a ROC curve: predicting "anomalous" for scores
// ≥ Threshold gives these rates.
type ROCPoint struct {
	FPR, TPR, Threshold float64
}

type scored struct {
	s   float64
	pos bool
}

func prepare(scores []float64, labels []bool) ([]scored, int, int, error) {
	if len(scores) != len(labels) {
		return nil, 0, 0, fmt.Errorf("metrics: %d scores but %d labels", len(scores), len(labels))
	}
	v := make([]scored, len(scores))
	pos := 0
	for i, s := range scores {
		if math.IsNaN(s) {
			return nil, 0, 0, fmt.Errorf("metrics: score %d is NaN", i)
		}
		v[i] = scored{s, labels[i]}
		if labels[i] {
			pos++
		}
	}
	neg := len(v) - pos
	if pos == 0 || neg == 0 {
		return nil, 0, 0, fmt.Errorf("metrics: need both anomalous and normal samples, got %d and %d", pos, neg)
	}
	// Descending by score.
	slices.SortFunc(v, func(a, b scored) int {
		switch {
		case a.s > b.s:
			return -1
		case a.s < b.s:
			return 1
		}
		return 0
	})
	return v, pos, neg, nil
}

// ROC returns the ROC curve of image scores (labels: true = anomalous),
// one point per distinct score, from (0,0) to (1,1).
func ROC(scores []float64, labels []bool) ([]ROCPoint, error) {
	v, pos, neg, err := prepare(scores, labels)
	if err != nil {
		return nil, err
	}
	pts := []ROCPoint{{0, 0, math.Inf(1)}}
	tp, fp := 0, 0
	for i := 0; i < len(v); {
		j := i
		for ; j < len(v) && v[j].s == v[i].s; j++ {
			if v[j].pos {
				tp++
			} else {
				fp++
			}
		}
		pts = append(pts, ROCPoint{float64(fp) / float64(neg), float64(tp) / float64(pos), v[i].s})
		i = j
	}
	return pts, nil
}

// AUROC is the area under the ROC curve of image scores: the probability
// that an anomalous image scores above a normal one, ties counting half.
func AUROC(scores []float64, labels []bool) (float64, error) {
	pts, err := ROC(scores, labels)
	if err != nil {
		return 0, err
	}
	return trapezoid(pts, 1), nil
}

// F1Max is the best F1 score over all thresholds on the image scores, and
// the threshold reaching it (anomalous when score ≥ threshold).
func F1Max(scores []float64, labels []bool) (f1, threshold float64, err error) {
	pts, err := ROC(scores, labels)
	if err != nil {
		return 0, 0, err
	}
	pos := 0
	for _, l := range labels {
		if l {
			pos++
		}
	}
	p, n := float64(pos), float64(len(labels)-pos)
	for _, q := range pts[1:] { // each point: anomalous when score ≥ q.Threshold
		tp, fp := q.TPR*p, q.FPR*n
		if f := 2 * tp / (2*tp + fp + (p - tp)); f > f1 {
			f1, threshold = f, q.Threshold
		}
	}
	return f1, threshold, nil
}

// trapezoid integrates TPR over FPR from 0 to maxFPR (points ascending in
// FPR), interpolating the point at maxFPR.
func trapezoid(pts []ROCPoint, maxFPR float64) float64 {
	var area float64
	for i := 1; i < len(pts); i++ {
		x0, y0, x1, y1 := pts[i-1].FPR, pts[i-1].TPR, pts[i].FPR, pts[i].TPR
		if x0 >= maxFPR {
			break
		}
		if x1 > maxFPR {
			y1 = y0 + (y1-y0)*(maxFPR-x0)/(x1-x0)
			x1 = maxFPR
		}
		area += (x1 - x0) * (y0 + y1) / 2
	}
	return area
}

// bins is the resolution of the pixel histograms: the top 20 bits of a
// float32's order-preserving key (sign, exponent, 11 mantissa bits), so any
// score range is covered with a relative resolution of 2⁻¹¹ ≈ 0.05% and no
// range has to be known in advance.
const (
	binBits = 20
	bins    = 1 << binBits
)

// binOf maps a float32 onto its histogram bin, preserving order.
func binOf(v float32) int { return binOfBits(v, binBits) }

// binOfBits maps v onto one of 2^bits order-preserving bins.
func binOfBits(v float32, bits uint) int {
	b := math.Float32bits(v)
	if b&0x8000_0000 != 0 {
		b = ^b
	} else {
		b |= 0x8000_0000
	}
	return int(b >> (32 - bits))
}

// binValue is the smallest float32 falling into bin k (for thresholds).
func binValue(k int) float64 { return binValueBits(k, binBits) }

// binValueBits is binValue for 2^bits bins.
func binValueBits(k int, bits uint) float64 {
	b := uint32(k) << (32 - bits)
	if b&0x8000_0000 != 0 {
		b &^= 0x8000_0000
	} else {
		b = ^b
	}
	return float64(math.Float32frombits(b))
}

// Pixels accumulates pixel-level statistics over a test set, one image at a
// time, in fixed memory (~24 MB of histograms). It is not safe for
// concurrent use.
type Pixels struct {
	pos, neg []uint64  // pixel counts per score bin
	overlap  []float64 // Σ 1/|region| of defect pixels per score bin
	nPos     uint64
	nNeg     uint64
	regions  int
	labels   []int32 // per pixel of the current image: its region
	queue    []int32
	areas    []int
	// classes holds the defect-pixel histogram of each labelled class
	// (AddLabeled), allocated on a class's first image.
	classes map[string]*classPixels
	bits    uint // 2^bits histogram bins
}

type classPixels struct {
	pos []uint64
	n   uint64
}

// NewPixels allocates the histograms.
func NewPixels() *Pixels { return NewPixelsBits(binBits) }

// NewPixelsBits allocates histograms of 2^bits bins (8..20): a relative
// resolution of 2^(9-bits) in 24·2^bits bytes; 16 bits (0.8%, 1.5 MB) is
// plenty to rank maps, 20 (NewPixels) for the figures reported.
func NewPixelsBits(bits int) *Pixels {
	bits = min(max(bits, 8), binBits)
	n := 1 << bits
	return &Pixels{pos: make([]uint64, n), neg: make([]uint64, n), overlap: make([]float64, n), bits: uint(bits)}
}

// Reset empties the histograms for another set of images, keeping their
// memory.
func (p *Pixels) Reset() {
	clear(p.pos)
	clear(p.neg)
	clear(p.overlap)
	p.nPos, p.nNeg, p.regions = 0, 0, 0
	p.classes = nil
}

// Add accumulates one image: its anomaly map and ground-truth mask, both
// w×h row major; mask 0 is normal, anything else is defect (resize masks
// with nearest neighbour). Defect regions are the mask's 8-connected
// components.
func (p *Pixels) Add(amap []float32, mask []uint8, w, h int) error {
	return p.add("", amap, mask, w, h)
}

// add is Add, also counting the defect pixels for class when it is set.
func (p *Pixels) add(class string, amap []float32, mask []uint8, w, h int) error {
	if w <= 0 || h <= 0 || len(amap) != w*h || len(mask) != w*h {
		return fmt.Errorf("pixel metrics: map has %d values and mask %d, want %dx%d", len(amap), len(mask), w, h)
	}
	for i, v := range amap {
		if math.IsNaN(float64(v)) {
			return fmt.Errorf("pixel metrics: map value at (%d, %d) is NaN", i%w, i/w)
		}
	}
	if cap(p.labels) < w*h {
		p.labels = make([]int32, w*h)
	}
	lab := p.labels[:w*h]
	clear(lab)
	p.areas = p.areas[:0]
	var c *classPixels
	for i, m := range mask {
		b := binOfBits(amap[i], p.bits)
		if m == 0 {
			p.neg[b]++
			p.nNeg++
			continue
		}
		p.pos[b]++
		p.nPos++
		if class != "" {
			if c == nil {
				c = p.class(class)
			}
			c.pos[b]++
			c.n++
		}
		if lab[i] == 0 {
			p.areas = append(p.areas, p.flood(mask, lab, i, w, h, int32(len(p.areas)+1)))
		}
	}
	for i, l := range lab {
		if l != 0 {
			p.overlap[binOfBits(amap[i], p.bits)] += 1 / float64(p.areas[l-1])
		}
	}
	p.regions += len(p.areas)
	return nil
}

// AddLabeled is Add for an image of a named defect class: its defect pixels
// are also counted for that class, so that ClassAUROC can tell which kinds
// of defect the maps localize. Normal pixels are shared by all classes.
func (p *Pixels) AddLabeled(class string, amap []float32, mask []uint8, w, h int) error {
	return p.add(class, amap, mask, w, h)
}

// class returns the histogram of a defect class, allocating it on the
// class's first defect pixel.
func (p *Pixels) class(name string) *classPixels {
	c := p.classes[name]
	if c == nil {
		if p.classes == nil {
			p.classes = map[string]*classPixels{}
		}
		c = &classPixels{pos: make([]uint64, len(p.pos))}
		p.classes[name] = c
	}
	return c
}

// Classes lists the defect classes added with AddLabeled that had defect
// pixels, sorted.
func (p *Pixels) Classes() []string {
	out := make([]string, 0, len(p.classes))
	for k := range p.classes {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ClassAUROC is the pixel AUROC of one defect class: its defect pixels
// against all normal pixels of the test set.
func (p *Pixels) ClassAUROC(class string) (float64, error) {
	c := p.classes[class]
	if c == nil {
		return 0, fmt.Errorf("pixel metrics: no defect pixels of class %q", class)
	}
	pts, err := p.roc(c.pos, c.n, 0)
	if err != nil {
		return 0, err
	}
	return trapezoid(pts, 1), nil
}

// flood labels the 8-connected defect component containing pixel start and
// returns its area.
func (p *Pixels) flood(mask []uint8, lab []int32, start, w, h int, id int32) int {
	q := append(p.queue[:0], int32(start))
	lab[start] = id
	for k := 0; k < len(q); k++ {
		i := int(q[k])
		x, y := i%w, i/w
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				nx, ny := x+dx, y+dy
				if nx < 0 || ny < 0 || nx >= w || ny >= h {
					continue
				}
				j := ny*w + nx
				if mask[j] != 0 && lab[j] == 0 {
					lab[j] = id
					q = append(q, int32(j))
				}
			}
		}
	}
	p.queue = q
	return len(q)
}

// Regions is the number of defect regions added so far.
func (p *Pixels) Regions() int { return p.regions }

// Counts are the defect and normal pixels added so far.
func (p *Pixels) Counts() (defect, normal uint64) { return p.nPos, p.nNeg }

// ROC returns the pixel ROC curve from (0,0) to (1,1), thinned to at most
// maxPoints points (0: all non-empty bins).
func (p *Pixels) ROC(maxPoints int) ([]ROCPoint, error) {
	return p.roc(p.pos, p.nPos, maxPoints)
}

// roc is the ROC curve of the defect-pixel histogram pos (nPos pixels)
// against all normal pixels.
func (p *Pixels) roc(pos []uint64, nPos uint64, maxPoints int) ([]ROCPoint, error) {
	if nPos == 0 {
		return nil, fmt.Errorf("pixel metrics: need defect and normal pixels, got %d and %d: %w", nPos, p.nNeg, ErrNoDefectPixels)
	}
	if p.nNeg == 0 {
		return nil, fmt.Errorf("pixel metrics: need defect and normal pixels, got %d and %d", nPos, p.nNeg)
	}
	var pts []ROCPoint
	pts = append(pts, ROCPoint{0, 0, math.Inf(1)})
	var tp, fp uint64
	for k := len(p.pos) - 1; k >= 0; k-- {
		if pos[k] == 0 && p.neg[k] == 0 {
			continue
		}
		tp += pos[k]
		fp += p.neg[k]
		pts = append(pts, ROCPoint{float64(fp) / float64(p.nNeg), float64(tp) / float64(nPos), binValueBits(k, p.bits)})
	}
	return thin(pts, maxPoints), nil
}

// thin keeps at most n points, always the first and the last.
func thin(pts []ROCPoint, n int) []ROCPoint {
	if n <= 0 || len(pts) <= n || n < 2 {
		return pts
	}
	out := make([]ROCPoint, 0, n)
	step := float64(len(pts)-1) / float64(n-1)
	for i := range n {
		out = append(out, pts[int(math.Round(float64(i)*step))])
	}
	return out
}

// AUROC is the pixel-level area under the ROC curve. Scores within one bin
// (0.05% relative) count as ties.
func (p *Pixels) AUROC() (float64, error) {
	pts, err := p.ROC(0)
	if err != nil {
		return 0, err
	}
	return trapezoid(pts, 1), nil
}

// PRO is the per-region overlap curve's area up to maxFPR (the field uses
// 0.3), divided by maxFPR so that a perfect map scores 1: at each threshold,
// the mean over all defect regions of the fraction of the region above it,
// against the false-positive rate over all normal pixels.
func (p *Pixels) PRO(maxFPR float64) (float64, error) {
	if !(maxFPR > 0 && maxFPR <= 1) {
		return 0, fmt.Errorf("pixel metrics: max FPR %g, want 0 < max ≤ 1", maxFPR)
	}
	if p.regions == 0 || p.nNeg == 0 {
		return 0, errors.New("pixel metrics: PRO needs defect regions and normal pixels")
	}
	pts := []ROCPoint{{0, 0, math.Inf(1)}}
	var fp uint64
	var ov float64
	for k := len(p.pos) - 1; k >= 0; k-- {
		if p.overlap[k] == 0 && p.neg[k] == 0 {
			continue
		}
		fp += p.neg[k]
		ov += p.overlap[k]
		pts = append(pts, ROCPoint{float64(fp) / float64(p.nNeg), math.Min(ov/float64(p.regions), 1), binValueBits(k, p.bits)})
		if float64(fp)/float64(p.nNeg) > maxFPR {
			break
		}
	}
	return trapezoid(pts, maxFPR) / maxFPR, nil
}
