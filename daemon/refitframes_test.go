package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
)

// A refit collecting live frames from a camera reopened at a frame size
// capture.roi was not given for (every frame refused, FrameSizeError)
// fails at the first refused frame with the reason, both sizes named: it
// waited for frames it would never get until its own timeout. In free-run
// and in trigger mode (where the refit's frame is its own request's).
func TestRefitFrameRefusedForItsSize(t *testing.T) {
	for _, mode := range []string{"free-run", "trigger"} {
		t.Run(mode, func(t *testing.T) {
			det := syntheticDetector(t)
			syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			var src capture.Source = &resizedSource{Source: syn, base: time.Now(), from: 1}
			var tr *capture.Triggered
			if mode == "trigger" {
				tr = capture.NewTriggered(src, capture.TriggerOptions{Queue: 4})
				src = tr
			}
			p, err := NewPipeline(PipelineOptions{Source: src, Detector: det, Sink: &memSink{}, Queue: 2, FreeRun: tr == nil, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			d := &Daemon{}
			d.pipe.Store(p)
			d.trigPtr.Store(tr)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("pipeline: %v", err)
				}
			}()

			// Longer than a tap's attempt (10 s): without the refusal the
			// refit's wait ends only here.
			wctx, wcancel := context.WithTimeout(ctx, 12*time.Second)
			defer wcancel()
			t0 := time.Now()
			img, err := d.NextFrame(wctx)
			took := time.Since(t0)
			var fse *capture.FrameSizeError
			if img != nil || !errors.As(err, &fse) {
				t.Fatalf("NextFrame after %v: image %v, err %v; want the frame's FrameSizeError", took.Round(time.Millisecond), img != nil, err)
			}
			for _, want := range []string{"64x48", "160x120", "roi"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if took > 3*time.Second {
				t.Errorf("NextFrame failed after %v, want at the first refused frame", took.Round(time.Millisecond))
			}
		})
	}
}
