package daemon

// Tests from a new user's trial (field-report style: each fails on the code before its fix).

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
)

// Results of a folder source name the file each frame came from, so that
// a consumer tells a part from a file read again.
func TestResultsNameTheirFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "frames")
	writePNGs(t, dir, 2, 5, false)
	src, err := capture.NewFolder(capture.FolderOptions{Dir: dir, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	sink := &memSink{onResult: func(r *mqttpub.Result) { files = append(files, r.File) }}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: sink, Metrics: httpapi.NewMetrics(),
		Queue: 1, MaxInspections: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0] != "part000.png" || files[1] != "part001.png" {
		t.Errorf("results name %q, want part000.png and part001.png", files)
	}
}

// A file the folder source cannot read is answered with an error result
// naming it, in its place among the files (a line that tracks parts by file
// name heard nothing of it), once; it is not an inspection.
func TestSkippedFileAnswered(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "frames")
	writePNGs(t, dir, 2, 5, false)
	if err := os.WriteFile(filepath.Join(dir, "part000b.png"), []byte("not a PNG"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := capture.NewFolder(capture.FolderOptions{Dir: dir, Log: slog.New(slog.DiscardHandler), ReportSkips: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	sink := &memSink{onResult: func(r *mqttpub.Result) {
		got = append(got, fmt.Sprintf("%s %s", r.File, r.Verdict))
		// No frame was read from it: no frame time.
		if r.Verdict == VerdictError && (!strings.Contains(r.Error, "part000b.png skipped (unreadable or corrupt)") || !r.Anomalous || r.ModelID == "" ||
			!r.FrameTime.IsZero()) {
			t.Errorf("error result %+v", r)
		}
	}}
	var print strings.Builder
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: sink, Metrics: httpapi.NewMetrics(),
		Queue: 1, MaxInspections: 2, Logger: slog.New(slog.DiscardHandler), Print: &print})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !strings.HasPrefix(got[0], "part000.png ") || got[1] != "part000b.png error" || !strings.HasPrefix(got[2], "part001.png ") {
		t.Errorf("results %q, want part000.png, part000b.png error, part001.png", got)
	}
	if n := p.inspected.Load(); n != 2 {
		t.Errorf("%d inspections, want 2: a skipped file is not one", n)
	}
	if !strings.Contains(print.String(), "SKIPPED") {
		t.Errorf("printed lines lack the skipped file:\n%s", print.String())
	}
}

// A reload that changes only who may command the box, or the log level,
// says so: it was logged "configuration unchanged" while it took effect.
// Neither is a restarted part (remote replies list those in "restarted").
func TestSettingsChangedNamesRemoteAndLogLevel(t *testing.T) {
	a := config.Default()
	b := config.Default()
	b.Remote.TrustKeys = map[string]string{"scada": "HnOG"}
	if got := settingsChanged(a, b); !slices.Equal(got, []string{"remote"}) {
		t.Errorf("trust keys added: changed %v, want [remote]", got)
	}
	if got := diffConfig(a, b, "d", "d").names(); len(got) != 0 {
		t.Errorf("trust keys added: restarted %v, want none", got)
	}
	b = config.Default()
	b.LogLevel = "debug"
	if got := settingsChanged(a, b); !slices.Equal(got, []string{"log_level"}) {
		t.Errorf("log level: changed %v, want [log_level]", got)
	}
	if got := settingsChanged(a, config.Default()); len(got) != 0 {
		t.Errorf("the same configuration: changed %v", got)
	}
}

// failingSink refuses what goes through the outbox (alarms; results at
// QoS 1) as it does when the state folder cannot be written; a QoS 0
// result does not touch the disk and goes out.
type failingSink struct{ memSink }

func (f *failingSink) PublishResult(r *mqttpub.Result, qos byte) error {
	if qos == 0 {
		return nil
	}
	return fmt.Errorf("outbox: %w", mqttpub.ErrNotDurable)
}
func (f *failingSink) PublishAlarm(a *mqttpub.Alarm) error { return f.PublishResult(nil, 1) }

// An outbox that cannot write is logged once per kind (alarm, result) per
// outage, not on every frame: the alarms and results of anomalous parts
// alternated and logged each (20 lines in 20 s in a field trial); and a
// QoS 0 result that goes out (the default) must not re-arm the alarm's line.
func TestPublishFailuresLoggedOncePerOutage(t *testing.T) {
	t.Parallel()
	det := syntheticDetector(t)
	for _, qos := range []int{1, 0} {
		var logs syncBuffer
		src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 4, DefectRate: 1})
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPipeline(PipelineOptions{Source: src, Detector: det, Sink: &failingSink{}, Metrics: httpapi.NewMetrics(),
			Policy: Policy{ResultQoS: byte(qos)}, Queue: 1, MaxInspections: 6, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := 2 // alarm and result at QoS 1, the alarm alone at QoS 0
		if qos == 0 {
			want = 1
		}
		if n := strings.Count(logs.String(), "held in memory and delivered"); n != want {
			t.Errorf("results at QoS %d: %d log lines for 6 anomalous parts not made durable, want %d:\n%s", qos, n, want, logs.String())
		}
	}
}

// config check names the client id the daemon connects as: with neither
// mqtt.client_id nor device_id, the one with the suffix a start chose.
func TestPreviewClientID(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	if got := PreviewClientID(cfg); !strings.Contains(got, "<random suffix, chosen at the first start") {
		t.Errorf("before the first start: %q", got)
	}
	id, err := resolveClientID(cfg, "box")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DeviceID = ""
	dev, _ := cfg.ResolvedDeviceID()
	if want := strings.Replace(id, "inspectd-box-", "inspectd-"+dev+"-", 1); PreviewClientID(cfg) != want {
		t.Errorf("after the first start: %q, want %q", PreviewClientID(cfg), want)
	}
	cfg.DeviceID = "cam-1"
	if got := PreviewClientID(cfg); got != "inspectd-cam-1" {
		t.Errorf("with device_id: %q", got)
	}
}

// A missing model file is named by its key, at start and at a reload
// (which said "model: no model at ...").
func TestNoModelNamesItsKey(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Capture.Source = config.SourceFolder
	_, _, err := openDetector(context.Background(), cfg, model.Options{}, RunOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "state_dir: no model at "+filepath.Join(cfg.StateDir, "model.safetensors")) {
		t.Errorf("model in state_dir missing: %v", err)
	}
	cfg.Model.Path = filepath.Join(cfg.StateDir, "line3.safetensors")
	if _, _, err := openDetector(context.Background(), cfg, model.Options{}, RunOptions{}); err == nil || !strings.HasPrefix(err.Error(), "model.path: no model at "+cfg.Model.Path) {
		t.Errorf("model.path missing: %v", err)
	}
}

// A reload or push onto a camera that is not there is refused, the running
// source kept (it was applied, and inspection stopped on a typo).
func TestReloadOntoMissingCameraRefused(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // Apply: TestRemoteConfigPush races it
	r := startDaemon(t, nil)
	d := r.daemon()
	r.moreInspections(2)
	next := *d.Config()
	next.Capture.Source = config.SourceCamera
	next.Capture.Camera.Device = filepath.Join(t.TempDir(), "video-nope")
	_, err := d.Apply(context.Background(), &next)
	if err == nil || !strings.Contains(err.Error(), "capture.camera.device") || d.Config().Capture.Source == config.SourceCamera {
		t.Fatalf("push onto a missing camera: %v, source in force %s", err, d.Config().Capture.Source)
	}
	r.moreInspections(2)
}

// A change to a section the box does not use rebuilds nothing: the
// camera section on a folder box (a fleet push sent a looped folder back
// to its first file), Sparkplug settings on a box that publishes JSON only.
func TestDiffConfigIgnoresUnusedSections(t *testing.T) {
	a := config.Default()
	a.Capture.Source, a.Capture.Folder.Path = config.SourceFolder, "/srv/parts"
	b := *a
	b.Capture.Camera.Width = 1920
	b.Sparkplug.GroupID = "Plant 2"
	if got := diffConfig(a, &b, "d", "d").names(); len(got) != 0 {
		t.Errorf("camera and sparkplug sections of a JSON folder box: restarted %v, want none", got)
	}
	b.Capture.Folder.Path = "/srv/other"
	if got := diffConfig(a, &b, "d", "d").names(); !slices.Contains(got, "capture") {
		t.Errorf("the folder's own path: restarted %v, want capture", got)
	}
}

// A restart of the daemon on a watched folder goes on after the files it
// inspected before (they were all inspected again, with their alarms).
func TestWatchedFolderAcrossDaemonRestart(t *testing.T) {
	t.Parallel()
	frames := filepath.Join(t.TempDir(), "frames")
	writePNGs(t, frames, 3, 5, false)
	r := startFolderDaemon(t, frames, "watch", false)
	r.daemon()
	r.waitFor("the 3 files inspected", func() bool { return r.inspections() >= 3 })
	r.stop()
	r.run()
	r.daemon()
	writePNGs(t, filepath.Join(frames, "new"), 1, 7, false)
	if err := os.Rename(filepath.Join(frames, "new", "part000.png"), filepath.Join(frames, "zz-new.png")); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the new file", func() bool { return strings.Contains(r.lines.String(), "zz-new.png") })
	time.Sleep(500 * time.Millisecond)
	if n := r.inspections(); n != 4 {
		t.Errorf("%d inspections over two runs of 3 files then 1 new, want 4:\n%s", n, r.lines.String())
	}
}

// An HTTP port taken by another program ends the start before anything is
// inspected: the watched folder's file stays uninspected for the next
// start (a trial: the first file was inspected and recorded as done, then
// the start failed and its result was lost).
func TestHTTPPortTakenInspectsNothing(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := filepath.Join(t.TempDir(), "frames")
	writePNGs(t, frames, 1, 5, false)
	det := syntheticDetector(t)
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		y := strings.Replace(r.baseYAML("cell1"), syntheticLine,
			"capture: {source: folder, folder: {path: "+frames+", watch: true}}", 1)
		return strings.Replace(y, `http: {listen: ""}`, `http: {listen: "`+ln.Addr().String()+`"}`, 1)
	})
	var end error
	r.waitFor("the start to fail", func() bool { e, ok := r.ended(); end = e; return ok })
	if end == nil || !strings.HasPrefix(end.Error(), "http.listen: ") || strings.Count(end.Error(), ln.Addr().String()) != 1 {
		t.Fatalf("start ended with %v, want the http.listen error", end)
	}
	if n := r.inspections(); n != 0 {
		t.Errorf("%d inspections before the start failed:\n%s", n, r.lines.String())
	}
	if b, err := os.ReadFile(filepath.Join(r.dir, "state", folderLedgerFile)); err == nil && strings.Contains(string(b), "part000.png") {
		t.Errorf("the folder ledger records the file as inspected:\n%s", b)
	}
	// The order that makes it so, whatever the timing: the endpoint is
	// bound before the model is loaded and the source opened.
	ok := startFolderDaemon(t, frames, "watch", true)
	ok.daemon()
	logs := ok.logs.String()
	if h, m := strings.Index(logs, "HTTP endpoint"), strings.Index(logs, "model ready"); h < 0 || m < 0 || h > m {
		t.Errorf("HTTP endpoint logged at %d, model ready at %d: want the endpoint first\n%s", h, m, logs)
	}
}

// TestBrokerPortTakenEndsTheStartBeforeTheFit: an embedded broker whose
// port another program holds ends the start before the first fit (a trial:
// found after the whole fit, a minute and a half with recipe auto, its
// model saved).
func TestBrokerPortTakenEndsTheStartBeforeTheFit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := startDaemon(t, func(r *runningDaemon) string {
		r.fitFrames = 100000 // minutes of fitting, were it to start
		return strings.Replace(r.baseYAML("cell1"), "embedded_listen: 127.0.0.1:"+strconv.Itoa(r.port), "embedded_listen: "+ln.Addr().String(), 1)
	})
	var end error
	r.waitFor("the start to fail", func() bool { e, ok := r.ended(); end = e; return ok })
	if end == nil || !strings.Contains(end.Error(), "embedded MQTT broker") || !strings.Contains(end.Error(), ln.Addr().String()) {
		t.Fatalf("start ended with %v, want the embedded broker's port error", end)
	}
	if strings.Contains(r.logs.String(), "fitting") {
		t.Errorf("a fit began before the broker's port was found taken; log:\n%s", r.logs.String())
	}
}
