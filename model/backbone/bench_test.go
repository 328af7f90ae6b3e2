package backbone

import (
	"image"
	"path/filepath"
	"testing"
	"time"

	"github.com/inspectd/inspectd/model/modeltest"
)

// BenchmarkPruning times the full model and the model pruned to the PaDiM
// taps on the same frames, interleaved so that machine noise hits both.
func BenchmarkPruning(b *testing.B) {
	img := loadPNG(b, filepath.Join(modeltest.GoTFLiteDir(b), "_example", "label_image", "peacock.png"))
	full := open(b, Options{NoPrune: true})
	pruned := open(b, Options{})
	for _, m := range []*Backbone{full, pruned} {
		if _, _, err := m.Extract(img); err != nil {
			b.Fatal(err)
		}
	}
	var tf, tp time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := time.Now()
		if err := full.Invoke(); err != nil {
			b.Fatal(err)
		}
		m := time.Now()
		if err := pruned.Invoke(); err != nil {
			b.Fatal(err)
		}
		tf += m.Sub(s)
		tp += time.Since(m)
	}
	b.ReportMetric(float64(tf.Microseconds())/1e3/float64(b.N), "full-ms/frame")
	b.ReportMetric(float64(tp.Microseconds())/1e3/float64(b.N), "pruned-ms/frame")
	b.ReportMetric(float64(tf)/float64(tp), "speedup")
	keep := pruned.Graph().Needed([]int{pruned.Taps()[0].Index, pruned.Taps()[1].Index, pruned.Taps()[2].Index})
	b.ReportMetric(float64(pruned.Graph().Operations(keep))/float64(pruned.Graph().Operations(nil)), "pruned-MAC-fraction")
}

// BenchmarkExtract is one whole frame through the Go code around the
// interpreter: preprocessing, invoke, dequantization. allocs/op must be 0.
func BenchmarkExtract(b *testing.B) {
	for _, tc := range []struct {
		name string
		img  image.Image
	}{
		{"gray-640x480", image.NewGray(image.Rect(0, 0, 640, 480))},
		{"rgba-1280x720", image.NewRGBA(image.Rect(0, 0, 1280, 720))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bb := open(b, Options{Preprocess: Preprocess{Resize: ResizeFit}})
			if _, _, err := bb.Extract(tc.img); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := bb.Extract(tc.img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPreprocess is preprocessing alone, without invoke: the fused
// pass on the kinds of frame the camera path delivers, against the
// reference path (full-resolution RGBA, float passes over every row) on a
// 1280×720 RGBA frame in the same run. allocs/op must be 0.
func BenchmarkPreprocess(b *testing.B) {
	rgba := camTexture(1280, 720, 1)
	half := yccOf(b, camTexture(640, 360, 1), image.YCbCrSubsampleRatio422)
	half420 := yccOf(b, camTexture(640, 360, 1), image.YCbCrSubsampleRatio420)
	quarter := yccOf(b, camTexture(480, 270, 1), image.YCbCrSubsampleRatio422)
	var std Standardizer
	for _, tc := range []struct {
		name string
		img  image.Image
		ref  bool
		std  bool
	}{
		{"reference-rgba-1280x720", rgba, true, false},
		{"reference-rgba-1280x720-standardized", rgba, true, true},
		{"fused-rgba-1280x720", rgba, false, false},
		{"fused-ycbcr422-640x360", half, false, false},
		{"fused-ycbcr422-640x360-standardized", half, false, true},
		{"fused-ycbcr420-640x360", half420, false, false},
		{"fused-ycbcr422-480x270", quarter, false, false},
		{"fused-yuyv-1280x720", toYUYV(rgba), false, false},
		{"fused-ycbcr422-640x360-rot90", rotated{half, 90}, false, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bb := open(b, Options{Preprocess: Preprocess{Resize: ResizeFit}})
			run := func() error {
				var err error
				switch {
				case tc.ref && tc.std:
					_, err = bb.SetInputReference(tc.img, &std)
				case tc.ref:
					_, err = bb.SetInputReference(tc.img, nil)
				case tc.std:
					_, err = bb.SetInputWith(tc.img, std.Measure(tc.img))
				default:
					_, err = bb.SetInput(tc.img)
				}
				return err
			}
			if err := run(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/frame")
		})
	}
}
