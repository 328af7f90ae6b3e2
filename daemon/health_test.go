package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/modeltest"
)

// TestFailedInspectionIsNeverOK: an inspection that fails (a score that is
// not a finite number, the field case of a model with NaN in it) is
// published as verdict "error", anomalous, counted; free-run failures are
// reported at most once a second; a run of them turns model health bad.
func TestFailedInspectionIsNeverOK(t *testing.T) {
	var got []mqttpub.Result
	sink := &memSink{onResult: func(r *mqttpub.Result) { got = append(got, *r) }}
	m := httpapi.NewMetrics()
	src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 64, Height: 48, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: sink, Metrics: m, FreeRun: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	fail := func(trigger string) {
		s := &slot{inspErr: fmt.Errorf("%w: image score NaN", model.ErrNonFinite), modelID: "m1"}
		s.frame.Time, s.frame.Trigger = time.Now(), trigger
		p.publishStage(s)
	}
	fail("")
	fail("") // within the second: counted, not published again
	fail("part-7")
	if len(got) != 2 {
		t.Fatalf("%d results for two free-run failures within a second and one triggered: %+v", len(got), got)
	}
	for _, r := range got {
		if r.Verdict != VerdictError || !r.Anomalous || !strings.Contains(r.Error, "non-finite score") || r.ModelID != "m1" || !(r.Threshold > 0) {
			t.Errorf("failed inspection published as %+v", r)
		}
	}
	if got[1].TriggerID != "part-7" {
		t.Errorf("the triggered failure answers %q", got[1].TriggerID)
	}
	if ok, detail := p.ModelHealth(); ok || !strings.Contains(detail, "3 inspections in a row failed") {
		t.Errorf("model health after 3 failures: %v %q", ok, detail)
	}
	var mf strings.Builder
	for _, f := range gather(t, m) {
		mf.WriteString(f)
	}
	if !strings.Contains(mf.String(), `inspectd_inspections_total{verdict="error"} 3`) {
		t.Errorf("failures not counted:\n%s", mf.String())
	}
}

// gather renders the metrics in the text exposition format, one family per entry.
func gather(t *testing.T, m *httpapi.Metrics) []string {
	t.Helper()
	h := httpapi.New(httpapi.Options{Metrics: m})
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, mustRequest(t, "/metrics"))
	return strings.SplitAfter(rec.body.String(), "\n# HELP")
}

type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func mustRequest(t *testing.T, path string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestHealthTurnsBadWhenNoFrameDecodes is the field case of a folder whose
// files never decode: after the stall timeout /healthz answers 503 naming
// the capture stage and the age of the last good frame, the age is a
// metric, and the retained status says degraded with the reason.
func TestHealthTurnsBadWhenNoFrameDecodes(t *testing.T) {
	t.Parallel()
	frames := filepath.Join(t.TempDir(), "frames")
	if err := os.MkdirAll(frames, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(frames, fmt.Sprintf("part%d.jpg", i)), []byte("not a JPEG at all"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := startFolderDaemon(t, frames, "loop", true)
	url := r.httpURL()

	status := r.watchStatus("cell1")

	var report httpapi.HealthReport
	r.waitFor("/healthz to turn 503", func() bool {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			return false
		}
		return json.NewDecoder(resp.Body).Decode(&report) == nil && !report.Camera.OK
	})
	if report.Camera.OK || !strings.Contains(report.Camera.Detail, "capture: no good frame") ||
		!strings.Contains(report.Camera.Detail, "undecodable frames") {
		t.Errorf("camera health %+v, want the capture stage, the age and the undecodable frames", report.Camera)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "inspectd_last_good_frame_age_seconds") {
		t.Error("no inspectd_last_good_frame_age_seconds gauge")
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s := <-status:
			if strings.HasPrefix(s, "degraded: camera: no good frame") {
				return
			}
		case <-deadline:
			t.Fatal("the retained status never said degraded")
		}
	}
}

// TestHealthNamesTooLargeApart: images skipped for declaring more pixels
// than capture.max_pixels are named as too large in the camera health,
// not counted among the undecodable frames (their header decoded: the
// remedy is the limit or the camera's size, not a corrupt file).
func TestHealthNamesTooLargeApart(t *testing.T) {
	src := &countedSource{}
	var h captureHealth
	h.init(src, false, false)
	started := time.Now().Add(-time.Minute)
	src.c.TooLarge.Add(3)
	ok, detail := h.check(true, time.Second, started)
	if ok || !strings.Contains(detail, "3 frames too large (over capture.max_pixels)") || strings.Contains(detail, "undecodable") {
		t.Errorf("3 frames too large: %v %q, want them named too large and none undecodable", ok, detail)
	}
	src.c.DecodeErrors.Add(2)
	ok, detail = h.check(true, time.Second, started)
	if ok || !strings.Contains(detail, ", 2 undecodable frames") || !strings.Contains(detail, "3 frames too large") {
		t.Errorf("2 undecodable and 3 too large: %v %q, want both counted apart", ok, detail)
	}
}

// Before the stall timeout, a line whose first files all failed is not
// "waiting for the first frame" (a trial saw that with a hundred failed):
// healthy still, with the failures named.
func TestHealthBeforeFirstGoodFrameNamesFailures(t *testing.T) {
	src := &countedSource{}
	var h captureHealth
	h.init(src, true, true)
	started := time.Now()
	if ok, detail := h.check(false, time.Hour, started); !ok || detail != "waiting for the first frame (trigger or file)" {
		t.Errorf("nothing yet: %v %q", ok, detail)
	}
	src.c.DecodeErrors.Add(4)
	src.c.TooLarge.Add(1)
	if ok, detail := h.check(false, time.Hour, started); !ok || detail != "no good frame yet, 4 undecodable frames, 1 frame too large (over capture.max_pixels)" {
		t.Errorf("5 files failed: %v %q, want healthy, naming them", ok, detail)
	}
}

// TestCorruptFileInIdleFolderStaysHealthy is the field case of one corrupt
// file dropped into an idle watched folder: it is skipped and counted, and
// neither /healthz nor the retained status changes (it turned the status
// degraded at once and back to online 10 s later); the next good file is
// inspected.
func TestCorruptFileInIdleFolderStaysHealthy(t *testing.T) {
	t.Parallel()
	frames := filepath.Join(t.TempDir(), "frames")
	writePNGs(t, frames, 2, 5, false)
	r := startFolderDaemon(t, frames, "watch", true)
	url := r.httpURL()
	status := r.watchStatus("cell1")
	r.waitFor("the 2 files inspected", func() bool { return r.inspections() >= 2 }, &r.lines)
	select {
	case s := <-status:
		if s != mqttpub.StatusOnline {
			t.Fatalf("status %q before the corrupt file", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no retained status")
	}
	// The line has been idle for a minute: the last good frame is older
	// than the stall timeout (5 s), without the test waiting for it.
	d := r.daemon()
	d.pipe.Load().health.lastGood.Store(time.Now().Add(-time.Minute).UnixNano())

	if err := os.WriteFile(filepath.Join(frames, "zz_corrupt2.jpg"), []byte("garbage2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := capture.CountersOf(d.src)
	r.waitFor("the corrupt file skipped", func() bool { return c.DecodeErrors.Load() == 1 })
	// The latest part has no score: the one before's must not stand for it.
	r.waitFor("inspectd_last_score NaN after the skipped file", func() bool {
		return math.IsNaN(testutil.ToFloat64(d.metrics.LastScore))
	})
	healthz := func() (int, httpapi.HealthReport) {
		var report httpapi.HealthReport
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, report
	}
	// The retained status is updated once a second: a few of its updates.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if code, report := healthz(); code != http.StatusOK || !report.Camera.OK {
			t.Fatalf("/healthz %d after one corrupt file in an idle folder: camera %+v", code, report.Camera)
		}
		select {
		case s := <-status:
			if s != mqttpub.StatusOnline { // online may be said again (on connect, then by the status loop)
				t.Fatalf("retained status %q after one corrupt file in an idle folder", s)
			}
		default:
		}
	}
	if n := strings.Count(r.logs.String(), "file=zz_corrupt2.jpg"); n != 1 {
		t.Errorf("the corrupt file logged %d times, want once", n)
	}

	writePNGs(t, filepath.Join(frames, "next"), 1, 6, false)
	if err := os.Rename(filepath.Join(frames, "next", "part000.png"), filepath.Join(frames, "zzz-next.png")); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the next good file", func() bool { return strings.Contains(r.lines.String(), "zzz-next.png") }, &r.lines)
	if code, report := healthz(); code != http.StatusOK || !report.Camera.OK {
		t.Errorf("/healthz %d after the next good file: camera %+v", code, report.Camera)
	}
}

// TestWatchedFolderBombsAndBackPressure: image bombs dropped into a watched
// folder (the field cases, and a TIFF of the same kind) are skipped, named
// and counted while the daemon lives with a flat resident set; and every
// file of a folder is inspected, none dropped, however slow inspection is.
func TestWatchedFolderBombsAndBackPressure(t *testing.T) {
	bombs := []string{"image-bombs/png-200000x200000-gray.png", "image-bombs/bmp-100000x100000.bmp", "image-bombs/png-20000x20000-decodable.png"}
	var paths []string
	for _, b := range bombs {
		paths = append(paths, modeltest.Case(t, b))
	}
	frames := filepath.Join(t.TempDir(), "frames")
	writePNGs(t, frames, 8, 5, false)
	// No rate limit: a folder source offers files as fast as it can read
	// them, far faster than the backbone takes them.
	r := startFolderDaemon(t, frames, "watch", false)
	d := r.daemon()
	r.waitFor("all 8 files inspected", func() bool { return r.inspections() >= 8 }, &r.lines)
	time.Sleep(500 * time.Millisecond)
	if n := r.inspections(); n != 8 {
		t.Errorf("%d inspections of 8 files", n)
	}
	if drops := d.pipe.Load().Drops(); drops != 0 {
		t.Errorf("%d frames of a folder dropped", drops)
	}
	rss := residentMB()
	for i, b := range paths {
		data, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(frames, fmt.Sprintf("zz-bomb%d%s", i, filepath.Ext(b))), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writePNGs(t, filepath.Join(frames, "later"), 1, 6, false)
	if err := os.Rename(filepath.Join(frames, "later", "part000.png"), filepath.Join(frames, "zzz-after.png")); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the file after the bombs", func() bool { return strings.Contains(r.lines.String(), "zzz-after.png") }, &r.lines)
	c := capture.CountersOf(d.src)
	if got := c.TooLarge.Load(); got != uint64(len(paths)) {
		t.Errorf("%d files counted too large, want %d", got, len(paths))
	}
	for i := range paths {
		if !strings.Contains(r.logs.String(), fmt.Sprintf("zz-bomb%d", i)) {
			t.Errorf("bomb %d not named in the log", i)
		}
	}
	if grew := residentMB() - rss; grew > 100 {
		t.Errorf("resident set grew %.0f MB over the bombs (a decoded 400 MP image takes 1,350)", grew)
	}

	// A capture restart goes on after the files already inspected (it
	// inspected the whole folder again, and alarmed twice on the same
	// parts), and returns without waiting for a file to arrive.
	n := r.inspections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.RestartCamera(ctx); err != nil {
		t.Fatalf("restart of a watched folder: %v", err)
	}
	time.Sleep(time.Second)
	if got := r.inspections(); got != n {
		t.Errorf("%d inspections after a capture restart, %d before: files inspected again", got, n)
	}
	writePNGs(t, filepath.Join(frames, "new"), 1, 7, false)
	if err := os.Rename(filepath.Join(frames, "new", "part000.png"), filepath.Join(frames, "zzzz-new.png")); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the file after the restart", func() bool { return strings.Contains(r.lines.String(), "zzzz-new.png") }, &r.lines)
	if got := r.inspections(); got != n+1 {
		t.Errorf("%d inspections after one new file, %d before the restart", got, n)
	}
}

// residentMB is the process's resident set size in MB.
func residentMB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseFloat(f[1], 64)
	return pages * float64(os.Getpagesize()) / (1 << 20)
}

// Frames of another kind than the training images (grayscale frames on a
// model fitted on colour ones: a camera switched to GREY after the fit)
// are inspected as before and warned about once per model, not per frame.
func TestInputMismatchWarnedOnce(t *testing.T) {
	var logs bytes.Buffer
	det := syntheticDetector(t) // fitted on colour frames
	src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 3, Color: capture.ColorGray})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: det, Sink: &memSink{}, Metrics: httpapi.NewMetrics(), FreeRun: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	inspectFrames(t, p, src, 3)
	if n := strings.Count(logs.String(), "frames unlike the training images"); n != 1 || !strings.Contains(logs.String(), "a grayscale frame, the model was fitted on colour images") {
		t.Errorf("%d warnings for 3 grayscale frames, want 1 naming the kinds:\n%s", n, logs.String())
	}
}

// TestInputMismatchWarnedOncePerKind: a kind of difference that shows up
// after another was warned of (frames of another shape, then a camera
// switched to grayscale) is warned of too (it never was: one warning per
// model, whatever the kind), each kind once, however many frames show it.
func TestInputMismatchWarnedOncePerKind(t *testing.T) {
	var logs bytes.Buffer
	det := syntheticDetector(t) // fitted on 160x120 colour frames
	frames := func(w, h int, color capture.Color) capture.Source {
		src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: w, Height: h, Seed: 3, Color: color})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	p, err := NewPipeline(PipelineOptions{Source: frames(160, 120, capture.ColorGray), Detector: det, Sink: &memSink{}, Metrics: httpapi.NewMetrics(), FreeRun: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Strips in colour, then grayscale frames of the training shape, then
	// grayscale strips (both kinds, each already warned of).
	for _, src := range []capture.Source{frames(400, 80, capture.ColorRGB), frames(160, 120, capture.ColorGray), frames(400, 80, capture.ColorGray)} {
		inspectFrames(t, p, src, 2)
	}
	got := logs.String()
	if n := strings.Count(got, "frames unlike the training images"); n != 2 ||
		!strings.Contains(got, "a 400x80 frame") || !strings.Contains(got, "a grayscale frame, the model was fitted on colour images") {
		t.Errorf("%d warnings, want 2: one for the strips' shape, one for the grayscale frames:\n%s", n, got)
	}
}

// inspectFrames runs n frames of src through p's inspect stage alone and
// fails the test on an inspection error.
func inspectFrames(t *testing.T, p *Pipeline, src capture.Source, n int) {
	t.Helper()
	in, out := make(chan *slot, n), make(chan *slot, n)
	for range n {
		s := &slot{}
		if err := src.Next(context.Background(), &s.frame); err != nil {
			t.Fatal(err)
		}
		in <- s
	}
	close(in)
	if err := p.inspectStage(in, out); err != nil {
		t.Fatal(err)
	}
	for range n {
		if s := <-out; s.inspErr != nil {
			t.Fatalf("inspection: %v", s.inspErr)
		}
	}
}

// A camera that stays unplugged is logged once by the pipeline, not once
// per try: the retry's error carries the growing backoff ("next try in
// 250ms", "500ms", …), which made six lines in eight seconds (a trial).
func TestUnpluggedCameraLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cam, err := capture.NewCamera(capture.CameraOptions{Device: "/dev/video-unplugged", ReopenMin: time.Millisecond, ReopenMax: 64 * time.Millisecond,
		Open: func(path string) (capture.Device, error) { return nil, fmt.Errorf("open %s: %w", path, os.ErrNotExist) }, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPipeline(PipelineOptions{Source: cam, Detector: syntheticDetector(t), Sink: &memSink{}, Metrics: httpapi.NewMetrics(), FreeRun: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_ = p.Run(ctx)
	if tries := strings.Count(logs.String(), "next try in"); tries != 1 {
		t.Errorf("%d lines with a retry, want 1 (the tries went on for 400 ms, backoff 1–64 ms):\n%s", tries, logs.String())
	}
	if n := strings.Count(logs.String(), "capture problem, retrying"); n != 1 {
		t.Errorf("%d pipeline lines for one unplugged camera, want 1:\n%s", n, logs.String())
	}
}

// Every file of a folder source that cannot be inspected gets its own
// error result (a line tracks its parts by file name), not one a second as
// a camera's failing frames; and thumbnails under model.MinFrameSide, bad
// input, do not turn the model's health bad (a trial: of four thumbnails
// dropped at once only the first was answered on MQTT, and /healthz
// blamed the model).
func TestFolderErrorsEachAnswered(t *testing.T) {
	dir := t.TempDir()
	for i := range 4 {
		var b bytes.Buffer
		if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 3+3*i, 3+3*i))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("tiny%d.png", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, got := runFolder(t, dir)
	if len(got) != 4 {
		t.Fatalf("%d results for 4 files that cannot be inspected, want 4: %+v", len(got), got)
	}
	for i, r := range got {
		if r.Verdict != VerdictError || r.File != fmt.Sprintf("tiny%d.png", i) || !strings.Contains(r.Error, "frame too small to inspect") {
			t.Errorf("result %d: %s %s %q", i, r.Verdict, r.File, r.Error)
		}
	}
	if ok, why := p.ModelHealth(); !ok {
		t.Errorf("model health after 4 thumbnails: %s", why)
	}
}

// A watched folder that could not be listed and is back counts as back at
// once, not at its next file, which may come hours later (a review: the
// camera check stayed bad, "cannot be listed", until a part arrived). A
// camera still says it is back with a frame (TestUnpluggedCameraLoggedOnce).
func TestFolderBackIsHealthyWithoutAFile(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "watch")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 64, 64))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.png"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	src, err := capture.NewFolder(capture.FolderOptions{Dir: dir, Watch: true, PollInterval: 10 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	inspected := make(chan struct{}, 1)
	sink := &memSink{onResult: func(*mqttpub.Result) { inspected <- struct{}{} }}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: sink, Metrics: httpapi.NewMetrics(),
		FreeRun: true, StallTimeout: 100 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-inspected
	gone := filepath.Join(parent, "gone")
	if err := os.Rename(dir, gone); err != nil {
		t.Fatal(err)
	}
	waitHealth := func(want bool, what string) string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			ok, why := p.CameraHealth()
			if ok == want {
				return why
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: camera health %v (%s), want %v", what, ok, why, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if why := waitHealth(false, "folder gone"); !strings.Contains(why, "cannot be listed") {
		t.Errorf("folder gone: %s", why)
	}
	if err := os.Rename(gone, dir); err != nil {
		t.Fatal(err)
	}
	why := waitHealth(true, "folder back, no new file")
	if strings.Contains(why, "cannot be listed") {
		t.Errorf("folder back: %s", why)
	}
	// It stays so (no file comes, the stall timeout passes many times).
	time.Sleep(300 * time.Millisecond)
	if ok, why := p.CameraHealth(); !ok {
		t.Errorf("folder back for 300 ms: %s", why)
	}
	// A second outage is logged as the first (a trial: no line).
	if err := os.Rename(dir, gone); err != nil {
		t.Fatal(err)
	}
	waitHealth(false, "folder gone again")
	// The line follows the health's error: wait for it a while.
	testbroker.WaitFor(ctx, 3*time.Second, func() bool { return strings.Count(logs.String(), "capture problem, retrying") >= 2 }, logs)
	if n := strings.Count(logs.String(), "capture problem, retrying"); n != 2 {
		t.Errorf("%d problem lines for two outages, want 2:\n%s", n, logs.String())
	}
}

// A file name that is not UTF-8 is published with its exact bytes beside
// the text (a trial: "p\xff.png" and "p\xfe.png" both read "p\ufffd.png",
// so the results' file no longer told one part from another).
func TestResultKeepsAFileNameThatIsNotUTF8(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 64, 64))); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"p\xfe.png", "p\xff.png", "q.png"} {
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, got := runFolder(t, dir)
	if len(got) != 3 {
		t.Fatalf("%d results, want 3", len(got))
	}
	for i, want := range []string{"p\xfe.png", "p\xff.png", ""} {
		if string(got[i].FileBytes) != want {
			t.Errorf("result %d (%q): file_bytes %q, want %q", i, got[i].File, got[i].FileBytes, want)
		}
	}
	js, err := json.Marshal(got[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"file_bytes":"cP8ucG5n"`) {
		t.Errorf("JSON %s: want file_bytes in base64", js)
	}
}

// runFolder runs a pipeline over the files of dir (a folder source, read
// once) on the synthetic detector and returns it with the results it
// published, in order.
func runFolder(t *testing.T, dir string) (*Pipeline, []mqttpub.Result) {
	t.Helper()
	src, err := capture.NewFolder(capture.FolderOptions{Dir: dir, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var got []mqttpub.Result
	sink := &memSink{onResult: func(r *mqttpub.Result) { got = append(got, *r) }}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: sink, Metrics: httpapi.NewMetrics(), FreeRun: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil && !errors.Is(err, capture.ErrEOF) {
		t.Fatal(err)
	}
	return p, got
}

// The last of a run of files is the one /heatmap.jpg shows, however soon
// after the one before it came (a trial: an idle folder's heatmap stayed
// on the part before the last for good, the refresh being at most twice a
// second).
func TestHeatmapShowsTheLastFile(t *testing.T) {
	dir := t.TempDir()
	// Good parts, as the detector was fitted on (an anomalous one is
	// always shown).
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 5, NormalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var f capture.Frame
	for _, name := range []string{"a.png", "b.png", "c.png"} {
		if err := syn.Next(context.Background(), &f); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := png.Encode(&b, f.Image); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := capture.NewFolder(capture.FolderOptions{Dir: dir, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	m := httpapi.NewMetrics()
	h := httpapi.New(httpapi.Options{Metrics: m, Logger: testLogger(t)})
	var anomalous int
	sink := &memSink{onResult: func(r *mqttpub.Result) {
		if r.Anomalous {
			anomalous++
		}
	}}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: sink, Metrics: m, HTTP: h, HTTPEvery: time.Hour,
		FreeRun: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil && !errors.Is(err, capture.ErrEOF) {
		t.Fatal(err)
	}
	if anomalous > 0 {
		t.Fatalf("%d of the good parts flagged: the test needs good ones", anomalous)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/heatmap.jpg", nil))
	if body := rec.Body.String(); rec.Code != 200 || !strings.Contains(body, `"seq":3`) || !strings.Contains(body, `"file":"c.png"`) {
		t.Errorf("heatmap %d, tag of %q: want the last file's (seq 3, c.png)", rec.Code, tagText(body))
	}
}

// tagText is the JSON tag inside a heatmap JPEG's bytes, for messages.
func tagText(body string) string {
	i := strings.Index(body, `{"seq"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "}")
	if j < 0 {
		return body[i:]
	}
	return body[i : i+j+1]
}

// TestSeriesExportedBeforeTheStartEnds: the MQTT, camera and frame-age
// series are on /metrics while the start still runs (a fit can take
// minutes): registered once the start had finished, they were absent
// meanwhile and an absent() alert fired. Until the pipeline exists they
// say nothing is connected and how long ago the start began.
func TestSeriesExportedBeforeTheStartEnds(t *testing.T) {
	d := &Daemon{startedAt: time.Now().Add(-5 * time.Second)}
	cfg := config.Default()
	cfg.MQTT.MaxPayload = 128 << 10
	d.setConfig(cfg)
	d.metrics = httpapi.NewMetrics()
	d.watchMetrics()
	h := httpapi.New(httpapi.Options{Metrics: d.metrics, Logger: slog.New(slog.DiscardHandler)})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"inspectd_mqtt_connected 0\n", "inspectd_mqtt_queue_depth 0\n", "inspectd_camera_reopens_total 0\n",
		// Without an edge node (yet): offline, not absent.
		"inspectd_sparkplug_online 0\n", "inspectd_sparkplug_sessions_total 0\n",
		// The configured limit, not 0 ("no limit" to a dashboard).
		"inspectd_mqtt_max_payload_bytes 131072\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics before the pipeline lacks %q", want)
		}
	}
	i := strings.Index(body, "\ninspectd_last_good_frame_age_seconds ")
	if i < 0 {
		t.Fatal("/metrics before the pipeline lacks inspectd_last_good_frame_age_seconds")
	}
	v, _, _ := strings.Cut(body[i+len("\ninspectd_last_good_frame_age_seconds "):], "\n")
	if age, err := strconv.ParseFloat(v, 64); err != nil || age < 5 {
		t.Errorf("inspectd_last_good_frame_age_seconds %q before the pipeline; want the time since the start (≥ 5)", v)
	}
}
