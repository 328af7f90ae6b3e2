package align

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// bilinearAt is the reference the fixed-point warp is held to: the source
// sampled at (sx, sy) (pixel-index coordinates) in float64, the edge
// replicated outside.
func bilinearAt(get func(x, y int) float64, w, h int, sx, sy float64) float64 {
	cl := func(v float64, n int) (int, int, float64) {
		if !(v > 0) {
			return 0, 0, 0
		}
		if v >= float64(n-1) {
			return n - 1, n - 1, 0
		}
		i := int(v)
		return i, i + 1, v - float64(i)
	}
	x0, x1, fx := cl(sx, w)
	y0, y1, fy := cl(sy, h)
	top := get(x0, y0) + fx*(get(x1, y0)-get(x0, y0))
	bot := get(x0, y1) + fx*(get(x1, y1)-get(x0, y1))
	return top + fy*(bot-top)
}

// noisyFrame is an RGBA frame of smooth gradients and hard edges (the
// worst case for the weights' rounding).
func noisyFrame(w, h int, rng *rand.Rand) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	for y := range h {
		for x := range w {
			if (x/7+y/5)%3 == 0 {
				o := img.PixOffset(x, y)
				img.Pix[o], img.Pix[o+1], img.Pix[o+2] = uint8(x), uint8(y), uint8(x+y)
			}
		}
	}
	return img
}

// TestWarpMatchesBilinear: the fixed-point warp of Gray and RGBA frames is
// the float64 bilinear sample of the frame at each view pixel's position
// within two levels, under poses that leave parts of the view outside the
// frame (edge replicated), turned up to a full turn, at the view scales the
// detector uses, on frames of odd sizes, sub-images and a 1280×720 frame
// (positions stepped along its long rows must not drift).
func TestWarpMatchesBilinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 2))
	var wp Warper
	for _, size := range [][3]int{{97, 61, 25}, {64, 64, 25}, {33, 120, 25}, {1280, 720, 3}} {
		w, h := size[0], size[1]
		big := noisyFrame(w+9, h+4, rng)
		rgba := big.SubImage(image.Rect(5, 3, 5+w, 3+h)).(*image.RGBA)
		gray := image.NewGray(image.Rect(2, 1, 2+w, 1+h))
		draw.Draw(gray, gray.Rect, rgba, rgba.Rect.Min, draw.Src)
		for range size[2] { // poses; a camera-size frame shows drift along long rows
			tr := Transform{Angle: (2*rng.Float64() - 1) * math.Pi, DX: (rng.Float64() - 0.5) * float64(w) / 2, DY: (rng.Float64() - 0.5) * float64(h) / 2}
			scale := 1 + rng.Float64()
			vw, vh := ViewSize(w, h, scale)
			m := tr.toFrame(w, h, vw, vh)
			gv := wp.Apply(gray, tr, viewOf(gray, scale)).(*image.Gray)
			worstG := 0.0
			for y := range vh {
				for x := range vw {
					sx, sy := m.apply(float64(x)+0.5, float64(y)+0.5)
					want := bilinearAt(func(i, j int) float64 { return float64(gray.GrayAt(gray.Rect.Min.X+i, gray.Rect.Min.Y+j).Y) }, w, h, sx-0.5, sy-0.5)
					worstG = max(worstG, math.Abs(float64(gv.Pix[y*gv.Stride+x])-want))
				}
			}
			cv := wp.Apply(rgba, tr, viewOf(rgba, scale)).(*image.RGBA)
			worstC := 0.0
			for y := range vh {
				for x := range vw {
					sx, sy := m.apply(float64(x)+0.5, float64(y)+0.5)
					for c := range 3 {
						get := func(i, j int) float64 {
							return float64(rgba.Pix[rgba.PixOffset(rgba.Rect.Min.X+i, rgba.Rect.Min.Y+j)+c])
						}
						want := bilinearAt(get, w, h, sx-0.5, sy-0.5)
						worstC = max(worstC, math.Abs(float64(cv.Pix[y*cv.Stride+4*x+c])-want))
					}
					if a := cv.Pix[y*cv.Stride+4*x+3]; a != 255 {
						t.Fatalf("view pixel (%d, %d) has alpha %d, want opaque", x, y, a)
					}
				}
			}
			if worstG > 2 || worstC > 2 {
				t.Errorf("%dx%d under %+v at scale %.2f: gray off by %.2f, RGBA by %.2f levels from float bilinear, want ≤ 2", w, h, tr, scale, worstG, worstC)
			}
		}
	}
}

// TestWithin: the span of positions inside a limit, against counting.
func TestWithin(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for range 20000 {
		n := rng.IntN(40)
		lim := rng.Int64N(30*fixOne) - fixOne
		p0 := rng.Int64N(80*fixOne) - 40*fixOne
		d := rng.Int64N(6*fixOne) - 3*fixOne
		switch rng.IntN(10) {
		case 0:
			d = 0
		case 1: // near the limits toFix allows
			p0, d = (rng.Int64N(2*fixLimit)-fixLimit)*fixOne, (rng.Int64N(2*fixLimit)-fixLimit)*fixOne/1024
		}
		lo, hi := within(0, n, p0, d, lim)
		if lo < 0 || hi > n || lo > hi {
			t.Fatalf("within(0, %d, %d, %d, %d) = [%d, %d): not inside [0, %d]", n, p0, d, lim, lo, hi, n)
		}
		for x := range n {
			p := p0 + int64(x)*d
			in := p >= 0 && p < lim
			if got := x >= lo && x < hi; got != in {
				t.Fatalf("within(0, %d, %d, %d, %d) = [%d, %d): x=%d at %d is inside=%v", n, p0, d, lim, lo, hi, x, p, in)
			}
		}
	}
}

// yuyvFrame is a packed YUYV frame as capture.YUYV lays it out (align
// cannot import capture): At converts like it, PackedYUYV exposes the
// samples.
type yuyvFrame struct {
	pix    []byte
	stride int
	rect   image.Rectangle
	full   bool
}

func (f *yuyvFrame) ColorModel() color.Model { return color.RGBAModel }
func (f *yuyvFrame) Bounds() image.Rectangle { return f.rect }
func (f *yuyvFrame) PackedYUYV() ([]byte, int, image.Rectangle, bool) {
	return f.pix, f.stride, f.rect, f.full
}

func (f *yuyvFrame) At(x, y int) color.Color {
	o := (y-f.rect.Min.Y)*f.stride + 4*(x/2-f.rect.Min.X/2)
	yy, u, v := float64(f.pix[o+2*(x&1)]), float64(f.pix[o+1])-128, float64(f.pix[o+3])-128
	if !f.full {
		yy = (yy - 16) * 255 / 219
		u, v = u*255/224, v*255/224
	}
	c := func(v float64) uint8 { return uint8(min(max(math.Round(v), 0), 255)) }
	return color.RGBA{c(yy + 1.402*v), c(yy - 0.344136*u - 0.714136*v), c(yy + 1.772*u), 255}
}

// sub is the frame's part inside r (r.Min.X may be odd: the pair that
// holds it starts one pixel before).
func (f *yuyvFrame) sub(r image.Rectangle) *yuyvFrame {
	o := (r.Min.Y-f.rect.Min.Y)*f.stride + 4*(r.Min.X/2-f.rect.Min.X/2)
	return &yuyvFrame{pix: f.pix[o:], stride: f.stride, rect: r, full: f.full}
}

// TestWarpYUYV: a packed YUYV frame (a V4L2 camera's, studio or full
// range, whole or a region starting at an odd column) is warped in place
// (to a 4:2:2 view, or 4:2:0 where its chroma keeps InputSide rows) to
// the same view as its RGB conversion, within the chroma
// interpolation's difference (the conversion takes each pair's chroma as
// it is, the view interpolates it at each 2×2 block's centre).
func TestWarpYUYV(t *testing.T) {
	const w, h = 66, 40
	rng := rand.New(rand.NewPCG(4, 4))
	pix := make([]byte, 2*w*h)
	for y := range h {
		for x := range w / 2 {
			o := y*2*w + 4*x
			pix[o], pix[o+2] = uint8(30+3*x+rng.IntN(5)), uint8(32+3*x+rng.IntN(5))
			pix[o+1], pix[o+3] = uint8(100+y), uint8(150-x)
		}
	}
	tr := Transform{Angle: 0.15, DX: 2.5, DY: -1.5}
	for _, c := range []struct {
		full  bool
		side  int // the warper's InputSide
		ratio image.YCbCrSubsampleRatio
	}{{false, 0, image.YCbCrSubsampleRatio422}, {true, 0, image.YCbCrSubsampleRatio422},
		{false, 12, image.YCbCrSubsampleRatio420}, {false, 16, image.YCbCrSubsampleRatio422}} {
		full := c.full
		whole := &yuyvFrame{pix: pix, stride: 2 * w, rect: image.Rect(0, 0, w, h), full: full}
		for _, f := range []*yuyvFrame{whole, whole.sub(image.Rect(3, 2, 61, 37))} {
			name := fmt.Sprintf("full=%v side=%d %v", full, c.side, f.rect)
			conv := image.NewRGBA(f.rect)
			draw.Draw(conv, conv.Rect, f, f.rect.Min, draw.Src)
			var want Warper
			got := Warper{InputSide: c.side}
			wi := want.Apply(conv, tr, viewOf(conv, 1.3)).(*image.RGBA)
			view := got.Apply(f, tr, viewOf(f, 1.3))
			planes, ok := view.(*image.YCbCr)
			if s, studio := view.(interface{ StudioYCbCr() *image.YCbCr }); studio {
				planes, ok = s.StudioYCbCr(), !full
			}
			// Views of 31 and 27 rows: 4:2:0 keeps 15 and 13 chroma rows.
			if !ok || planes.SubsampleRatio != c.ratio {
				t.Fatalf("%s: %T (%v), want a %v Y'CbCr view, studio range only for studio frames", name, view, planes.SubsampleRatio, c.ratio)
			}
			gi := toRGBA(view)
			if got.conv != nil {
				t.Errorf("%s: the frame was converted whole before warping, want it read in place", name)
			}
			worst, sum := 0, 0
			for i := range gi.Pix {
				d := abs(int(gi.Pix[i]) - int(wi.Pix[i]))
				worst, sum = max(worst, d), sum+d
			}
			if mean := float64(sum) / float64(len(gi.Pix)); worst > 6 || mean > 1 {
				t.Errorf("%s: differs from the warp of its RGB conversion by up to %d (mean %.2f), want ≤ 6 (mean ≤ 1)", name, worst, mean)
			}
		}
	}
}

// TestWarpYUYVBeyondRange: samples beyond studio range's nominal 16..235
// (luma) and 16..240 (chroma), which cameras do send (superwhites), keep
// their colour in the view: the view of a uniform frame has the colour
// capture.YUYV's conversion gives its samples, not the colour of samples
// clipped to the nominal range first.
func TestWarpYUYVBeyondRange(t *testing.T) {
	const w, h = 16, 12
	for _, c := range [][3]uint8{{250, 60, 128}, {16, 128, 250}, {10, 128, 200}, {255, 0, 255}, {240, 250, 5}, {3, 10, 20}, {128, 128, 128}} {
		for _, full := range []bool{false, true} {
			pix := make([]byte, 2*w*h)
			for i := 0; i < len(pix); i += 4 {
				pix[i], pix[i+1], pix[i+2], pix[i+3] = c[0], c[1], c[0], c[2]
			}
			f := &yuyvFrame{pix: pix, stride: 2 * w, rect: image.Rect(0, 0, w, h), full: full}
			var wp Warper
			view := toRGBA(wp.Apply(f, Transform{Angle: 0.05, DX: 0.5}, viewOf(f, 1)))
			want := color.RGBAModel.Convert(f.At(3, 3)).(color.RGBA)
			got := view.RGBAAt(w/2, h/2)
			if abs(int(got.R)-int(want.R)) > 2 || abs(int(got.G)-int(want.G)) > 2 || abs(int(got.B)-int(want.B)) > 2 {
				t.Errorf("Y'CbCr %v full=%v: view colour %v, want %v (capture.YUYV's conversion) within 2", c, full, got, want)
			}
		}
	}
}

// TestThumbnailYUYV: the registration's thumbnail of a packed YUYV frame
// (studio and full range, whole and from an odd column) is read in place
// and equals, within the RGB conversion's rounding, the thumbnail of the
// frame read through its colour model; and a frame registers to its own
// reference the same either way.
func TestThumbnailYUYV(t *testing.T) {
	const w, h = 330, 250
	for _, full := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(5, 5))
		pix := make([]byte, 2*w*h)
		for y := range h {
			for x := range w / 2 {
				o := y*2*w + 4*x
				pix[o], pix[o+2] = uint8(60+x/2+rng.IntN(9)), uint8(64+x/2+rng.IntN(9))
				pix[o+1], pix[o+3] = uint8(110+y/8), uint8(140-x/8)
			}
		}
		whole := &yuyvFrame{pix: pix, stride: 2 * w, rect: image.Rect(0, 0, w, h), full: full}
		for _, f := range []*yuyvFrame{whole, whole.sub(image.Rect(5, 3, 321, 247))} {
			name := fmt.Sprintf("full=%v %v", full, f.rect)
			b := f.Bounds()
			tw, th, k := thumbGeometry(b.Dx(), b.Dy(), Thumb)
			var got, want Gray32
			var p1, p2 thumbPlan
			thumbnail(&got, atless{f}, tw, th, k, &p1)
			thumbnail(&want, hidden{f}, tw, th, k, &p2)
			worst := 0.0
			for i := range got.Pix {
				worst = max(worst, math.Abs(float64(got.Pix[i]-want.Pix[i])))
			}
			if worst > 1.5 {
				t.Errorf("%s: thumbnail differs from the colour model's by up to %.2f levels, want ≤ 1.5", name, worst)
			}
		}
	}
	// Superwhites of a studio-range frame clip at 255, the top of a
	// reference template's range (NewReference refuses more).
	pix := make([]byte, 2*w*h)
	for i := range pix {
		pix[i] = 250
		if i%2 == 1 {
			pix[i] = 128
		}
	}
	var g Gray32
	var p thumbPlan
	tw, th, k := thumbGeometry(w, h, Thumb)
	thumbnail(&g, &yuyvFrame{pix: pix, stride: 2 * w, rect: image.Rect(0, 0, w, h)}, tw, th, k, &p)
	for i, v := range g.Pix {
		if v != 255 {
			t.Fatalf("superwhite frame: thumbnail pixel %d is %v, want 255", i, v)
		}
	}
}

// atless is a YUYV frame that cannot be read pixel by pixel: what reads
// it must read its bytes in place.
type atless struct{ *yuyvFrame }

func (atless) At(x, y int) color.Color { panic("At called: the frame was not read in place") }

// TestPlaneRowExact: a plane's row sampler (the packed fast path for
// planes of step 1, the general one for others) gives, bit for bit,
// what the per-pixel clamped sampler gives at every position, inside the
// plane and beyond its edges.
func TestPlaneRowExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 8))
	for k := range 400 {
		st := []int{1, 2, 4}[k%3]
		w, h := 2+rng.IntN(90), 2+rng.IntN(70)
		stride := st*w + rng.IntN(5)
		pix := make([]uint8, stride*h)
		for i := range pix {
			pix[i] = uint8(rng.IntN(256))
		}
		p := plane8{pix: pix, stride: stride, step: st, w: w, h: h}
		tr := Transform{Angle: (rng.Float64() - 0.5) * 4, DX: (rng.Float64() - 0.5) * float64(w), DY: (rng.Float64() - 0.5) * float64(h)}
		vw, vh := 1+rng.IntN(80), 1+rng.IntN(60)
		m := tr.toFrame(w, h, vw, vh)
		out := make([]uint8, vw)
		for y := range vh {
			r := rowFix(m, y, weightBias)
			p.row(r, out)
			for x, v := range out {
				if want := p.clamped(r.at(x)); v != want {
					t.Fatalf("case %d (step %d, %dx%d): view (%d,%d) = %d, want %d", k, st, w, h, x, y, v, want)
				}
			}
		}
	}
}

// viewOf is the size of img's view at scale (ViewSize).
func viewOf(img image.Image, scale float64) image.Point {
	b := img.Bounds()
	w, h := ViewSize(b.Dx(), b.Dy(), scale)
	return image.Pt(w, h)
}

// TestWarpWorkers: a view whose rows are shared among helper goroutines
// is the one the caller alone warps, bit for bit, for every frame type
// read in place and views of odd sizes (chroma rows cut unevenly), and a
// closed Warper's helpers are gone.
func TestWarpWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	w, h := 333, 251
	rgba := scene(w, h, Transform{Angle: 0.1, DX: 7}, 1)
	gray := image.NewGray(rgba.Rect)
	for i := range gray.Pix {
		gray.Pix[i] = rgba.Pix[4*i+1]
	}
	ycc := image.NewYCbCr(rgba.Rect, image.YCbCrSubsampleRatio420)
	for y := range h {
		for x := range w {
			ycc.Y[ycc.YOffset(x, y)] = rgba.Pix[rgba.PixOffset(x, y)]
			ycc.Cb[ycc.COffset(x, y)], ycc.Cr[ycc.COffset(x, y)] = uint8(x), uint8(y)
		}
	}
	yuyv := &yuyvFrame{pix: make([]byte, 2*(w+1)*h), stride: 2 * (w + 1), rect: image.Rect(0, 0, w, h)}
	for i := range yuyv.pix {
		yuyv.pix[i] = uint8(i * 7)
	}
	tr := Transform{Angle: -0.2, DX: -9, DY: 4}
	for _, c := range []struct {
		name string
		img  image.Image
		side int
	}{{"gray", gray, 0}, {"rgba", rgba, 0}, {"ycbcr420", ycc, 0}, {"yuyv", yuyv, 0}, {"yuyv-to-420", yuyv, 40}} {
		for _, view := range []image.Point{{w, h}, {101, 77}, {64, 3}, {5, 1}} {
			alone := Warper{InputSide: c.side}
			shared := Warper{InputSide: c.side, Workers: 3}
			want := toRGBA(alone.Apply(c.img, tr, view))
			got := toRGBA(shared.Apply(c.img, tr, view))
			if !bytes.Equal(got.Pix, want.Pix) {
				t.Errorf("%s, view %v: rows warped by 3 workers differ from one", c.name, view)
			}
			shared.Close()
		}
	}
	// The map back: knot rows and the rows between them shared.
	shared := Warper{Workers: 3}
	vw, vh := 120, 90
	amap := make([]float32, vw*vh)
	for i := range amap {
		amap[i] = float32(math.Sin(float64(i%vw)/9) + math.Cos(float64(i/vw)/7))
	}
	for _, step := range []int{1, 2, 3, 7} {
		for _, fh := range []int{1, 2, 251} {
			want, _ := WarpBack(nil, w, fh, amap, vw, vh, tr, step)
			got, err := shared.WarpBack(nil, w, fh, amap, vw, vh, tr, step)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("warp back to %dx%d, step %d: shared rows differ from one goroutine's (%v)", w, fh, step, err)
			}
		}
	}
	shared.Close()
	for range 100 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("%d goroutines after every Warper was closed, %d before", runtime.NumGoroutine(), before)
}
