package align

import "math"

// pose is a rigid transform on one pyramid level: a point u of the
// template maps to R(theta)·(u − cT) + cI + (tx, ty) in the image, where
// cT and cI are the two images' centres (continuous coordinates, pixel
// centres at +0.5).
type pose struct {
	theta, tx, ty float64
}

// tmplLevel is one pyramid level of the template, prepared for
// inverse-compositional Lucas–Kanade: the template normalized to zero mean
// and unit variance, and its steepest-descent images for the rotation and
// the two translations (Baker & Matthews 2004, section 3.2).
type tmplLevel struct {
	g      Gray32 // normalized template
	sd     [3][]float32
	cx, cy float64
	// wt weighs each pixel's say in the registration (Reference's
	// weights); the pixels used are all but a one-pixel border, where the
	// gradient would be one-sided, and wsum is their total weight.
	wt   []float32
	wsum float64
}

// newTmplLevel prepares a level from the template and its weights (same
// size); cx, cy is the centre of the view in the level's continuous
// coordinates.
func newTmplLevel(raw, weight *Gray32, cx, cy float64) *tmplLevel {
	w, h := raw.W, raw.H
	t := &tmplLevel{cx: cx, cy: cy, wt: weight.Pix}
	t.g.resize(w, h)
	var s, ss, n float64
	for i, v := range raw.Pix {
		wt := float64(weight.Pix[i])
		s += wt * float64(v)
		ss += wt * float64(v) * float64(v)
		n += wt
	}
	n = max(n, 1e-12)
	mean := s / n
	std := math.Sqrt(max(ss/n-mean*mean, 0))
	inv := 1 / max(std, 1e-3)
	for i, v := range raw.Pix {
		t.g.Pix[i] = float32((float64(v) - mean) * inv)
	}
	for k := range t.sd {
		t.sd[k] = make([]float32, w*h)
	}
	p := t.g.Pix
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			i := y*w + x
			gx := 0.5 * (p[i+1] - p[i-1])
			gy := 0.5 * (p[i+w] - p[i-w])
			ux := float32(float64(x) + 0.5 - t.cx)
			uy := float32(float64(y) + 0.5 - t.cy)
			t.sd[0][i] = -gx*uy + gy*ux
			t.sd[1][i] = gx
			t.sd[2][i] = gy
			t.wsum += float64(t.wt[i])
		}
	}
	return t
}

// lkResult is the outcome of refining a pose on one level.
type lkResult struct {
	p pose
	// ncc is the normalized cross-correlation of the warped image with
	// the template over the overlap, overlap the share of the template's
	// inner pixels that land inside the image.
	ncc, overlap float64
	iters        int
}

// minOverlap is the smallest share of the template that must land inside
// the frame for a pose to count: below it the correlation rests on too
// little of the part.
const minOverlap = 0.4

// lkScratch holds refine's per-pixel buffer and residual histogram.
type lkScratch struct {
	vals []float32 // the image sampled at each template pixel (NaN outside)
	hist [residualBins]int32
}

// Robust weighting of the residuals (iteratively reweighted least
// squares): Tukey's biweight with c = 4.685 robust standard deviations,
// the standard deviation taken as 1.4826 times the median absolute
// residual (read from a histogram of residualBins bins over
// [0, residualMax) normalized intensity). Pixels that do not fit the
// pose of the rest (a part displaced on its fixture, a defect, glare)
// then stop pulling the registration towards a compromise.
const (
	tukeyC       = 4.685
	residualBins = 128
	residualMax  = 4.0
)

// refine runs inverse-compositional Gauss–Newton on the rigid pose (or the
// translation alone) of image img against template t, starting from p,
// for at most iters steps or until a step moves no template pixel by tol
// pixels; (cix, ciy) is the image's centre. The image's
// intensities over the overlap are normalized to zero mean and unit
// variance at every step, as the template's are, and the residuals are
// weighted robustly (tukeyC) after the first step.
func (sc *lkScratch) refine(t *tmplLevel, img *Gray32, cix, ciy float64, p pose, rigid bool, iters int, tol float64) lkResult {
	w, h := t.g.W, t.g.H
	maxX, maxY := float32(img.W)-0.5, float32(img.H)-0.5
	if cap(sc.vals) < w*h {
		sc.vals = make([]float32, w*h)
	}
	vals := sc.vals[:w*h]
	nan := float32(math.NaN())
	var res lkResult
	scale := float32(0) // robust residual scale; 0: unweighted
	for it := 0; ; it++ {
		// Pass 1: sample the image under the pose; moments of the overlap.
		var n, si, sii, stt, st, sit float64
		c, s := math.Cos(p.theta), math.Sin(p.theta)
		fc, fs := float32(c), float32(s)
		for y := 1; y < h-1; y++ {
			uy := float64(y) + 0.5 - t.cy
			ux := 1.5 - t.cx
			x0 := float32(c*ux - s*uy + cix + p.tx)
			y0 := float32(s*ux + c*uy + ciy + p.ty)
			var rn, rsi, rsii, rstt, rst, rsit float32
			row := vals[y*w : (y+1)*w]
			trow := t.g.Pix[y*w : (y+1)*w]
			wrow := t.wt[y*w : (y+1)*w]
			for x := 1; x < w-1; x, x0, y0 = x+1, x0+fc, y0+fs {
				wt := wrow[x]
				if wt == 0 || !(x0 >= 0.5 && y0 >= 0.5 && x0 <= maxX && y0 <= maxY) {
					row[x] = nan
					continue
				}
				fx, fy := x0-0.5, y0-0.5
				ix, iy := int(fx), int(fy)
				ax, ay := fx-float32(ix), fy-float32(iy)
				i := iy*img.W + ix
				dx, dy := 1, img.W
				if ix >= img.W-1 {
					dx = 0
				}
				if iy >= img.H-1 {
					dy = 0
				}
				pp := img.Pix
				top := pp[i] + ax*(pp[i+dx]-pp[i])
				bot := pp[i+dy] + ax*(pp[i+dy+dx]-pp[i+dy])
				v := top + ay*(bot-top)
				row[x] = v
				tv := trow[x]
				wv := wt * v
				rn += wt
				rsi += wv
				rsii += wv * v
				rstt += wt * tv * tv
				rst += wt * tv
				rsit += wv * tv
			}
			n += float64(rn)
			si += float64(rsi)
			sii += float64(rsii)
			stt += float64(rstt)
			st += float64(rst)
			sit += float64(rsit)
		}
		res.p, res.iters = p, it
		res.overlap = n / max(t.wsum, 1e-12)
		if res.overlap < minOverlap || n < 1e-6 {
			res.ncc = -1
			return res
		}
		mi, mt := si/n, st/n
		vi := max(sii/n-mi*mi, 1e-12)
		vt := max(stt/n-mt*mt, 1e-12)
		si0, st0 := math.Sqrt(vi), math.Sqrt(vt)
		res.ncc = (sit/n - mi*mt) / (si0 * st0)
		if it >= iters {
			return res
		}
		// Pass 2: residuals e = (I−μI)/σI − (T−μT)/σT, weighted, projected
		// on the steepest-descent images.
		ki, bi := float32(1/si0), float32(-mi/si0)
		kt, bt := float32(1/st0), float32(-mt/st0)
		var hs [6]float64
		var b [3]float64
		clear(sc.hist[:])
		var over int32
		inv := float32(0)
		if scale > 0 {
			inv = 1 / (tukeyC * scale)
		}
		const binScale = residualBins / residualMax
		for y := 1; y < h-1; y++ {
			row := vals[y*w : (y+1)*w]
			trow := t.g.Pix[y*w : (y+1)*w]
			s0r, s1r, s2r := t.sd[0][y*w:(y+1)*w], t.sd[1][y*w:(y+1)*w], t.sd[2][y*w:(y+1)*w]
			wrow := t.wt[y*w : (y+1)*w]
			var rh [6]float32
			var rb [3]float32
			for x := 1; x < w-1; x++ {
				v := row[x]
				if v != v {
					continue
				}
				e := (v*ki + bi) - (trow[x]*kt + bt)
				ae := e
				if ae < 0 {
					ae = -ae
				}
				if k := int(ae * binScale); k < residualBins {
					sc.hist[k]++
				} else {
					over++
				}
				wt := wrow[x]
				if inv > 0 {
					r := ae * inv
					if r >= 1 {
						continue
					}
					q := 1 - r*r
					wt *= q * q
				}
				s0, s1, s2 := s0r[x], s1r[x], s2r[x]
				we := wt * e
				rb[0] += s0 * we
				rb[1] += s1 * we
				rb[2] += s2 * we
				ws0, ws1 := wt*s0, wt*s1
				rh[0] += ws0 * s0
				rh[1] += ws0 * s1
				rh[2] += ws0 * s2
				rh[3] += ws1 * s1
				rh[4] += ws1 * s2
				rh[5] += wt * s2 * s2
			}
			for k := range hs {
				hs[k] += float64(rh[k])
			}
			for k := range b {
				b[k] += float64(rb[k])
			}
		}
		// The next step's scale: 1.4826 × the median absolute residual.
		total := over
		for _, c := range sc.hist {
			total += c
		}
		half, acc := total/2, int32(0)
		scale = residualMax
		for k, c := range sc.hist {
			if acc += c; acc >= half {
				scale = float32(1.4826 * (float64(k) + 0.5) / binScale)
				break
			}
		}
		scale = max(scale, 0.05)
		var d [3]float64
		if rigid {
			var ok bool
			if d, ok = solve3(hs, b); !ok {
				return res
			}
		} else {
			det := hs[3]*hs[5] - hs[4]*hs[4]
			if math.Abs(det) < 1e-12 {
				return res
			}
			d[1] = (hs[5]*b[1] - hs[4]*b[2]) / det
			d[2] = (hs[3]*b[2] - hs[4]*b[1]) / det
		}
		// Compose with the inverse of the increment (inverse compositional).
		p.theta -= d[0]
		c, s = math.Cos(p.theta), math.Sin(p.theta)
		p.tx -= c*d[1] - s*d[2]
		p.ty -= s*d[1] + c*d[2]
		// Converged: the increment moves no template pixel by tol.
		r := math.Hypot(float64(w), float64(h)) / 2
		if math.Abs(d[0])*r < tol && math.Hypot(d[1], d[2]) < tol {
			iters = it + 1 // one more pass for the correlation at the final pose
		}
	}
}

// solve3 solves the symmetric 3×3 system H·x = b, H packed as
// h00 h01 h02 h11 h12 h22.
func solve3(h [6]float64, b [3]float64) ([3]float64, bool) {
	a00, a01, a02, a11, a12, a22 := h[0], h[1], h[2], h[3], h[4], h[5]
	c00 := a11*a22 - a12*a12
	c01 := a02*a12 - a01*a22
	c02 := a01*a12 - a02*a11
	det := a00*c00 + a01*c01 + a02*c02
	if math.Abs(det) < 1e-18 {
		return [3]float64{}, false
	}
	c11 := a00*a22 - a02*a02
	c12 := a01*a02 - a00*a12
	c22 := a00*a11 - a01*a01
	inv := 1 / det
	return [3]float64{
		(c00*b[0] + c01*b[1] + c02*b[2]) * inv,
		(c01*b[0] + c11*b[1] + c12*b[2]) * inv,
		(c02*b[0] + c12*b[1] + c22*b[2]) * inv,
	}, true
}
