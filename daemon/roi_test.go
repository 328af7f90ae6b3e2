package daemon

import (
	"context"
	"errors"
	"image"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// resultLog records the results a pipeline publishes.
type resultLog struct {
	mu  sync.Mutex
	got []mqttpub.Result
}

func (l *resultLog) sink() *memSink {
	return &memSink{onResult: func(r *mqttpub.Result) {
		l.mu.Lock()
		l.got = append(l.got, *r)
		l.mu.Unlock()
	}}
}

func (l *resultLog) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var e []string
	for _, r := range l.got {
		if r.Verdict == VerdictError {
			e = append(e, r.Error)
		}
	}
	return e
}

// restartDaemon is the part of a daemon restart-camera works on: the
// configured source behind a swapping source, a camera's device opened on
// a fake camera, and a pipeline inspecting its frames.
func restartDaemon(t *testing.T, cfg *config.Config, fake *capture.FakeCamera, sink Sink) *Daemon {
	t.Helper()
	d := &Daemon{log: testLogger(t), folders: capture.NewFolderLedger(), cameraOpen: fake.Open}
	d.cfgPtr.Store(cfg)
	base, desc, err := openCapture(cfg, d.log, sourceOpen{cameraOpen: fake.Open})
	if err != nil {
		t.Fatal(err)
	}
	d.src, d.desc = newSwapSource(base), desc
	p, err := NewPipeline(PipelineOptions{Source: d.src, Detector: syntheticDetector(t), Sink: sink, Queue: 2, FreeRun: true, Logger: d.log})
	if err != nil {
		t.Fatal(err)
	}
	d.pipe.Store(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
		d.src.Close()
	})
	return d
}

// cameraFeed pushes YUYV frames of the size set last to a fake camera
// every 20 ms until the test ends.
type cameraFeed struct {
	fake  *capture.FakeCamera
	frame atomic.Pointer[[]byte]
}

func newCameraFeed(t *testing.T, fake *capture.FakeCamera) *cameraFeed {
	c := &cameraFeed{fake: fake}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if f := c.frame.Load(); f != nil {
				fake.Push(*f)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// offer makes the camera offer YUYV at w×h only, and sends frames of
// that size.
func (c *cameraFeed) offer(t *testing.T, w, h int) {
	t.Helper()
	sy, err := capture.NewSynthetic(capture.SyntheticOptions{Width: w, Height: h, Seed: 3, NormalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var f capture.Frame
	if err := sy.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	b, err := capture.EncodeYUYV(nil, f.Image)
	if err != nil {
		t.Fatal(err)
	}
	c.fake.Offer(capture.FormatYUYV, w, h, 30)
	c.frame.Store(&b)
}

// cameraConfig is a 160×120 YUYV camera with roi.
func cameraConfig(t *testing.T, roi config.ROI) *config.Config {
	cfg := testDefaults(t)
	cfg.Capture.Source = config.SourceCamera
	cfg.Capture.Camera.Device = "/dev/video-test"
	cfg.Capture.Camera.Formats = []string{"YUYV"}
	cfg.Capture.Camera.Width, cfg.Capture.Camera.Height = 160, 120
	cfg.Capture.Camera.Timeout = config.Duration(time.Second)
	cfg.Capture.ROI = roi
	return cfg
}

// restart-camera keeps capture.roi held to the frame size it was given
// for: a camera that comes back at another size (here 64×48, where the
// roi still fits) has its frames refused and answered as failed
// inspections naming both sizes, the command's reply saying so, until a
// restart brings it back at 160×120. It took the new camera's size as the
// roi's, and cut the same pixels out of another view without a word.
func TestRestartCameraKeepsTheROISize(t *testing.T) {
	fake := capture.NewFakeCamera()
	feed := newCameraFeed(t, fake)
	feed.offer(t, 160, 120)
	var results resultLog
	d := restartDaemon(t, cameraConfig(t, config.ROI{X: 8, Y: 8, Width: 40, Height: 32}), fake, results.sink())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img, err := d.NextFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 40 || b.Dy() != 32 {
		t.Fatalf("cut %v at 160x120, want 40x32", b)
	}

	feed.offer(t, 64, 48)
	err = d.RestartCamera(ctx)
	var fse *capture.FrameSizeError
	if !errors.As(err, &fse) || fse.Was != image.Pt(160, 120) || fse.Now != image.Pt(64, 48) {
		t.Fatalf("restart-camera at 64x48: %v; want the frames refused, from 160x120 to 64x48", err)
	}
	for _, want := range []string{"160x120", "64x48", "roi"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("reply %q does not name %q", err, want)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(results.errors()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e := results.errors(); len(e) == 0 || !strings.Contains(e[0], "64x48") || !strings.Contains(e[0], "160x120") {
		t.Errorf("error results %q, want the refused frames answered, naming both sizes", e)
	}

	// Back at the size the roi was given for: cut again.
	feed.offer(t, 160, 120)
	if err := d.RestartCamera(ctx); err != nil {
		t.Fatalf("restart-camera back at 160x120: %v", err)
	}
	if img, err = d.NextFrame(ctx); err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 40 || b.Dy() != 32 {
		t.Errorf("cut %v back at 160x120, want 40x32", b)
	}
}

// Without capture.roi a camera restarted at another size is inspected at
// it: nothing is cut at pixel numbers.
func TestRestartCameraWithoutROITakesTheNewSize(t *testing.T) {
	fake := capture.NewFakeCamera()
	feed := newCameraFeed(t, fake)
	feed.offer(t, 160, 120)
	d := restartDaemon(t, cameraConfig(t, config.ROI{}), fake, &memSink{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.NextFrame(ctx); err != nil {
		t.Fatal(err)
	}
	feed.offer(t, 64, 48)
	if err := d.RestartCamera(ctx); err != nil {
		t.Fatalf("restart-camera at 64x48 without a roi: %v", err)
	}
	img, err := d.NextFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 48 {
		t.Errorf("frame %v, want the new 64x48", b)
	}
}

// In trigger mode a frame refused for its size answers its own trigger,
// each one: the answer carried the trigger id of whatever the reused frame
// held before (none here), so the first went out with no trigger_id and
// later ones, taken for a camera's free-run failures, not at all.
func TestRefusedFrameAnswersItsTrigger(t *testing.T) {
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	// Every frame refused, each captured after the requests.
	tr := capture.NewTriggered(&resizedSource{Source: syn, base: time.Now().Add(time.Minute), from: 1}, capture.TriggerOptions{Queue: 4})
	var results resultLog
	p, err := NewPipeline(PipelineOptions{Source: tr, Detector: syntheticDetector(t), Sink: results.sink(), Queue: 2, MaxInspections: 3, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	for _, id := range []string{"p1", "p2", "p3"} {
		if err := tr.Trigger(id); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pipeline did not finish 3 triggers")
	}
	results.mu.Lock()
	defer results.mu.Unlock()
	var got []string
	for _, r := range results.got {
		got = append(got, r.TriggerID+":"+r.Verdict)
	}
	if len(got) != 3 || got[0] != "p1:error" || got[1] != "p2:error" || got[2] != "p3:error" {
		t.Errorf("answers %q, want p1, p2 and p3 each answered with an error", got)
	}
}
