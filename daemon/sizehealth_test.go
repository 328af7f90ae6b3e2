package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
)

// A camera whose every frame is refused for its size (capture.roi does not
// fit in the frames it sends, or cuts them under the model's 16 pixels a
// side) gives nothing to inspect, yet each such frame counted as a good
// one for capture health: the camera entry of /healthz read "last good
// frame 0s ago" while no part was inspected, and for frames cut too small,
// which do not turn the model's health bad either, /healthz stayed 200.
// They now count as undecodable frames do: once none good came for the
// stall timeout, capture is unhealthy, its detail saying how many frames
// were refused for their size. A camera whose frames the roi fits in
// stays healthy (the fake camera at the hardware edge; the real driver,
// region cutter and pipeline).
func TestFramesRefusedForTheirSizeAreNoGoodFrames(t *testing.T) {
	t.Parallel()
	const stall = 300 * time.Millisecond
	for _, c := range []struct {
		name    string
		roi     config.ROI
		healthy bool
	}{
		{"roi does not fit", config.ROI{X: 100, Y: 50, Width: 200, Height: 200}, false},
		{"roi to the edge leaves 10 pixels", config.ROI{X: 150}, false},
		{"roi fits", config.ROI{X: 8, Y: 8, Width: 40, Height: 32}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := capture.NewFakeCamera()
			feed := newCameraFeed(t, fake)
			feed.offer(t, 160, 120)
			cfg := cameraConfig(t, c.roi)
			// The size the camera sends is not given: the roi is checked
			// against it only once frames come.
			cfg.Capture.Camera.Width, cfg.Capture.Camera.Height = 0, 0
			src, _, err := openCapture(cfg, testLogger(t), sourceOpen{cameraOpen: fake.Open})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { src.Close() })
			p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: &memSink{}, Queue: 2, FreeRun: true,
				StallTimeout: stall, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			runUntilCleanup(t, p)

			// Frames come every 20 ms: past a few stall timeouts a run of
			// refused ones is long enough to judge.
			deadline := time.Now().Add(10 * time.Second)
			for p.Inspected() < 10 || time.Since(p.started) < 3*stall {
				if time.Now().After(deadline) {
					t.Fatalf("%d frames answered in 10 s, want 10", p.Inspected())
				}
				time.Sleep(20 * time.Millisecond)
			}
			ok, detail := p.CameraHealth()
			mok, mdetail := p.ModelHealth()
			failed, answered := p.failed.Load(), p.Inspected()
			t.Logf("camera health %v %q; model health %v %q; %d of %d answered failed", ok, detail, mok, mdetail, failed, answered)
			if c.healthy {
				if !ok || failed != 0 {
					t.Errorf("camera health %v %q, %d of %d failed; want healthy, none failed", ok, detail, failed, answered)
				}
				return
			}
			if failed != answered {
				t.Fatalf("%d of %d frames failed, want every one refused for its size", failed, answered)
			}
			if ok || !strings.Contains(detail, "capture: no good frame since the start") || !strings.Contains(detail, "frames refused for their size") {
				t.Errorf("camera health %v %q, want bad: no good frame, the frames refused for their size counted", ok, detail)
			}
		})
	}
}

// runUntilCleanup runs p until the test ends, and fails the test if it
// stopped with an error. Cleanups registered before it (closing the
// source) run after it has stopped.
func runUntilCleanup(t *testing.T, p *Pipeline) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	})
}
