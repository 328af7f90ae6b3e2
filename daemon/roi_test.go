package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// writeGrayPNG writes a w×h gray PNG at path, under a hidden name first
// and renamed, as an upload to a watched folder should be.
func writeGrayPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	var b bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path))
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A stray file too small for capture.roi dropped into a watched folder is
// answered as a failed inspection naming the file, its size and the roi,
// logged once, and the next file is inspected: the region that did not fit
// was an error that retrying cannot fix, which ended the pipeline and the
// daemon with it (one stray thumbnail stopped the line).
func TestStrayFileSmallerThanROIAnswered(t *testing.T) {
	t.Parallel()
	frames := filepath.Join(t.TempDir(), "frames")
	writePNGs(t, frames, 1, 5, false) // part000.png, 160×120
	det := syntheticDetector(t)
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		return strings.Replace(r.baseYAML("cell1"), syntheticLine,
			"capture: {source: folder, folder: {path: "+frames+", watch: true}, roi: {x: 8, y: 8, width: 128, height: 96}}", 1)
	})
	d := r.daemon()
	// waitAlive waits for cond, failing at once if the daemon ends.
	waitAlive := func(what string, cond func() bool) {
		t.Helper()
		r.waitFor(what, func() bool {
			select {
			case err := <-r.done:
				r.done <- err // for the cleanup
				t.Fatalf("the daemon ended waiting for %s: %v\n%s", what, err, r.logs.String())
			default:
			}
			return cond()
		})
	}
	waitAlive("part000.png inspected", func() bool { return strings.Contains(r.lines.String(), "part000.png") })

	writeGrayPNG(t, filepath.Join(frames, "stray.png"), 64, 48)
	waitAlive("stray.png answered", func() bool { return strings.Contains(r.lines.String(), "stray.png") })
	writeGrayPNG(t, filepath.Join(frames, "zz-part.png"), 160, 120)
	waitAlive("the next file inspected", func() bool { return strings.Contains(r.lines.String(), "zz-part.png") })

	lines := strings.Split(strings.TrimSpace(r.lines.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d printed lines, want 3 (part000.png, stray.png, zz-part.png):\n%s", len(lines), r.lines.String())
	}
	for _, want := range []string{"ERROR", "file stray.png not inspected", "roi x=8 y=8 128x96", "64x48"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("stray.png answered %q, lacks %q", lines[1], want)
		}
	}
	if strings.Contains(lines[2], "ERROR") {
		t.Errorf("the file after the stray one: %q, want it inspected", lines[2])
	}
	p := d.pipe.Load()
	if p.failed.Load() != 1 || p.Inspected() != 3 {
		t.Errorf("%d failed of %d, want 1 of 3: the stray file is a failed inspection", p.failed.Load(), p.Inspected())
	}
	if _, failed := d.metrics.InspectionCounts(); failed != 1 {
		t.Errorf("inspections_total{verdict=\"error\"} = %d, want 1", failed)
	}
	if ok, why := p.ModelHealth(); !ok {
		t.Errorf("model health after a stray file: %s", why)
	}
	logs := r.logs.String()
	if n := strings.Count(logs, "file not inspected: capture.roi does not fit in its image"); n != 1 {
		t.Errorf("%d log lines for the stray file, want 1:\n%s", n, logs)
	}
	for _, want := range []string{"file=stray.png", "image_size=64x48", `roi="x=8 y=8 128x96"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// In trigger mode a stray file too small for capture.roi in a watched
// folder answers the trigger that took it, on the result topic with its
// trigger_id, as a failed inspection naming the file, and counts as a
// trigger that got no frame to inspect; the next trigger takes the next
// file, inspected.
func TestStrayFileSmallerThanROIAnswersItsTrigger(t *testing.T) {
	t.Parallel()
	frames := filepath.Join(t.TempDir(), "frames")
	if err := os.MkdirAll(frames, 0o755); err != nil {
		t.Fatal(err)
	}
	det := syntheticDetector(t)
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		return strings.Replace(r.baseYAML("cell1"), syntheticLine,
			"capture: {source: folder, folder: {path: "+frames+", watch: true}, roi: {x: 8, y: 8, width: 128, height: 96}, trigger: {mode: external, max_age: 0s}}", 1)
	})
	d := r.daemon()
	var c collector
	subscribe(t, "tcp://127.0.0.1:"+strconv.Itoa(r.port), "inspectd/cell1/result", &c)
	answer := func(id string) mqttpub.Result {
		t.Helper()
		var got mqttpub.Result
		r.waitFor("the answer to "+id, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, res := range c.results {
				if res.TriggerID == id {
					got = res
					return true
				}
			}
			return false
		})
		return got
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Each file written after its trigger: the trigger takes it.
	for _, part := range []struct {
		id, file string
		w, h     int
	}{{"t1", "part000.png", 160, 120}, {"t2", "stray.png", 64, 48}, {"t3", "zz-part.png", 160, 120}} {
		if _, err := d.Trigger(ctx, part.id, time.Time{}); err != nil {
			t.Fatalf("trigger %s: %v", part.id, err)
		}
		writeGrayPNG(t, filepath.Join(frames, part.file), part.w, part.h)
		res := answer(part.id)
		if res.File != part.file {
			t.Errorf("trigger %s answered for file %q, want %s", part.id, res.File, part.file)
		}
		if part.id != "t2" {
			if res.Verdict == VerdictError {
				t.Errorf("trigger %s (%s) answered with an error: %s", part.id, part.file, res.Error)
			}
			continue
		}
		if res.Verdict != VerdictError {
			t.Errorf("trigger t2 (stray.png) answered %s, want %s", res.Verdict, VerdictError)
		}
		for _, want := range []string{"file stray.png not inspected", "roi x=8 y=8 128x96", "64x48"} {
			if !strings.Contains(res.Error, want) {
				t.Errorf("trigger t2 answered %q, lacks %q", res.Error, want)
			}
		}
	}
	if !strings.Contains(r.lines.String(), "stray.png trigger=t2") {
		t.Errorf("printed lines lack stray.png's with trigger=t2:\n%s", r.lines.String())
	}
	for outcome, want := range map[string]float64{"accepted": 3, "no_frame": 1} {
		if n := testutil.ToFloat64(d.metrics.Triggers.WithLabelValues(outcome)); n != want {
			t.Errorf("triggers_total{outcome=%q} = %v, want %v", outcome, n, want)
		}
	}
	if _, failed := d.metrics.InspectionCounts(); failed != 1 {
		t.Errorf("inspections_total{verdict=\"error\"} = %d, want 1", failed)
	}
}

// A single-file source whose image capture.roi does not fit in is refused
// when it is opened (a start, a reload, restart-camera), naming the file,
// its size and the roi, as an undecodable one is: every frame of it would
// be refused. It was opened, and its first frame ended the pipeline and
// the daemon; a reload to such a roi was applied, then stopped the line.
func TestFileSourceSmallerThanROIRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "part.png")
	writeGrayPNG(t, path, 64, 48)
	cfg := testDefaults(t)
	cfg.Capture.Source = config.SourceFile
	cfg.Capture.File.Path = path
	cfg.Capture.ROI = config.ROI{X: 8, Y: 8, Width: 128, Height: 96}
	src, _, err := openCapture(cfg, testLogger(t), sourceOpen{})
	if err == nil {
		src.Close()
		t.Fatal("a file source with a roi that does not fit its image was opened")
	}
	for _, want := range []string{path, "64x48", "roi x=8 y=8 128x96"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	cfg.Capture.ROI = config.ROI{X: 8, Y: 8, Width: 32} // to the bottom edge: fits
	src, _, err = openCapture(cfg, testLogger(t), sourceOpen{})
	if err != nil {
		t.Fatalf("a roi that fits: %v", err)
	}
	src.Close()
}

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
	t.Cleanup(func() { d.src.Close() }) // once the pipeline has stopped
	d.pipe.Store(p)
	runUntilCleanup(t, p)
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

// A trigger whose frame is refused for its size counts in
// inspectd_triggers_total as one that got no frame to inspect
// (outcome="no_frame"), each one: it was answered but counted under no
// outcome but "accepted", so an alert on failed triggers never saw a line
// whose every part went uninspected. A free-run frame refused is no
// trigger's, and counts under none.
func TestRefusedFrameCountsItsTrigger(t *testing.T) {
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	m := httpapi.NewMetrics()
	tr := capture.NewTriggered(&resizedSource{Source: syn, base: time.Now().Add(time.Minute), from: 1}, capture.TriggerOptions{Queue: 4})
	var results resultLog
	p, err := NewPipeline(PipelineOptions{Source: tr, Detector: syntheticDetector(t), Sink: results.sink(), Metrics: m, Queue: 2,
		MaxInspections: 3, Logger: testLogger(t)})
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
	if n := testutil.ToFloat64(m.Triggers.WithLabelValues("no_frame")); n != 3 {
		t.Errorf("triggers_total{outcome=\"no_frame\"} = %v after 3 triggers whose frames were refused, want 3", n)
	}
	if e := results.errors(); len(e) != 3 {
		t.Errorf("%d error answers, want 3", len(e))
	}

	// Free-run: refused frames are failed inspections, no trigger's.
	syn2, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	m2 := httpapi.NewMetrics()
	p2, err := NewPipeline(PipelineOptions{Source: &resizedSource{Source: syn2, base: time.Now(), from: 1}, Detector: syntheticDetector(t),
		Sink: &memSink{}, Metrics: m2, Queue: 2, MaxInspections: 3, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(m2.Triggers.WithLabelValues("no_frame")); n != 0 {
		t.Errorf("triggers_total{outcome=\"no_frame\"} = %v after free-run frames refused, want 0", n)
	}
}

// A reload that changes capture but not the roi, the camera device or the
// size asked of it (a camera control, capture.trigger.max_rate) keeps the
// roi held to the frame size it was given for: a camera back at another
// size since an unplug still has its frames refused, naming both sizes.
// The reload built a region cutter that took the size the camera sent next
// as the roi's, and cut the same pixels out of another view without a
// word. A reload that gives capture.camera.width/height, or another roi,
// takes the size the camera sends next, as before.
func TestReloadKeepsTheROISize(t *testing.T) {
	fake := capture.NewFakeCamera()
	feed := newCameraFeed(t, fake)
	feed.offer(t, 160, 120)
	det := syntheticDetector(t)
	// yaml is the configuration of a camera asked for w×h, cut at roi,
	// with more settings of the camera's and of capture's.
	var yaml func(w, h int, roi, camera, more string) string
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		r.cameraOpen = fake.Open
		yaml = func(w, h int, roi, camera, more string) string {
			return strings.Replace(r.baseYAML("cell1"), syntheticLine,
				fmt.Sprintf("capture: {source: camera, camera: {device: /dev/video-test, formats: [YUYV], width: %d, height: %d, timeout: 1s%s}, roi: %s%s}",
					w, h, camera, roi, more), 1)
		}
		return yaml(160, 120, "{x: 8, y: 8, width: 40, height: 32}", "", "")
	})
	d := r.daemon()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cut := func(what string) {
		t.Helper()
		img, err := d.NextFrame(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if b := img.Bounds(); b.Dx() != 40 || b.Dy() != 32 {
			t.Fatalf("%s: cut %v, want 40x32", what, b)
		}
	}
	refused := func(what string, was, now image.Point) {
		t.Helper()
		img, err := d.NextFrame(ctx)
		var fse *capture.FrameSizeError
		if !errors.As(err, &fse) || fse.Was != was || fse.Now != now {
			b := image.Rectangle{}
			if img != nil {
				b = img.Bounds()
			}
			t.Fatalf("%s: frame %v, err %v; want it refused, from %v to %v", what, b, err, was, now)
		}
	}
	var unplugs, reloads int
	// replug unplugs the camera and plugs it back in offering only w×h.
	replug := func(w, h int) {
		t.Helper()
		unplugs++
		fake.Unplug()
		r.waitFor("the camera lost", func() bool { return strings.Count(r.logs.String(), "camera: lost") >= unplugs }, &r.logs)
		feed.offer(t, w, h)
		fake.SetPresent(true)
	}
	reload := func(y string) {
		t.Helper()
		reloads++
		r.write(y)
		r.hup()
		r.waitFor("the reload", func() bool { return strings.Count(r.logs.String(), "configuration reloaded") >= reloads }, &r.logs)
	}
	roi, gain, rate := "{x: 8, y: 8, width: 40, height: 32}", ", controls: {gain: 10}", ", trigger: {max_rate: 10}"
	cut("at 160x120")

	replug(64, 48)
	refused("back at 64x48", image.Pt(160, 120), image.Pt(64, 48))
	reload(yaml(160, 120, roi, gain, ""))
	refused("after a reload of the camera's gain", image.Pt(160, 120), image.Pt(64, 48))
	reload(yaml(160, 120, roi, gain, rate))
	refused("after a reload of capture.trigger.max_rate", image.Pt(160, 120), image.Pt(64, 48))
	if e := d.pipe.Load().failed.Load(); e == 0 {
		t.Error("no failed inspection counted for the refused frames")
	}

	// The size asked of the camera given for its new one: taken.
	reload(yaml(64, 48, roi, gain, rate))
	cut("after a reload asking for 64x48")

	// Another roi: given for the size the camera sends next.
	replug(160, 120)
	refused("back at 160x120", image.Pt(64, 48), image.Pt(160, 120))
	reload(yaml(64, 48, "{x: 16, y: 16, width: 40, height: 32}", gain, rate))
	cut("after a reload with another roi")
}

// A reload that gives capture.camera.device as a link to the running
// camera's node (its /dev/v4l/by-id name for /dev/video0), with the same
// roi and size, keeps the roi held to the frame size it was given for, as
// a reload of the same name does: the names were compared as strings, the
// link read as another camera, and a camera back at another size since an
// unplug had the roi cut at the same pixels from another view.
func TestReloadToADeviceLinkKeepsTheROISize(t *testing.T) {
	dev := t.TempDir()
	node := filepath.Join(dev, "video0")
	if err := os.WriteFile(node, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dev, "v4l", "by-id", "usb-Fake_Cam-video-index0")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../video0", link); err != nil {
		t.Fatal(err)
	}
	fake := capture.NewFakeCamera()
	feed := newCameraFeed(t, fake)
	feed.offer(t, 160, 120)
	det := syntheticDetector(t)
	var yaml func(device string) string
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		r.cameraOpen = fake.Open
		yaml = func(device string) string {
			return strings.Replace(r.baseYAML("cell1"), syntheticLine,
				"capture: {source: camera, camera: {device: "+device+", formats: [YUYV], width: 160, height: 120, timeout: 1s}, roi: {x: 8, y: 8, width: 40, height: 32}}", 1)
		}
		return yaml(node)
	})
	d := r.daemon()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	next := func(what string, refused bool) {
		t.Helper()
		img, err := d.NextFrame(ctx)
		var fse *capture.FrameSizeError
		switch {
		case refused && (!errors.As(err, &fse) || fse.Was != image.Pt(160, 120) || fse.Now != image.Pt(64, 48)):
			b := image.Rectangle{}
			if img != nil {
				b = img.Bounds()
			}
			t.Fatalf("%s: frame %v, err %v; want it refused, from 160x120 to 64x48", what, b, err)
		case !refused && err != nil:
			t.Fatalf("%s: %v", what, err)
		case !refused && (img.Bounds().Dx() != 40 || img.Bounds().Dy() != 32):
			t.Fatalf("%s: cut %v, want 40x32", what, img.Bounds())
		}
	}
	next("at 160x120", false)
	fake.Unplug()
	r.waitFor("the camera lost", func() bool { return strings.Contains(r.logs.String(), "camera: lost") }, &r.logs)
	feed.offer(t, 64, 48)
	fake.SetPresent(true)
	next("back at 64x48", true)

	r.write(yaml(link))
	r.hup()
	r.waitFor("the reload", func() bool { return strings.Contains(r.logs.String(), "configuration reloaded") }, &r.logs)
	next("after a reload naming the camera by its link", true)
}

// A stray file too small for capture.roi that is written again under its
// name (the same size) right after its answer is a new version of the file,
// answered again and logged again: its second answer had no log line, the
// log skipping a message the same as the last, so the log told of one
// stray file where the results told of two.
func TestStrayFileRewrittenLoggedAgain(t *testing.T) {
	t.Parallel()
	frames := filepath.Join(t.TempDir(), "frames")
	if err := os.MkdirAll(frames, 0o755); err != nil {
		t.Fatal(err)
	}
	det := syntheticDetector(t)
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		return strings.Replace(r.baseYAML("cell1"), syntheticLine,
			"capture: {source: folder, folder: {path: "+frames+", watch: true}, roi: {x: 8, y: 8, width: 128, height: 96}}", 1)
	})
	r.daemon()
	stray := filepath.Join(frames, "stray.png")
	for i := 1; i <= 2; i++ {
		writeGrayPNG(t, stray, 64, 48)
		r.waitFor("stray.png answered "+strconv.Itoa(i)+" times", func() bool { return r.inspections() >= i }, &r.lines)
	}
	// Each answer's log line is written before its printed line.
	if n := strings.Count(r.logs.String(), "file not inspected: capture.roi does not fit in its image"); n != 2 {
		t.Errorf("%d log lines for stray.png written twice, want 2:\n%s", n, r.logs.String())
	}
	if n := r.inspections(); n != 2 {
		t.Errorf("%d answers, want stray.png's 2:\n%s", n, r.lines.String())
	}
}

// A looped folder's replays of a file too small for capture.roi are the
// same file, logged once, not once per pass (each is still answered).
func TestStrayFileReplayedLoggedOnce(t *testing.T) {
	frames := t.TempDir()
	writeGrayPNG(t, filepath.Join(frames, "stray.png"), 64, 48)
	cfg := testDefaults(t)
	cfg.Capture.Source = config.SourceFolder
	cfg.Capture.Folder.Path, cfg.Capture.Folder.Loop = frames, true
	cfg.Capture.ROI = config.ROI{X: 8, Y: 8, Width: 128, Height: 96}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	src, _, err := openCapture(cfg, log, sourceOpen{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var results resultLog
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: results.sink(), Queue: 2, MaxInspections: 5, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e := results.errors(); len(e) != 5 {
		t.Errorf("%d error answers for 5 passes, want 5", len(e))
	}
	if n := strings.Count(logs.String(), "file not inspected: capture.roi does not fit in its image"); n != 1 {
		t.Errorf("%d log lines for stray.png replayed 5 times, want 1:\n%s", n, logs.String())
	}
}
