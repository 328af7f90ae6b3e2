package align

import (
	"image"
	"image/color"
	"math"
)

// Gray32 is a single-channel float32 image, row major, values 0..255.
type Gray32 struct {
	W, H int
	Pix  []float32
}

// resize sets the image's size, reusing its buffer.
func (g *Gray32) resize(w, h int) {
	g.W, g.H = w, h
	if cap(g.Pix) < w*h {
		g.Pix = make([]float32, w*h)
	}
	g.Pix = g.Pix[:w*h]
}

// thumbGeometry is the size of a frame's thumbnail whose long side is long
// pixels, and the scale f from frame pixels to thumbnail pixels (one for
// both axes, so that rotations stay rotations).
func thumbGeometry(w, h, long int) (tw, th int, f float64) {
	f = float64(long) / float64(max(w, h))
	if f > 1 {
		f = 1 // never upsample: a small frame is its own thumbnail
	}
	tw = max(1, int(math.Round(float64(w)*f)))
	th = max(1, int(math.Round(float64(h)*f)))
	return tw, th, f
}

// maxSamples bounds the samples averaged per thumbnail pixel and axis: a
// 1280-pixel frame on a 96-pixel thumbnail has 13×13 pixels per cell, of
// which every fourth row and column are read. The average stays smooth
// enough for registration at a tenth of the cost of reading every pixel.
const maxSamples = 4

// thumbPlan is the sampling of a frame geometry: the columns read and
// the cell each falls in, the rows read and their cell.
type thumbPlan struct {
	w, h, tw, th int
	xs, xbin     []int32
	ys, ybin     []int32
	inv          []float32 // 1 / (256 · samples per cell)
	acc          []uint32  // sums per cell
}

func (p *thumbPlan) build(w, h, tw, th int, f float64) {
	p.w, p.h, p.tw, p.th = w, h, tw, th
	axis := func(n, cells int, pos, bin []int32) ([]int32, []int32, []int) {
		pos, bin = pos[:0], bin[:0]
		count := make([]int, cells)
		for c := 0; c < cells; c++ {
			lo := min(n-1, int(math.Round(float64(c)/f)))
			hi := max(lo+1, min(n, int(math.Round(float64(c+1)/f))))
			if c == cells-1 {
				hi = n
			}
			step := max(1, (hi-lo+maxSamples-1)/maxSamples)
			// Samples centred in the cell.
			for x := lo + (hi-lo-1-((hi-lo-1)/step)*step)/2; x < hi; x += step {
				pos = append(pos, int32(x))
				bin = append(bin, int32(c))
				count[c]++
			}
		}
		return pos, bin, count
	}
	var cx, cy []int
	p.xs, p.xbin, cx = axis(w, tw, p.xs, p.xbin)
	p.ys, p.ybin, cy = axis(h, th, p.ys, p.ybin)
	p.inv = make([]float32, tw*th)
	for j := 0; j < th; j++ {
		for i := 0; i < tw; i++ {
			p.inv[j*tw+i] = 1 / float32(256*max(cx[i]*cy[j], 1))
		}
	}
	p.acc = make([]uint32, tw*th)
}

// thumbnail writes the luminance of img averaged over each cell of a
// tw×th grid (f thumbnail pixels per frame pixel) into dst. Gray, RGBA,
// NRGBA, YCbCr and packed YUYV frames are read directly; others through
// their color model (slower). plan is rebuilt when the geometry changes.
func thumbnail(dst *Gray32, img image.Image, tw, th int, f float64, plan *thumbPlan) {
	dst.resize(tw, th)
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if plan.w != w || plan.h != h || plan.tw != tw || plan.th != th {
		plan.build(w, h, tw, th, f)
	}
	acc := plan.acc
	clear(acc)
	xs, xbin := plan.xs, plan.xbin
	// A camera's packed YUYV frame: its luma read in place, every second
	// byte (through its color model it cost a conversion to RGB per
	// sample).
	var yuyv []byte
	var yuyvStride int
	studio := false
	if im, ok := img.(packedYUYV); ok {
		pix, stride, r, full := im.PackedYUYV()
		if r == b && r.Min.X >= 0 && r.Min.Y >= 0 {
			yuyv, yuyvStride, studio = pix[2*(r.Min.X&1):], stride, !full
		}
	}
	for k, y := range plan.ys {
		row := acc[int(plan.ybin[k])*tw : int(plan.ybin[k]+1)*tw]
		sy := int(y) + b.Min.Y
		if yuyv != nil {
			lumaRow(row, yuyv[int(y)*yuyvStride:], xs, xbin)
			continue
		}
		switch im := img.(type) {
		case *image.Gray:
			grayRow(row, im.Pix[(sy-im.Rect.Min.Y)*im.Stride+b.Min.X-im.Rect.Min.X:], xs, xbin)
		case *image.YCbCr:
			grayRow(row, im.Y[(sy-im.Rect.Min.Y)*im.YStride+b.Min.X-im.Rect.Min.X:], xs, xbin)
		case *image.RGBA:
			rgbaRow(row, im.Pix[(sy-im.Rect.Min.Y)*im.Stride+4*(b.Min.X-im.Rect.Min.X):], xs, xbin)
		case *image.NRGBA:
			rgbaRow(row, im.Pix[(sy-im.Rect.Min.Y)*im.Stride+4*(b.Min.X-im.Rect.Min.X):], xs, xbin)
		default:
			for i, x := range xs {
				row[xbin[i]] += 256 * uint32(color.GrayModel.Convert(img.At(int(x)+b.Min.X, sy)).(color.Gray).Y)
			}
		}
	}
	for i, v := range acc {
		dst.Pix[i] = float32(v) * plan.inv[i]
	}
	if studio {
		// Studio-range luma (16..235) to the full range the other frame
		// types give, superwhites clipped: a reference built from files
		// and frames from the camera then share one scale.
		for i, v := range dst.Pix {
			dst.Pix[i] = min(max((v-16)*(255.0/219), 0), 255)
		}
	}
}

// lumaRow adds the luma of the sampled pixels of one packed YUYV row (luma
// every second byte) to their cells, in 1/256 units.
func lumaRow(row []uint32, src []uint8, xs, xbin []int32) {
	for i, x := range xs {
		row[xbin[i]] += uint32(src[2*x]) << 8
	}
}

// grayRow adds the sampled pixels of one 8-bit row to their cells, in
// 1/256 units.
func grayRow(row []uint32, src []uint8, xs, xbin []int32) {
	for i, x := range xs {
		row[xbin[i]] += uint32(src[x]) << 8
	}
}

// rgbaRow adds the luminance of the sampled pixels of one RGBA row to
// their cells, in 1/256 units (ITU-R BT.601 weights in 8.8 fixed point).
func rgbaRow(row []uint32, src []uint8, xs, xbin []int32) {
	for i, x := range xs {
		p := src[4*x : 4*x+3 : 4*x+3]
		row[xbin[i]] += 77*uint32(p[0]) + 150*uint32(p[1]) + 29*uint32(p[2])
	}
}

// halve writes src downsampled by two (2×2 box average; an odd last row
// or column is averaged with itself) into dst.
func halve(dst, src *Gray32) {
	w, h := max(1, (src.W+1)/2), max(1, (src.H+1)/2)
	dst.resize(w, h)
	for y := 0; y < h; y++ {
		r0 := src.Pix[min(2*y, src.H-1)*src.W:]
		r1 := src.Pix[min(2*y+1, src.H-1)*src.W:]
		out := dst.Pix[y*w : (y+1)*w]
		for x := range out {
			a, b := 2*x, min(2*x+1, src.W-1)
			out[x] = 0.25 * (r0[a] + r0[b] + r1[a] + r1[b])
		}
	}
}

// sample returns g bilinearly interpolated at continuous coordinates
// (x, y) (pixel centres at +0.5) and whether the point lies inside the
// image's centres.
func (g *Gray32) sample(x, y float32) (float32, bool) {
	x -= 0.5
	y -= 0.5
	if !(x >= 0 && y >= 0 && x <= float32(g.W-1) && y <= float32(g.H-1)) {
		return 0, false
	}
	ix, iy := int(x), int(y)
	fx, fy := x-float32(ix), y-float32(iy)
	i := iy*g.W + ix
	dx, dy := 1, g.W
	if ix == g.W-1 {
		dx = 0
	}
	if iy == g.H-1 {
		dy = 0
	}
	p := g.Pix
	top := p[i] + fx*(p[i+dx]-p[i])
	bot := p[i+dy] + fx*(p[i+dy+dx]-p[i+dy])
	return top + fy*(bot-top), true
}
