package model

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"testing"
	"time"

	"github.com/inspectd/inspectd/model/align"
	"github.com/inspectd/inspectd/model/backbone"
)

// BenchmarkInspectRigid inspects a turned and shifted frame with a model
// fitted with rigid registration (and with registration at any angle,
// mode=turn: 12 start angles), at camera sizes, and reports the
// registration and warp into the reference view (align-ms) beside the
// backbone's time in the same inspections (backbone-ms) and their ratio;
// map-ms includes warping the map back to the frame.
//
// The same frame placed where the model expects it, inspected without
// registration (mode=off) and with it (pose=placed), is this run's
// baseline: what registration costs a good frame is the difference of the
// two inspections' times (ns/op). A turned and shifted frame is judged
// anomalous by this small model, and the regions of its mask cost the map
// stage more; the registered pose of a placed frame is still estimated in
// full. format=yuyv inspects a V4L2 camera's packed YUYV frames (studio
// range) instead of gray ones. cpu-ms is the process's CPU time per
// inspection, every thread: the backbone's interpreter runs on two cores,
// registration and the warps on one, so the ratio of their CPU times
// (cpu-align/backbone) is the share of the machine registration takes.
func BenchmarkInspectRigid(b *testing.B) {
	for _, yuyv := range []bool{false, true} {
		for _, sz := range [][2]int{{640, 480}, {1280, 720}} {
			benchmarkInspectAligned(b, align.Off, sz[0], sz[1], yuyv, true)
			benchmarkInspectAligned(b, align.Rigid, sz[0], sz[1], yuyv, true)
			benchmarkInspectAligned(b, align.Rigid, sz[0], sz[1], yuyv, false)
			if !yuyv {
				benchmarkInspectAligned(b, align.Turn, sz[0], sz[1], yuyv, false)
			}
		}
	}
}

// packedYUYV is a gray frame as a V4L2 camera sends it: packed YUYV
// (capture.YUYV's layout), studio range, neutral chroma.
type packedYUYV struct {
	pix  []byte
	rect image.Rectangle
}

func toYUYV(g *image.Gray) *packedYUYV {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	f := &packedYUYV{pix: make([]byte, 2*w*h), rect: g.Rect}
	for y := range h {
		for x := range w {
			f.pix[y*2*w+2*x] = uint8(16 + int(g.Pix[y*g.Stride+x])*219/255)
			f.pix[y*2*w+2*x+1] = 128
		}
	}
	return f
}

func (f *packedYUYV) ColorModel() color.Model { return color.YCbCrModel }
func (f *packedYUYV) Bounds() image.Rectangle { return f.rect }
func (f *packedYUYV) At(x, y int) color.Color {
	v := f.pix[(y-f.rect.Min.Y)*2*f.rect.Dx()+2*(x-f.rect.Min.X)]
	return color.Gray{uint8(min(max((int(v)-16)*255/219, 0), 255))}
}
func (f *packedYUYV) PackedYUYV() ([]byte, int, image.Rectangle, bool) {
	return f.pix, 2 * f.rect.Dx(), f.rect, false
}

func benchmarkInspectAligned(b *testing.B, mode align.Mode, w, h int, yuyv, placed bool) {
	name := fmt.Sprintf("%dx%d", w, h)
	if mode != align.Rigid {
		name = fmt.Sprintf("mode=%s/%s", mode, name)
	}
	if placed && mode != align.Off {
		name = "pose=placed/" + name
	}
	if yuyv {
		name = "format=yuyv/" + name
	}
	frameOf := func(g *image.Gray) image.Image {
		if yuyv {
			return toYUYV(g)
		}
		return g
	}
	b.Run(name, func(b *testing.B) {
		var train grays
		for i := range 8 {
			f := float64(i)
			train = append(train, frameOf(plate(w, h, 2*f/7-1, 4*f/7-2, 2-4*f/7, -1, -1)))
		}
		opts := alignOptions(b, mode)
		// The backbone as the daemon runs it on this CPU (int8 on
		// XNNPACK; builtin kernels are several times slower).
		opts.Backbone.Optimize, opts.Backbone.XNNPACK = backbone.OptimizeInt8, true
		d, _, err := Fit(context.Background(), opts, train, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		frame := frameOf(plate(w, h, 3, float64(w)*0.02, -float64(h)*0.02, -1, -1))
		if placed {
			frame = frameOf(plate(w, h, 0, 0, 0, -1, -1))
		}
		d.SetCPUClock(processCPU)
		if _, err := d.Inspect(frame); err != nil { // the buffers of this frame size
			b.Fatal(err)
		}
		var al, pre, bb, mp, cpuAl, cpuBB time.Duration
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := processCPU()
		for range b.N {
			r, err := d.Inspect(frame)
			if err != nil {
				b.Fatal(err)
			}
			al += r.Timing.Align
			pre += r.Timing.Preprocess
			bb += r.Timing.Backbone
			mp += r.Timing.Map
			cpuAl += r.Timing.CPU.Align
			cpuBB += r.Timing.CPU.Backbone
		}
		cpu := processCPU() - cpu0
		n := float64(b.N)
		b.ReportMetric(al.Seconds()*1e3/n, "align-ms/op")
		b.ReportMetric(pre.Seconds()*1e3/n, "pre-ms/op")
		b.ReportMetric(bb.Seconds()*1e3/n, "backbone-ms/op")
		b.ReportMetric(mp.Seconds()*1e3/n, "map-ms/op")
		b.ReportMetric(al.Seconds()/bb.Seconds(), "align/backbone")
		// CPU time, every thread: the backbone's interpreter runs on two.
		b.ReportMetric(cpu.Seconds()*1e3/n, "cpu-ms/op")
		b.ReportMetric(cpuBB.Seconds()*1e3/n, "cpu-backbone-ms/op")
		if cpuBB > 0 {
			b.ReportMetric(cpuAl.Seconds()/cpuBB.Seconds(), "cpu-align/backbone")
		}
	})
}
