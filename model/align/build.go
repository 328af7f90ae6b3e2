package align

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
)

// outlierMargin is how far below the median confidence an image may match
// the reference and still shape it.
const outlierMargin = 0.2

// BuildImages is how many normal images a reference is built from (spread
// over the training set): enough to average out one part's particulars,
// few enough that building takes a second.
const BuildImages = 32

// buildCandidates is how many of them are tried as the first reference.
const buildCandidates = 8

// Builder collects normal images' thumbnails and builds a Reference from
// them. Only the thumbnails are kept (a few tens of KB each).
type Builder struct {
	mode     Mode
	thumbs   []builderThumb
	plan     thumbPlan
	maxAngle float64 // degrees searched (Registrar.SetMaxAngle); 0: one start
}

type builderThumb struct {
	g    Gray32
	w, h int // frame size
	f    float64
}

// NewBuilder starts a reference of the given mode (Translate, Rigid or
// Turn).
func NewBuilder(mode Mode) (*Builder, error) {
	if mode != Translate && !mode.Rotates() {
		return nil, fmt.Errorf("align: mode %q has no reference (want translate, rigid or turn)", mode)
	}
	return &Builder{mode: mode}, nil
}

// SetMaxAngle sets the rotations the images are searched over, as
// Registrar.SetMaxAngle: parts that lie at any angle need 180.
func (b *Builder) SetMaxAngle(deg float64) { b.maxAngle = deg }

// Add takes one normal image.
func (b *Builder) Add(img image.Image) error {
	r := img.Bounds()
	if err := checkSize(r.Dx(), r.Dy()); err != nil {
		return err
	}
	t := builderThumb{w: r.Dx(), h: r.Dy()}
	tw, th, f := thumbGeometry(t.w, t.h, Thumb)
	t.f = f
	thumbnail(&t.g, img, tw, th, f, &b.plan)
	b.thumbs = append(b.thumbs, t)
	return nil
}

// Len is the number of images added.
func (b *Builder) Len() int { return len(b.thumbs) }

// BuildReport says how the reference was built.
type BuildReport struct {
	// Images is the number of images it was built from; Seed the index
	// (in the order added) of the one chosen as the first reference.
	Images, Seed int
	// Results are each image's registration to the final reference.
	Results []Result
	// FrameSizes is the number of distinct frame sizes among the images
	// (the reference takes the most common one).
	FrameSizes int
}

// Build makes the reference: each of up to buildCandidates images spread
// over those added is tried as the reference for all the others, and the
// one they match best (highest median confidence) is kept; every image is
// registered to it, the view is moved to their mean pose (so that no
// part has to be moved further than the spread of the line requires), and
// the template becomes the average of all images registered into it, each
// scaled to the same mean and contrast. That is repeated once against the
// averaged template, which is less noisy than any one image. The
// reference records how far those images lay from it (Spread).
func (b *Builder) Build() (*Reference, BuildReport, error) {
	n := len(b.thumbs)
	if n < 2 {
		return nil, BuildReport{}, fmt.Errorf("align: %d images, need at least 2 to build a reference", n)
	}
	// The reference's frame size is the most common one.
	sizes := map[[2]int]int{}
	var fw, fh, most int
	for _, t := range b.thumbs {
		k := [2]int{t.w, t.h}
		sizes[k]++
		if sizes[k] > most {
			most, fw, fh = sizes[k], t.w, t.h
		}
	}
	pyrs := make([][levels]Gray32, n)
	for i := range b.thumbs {
		pyrs[i][0] = b.thumbs[i].g
		for l := 1; l < levels; l++ {
			halve(&pyrs[i][l], &pyrs[i][l-1])
		}
	}
	var best *Reference
	var bestRes []Result
	bestScore, seed := math.Inf(-1), -1
	step := max(1, n/buildCandidates)
	for c := 0; c < n && c/step < buildCandidates; c += step {
		t := b.thumbs[c]
		if t.w != fw || t.h != fh {
			continue
		}
		ref, err := NewReference(b.mode, fw, fh, t.g.W, t.g.H, t.g.Pix, centrePrior(t.g.W, t.g.H))
		if err != nil {
			return nil, BuildReport{}, err
		}
		res := b.registerAll(ref, pyrs)
		if s := medianConfidence(res, c); s > bestScore {
			best, bestRes, bestScore, seed = ref, res, s, c
		}
	}
	if best == nil {
		return nil, BuildReport{}, errors.New("align: no image to start the reference from")
	}
	ref, res := best, bestRes
	for range 2 {
		next, err := b.average(ref, res)
		if err != nil {
			return nil, BuildReport{}, err
		}
		ref = next
		res = b.registerAll(ref, pyrs)
	}
	ref.spread = b.spread(res)
	return ref, BuildReport{Images: n, Seed: seed, Results: res, FrameSizes: len(sizes)}, nil
}

// spread is the largest shift, as a fraction of its frame, of the images
// registered to the final reference that average would keep.
func (b *Builder) spread(res []Result) Spread {
	floor := keepFloor(res)
	s := Spread{Measured: true}
	for i, r := range res {
		if r.Confidence < floor || r.Confidence == -1 {
			continue
		}
		t := b.thumbs[i]
		s.X = max(s.X, min(math.Abs(r.DX)/float64(t.w), 1))
		s.Y = max(s.Y, min(math.Abs(r.DY)/float64(t.h), 1))
	}
	return s
}

// registerAll registers every thumbnail pyramid to ref; a failure has
// confidence −1.
func (b *Builder) registerAll(ref *Reference, pyrs [][levels]Gray32) []Result {
	g := NewRegistrar(ref)
	g.SetMaxAngle(b.maxAngle)
	out := make([]Result, len(pyrs))
	for i := range pyrs {
		g.pyr = pyrs[i]
		g.w, g.h = b.thumbs[i].w, b.thumbs[i].h
		r, err := g.registerPyramid(b.thumbs[i].f)
		if err != nil {
			r = Result{Confidence: -1}
		}
		out[i] = r
	}
	return out
}

// keepFloor is the least confidence an image registered to the reference
// may have to be kept: outlierMargin below the median.
func keepFloor(res []Result) float64 { return medianConfidence(res, -1) - outlierMargin }

// medianConfidence is the median confidence of the images other than skip
// (−1: none).
func medianConfidence(res []Result, skip int) float64 {
	c := make([]float64, 0, len(res))
	for i, r := range res {
		if i != skip {
			c = append(c, r.Confidence)
		}
	}
	slices.Sort(c)
	return c[len(c)/2]
}

// average builds the template at the mean pose of the images registered
// to ref: each image whose confidence is within outlierMargin of the
// median (others are not the part, or not seen as it), scaled to zero
// mean and unit spread, is resampled into the new view; where no image
// reaches, the old template stays.
func (b *Builder) average(ref *Reference, res []Result) (*Reference, error) {
	floor := keepFloor(res)
	// Mean pose of the images kept (the angle's circular mean: parts
	// may lie at any angle).
	var mt Transform
	var kept int
	var sinSum, cosSum float64
	for _, r := range res {
		if r.Confidence >= floor && r.Confidence > -1 {
			sinSum += math.Sin(r.Angle)
			cosSum += math.Cos(r.Angle)
			mt.DX += r.DX
			mt.DY += r.DY
			kept++
		}
	}
	if kept == 0 {
		return nil, errors.New("align: no image registered to the reference")
	}
	mt.Angle = math.Atan2(sinSum, cosSum)
	mt.DX /= float64(kept)
	mt.DY /= float64(kept)
	tw, th := ref.template.W, ref.template.H
	fw, fh := ref.frameW, ref.frameH
	sum := make([]float64, tw*th)
	sq := make([]float64, tw*th)
	cnt := make([]float64, tw*th)
	var allMean, allStd float64
	for i, r := range res {
		if r.Confidence < floor || r.Confidence == -1 {
			continue
		}
		t := b.thumbs[i]
		// The image's transform to the new view (mean pose M): T∘M⁻¹ has
		// angle θ − θ̄ and shift t − R(θ − θ̄)·t̄.
		a := r.Angle - mt.Angle
		cs, sn := math.Cos(a), math.Sin(a)
		ti := Transform{Angle: a, DX: r.DX - (cs*mt.DX - sn*mt.DY), DY: r.DY - (sn*mt.DX + cs*mt.DY)}
		// Template pixels to the image's thumbnail, both in thumbnail units
		// about their own centres.
		_, _, fr := thumbGeometry(fw, fh, Thumb)
		ctx, cty := float64(fw)*fr/2, float64(fh)*fr/2
		cix, ciy := float64(t.w)*t.f/2, float64(t.h)*t.f/2
		m := affine{a: cs, b: -sn, c: sn, d: cs,
			e: -cs*ctx + sn*cty + cix + ti.DX*t.f, f: -sn*ctx - cs*cty + ciy + ti.DY*t.f}
		var s, ss float64
		for _, v := range t.g.Pix {
			s += float64(v)
			ss += float64(v) * float64(v)
		}
		np := float64(len(t.g.Pix))
		mean := s / np
		std := math.Sqrt(max(ss/np-mean*mean, 1e-6))
		allMean += mean
		allStd += std
		for y := 0; y < th; y++ {
			for x := 0; x < tw; x++ {
				fx, fy := m.apply(float64(x)+0.5, float64(y)+0.5)
				v, ok := t.g.sample(float32(fx), float32(fy))
				if !ok {
					continue
				}
				z := (float64(v) - mean) / std
				sum[y*tw+x] += z
				sq[y*tw+x] += z * z
				cnt[y*tw+x]++
			}
		}
	}
	allMean /= float64(kept)
	allStd /= float64(kept)
	pix := make([]float32, tw*th)
	vars := make([]float64, 0, tw*th)
	for i := range pix {
		v := float64(ref.template.Pix[i])
		if cnt[i] > 0 {
			m := sum[i] / cnt[i]
			v = allMean + allStd*m
			vars = append(vars, max(sq[i]/cnt[i]-m*m, 0))
		}
		pix[i] = float32(min(max(v, 0), 255))
	}
	// Weights: the centre prior times the consistency of the images at
	// each pixel, 1/(variance + the median variance); pixels seen by fewer
	// than half the images count less in proportion.
	slices.Sort(vars)
	floorVar := 1e-3
	if len(vars) > 0 {
		floorVar = max(vars[len(vars)/2], floorVar)
	}
	prior := centrePrior(tw, th)
	wt := make([]float32, tw*th)
	var total float64
	for i := range wt {
		if cnt[i] == 0 {
			continue
		}
		m := sum[i] / cnt[i]
		v := max(sq[i]/cnt[i]-m*m, 0)
		c := min(1, 2*cnt[i]/float64(kept))
		wt[i] = float32(float64(prior[i]) * c / (v + floorVar))
		total += float64(wt[i])
	}
	if !(total > 0) {
		return NewReference(ref.mode, fw, fh, tw, th, pix, nil)
	}
	k := float64(len(wt)) / total
	for i := range wt {
		wt[i] = float32(min(float64(wt[i])*k, maxWeight))
	}
	return NewReference(ref.mode, fw, fh, tw, th, pix, wt)
}

// priorSigma is the centre prior's standard deviation as a fraction of
// each side: the inspected part is framed near the centre (the camera or
// the ROI is set up for it), so the centre decides the registration before
// the training images have said what is consistent.
const priorSigma = 0.3

// centrePrior is the centre prior over a w×h template (mean 1).
func centrePrior(w, h int) []float32 {
	out := make([]float32, w*h)
	var sum float64
	for y := 0; y < h; y++ {
		dy := (float64(y) + 0.5 - float64(h)/2) / (priorSigma * float64(h))
		for x := 0; x < w; x++ {
			dx := (float64(x) + 0.5 - float64(w)/2) / (priorSigma * float64(w))
			v := math.Exp(-0.5 * (dx*dx + dy*dy))
			out[y*w+x] = float32(v)
			sum += v
		}
	}
	k := float32(float64(len(out)) / sum)
	for i := range out {
		out[i] *= k
	}
	return out
}
