package cli

import (
	"context"
	"fmt"
	"image"
	"io"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/modeltest"
)

// realFrames encodes n frames of size from the data set name (its good
// images tiled at their own resolution), or from the synthetic scene when
// name is "synthetic" or the data set is absent, as a USB camera sends
// them: 4:2:2 JPEG at quality 85 from libjpeg-turbo, without Huffman
// tables.
func realFrames(tb testing.TB, name string, size image.Point, n int) (string, [][]byte) {
	tb.Helper()
	o := encodeOptions{Size: size, Frames: n, Quality: 85, Subsampling: image.YCbCrSubsampleRatio422, Seed: 3}
	if name != "synthetic" {
		dir, ok := modeltest.FindDataSet(tb, name)
		if !ok {
			return "", nil
		}
		o.Data = dir
	}
	if !turboBuild() {
		o.Subsampling = image.YCbCrSubsampleRatio420 // what image/jpeg writes
	}
	frames, err := encodeFrames(context.Background(), o, capture.FormatMJPEG)
	if err != nil {
		tb.Fatal(err)
	}
	return name, frames
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// turboBuild says whether this build decodes with libjpeg-turbo.
func turboBuild() bool { return strings.HasPrefix(capture.JPEGDecoderName(), "libjpeg-turbo") }

// cameraPath is a camera of the fake V4L2 device delivering frames through
// the real Camera and Transform, as the daemon's pipeline takes them.
type cameraPath struct {
	fake *capture.FakeCamera
	src  capture.Source
	f    capture.Frame
}

func newCameraPath(tb testing.TB, frames [][]byte, size image.Point, t capture.TransformOptions) *cameraPath {
	tb.Helper()
	fake := capture.NewFakeCamera()
	fake.Offer(capture.FormatMJPEG, size.X, size.Y, 30)
	cam, err := capture.NewCamera(capture.CameraOptions{Device: "/dev/video-test", Formats: []capture.FourCC{capture.FormatMJPEG},
		Width: size.X, Height: size.Y, FrameTimeout: 200 * time.Millisecond, Open: fake.Open, Log: quietLog()})
	if err != nil {
		tb.Fatal(err)
	}
	src, err := capture.NewTransform(cam, t)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { src.Close() })
	c := &cameraPath{fake: fake, src: src}
	for range 10 { // open and stream: frames before that are lost
		fake.Push(frames[0])
		if err = src.Next(context.Background(), &c.f); err == nil {
			return c
		}
	}
	tb.Fatalf("camera did not start: %v", err)
	return nil
}

// next captures frame and returns it as inspection sees it.
func (c *cameraPath) next(tb testing.TB, frame []byte, need capture.NeedFunc) *capture.Frame {
	c.fake.Push(frame)
	c.f.Need = need
	if err := c.src.Next(context.Background(), &c.f); err != nil {
		tb.Fatal(err)
	}
	return &c.f
}

// beforePath is the camera path as it was: image/jpeg at full resolution,
// converted to RGBA, the region of interest copied, then the reference
// preprocess (standardizing the full-resolution copy).
type beforePath struct {
	dec  capture.MJPEGDecoder
	img  image.Image
	flat image.Image
	view roiView
}

func (p *beforePath) input(tb testing.TB, bb *backbone.Backbone, frame []byte, std *backbone.Standardizer) {
	p.decode(tb, frame)
	if _, err := bb.SetInputReference(p.flat, std); err != nil {
		tb.Fatal(err)
	}
}

// decode makes p.flat, the region at full resolution.
func (p *beforePath) decode(tb testing.TB, frame []byte) {
	var err error
	if p.img, err = p.dec.Decode(p.img, frame, capture.ColorRGB); err != nil {
		tb.Fatal(err)
	}
	p.flat = capture.Flatten(p.flat, p.view.view(p.img))
}

// mapped is p.flat with ph applied pixel by pixel, rounded, as
// Standardizer.Apply applies its own statistics.
func (p *beforePath) mapped(ph backbone.Photometric) image.Image {
	m := p.flat.(*image.RGBA)
	out := image.NewRGBA(m.Rect)
	var lut [256]uint8
	for v := range lut {
		lut[v] = uint8(min(max(float64(v)*float64(ph.Gain)+float64(ph.Offset)+0.5, 0), 255))
	}
	for i, v := range m.Pix {
		out.Pix[i] = lut[v]
	}
	return out
}

// diffs are the mean and 99th percentile of absolute differences, in
// levels.
func diffs(a, b []byte) (mean, p99 float64) {
	d := make([]int, len(a))
	sum := 0
	for i := range a {
		v := int(a[i]) - int(b[i])
		d[i] = max(v, -v)
		sum += d[i]
	}
	slices.Sort(d)
	return float64(sum) / float64(len(d)), float64(d[len(d)*99/100])
}

// The camera path (libjpeg-turbo reducing in the DCT domain, the region a
// view, the fused preprocess with statistics from a subsampled grid) gives
// the backbone the input today's path gave it, on real frames of every data
// set and the synthetic scene, at 1280×720 and 1920×1080, for the resize
// modes, with and without standardization, a region of interest and a
// rotation.
func TestCameraPathMatchesBefore(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes and preprocesses some hundred real frames both ways")
	}
	type set struct {
		name   string
		frames [][]byte
		size   image.Point
	}
	var sets []set
	for _, size := range []image.Point{{1280, 720}, {1920, 1080}} {
		for _, name := range []string{"transistor", "screw", "magnetic_tile", "kolektorsdd", "synthetic"} {
			if n, frames := realFrames(t, name, size, 2); frames != nil {
				sets = append(sets, set{n, frames, size})
			}
		}
	}
	rois := []capture.TransformOptions{{}, {ROI: image.Rect(202, 61, 1002, 661), Rotate: 90}}
	for _, mode := range []backbone.ResizeMode{backbone.ResizeFit, backbone.ResizeSquash} {
		bb, err := backbone.Open(backbone.Options{Path: modeltest.BackbonePath(t), Threads: 1, Preprocess: backbone.Preprocess{Resize: mode}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sets {
			for _, t0 := range rois {
				cam := newCameraPath(t, s.frames, s.size, t0)
				before := &beforePath{dec: capture.MJPEGDecoder{Std: true}, view: roiView{opts: t0}}
				for _, standardize := range []bool{false, true} {
					var worstMean, worstP99, gainDev float64
					var gain float32
					reduced := 0
					for _, frame := range s.frames {
						f := cam.next(t, frame, bb.SourceNeed)
						if f.Native != (image.Point{}) {
							reduced = (f.Native.X + f.Image.Bounds().Dx()/2) / f.Image.Bounds().Dx()
						}
						var ph backbone.Photometric
						var std backbone.Standardizer
						if standardize {
							ph = std.Measure(f.Image)
							gain = max(gain, ph.Gain)
						}
						if _, err := bb.SetInputWith(f.Image, ph); err != nil {
							t.Fatal(err)
						}
						now := append([]byte(nil), bb.RawInput()...)
						before.decode(t, frame)
						img := before.flat
						if standardize {
							// The same map, applied to the full-resolution
							// copy as Standardizer.Apply applies its own:
							// this compares the decode, the region and the
							// resampling. Where the statistics come from is
							// reported: a reduced frame has less fine detail.
							img = before.mapped(ph)
							full := std.Measure(before.flat)
							gainDev = max(gainDev, math.Abs(float64(ph.Gain/full.Gain)-1))
						}
						if _, err := bb.SetInputReference(img, nil); err != nil {
							t.Fatal(err)
						}
						mean, p99 := diffs(now, bb.RawInput())
						worstMean, worstP99 = max(worstMean, mean), max(worstP99, p99)
					}
					name := fmt.Sprintf("%s %dx%d %s roi=%v standardize=%v (decoded at 1/%d)", s.name, s.size.X, s.size.Y, mode,
						t0.ROI != image.Rectangle{}, standardize, max(reduced, 1))
					t.Logf("%s: mean %.2f, p99 %.0f levels; standardization gain %.1f%% from the full-resolution frame's",
						name, worstMean, worstP99, 100*gainDev)
					// The DCT-domain reduction averages before the triangle
					// filter does, the chroma is resampled from its own
					// plane: about a level on average, a few at edges.
					// Standardization multiplies differences by its gain,
					// and clips after resampling (a dark background
					// mapped below 0 averages with its edge instead of
					// as 0).
					limMean, limP99 := 1.2, 6.0
					if standardize {
						g := max(1, float64(gain))
						limMean, limP99 = limMean*g, 8*g
					}
					if worstMean > limMean || worstP99 > limP99 {
						t.Errorf("%s: the input differs from today's path by %.2f levels on average, %.0f at the 99th percentile",
							name, worstMean, worstP99)
					}
				}
			}
		}
		bb.Close()
	}
}

// BenchmarkCameraToTensor is a camera frame to the backbone's input tensor,
// 1280×720 and 1920×1080 MJPEG (real frames of the transistor data set,
// or the synthetic scene without it; 4:2:2, quality 85, no Huffman tables)
// to 224², squashed (the whole input) and fitted (the default): the camera
// path (libjpeg-turbo reducing in the DCT domain, the fused preprocess,
// standardized) against the path before it (image/jpeg at full
// resolution, RGBA, the reference preprocess standardizing the copy) in
// the same run. cpu-ms/frame is the process's CPU time, which the
// machine's other jobs change less than the wall time.
func BenchmarkCameraToTensor(b *testing.B) {
	for _, size := range []image.Point{{1280, 720}, {1920, 1080}} {
		name, frames := realFrames(b, "transistor", size, 8)
		if frames == nil {
			name, frames = realFrames(b, "synthetic", size, 8)
		}
		for _, mode := range []backbone.ResizeMode{backbone.ResizeSquash, backbone.ResizeFit} {
			bb, err := backbone.Open(backbone.Options{Path: modeltest.BackbonePath(b), Threads: 1, Preprocess: backbone.Preprocess{Resize: mode}})
			if err != nil {
				b.Fatal(err)
			}
			std := &backbone.Standardizer{}
			prefix := fmt.Sprintf("%dx%d-%s-to-224-%s", size.X, size.Y, name, mode)
			b.Run(prefix+"/before-imagejpeg-rgba-reference", func(b *testing.B) {
				p := &beforePath{dec: capture.MJPEGDecoder{Std: true}}
				p.input(b, bb, frames[0], std)
				runFrames(b, func(i int) { p.input(b, bb, frames[i%len(frames)], std) })
			})
			b.Run(prefix+"/camera-turbo-fused", func(b *testing.B) {
				cam := newCameraPath(b, frames, size, capture.TransformOptions{})
				need := bb.SourceNeed // bound once, as the pipeline does
				step := func(i int) {
					f := cam.next(b, frames[i%len(frames)], need)
					if _, err := bb.SetInputWith(f.Image, std.Measure(f.Image)); err != nil {
						b.Fatal(err)
					}
				}
				step(0)
				runFrames(b, step)
			})
			bb.Close()
		}
	}
}

// runFrames runs step b.N times and reports wall and CPU milliseconds
// per frame (the goroutine is locked to its thread; the process clock
// counts every thread, so a stray GC counts too).
func runFrames(b *testing.B, step func(i int)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	c0 := processCPU()
	for i := 0; i < b.N; i++ {
		step(i)
	}
	cpu := processCPU() - c0
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/frame")
	b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/frame")
}
