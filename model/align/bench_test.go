package align

import (
	"fmt"
	"image"
	"testing"
)

// benchRegistrar is a registrar to the rigid reference of a w×h part
// (synthetic, see scene).
func benchRegistrar(b testing.TB, w, h int) *Registrar {
	ref := scene(w, h, Transform{}, 1)
	bl, _ := NewBuilder(Rigid)
	bl.Add(ref)
	bl.Add(ref)
	r, _, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	return NewRegistrar(r)
}

// benchmarkRegister registers a frame turned by angle (radians) and
// shifted, the search reaching ±maxDeg degrees.
func benchmarkRegister(b *testing.B, w, h int, maxDeg, angle float64) {
	g := benchRegistrar(b, w, h)
	g.SetMaxAngle(maxDeg)
	frame := scene(w, h, Transform{Angle: angle, DX: float64(w) * 0.05, DY: -float64(h) * 0.04}, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := g.Register(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegisterYUYV registers a V4L2 camera's packed YUYV frames
// (studio range), as the daemon receives them.
func BenchmarkRegisterYUYV(b *testing.B) {
	for _, sz := range [][2]int{{640, 480}, {1280, 720}} {
		w, h := sz[0], sz[1]
		b.Run(fmt.Sprintf("%dx%d", w, h), func(b *testing.B) {
			g := benchRegistrar(b, w, h)
			rgba := scene(w, h, Transform{Angle: 0.06, DX: float64(w) * 0.05, DY: -float64(h) * 0.04}, 1)
			f := &yuyvFrame{pix: make([]byte, 2*w*h), stride: 2 * w, rect: rgba.Rect}
			for y := range h {
				for x := range w {
					f.pix[y*2*w+2*x] = uint8(16 + int(rgba.Pix[rgba.PixOffset(x, y)])*219/255)
					if x%2 == 0 {
						f.pix[y*2*w+2*x+1], f.pix[y*2*w+2*x+3] = 128, 128
					}
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := g.Register(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRegister640x480(b *testing.B)  { benchmarkRegister(b, 640, 480, 0, 0.06) }
func BenchmarkRegister1280x720(b *testing.B) { benchmarkRegister(b, 1280, 720, 0, 0.06) }

// Parts lying at any angle (max angle 180°, 12 start angles), the frame
// turned by 100°.
func BenchmarkRegisterAnyAngle640x480(b *testing.B)  { benchmarkRegister(b, 640, 480, 180, 1.745) }
func BenchmarkRegisterAnyAngle1280x720(b *testing.B) { benchmarkRegister(b, 1280, 720, 180, 1.745) }

// benchmarkWarpBack warps an anomaly map drawn on the view back to the
// frame as the detector does (step=knots: the map is drawn at the
// backbone's 224 pixels on its short side, blurred by 4 of them, and
// sampled a quarter of the blur apart in the frame), beside the warp of
// every pixel (step=1), the baseline; workers=2 shares the rows between
// two goroutines.
func benchmarkWarpBack(b *testing.B, w, h int) {
	scale := float64(min(w, h)) / 224
	vw, vh := ViewSize(w, h, scale)
	view := make([]float32, vw*vh)
	dst := make([]float32, w*h)
	tr := Transform{Angle: 0.06, DX: 10}
	knots := StepFor(4 * scale)
	for _, c := range []struct{ step, workers int }{{1, 1}, {knots, 1}, {knots, 2}} {
		name := "step=1"
		if c.step != 1 {
			name = fmt.Sprintf("step=knots/%d", c.step)
		}
		if c.workers > 1 {
			name += fmt.Sprintf("/workers=%d", c.workers)
		}
		b.Run(name, func(b *testing.B) {
			wp := Warper{Workers: c.workers}
			defer wp.Close()
			b.ReportAllocs()
			for range b.N {
				dst, _ = wp.WarpBack(dst, w, h, view, vw, vh, tr, c.step)
			}
		})
	}
}

func BenchmarkWarpBack640x480(b *testing.B)  { benchmarkWarpBack(b, 640, 480) }
func BenchmarkWarpBack1280x720(b *testing.B) { benchmarkWarpBack(b, 1280, 720) }

// hidden hides a frame's type: Apply converts it whole first (image/draw),
// the path every frame took before its layout was read in place.
type hidden struct{ image.Image }

// BenchmarkWarpFrames warps the frame types cameras deliver (RGBA, JPEG's
// Y'CbCr 4:2:0, V4L2's packed YUYV, to a 4:2:2 view or, yuyv-to-420, to
// the 4:2:0 view a 224-pixel input gets; gray) at camera sizes into the
// 448×448 view of a frame squashed onto a 224-pixel input, by one
// goroutine or, workers=2, two sharing its rows; the
// converted=… runs are the same frames converted whole first, this run's
// baseline.
func BenchmarkWarpFrames(b *testing.B) {
	for _, sz := range [][2]int{{640, 480}, {1280, 720}} {
		w, h := sz[0], sz[1]
		rgba := scene(w, h, Transform{Angle: 0.06, DX: 10}, 1)
		ycc := image.NewYCbCr(rgba.Rect, image.YCbCrSubsampleRatio420)
		for y := range h {
			for x := range w {
				ycc.Y[ycc.YOffset(x, y)] = rgba.Pix[rgba.PixOffset(x, y)]
				ycc.Cb[ycc.COffset(x, y)], ycc.Cr[ycc.COffset(x, y)] = 120, 136
			}
		}
		yuyv := &yuyvFrame{pix: make([]byte, 2*w*h), stride: 2 * w, rect: rgba.Rect}
		for y := range h {
			for x := range w {
				yuyv.pix[y*2*w+2*x] = rgba.Pix[rgba.PixOffset(x, y)]
				if x%2 == 0 {
					yuyv.pix[y*2*w+2*x+1], yuyv.pix[y*2*w+2*x+3] = 120, 136
				}
			}
		}
		gray := image.NewGray(rgba.Rect)
		for i := range gray.Pix {
			gray.Pix[i] = rgba.Pix[4*i]
		}
		// The view of a frame squashed onto a 224-pixel input.
		view := image.Pt(448, 448)
		tr := Transform{Angle: 0.06, DX: 10}
		for _, c := range []struct {
			name    string
			img     image.Image
			side    int // the warper's InputSide
			workers int
		}{{"gray", gray, 0, 1}, {"gray/workers=2", gray, 0, 2}, {"rgba", rgba, 0, 1}, {"ycbcr420", ycc, 0, 1},
			{"yuyv", yuyv, 0, 1}, {"yuyv-to-420", yuyv, 224, 1}, {"yuyv-to-420/workers=2", yuyv, 224, 2},
			{"converted=ycbcr420", hidden{ycc}, 0, 1}, {"converted=yuyv", hidden{yuyv}, 0, 1}} {
			b.Run(fmt.Sprintf("%s/%dx%d", c.name, w, h), func(b *testing.B) {
				wp := Warper{InputSide: c.side, Workers: c.workers}
				defer wp.Close()
				wp.Apply(c.img, tr, view)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					wp.Apply(c.img, tr, view)
				}
			})
		}
	}
}
