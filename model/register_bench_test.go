package model

import (
	"context"
	"fmt"
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
func BenchmarkInspectRigid(b *testing.B) {
	for _, mode := range []align.Mode{align.Off, align.Rigid, align.Turn} {
		for _, sz := range [][2]int{{640, 480}, {1280, 720}} {
			benchmarkInspectAligned(b, mode, sz[0], sz[1])
		}
	}
}

func benchmarkInspectAligned(b *testing.B, mode align.Mode, w, h int) {
	name := fmt.Sprintf("%dx%d", w, h)
	if mode != align.Rigid {
		name = fmt.Sprintf("mode=%s/%s", mode, name)
	}
	b.Run(name, func(b *testing.B) {
		var train grays
		for i := range 8 {
			f := float64(i)
			train = append(train, plate(w, h, 2*f/7-1, 4*f/7-2, 2-4*f/7, -1, -1))
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
		frame := plate(w, h, 3, float64(w)*0.02, -float64(h)*0.02, -1, -1)
		var al, pre, bb, mp time.Duration
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			r, err := d.Inspect(frame)
			if err != nil {
				b.Fatal(err)
			}
			al += r.Timing.Align
			pre += r.Timing.Preprocess
			bb += r.Timing.Backbone
			mp += r.Timing.Map
		}
		n := float64(b.N)
		b.ReportMetric(al.Seconds()*1e3/n, "align-ms/op")
		b.ReportMetric(pre.Seconds()*1e3/n, "pre-ms/op")
		b.ReportMetric(bb.Seconds()*1e3/n, "backbone-ms/op")
		b.ReportMetric(mp.Seconds()*1e3/n, "map-ms/op")
		b.ReportMetric(al.Seconds()/bb.Seconds(), "align/backbone")
	})
}
