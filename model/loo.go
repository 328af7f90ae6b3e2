package model

import "math"

// leaveOneOut turns the Mahalanobis distances of a training image, scored
// by the Gaussians fitted on all n training images including it, into the
// distances the Gaussians fitted on the other n−1 images would give it:
// what a new image of the same kind scores. In-sample distances are far
// too low (with d = 100 and n = 200 about half), so thresholds and
// per-position statistics taken from them would be too.
//
// Removing one image v = x − μ from n is a rank-one change of the
// covariance: μ₋ = μ − v/(n−1), S₋ = ((n−1)S − n/(n−1)·vvᵀ)/(n−2), and
// x − μ₋ = n/(n−1)·v. With A = S + εI and h = vᵀA⁻¹v (the in-sample squared
// distance), Sherman–Morrison gives
//
//	D₋² = (n/(n−1))² · (n−2)/(n−1) · h / (1 − b·h),   b = n/(n−1)²,
//
// exactly up to the ridge, which the held-out Gaussian would carry as
// ε(n−2)/(n−1) instead of ε (a relative change of 1/(n−1) in ε alone). So
// every training image is scored out of sample, as n-fold cross-fitting
// would, for the price of scoring it once more, and no image is held out of
// the fit. dist holds distances (not squared) and is converted in place.
func leaveOneOut(dist []float32, n int) {
	if n < 3 {
		return
	}
	fn := float64(n)
	c := (fn / (fn - 1)) * (fn / (fn - 1)) * (fn - 2) / (fn - 1)
	b := fn / ((fn - 1) * (fn - 1))
	for i, v := range dist {
		h := float64(v) * float64(v)
		// b·h < 1 holds in exact arithmetic (the leverage bound); float32
		// state can graze it.
		den := max(1-b*h, minLOODenominator)
		dist[i] = float32(math.Sqrt(c * h / den))
	}
}

// minLOODenominator bounds the leave-one-out correction at a hundredfold
// squared distance, for positions whose in-sample distance reaches the
// leverage bound through rounding.
const minLOODenominator = 0.01

// distStats accumulates per-position sums of distance grids, from which
// each position's mean and spread come, over all grids or all but one.
type distStats struct {
	n       int
	sum, sq []float64
}

func newDistStats(positions int) *distStats {
	return &distStats{sum: make([]float64, positions), sq: make([]float64, positions)}
}

func (s *distStats) add(g []float32) {
	s.n++
	for i, v := range g {
		s.sum[i] += float64(v)
		s.sq[i] += float64(v) * float64(v)
	}
}

// spreadFloor is the least spread a position's z-score divides by, as a
// fraction of the average spread over positions. The z-score is there to
// discount positions that vary a lot on good images (the part's edges,
// threads, texture); dividing by the spread of a quieter one (a plain
// background at the image border, padding) instead magnifies whatever
// drifts there between the training images and the line, and the alarm
// lands away from the defect. Chosen on the four shared sets side by side
// with their chosen recipes (`inspectd eval`, 200 training images): the
// floor at 0.1 → 0.75 of the average lifted screw's region IoU 0.113 →
// 0.215 and PRO 0.903 → 0.908, left magnetic tile and kolektorsdd
// unchanged and transistor within 0.0004; a floor at the average (1.0)
// cost kolektorsdd 0.0065 and screw 0.008 of image AUROC.
const spreadFloor = 0.75

// stats writes each position's mean distance and the inverse of its
// standard deviation over the grids added, leaving out skip when it is not
// nil (one of the grids added). The spread is floored at spreadFloor of the
// average spread.
func (s *distStats) stats(skip, mean, invStd []float32) {
	n := float64(s.n)
	if skip != nil {
		n--
	}
	var avg float64
	for i := range s.sum {
		sum, sq := s.sum[i], s.sq[i]
		if skip != nil {
			v := float64(skip[i])
			sum, sq = sum-v, sq-v*v
		}
		m := sum / n
		mean[i] = float32(m)
		sd := math.Sqrt(max(sq/n-m*m, 0))
		invStd[i] = float32(sd) // the spread, inverted below
		avg += sd
	}
	floor := max(spreadFloor*avg/float64(len(s.sum)), 1e-6)
	for i, sd := range invStd {
		invStd[i] = float32(1 / max(float64(sd), floor))
	}
}

// positionStats returns each position's mean distance and inverse
// standard deviation over the grids (distStats.stats).
func positionStats(grids [][]float32) (mean, invStd []float32) {
	s := newDistStats(len(grids[0]))
	for _, g := range grids {
		s.add(g)
	}
	mean, invStd = make([]float32, len(grids[0])), make([]float32, len(grids[0]))
	s.stats(nil, mean, invStd)
	return mean, invStd
}
