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
	// inner is the pixels used: all but a one-pixel border, where the
	// gradient would be one-sided.
	n int
}

// cx, cy is the centre of the view in the level's continuous coordinates.
func newTmplLevel(raw *Gray32, cx, cy float64) *tmplLevel {
	w, h := raw.W, raw.H
	t := &tmplLevel{cx: cx, cy: cy}
	t.g.resize(w, h)
	var s, ss float64
	for _, v := range raw.Pix {
		s += float64(v)
		ss += float64(v) * float64(v)
	}
	n := float64(len(raw.Pix))
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
			t.n++
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

// refine runs inverse-compositional Gauss–Newton on the rigid pose (or the
// translation alone) of image img against template t, starting from p,
// for at most iters steps; (cix, ciy) is the image's centre. The image's intensities over the overlap are
// normalized to the template's mean and spread at every step.
func refine(t *tmplLevel, img *Gray32, cix, ciy float64, p pose, rigid bool, iters int) lkResult {
	w, h := t.g.W, t.g.H
	maxX, maxY := float32(img.W)-0.5, float32(img.H)-0.5
	var res lkResult
	for it := 0; ; it++ {
		// Sums over the overlap: image, image², template, template²,
		// image·template, SD·image, SD·template, SD, SDᵀSD.
		var n, si, sii, stt, st, sit float64
		var sdi, sdt, sd [3]float64
		var hs [6]float64
		c, s := math.Cos(p.theta), math.Sin(p.theta)
		fc, fs := float32(c), float32(s)
		for y := 1; y < h-1; y++ {
			uy := float64(y) + 0.5 - t.cy
			ux := 1.5 - t.cx
			x0 := float32(c*ux - s*uy + cix + p.tx)
			y0 := float32(s*ux + c*uy + ciy + p.ty)
			var rn, rsi, rsii, rstt, rst, rsit float32
			var rsdi, rsdt, rsd [3]float32
			var rh [6]float32
			for x := 1; x < w-1; x, x0, y0 = x+1, x0+fc, y0+fs {
				if !(x0 >= 0.5 && y0 >= 0.5 && x0 <= maxX && y0 <= maxY) {
					continue
				}
				// Bilinear sample of the image at (x0, y0).
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
				j := y*w + x
				tv := t.g.Pix[j]
				s0, s1, s2 := t.sd[0][j], t.sd[1][j], t.sd[2][j]
				rn++
				rsi += v
				rsii += v * v
				rstt += tv * tv
				rst += tv
				rsit += v * tv
				rsdi[0] += s0 * v
				rsdi[1] += s1 * v
				rsdi[2] += s2 * v
				rsdt[0] += s0 * tv
				rsdt[1] += s1 * tv
				rsdt[2] += s2 * tv
				rsd[0] += s0
				rsd[1] += s1
				rsd[2] += s2
				rh[0] += s0 * s0
				rh[1] += s0 * s1
				rh[2] += s0 * s2
				rh[3] += s1 * s1
				rh[4] += s1 * s2
				rh[5] += s2 * s2
			}
			// Rows are summed in float32, the image in float64.
			n += float64(rn)
			si += float64(rsi)
			sii += float64(rsii)
			stt += float64(rstt)
			st += float64(rst)
			sit += float64(rsit)
			for k := range 3 {
				sdi[k] += float64(rsdi[k])
				sdt[k] += float64(rsdt[k])
				sd[k] += float64(rsd[k])
			}
			for k := range hs {
				hs[k] += float64(rh[k])
			}
		}
		res.p, res.iters = p, it
		res.overlap = n / float64(max(t.n, 1))
		if res.overlap < minOverlap || n < 16 {
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
		// Error image e = (I−μI)/σI − (T−μT)/σT, projected on the SD images.
		var b [3]float64
		for k := range 3 {
			b[k] = (sdi[k]-mi*sd[k])/si0 - (sdt[k]-mt*sd[k])/st0
		}
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
		// Converged: the increment moves no template pixel by 0.01 pixel.
		r := math.Hypot(float64(w), float64(h)) / 2
		if math.Abs(d[0])*r < 0.01 && math.Hypot(d[1], d[2]) < 0.01 {
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
