package model

import (
	"context"
	"image"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/modeltest"
)

// BenchmarkInspectEnsemble inspects 640×480 frames with the ensemble the
// recipe search keeps on magnetic tile (the chosen recipe, the same on
// MobileNet V2, plain PaDiM; 100 features, the backbone on half the cores
// as the daemon runs it) with the members one after another (the
// baseline, serial-ms) and side by side (concurrent-ms), frame by frame
// in turns so that both see the same machine; speedup is serial-ms /
// concurrent-ms.
func BenchmarkInspectEnsemble(b *testing.B) {
	opts := testOptions(b)
	opts.Features, opts.MinFeatures = 100, 16
	opts.Backbone.Threads = max(1, runtime.GOMAXPROCS(0)/2)
	opts.Bundled = []BundledPath{{backbone.MobileNetV1, modeltest.BackbonePath(b)},
		{backbone.MobileNetV2, filepath.Join(modeltest.ShareDir(b), "mobilenet_v2_1.0_224_quant.tflite")}}
	opts.Recipe = "v1-fit-std-z-ctx2+v2-fit-std-z-ctx2+plain"
	var frames grays
	for i := range 24 {
		frames = append(frames, grain(uint64(i), 640, 480, image.Rectangle{}))
	}
	det, _, err := Fit(context.Background(), opts, frames, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer det.Close()
	frame := grain(99, 640, 480, image.Rect(300, 200, 340, 230))
	inspect := func(serial bool) time.Duration {
		det.serial = serial
		s := time.Now()
		if _, err := det.Inspect(frame); err != nil {
			b.Fatal(err)
		}
		return time.Since(s)
	}
	inspect(true)
	inspect(false)
	var serial, concurrent time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		serial += inspect(true)
		concurrent += inspect(false)
	}
	n := float64(b.N)
	b.ReportMetric(float64(serial.Microseconds())/1e3/n, "serial-ms")
	b.ReportMetric(float64(concurrent.Microseconds())/1e3/n, "concurrent-ms")
	b.ReportMetric(float64(serial)/float64(concurrent), "speedup")
}
