package model

import (
	"slices"

	"github.com/inspectd/inspectd/model/metrics"
	"github.com/inspectd/inspectd/model/padim"
)

// PixelRatios are the pixel thresholds, as shares of the image threshold,
// that the recipe search tries for each candidate's alarm regions
// (padim.Thresholds.Pixel): a region seeded above the image threshold
// grows through the map's pixels above ratio × it. How far a defect's
// bright area reaches beyond its tip is the line's own: on the four sets
// of shared/data the best share of the chosen recipes' real defects
// (region IoU over the flagged ones) was 0.9 on screw and magnetic tile,
// 0.6 on transistor and 0.5 on kolektorsdd. 1 (the tip alone) and shares
// under 0.6 are left out: the synthetic defects favoured them where the
// real ones did not.
var PixelRatios = [...]float64{0.6, padim.DefaultPixelRatio, 0.9}

// Rules of the pixel ratio's choice: another share than
// padim.DefaultPixelRatio is taken only when at least MinPixelRatioImages
// synthetic defects were flagged and their region IoU at it beats the
// default's by more than PixelRatioMargin. Below that the difference is within
// what a few images change (on transistor the synthetic defects put 0.9
// 0.011 above 0.75 while the real defects put it 0.076 below).
const (
	MinPixelRatioImages = 10
	PixelRatioMargin    = 0.02
)

// ratioTrial measures, over the synthetic defects a candidate flags, how
// well its alarm regions at each of PixelRatios match the pasted defect:
// the box IoU of the regions (at most MaxAlarmRegions, largest first, as an
// alarm publishes them) against the defect mask's own regions, as `eval`
// reports region IoU on real defects. Not safe for concurrent use.
type ratioTrial struct {
	sum     [len(PixelRatios)]float64
	n       int
	regions metrics.Regions
	truth   []metrics.Box
	res     padim.Result
}

// MaxAlarmRegions bounds an alarm's region list, the largest regions kept:
// a speckled mask would otherwise produce a huge message. The recipe
// search compares the same regions an alarm publishes.
const MaxAlarmRegions = 32

// add counts one synthetic defect (mask: w×h, non-zero on the defect) of an
// inspection r judged against image threshold image; a defect the
// threshold passes counts nothing (its regions are not published).
func (t *ratioTrial) add(r *Inspection, image float64, mask []uint8) error {
	if !(r.Score > image) {
		return nil
	}
	t.truth = append(t.truth[:0], t.regions.Find(mask, r.W, r.H, 0)...)
	for i, ratio := range PixelRatios {
		th := padim.Thresholds{Image: image, Pixel: ratio * image}
		if err := th.Inspect(&t.res, r.Map, r.W, r.H, float32(r.Score)); err != nil {
			return err
		}
		t.sum[i] += metrics.BoxIoU(t.regions.FindGray(t.res.Mask, MaxAlarmRegions), t.truth, r.W, r.H)
	}
	t.n++
	return nil
}

// choose returns the pixel ratio the trial supports, the region IoU at it
// (0 with no flagged defect) and the number of flagged defects it rests
// on: padim.DefaultPixelRatio unless another share beats it by more than
// PixelRatioMargin over at least MinPixelRatioImages defects.
func (t *ratioTrial) choose() (ratio, iou float64, images int) {
	def := slices.Index(PixelRatios[:], padim.DefaultPixelRatio)
	if t.n == 0 {
		return padim.DefaultPixelRatio, 0, 0
	}
	best := def
	if t.n >= MinPixelRatioImages {
		for i := range PixelRatios {
			if t.sum[i] > t.sum[best] && t.sum[i]/float64(t.n) > t.sum[def]/float64(t.n)+PixelRatioMargin {
				best = i
			}
		}
	}
	return PixelRatios[best], t.sum[best] / float64(t.n), t.n
}
