package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testproc"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/dataset"
	"github.com/inspectd/inspectd/model/modeltest"
)

func TestRegions(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 10, 6))
	set := func(x0, y0, x1, y1 int) {
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				m.Pix[y*m.Stride+x] = 255
			}
		}
	}
	set(1, 1, 4, 3) // 3×2
	set(4, 3, 5, 4) // touches the first diagonally: same region
	set(7, 0, 9, 6) // 2×6
	var rf regionFinder
	got := rf.find(m)
	if len(got) != 2 {
		t.Fatalf("regions %+v, want 2", got)
	}
	want := []mqttpub.Region{{X: 7, Y: 0, W: 2, H: 6, Area: 12}, {X: 1, Y: 1, W: 4, H: 3, Area: 7}} // largest first
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("region %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := testing.AllocsPerRun(10, func() { rf.find(m) }); n != 0 {
		t.Errorf("%v allocations per mask", n)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fitTile fits a model on a spread of the magnetic tile's normal images.
func fitTile(t *testing.T, dir string, n int, out string) model.Options {
	t.Helper()
	set, err := dataset.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testDefaults(t)
	cfg.Model.Recipe = "fixed" // the recipe search has tests of its own
	opts, err := ModelOptions(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := 0; i < n; i++ {
		paths = append(paths, set.Train[i*len(set.Train)/n].Path)
	}
	det, _, err := model.Fit(context.Background(), opts, pathList(paths), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if err := det.Save(out); err != nil {
		t.Fatal(err)
	}
	return opts
}

// testDefaults is the default configuration with a state directory of the
// test's own: the default /var/lib/inspectd is the machine's (a backbone
// variant cached there by an earlier run once changed a fit's numbers).
func testDefaults(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	return cfg
}

type pathList []string

func (p pathList) Len() int                         { return len(p) }
func (p pathList) Image(i int) (image.Image, error) { return dataset.Load(p[i]) }

// copyImages copies the named test images into a folder for the folder source.
func copyImages(t *testing.T, dst string, srcs []string) {
	t.Helper()
	for i, s := range srcs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dst, strings.ReplaceAll(filepath.Base(filepath.Dir(s)), "_", "")+"_"+string(rune('a'+i/26))+string(rune('a'+i%26))+"_"+filepath.Base(s))
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type collector struct {
	mu      sync.Mutex
	results []mqttpub.Result
	alarms  []mqttpub.Alarm
	masks   int
	status  []string
	info    []byte
}

func (c *collector) handle(_ mqtt.Client, m mqtt.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case strings.HasSuffix(m.Topic(), "/result"):
		var r mqttpub.Result
		if err := json.Unmarshal(m.Payload(), &r); err == nil {
			c.results = append(c.results, r)
		}
	case strings.HasSuffix(m.Topic(), "/alarm"):
		var a mqttpub.Alarm
		if err := json.Unmarshal(m.Payload(), &a); err == nil {
			c.alarms = append(c.alarms, a)
		}
	case strings.HasSuffix(m.Topic(), "/mask"):
		c.masks++
	case strings.HasSuffix(m.Topic(), "/status"):
		c.status = append(c.status, string(m.Payload()))
	case strings.HasSuffix(m.Topic(), "/info"):
		c.info = append([]byte(nil), m.Payload()...)
	}
}

func subscribe(t *testing.T, url, topic string, c *collector) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID("inspectd-test-sub").SetCleanSession(false).SetAutoReconnect(true).
		SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).SetMaxReconnectInterval(time.Second)
	return testbroker.Connect(t, o, testbroker.Sub{Topic: topic, QoS: 1, Handler: c.handle})
}

// TestRunEndToEnd runs the whole daemon against a real mosquitto with the
// real backbone and a model fitted on real tiles: results carry every
// field, defective tiles raise alarms with masks, and every alarm arrives
// although the broker is killed and restarted in the middle of the run.
func TestRunEndToEnd(t *testing.T) {
	t.Parallel()
	tiles := modeltest.MagneticTile(t)
	if testing.Short() {
		t.Skip("fits a model on real images")
	}
	b := testbroker.Start(t, testbroker.Options{Persistence: true})
	state := t.TempDir()
	cfg := config.Default()
	cfg.StateDir = state
	cfg.DeviceID = "line1"
	cfg.MQTT.Brokers = []string{b.URL}
	cfg.MQTT.MaxReconnectInterval = config.Duration(time.Second)
	cfg.MQTT.ResultQoS = 1
	cfg.HTTP.Listen = "127.0.0.1:0"
	fitTile(t, tiles, 80, cfg.ModelPath())

	// A folder of normal tiles and clearly broken ones.
	frames := t.TempDir()
	var srcs []string
	good, _ := filepath.Glob(filepath.Join(tiles, "test", "good", "*.jpg"))
	broken, _ := filepath.Glob(filepath.Join(tiles, "test", "break", "*.jpg"))
	fray, _ := filepath.Glob(filepath.Join(tiles, "test", "fray", "*.jpg"))
	srcs = append(srcs, good[:12]...)
	srcs = append(srcs, broken[:12]...)
	srcs = append(srcs, fray[:6]...)
	copyImages(t, frames, srcs)
	cfg.Capture.Source = config.SourceFolder
	cfg.Capture.Folder.Path = frames
	cfg.Capture.Folder.Loop = true
	cfg.Capture.Trigger.MaxRate = 12 // slow enough that the broker outage spans several alarms

	var got collector
	subscribe(t, b.URL, "inspectd/line1/#", &got)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	const total = 60
	go func() {
		done <- Run(ctx, RunOptions{Config: cfg, Logger: testLogger(t), Version: "test", MaxInspections: total})
	}()
	// Kill the broker once results flow, restart it a little later.
	if !testbroker.WaitFor(ctx, 60*time.Second, func() bool { got.mu.Lock(); defer got.mu.Unlock(); return len(got.results) >= 10 }) {
		t.Fatal("no results within 60 s")
	}
	b.SaveNow()
	b.Kill()
	time.Sleep(1500 * time.Millisecond)
	b.Restart()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		cancel()
		t.Fatal("daemon did not finish")
	}
	cancel()
	// The daemon published offline on its way out; wait for the queued
	// messages to drain into the subscriber.
	testbroker.WaitFor(context.Background(), 20*time.Second, func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		return len(got.status) > 0 && got.status[len(got.status)-1] == "offline"
	})
	got.mu.Lock()
	defer got.mu.Unlock()
	// Results at QoS 1 survive the outage too: seq 1..total, each once.
	seen := map[uint64]mqttpub.Result{}
	for _, r := range got.results {
		seen[r.Seq] = r
	}
	anomalous := 0
	for seq := uint64(1); seq <= total; seq++ {
		r, ok := seen[seq]
		if !ok {
			t.Errorf("result %d never arrived", seq)
			continue
		}
		// A score is a z-scored distance: a part closer to the good ones
		// than their mean scores below 0.
		if r.ModelID == "" || r.Threshold <= 0 || r.FrameTime.IsZero() || math.IsNaN(r.Score) || math.IsInf(r.Score, 0) ||
			r.NormalizedScore != r.Score/r.Threshold || r.Anomalous != (r.Score > r.Threshold) {
			t.Errorf("result %d has wrong fields: %+v", seq, r)
		}
		for _, k := range []string{"queue", "preprocess", "backbone", "padim", "map"} {
			if _, ok := r.LatencyMS[k]; !ok {
				t.Errorf("result %d lacks latency %q", seq, k)
			}
		}
		if want := map[bool]string{true: "anomalous", false: "ok"}[r.Anomalous]; r.Verdict != want {
			t.Errorf("result %d verdict %q, want %q", seq, r.Verdict, want)
		}
		if r.Anomalous {
			anomalous++
		}
	}
	alarms := map[uint64]mqttpub.Alarm{}
	for _, a := range got.alarms {
		alarms[a.Seq] = a
	}
	for seq, r := range seen {
		a, ok := alarms[seq]
		if r.Anomalous != ok {
			t.Errorf("result %d anomalous=%v but alarm present=%v", seq, r.Anomalous, ok)
		}
		if ok && (len(a.Regions) == 0 || a.ImageWidth == 0 || a.Regions[0].Area <= 0) {
			t.Errorf("alarm %d without regions: %+v", seq, a)
		}
	}
	// 18 of the 30 tiles are broken or frayed. The threshold of a model of
	// 80 tiles (99th percentile × 1.1 of their leave-one-out scores) keeps
	// false alarms rare and flags about a third of them (6): detection
	// itself is measured by eval; this test is about delivery.
	if anomalous < total/6 {
		t.Errorf("only %d of %d inspections anomalous; 18 of 30 tiles are broken or frayed", anomalous, total)
	}
	if got.masks < anomalous {
		t.Errorf("%d masks for %d anomalous inspections", got.masks, anomalous)
	}
	var info mqttpub.Info
	if err := json.Unmarshal(got.info, &info); err != nil || info.ModelID == "" || info.D != 100 {
		t.Errorf("info %s: %v", got.info, err)
	}
	// The recipe and the line's noise, as the model file records them.
	if info.Recipe == "" || info.RecipeChoice == "" || info.LineNoise == nil || info.LineNoise.Images == 0 {
		t.Errorf("info %s: want the model's recipe, how it was chosen and the line's noise", got.info)
	}
	// Tiles judged: the broken ones mostly flagged, good ones mostly not.
	t.Logf("%d results, %d alarms, %d masks, %d anomalous", len(seen), len(alarms), got.masks, anomalous)
}

// TestPipelineDropsOldestFreeRunFrames overloads the inspection stage:
// frames are dropped, oldest first, and counted, and published sequence
// numbers keep increasing. The overload is made, not hoped for (a fast
// machine's backbone can keep up with a synthetic source): the sink holds
// the first result until the source has delivered a burst, so that nothing
// leaves the pipeline while the burst comes in; then the pipeline drains
// before the source ends.
func TestPipelineDropsOldestFreeRunFrames(t *testing.T) {
	det := syntheticDetector(t)
	src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	const burst = 12 // frames delivered while the publish stage is held
	blocked, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var seqs []uint64
	var frames []time.Time
	sink := &memSink{onResult: func(r *mqttpub.Result) {
		mu.Lock()
		first := len(seqs) == 0
		seqs, frames = append(seqs, r.Seq), append(frames, r.FrameTime)
		mu.Unlock()
		if first {
			close(blocked)
			<-release
		}
	}}
	published := func() int { mu.Lock(); defer mu.Unlock(); return len(seqs) }
	gs := &gatedSource{Source: src, base: time.Now(), burst: burst, blocked: blocked, release: release}
	p, err := NewPipeline(PipelineOptions{Source: gs, Detector: det, Sink: sink, Queue: 1, FreeRun: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	gs.drained = func() bool { return uint64(published())+p.Drops() == burst }
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if gs.err != nil {
		t.Fatal(gs.err)
	}
	// The pipeline holds one frame being published, one waiting for it,
	// one being inspected and one queued: of the burst's other frames,
	// each was dropped for a newer one.
	if d := p.Drops(); d < burst-4 {
		t.Errorf("%d frames dropped of a burst of %d while nothing was published, want at least %d", d, burst, burst-4)
	}
	if n := uint64(len(seqs)); n+p.Drops() != burst {
		t.Errorf("%d published + %d dropped, want the burst's %d frames: every frame not inspected is counted", n, p.Drops(), burst)
	}
	var got []uint64
	for i, r := range seqs {
		if r != uint64(i+1) {
			t.Errorf("result %d has seq %d, want %d", i, r, i+1)
		}
		got = append(got, gs.frameOf(frames[i]))
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Errorf("frames published in the order %v, want increasing", got)
			break
		}
	}
	// Oldest first: the newest frame of the burst is never the one let go.
	if len(got) == 0 || got[len(got)-1] != burst {
		t.Errorf("frames inspected %v: the burst's newest, %d, was dropped (dropping the newest instead of the oldest?)", got, burst)
	}
}

// gatedSource hands out its source's frames numbered 1, 2, ... (stamped
// base + n µs, so that a result names its frame). Frame 2 waits until the
// first result's publishing is held (blocked); after the burst's last frame
// it releases it, waits until the pipeline has drained (every frame of the
// burst published or dropped) and ends.
type gatedSource struct {
	capture.Source
	base             time.Time
	burst            uint64
	blocked, release chan struct{}
	drained          func() bool
	n                uint64
	err              error
}

func (g *gatedSource) Next(ctx context.Context, f *capture.Frame) error {
	switch {
	case g.n == 1:
		select {
		case <-g.blocked:
		case <-time.After(time.Minute):
			g.err = errors.New("the first result was never published")
			return capture.ErrEOF
		}
	case g.n == g.burst:
		close(g.release)
		for deadline := time.Now().Add(time.Minute); !g.drained(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				g.err = errors.New("the pipeline did not drain the burst")
				break
			}
		}
		return capture.ErrEOF
	}
	if err := g.Source.Next(ctx, f); err != nil {
		return err
	}
	g.n++
	f.Seq, f.Time = g.n, g.base.Add(time.Duration(g.n)*time.Microsecond)
	return nil
}

// frameOf is the number of the frame stamped t.
func (g *gatedSource) frameOf(t time.Time) uint64 { return uint64(t.Sub(g.base) / time.Microsecond) }

// TestPipelineTriggeredNeverDropped: every trigger gets its own result,
// even when triggers arrive faster than inspections finish.
func TestPipelineTriggeredNeverDropped(t *testing.T) {
	det := syntheticDetector(t)
	src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	tr := capture.NewTriggered(src, capture.TriggerOptions{Queue: 32})
	var ids []string
	var mu sync.Mutex
	sink := &memSink{onResult: func(r *mqttpub.Result) { mu.Lock(); ids = append(ids, r.TriggerID); mu.Unlock() }}
	p, err := NewPipeline(PipelineOptions{Source: tr, Detector: det, Sink: sink, Queue: 1, FreeRun: false, MaxInspections: 12, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 12; i++ {
		if err := tr.Trigger("part-" + string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 12 || p.Drops() != 0 {
		t.Fatalf("results for triggers %v, drops %d", ids, p.Drops())
	}
	for i, id := range ids {
		if id != "part-"+string(rune('a'+i)) {
			t.Fatalf("result %d answers %q", i, id)
		}
	}
}

type memSink struct {
	onResult func(*mqttpub.Result)
}

func (m *memSink) PublishResult(r *mqttpub.Result, qos byte) error {
	if m.onResult != nil {
		m.onResult(r)
	}
	return nil
}
func (m *memSink) PublishAlarm(a *mqttpub.Alarm) error        { return nil }
func (m *memSink) PublishMask(uint64, []byte, byte) error     { return nil }
func (m *memSink) PublishHeatmap(jpeg []byte, qos byte) error { return nil }

// syntheticDetector fits a small model on normal synthetic frames.
// syntheticModel is the model file of the synthetic detector: fitted once
// per test process (a recipe search, 8–11 s on two cores, which 32 tests
// each paid) and loaded by every test that asks for one, so that each test
// still owns its detector. TestMain removes its folder.
var syntheticModel struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// syntheticDetector is a model fitted on 24 normal frames of the 160×120
// synthetic scene (32 features, the default recipe search), the test's own.
func syntheticDetector(t *testing.T) *model.Detector {
	t.Helper()
	cfg := testDefaults(t)
	opts, err := ModelOptions(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.Features = 32
	opts.MinFeatures = 32
	sm := &syntheticModel
	sm.once.Do(func() { sm.dir, sm.path, sm.err = fitSyntheticModel(opts) })
	if sm.err != nil {
		t.Fatal(sm.err)
	}
	det, err := model.Load(sm.path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { det.Close() })
	return det
}

// fitSyntheticModel fits syntheticDetector's model and saves it in a new
// temporary folder.
func fitSyntheticModel(opts model.Options) (dir, path string, err error) {
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 99, NormalOnly: true})
	if err != nil {
		return "", "", err
	}
	det, _, err := model.Fit(context.Background(), opts, FrameSource(syn, 24), nil)
	if err != nil {
		return "", "", err
	}
	defer det.Close()
	if dir, err = os.MkdirTemp("", "inspectd-daemon-test-"); err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "synthetic.safetensors")
	return dir, path, det.Save(path)
}

// syncBuffer is a goroutine-safe writer for logs and printed lines that
// says when it is written to (Changed): a wait on it (testbroker.WaitFor
// with the buffer, runningDaemon.waitFor) looks at it again at each write,
// where it polled, copying it whole, every 10 ms.
type syncBuffer = testproc.LogBuffer

// TestSIGHUPReload: a broken configuration file is reported and the daemon
// keeps inspecting on the running one; a good one is applied.
func TestSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "inspectd.yaml")
	port := testbroker.FreePort(t)
	write := func(deviceID, extra string) {
		y := "device_id: " + deviceID + "\nstate_dir: " + filepath.Join(dir, "state") + "\n" +
			syntheticLine + "\n" +
			"model: {features: 16, min_features: 16}\n" +
			"mqtt: {embedded_listen: 127.0.0.1:" + strconv.Itoa(port) + "}\nhttp: {listen: \"\"}\n" + extra
		if err := os.WriteFile(cfgPath, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cell1", "")
	var logs, lines syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, RunOptions{ConfigPath: cfgPath, Print: &lines, FitFrames: 12,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	}()
	waitFor := func(what string, on *syncBuffer, cond func() bool) {
		t.Helper()
		if !testbroker.WaitFor(ctx, 90*time.Second, cond, on) {
			t.Fatalf("timed out waiting for %s; log:\n%s", what, logs.String())
		}
	}
	waitFor("first inspections", &lines, func() bool { return strings.Count(lines.String(), "\n") >= 3 })

	write("cell1", "bogus_key: 1\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("the refusal", &logs, func() bool { return strings.Contains(logs.String(), "configuration not reloaded") })
	if !strings.Contains(logs.String(), "bogus_key") {
		t.Errorf("refusal does not name the bad key:\n%s", logs.String())
	}
	n := strings.Count(lines.String(), "\n")
	waitFor("inspections after the refusal", &lines, func() bool { return strings.Count(lines.String(), "\n") >= n+3 })

	write("cell2", "")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("the new configuration", &logs, func() bool { return strings.Contains(logs.String(), "device_id=cell2") })
	n = strings.Count(lines.String(), "\n")
	waitFor("inspections after the reload", &lines, func() bool { return strings.Count(lines.String(), "\n") >= n+3 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after SIGTERM-like stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
}
