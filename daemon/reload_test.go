package daemon

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/modeltest"
)

// runningDaemon is Run on a configuration file in a goroutine, with its
// log and printed lines captured.
type runningDaemon struct {
	t       *testing.T
	dir     string
	cfgPath string
	port    int
	logs    syncBuffer
	lines   syncBuffer
	d       chan *Daemon
	done    chan error
	cancel  context.CancelFunc
	ctx     context.Context
	// fitFrames is RunOptions.FitFrames (0: 12), for a fit that must
	// last.
	fitFrames int
	// cameraOpen is RunOptions.cameraOpen: a capture.FakeCamera's Open
	// for a camera source (nil: the kernel's V4L2).
	cameraOpen capture.Opener
}

// syntheticLine is the capture section of the daemons these tests run: the
// 160×120 synthetic scene at 5 fps. A running daemon inspects every frame
// while its test waits on a broker, a fit or a command, and at 20 fps that
// took half a core per daemon, half of the package's CPU time; the tests
// wait for "n more inspections", never for a rate. Tests that swap the
// source replace this string (strings.Replace of a literal that is not
// there changes nothing: use the constant).
const syntheticLine = "capture: {synthetic: {width: 160, height: 120, fps: 5}}"

// baseYAML is a small synthetic line on the embedded broker: 160×120
// frames at 5 fps (syntheticLine), d = 16, no HTTP.
func (r *runningDaemon) baseYAML(deviceID string) string {
	return "device_id: " + deviceID + "\nstate_dir: " + filepath.Join(r.dir, "state") + "\n" +
		syntheticLine + "\n" +
		"model: {features: 16, min_features: 16}\n" +
		"mqtt: {embedded_listen: 127.0.0.1:" + strconv.Itoa(r.port) + "}\nhttp: {listen: \"\"}\n"
}

// startFolderDaemon starts a daemon with the synthetic detector on the
// image folder frames (flag: "watch" or "loop"), with the HTTP API on a
// free loopback port when withHTTP is set (httpURL).
func startFolderDaemon(t *testing.T, frames, flag string, withHTTP bool) *runningDaemon {
	det := syntheticDetector(t)
	return startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		y := strings.Replace(r.baseYAML("cell1"), syntheticLine,
			"capture: {source: folder, folder: {path: "+frames+", "+flag+": true}}", 1)
		if withHTTP {
			y = strings.Replace(y, `http: {listen: ""}`, `http: {listen: "127.0.0.1:0"}`, 1)
		}
		return y
	})
}

// httpURL is the base URL of the running daemon's HTTP API.
func (r *runningDaemon) httpURL() string {
	d := r.daemon()
	d.mu.Lock()
	defer d.mu.Unlock()
	return "http://" + d.httpSrv.Addr()
}

func (r *runningDaemon) write(yaml string) {
	r.t.Helper()
	if err := os.WriteFile(r.cfgPath, []byte(yaml), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// startDaemon writes yaml (baseYAML when empty) and runs the daemon on it.
func startDaemon(t *testing.T, yaml func(r *runningDaemon) string) *runningDaemon {
	t.Helper()
	r := &runningDaemon{t: t, dir: t.TempDir(), port: testbroker.FreePort(t)}
	r.cfgPath = filepath.Join(r.dir, "inspectd.yaml")
	if yaml == nil {
		r.write(r.baseYAML("cell1"))
	} else {
		r.write(yaml(r))
	}
	r.run()
	t.Cleanup(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("daemon did not stop")
		}
	})
	return r
}

// run runs the daemon on r's configuration file in a goroutine.
func (r *runningDaemon) run() {
	r.d, r.done = make(chan *Daemon, 1), make(chan error, 1)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	ctx, started, done := r.ctx, r.d, r.done
	go func() {
		done <- Run(ctx, RunOptions{ConfigPath: r.cfgPath, Print: &r.lines, FitFrames: cmp.Or(r.fitFrames, 12), cameraOpen: r.cameraOpen,
			Logger:    slog.New(slog.NewTextHandler(io.MultiWriter(&r.logs, testWriter(r.t)), nil)),
			OnStarted: func(d *Daemon) { started <- d }})
	}()
}

// stop stops the daemon and waits for it to end; run starts it again.
func (r *runningDaemon) stop() {
	r.t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("daemon ended with %v", err)
	}
	r.done <- nil // for the cleanup
}

// testWriter shows the daemon's log with -v only.
func testWriter(t *testing.T) io.Writer {
	if testing.Verbose() {
		return os.Stderr
	}
	return io.Discard
}

func (r *runningDaemon) daemon() *Daemon {
	r.t.Helper()
	select {
	case d := <-r.d:
		r.d <- d
		return d
	case err := <-r.done:
		r.done <- err // for the cleanup
		r.t.Fatalf("daemon ended before it started: %v\n%s", err, r.logs.String())
	case <-time.After(90 * time.Second):
		r.t.Fatalf("daemon did not start; log:\n%s", r.logs.String())
	}
	return nil
}

// waitFor waits for cond, for at most 90 s, failing the test with what
// and the log if it does not become true. Where cond reads only the log or
// only the printed lines, on (&r.logs or &r.lines) makes it looked at
// again at each write to that buffer alone; without on it is polled.
func (r *runningDaemon) waitFor(what string, cond func() bool, on ...testbroker.Changer) {
	r.t.Helper()
	if !testbroker.WaitFor(r.ctx, 90*time.Second, cond, on...) {
		r.t.Fatalf("timed out waiting for %s; log:\n%s", what, r.logs.String())
	}
}

func (r *runningDaemon) inspections() int { return strings.Count(r.lines.String(), "\n") }

// moreInspections waits until n more inspections than now were printed.
func (r *runningDaemon) moreInspections(n int) {
	r.t.Helper()
	base := r.inspections()
	r.waitFor(strconv.Itoa(n)+" more inspections", func() bool { return r.inspections() >= base+n }, &r.lines)
}

func (r *runningDaemon) hup() {
	r.t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		r.t.Fatal(err)
	}
}

// TestReloadKeepsRunningOnBrokenParts: a SIGHUP with a broken backbone
// (the 8-byte field case) or a model file cut short by one byte is refused
// with one log line and reload_failures_total, and inspection goes on with
// the running backbone and model; a good change is then applied without
// restarting the embedded broker (a subscriber on it stays connected).
func TestReloadKeepsRunningOnBrokenParts(t *testing.T) {
	eight := modeltest.Case(t, "reload/eight-bytes.tflite")
	r := startDaemon(t, nil)
	d := r.daemon()
	r.moreInspections(3)
	modelID := d.pipe.Load().Detector().Info().ID

	// A client on the embedded broker: it must survive the reloads.
	o := mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:" + strconv.Itoa(r.port)).SetClientID("watcher").SetAutoReconnect(false)
	lost := make(chan error, 1)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
	watcher := mqtt.NewClient(o)
	if tok := watcher.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	defer watcher.Disconnect(0)

	bad := filepath.Join(r.dir, "bad.tflite")
	data, err := os.ReadFile(eight)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r.write(strings.Replace(r.baseYAML("cell1"), "model: {", "model: {backbone: "+bad+", ", 1))
	r.hup()
	r.waitFor("the refused backbone", func() bool { return strings.Contains(r.logs.String(), "configuration not reloaded") }, &r.logs)
	if !strings.Contains(r.logs.String(), "bad.tflite") {
		t.Errorf("the refusal does not name the backbone file:\n%s", r.logs.String())
	}
	r.moreInspections(3)

	// A model file cut short by one byte.
	full, err := os.ReadFile(filepath.Join(r.dir, "state", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(r.dir, "cut.safetensors")
	if err := os.WriteFile(cut, full[:len(full)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	r.write(strings.Replace(r.baseYAML("cell1"), "model: {", "model: {path: "+cut+", ", 1))
	r.hup()
	r.waitFor("the refused model", func() bool { return strings.Count(r.logs.String(), "configuration not reloaded") >= 2 }, &r.logs)
	r.moreInspections(3)
	if got := testutil.ToFloat64(d.metrics.ReloadFailures); got != 2 {
		t.Errorf("reload_failures_total = %v, want 2", got)
	}
	if id := d.pipe.Load().Detector().Info().ID; id != modelID {
		t.Errorf("model %s after refused reloads, want the running %s", id, modelID)
	}

	// A good change: applied in place.
	r.write(r.baseYAML("cell2"))
	r.hup()
	r.waitFor("the new configuration", func() bool { return strings.Contains(r.logs.String(), "device_id=cell2") }, &r.logs)
	r.moreInspections(3)
	select {
	case err := <-lost:
		t.Errorf("a client of the embedded broker was disconnected by the reload: %v", err)
	default:
	}
	if got := testutil.ToFloat64(d.metrics.Reloads); got != 1 {
		t.Errorf("reloads_total = %v, want 1", got)
	}
	if strings.Count(r.logs.String(), "embedded MQTT broker listening") != 1 {
		t.Errorf("the embedded broker was restarted by a reload that did not change it:\n%s", r.logs.String())
	}

	// A new address for the embedded broker: it moves, with its store.
	r.port = testbroker.FreePort(t)
	r.write(r.baseYAML("cell2"))
	r.hup()
	r.waitFor("the broker on its new address", func() bool { return strings.Count(r.logs.String(), "embedded MQTT broker listening") == 2 }, &r.logs)
	r.waitFor("the reload", func() bool { return strings.Count(r.logs.String(), "configuration reloaded") == 2 }, &r.logs)
	r.moreInspections(3)
	if got := testutil.ToFloat64(d.metrics.ReloadFailures); got != 2 {
		t.Errorf("reload_failures_total = %v after moving the broker, want still 2", got)
	}
}

// TestStopSaysGoodbyeBeforeTheBrokerGoes: on SIGTERM with the embedded
// broker the client's offline reaches subscribers before the broker stops,
// with nothing left unacknowledged in the outbox.
func TestStopSaysGoodbyeBeforeTheBrokerGoes(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, nil)
	r.daemon()
	r.moreInspections(2)
	status := r.watchStatus("cell1")
	select {
	case s := <-status:
		if s != "online" {
			t.Fatalf("status %q before the stop, want online", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no retained status")
	}
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
	r.done <- nil // for the cleanup
	// The old order (broker first) took 10 s, the client timing out on a
	// broker that was gone; the order is checked below, the time logged.
	t.Logf("stop took %v", time.Since(start))
	got := ""
	select {
	case got = <-status:
	case <-time.After(time.Second):
	}
	if got != "offline" {
		t.Errorf("subscriber saw status %q on the way out, want offline", got)
	}
	if strings.Contains(r.logs.String(), "not acknowledged") {
		t.Errorf("messages left unacknowledged on stop:\n%s", r.logs.String())
	}
}

// watchStatus subscribes to the device's retained status on the daemon's
// embedded broker and returns the payloads as they arrive.
func (r *runningDaemon) watchStatus(dev string) <-chan string {
	r.t.Helper()
	status := make(chan string, 16)
	testbroker.Connect(r.t, mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:"+strconv.Itoa(r.port)).SetClientID("scada-"+dev).SetAutoReconnect(false),
		testbroker.Sub{Topic: "inspectd/" + dev + "/status", QoS: 1, Handler: func(_ mqtt.Client, m mqtt.Message) { status <- string(m.Payload()) }})
	return status
}

// withModel saves det as the state folder's model, for a daemon on a
// source that does not fit one by itself.
func (r *runningDaemon) withModel(det *model.Detector) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Join(r.dir, "state"), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := det.Save(filepath.Join(r.dir, "state", "model.safetensors")); err != nil {
		r.t.Fatal(err)
	}
}

// TestStateDirInUse: a second daemon on a state folder in use is refused,
// naming the folder and the process that holds it (two daemons would send
// each other's queued messages and overwrite each other's model).
func TestStateDirInUse(t *testing.T) {
	r := startDaemon(t, nil)
	r.daemon()
	cfg, err := LoadConfig(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DeviceID = "other"
	cfg.MQTT.EmbeddedListen = "127.0.0.1:" + strconv.Itoa(testbroker.FreePort(t))
	err = Run(context.Background(), RunOptions{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "is in use by another inspectd (process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("a second daemon on the same state_dir: %v", err)
	}
}

// TestReloadsKeepResidentSetFlat: 100 reloads that each rebuild the
// backbone and the model (model.threads toggled) leave the resident set
// flat. Each once leaked the backbone file's C copy: 8–9 MB per SIGHUP,
// 161 → 486 MB over 36 reloads.
func TestReloadsKeepResidentSetFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("100 reloads of the backbone and model")
	}
	r := startDaemon(t, nil)
	d := r.daemon()
	r.moreInspections(3)
	base, err := LoadConfig(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	reload := func(i int) {
		t.Helper()
		next := *base
		next.Model.Threads = 1 + i%2
		parts, err := d.Apply(r.ctx, &next)
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if !slices.Contains(parts, "model") {
			t.Fatalf("reload %d changed %v; want the model rebuilt", i, parts)
		}
	}
	settle := func() float64 {
		runtime.GC()
		debug.FreeOSMemory()
		return residentMB()
	}
	for i := range 6 { // warm-up: one-time allocations of the runtime and TensorFlow Lite
		reload(i)
	}
	before := settle()
	const n = 100
	for i := range n {
		reload(i)
	}
	r.moreInspections(3)
	grew := settle() - before
	t.Logf("resident set %.0f MB, grew %.1f MB over %d reloads", before+grew, grew, n)
	if grew > 60 { // a leaked backbone per reload would be 800 MB or more
		t.Errorf("resident set grew %.1f MB over %d reloads that rebuild the backbone and model", grew, n)
	}
}

// TestReloadMovesHTTPOnItsPort: a new http.listen on the port the
// endpoint holds (127.0.0.1:P to localhost:P, or 0.0.0.0:P as the README
// suggests for a Prometheus on the plant network) is applied by a reload;
// it was refused "address already in use", the new listener bound beside
// the old. A move whose bind fails is refused and the endpoint stays
// where it was.
func TestReloadMovesHTTPOnItsPort(t *testing.T) {
	port := strconv.Itoa(testbroker.FreePort(t))
	yaml := func(r *runningDaemon, listen string) string {
		return strings.Replace(r.baseYAML("cell1"), `http: {listen: ""}`, `http: {listen: "`+listen+`"}`, 1)
	}
	r := startDaemon(t, func(r *runningDaemon) string { return yaml(r, "127.0.0.1:"+port) })
	d := r.daemon()
	healthy := func() bool {
		resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}
	r.waitFor("the endpoint", healthy)
	r.write(yaml(r, "localhost:"+port))
	r.hup()
	r.waitFor("the reload", func() bool {
		return strings.Contains(r.logs.String(), "configuration reloaded") || strings.Contains(r.logs.String(), "configuration not reloaded")
	}, &r.logs)
	if got := testutil.ToFloat64(d.metrics.ReloadFailures); got != 0 || !healthy() {
		t.Fatalf("http.listen moved to localhost:%s: reload failures %v, endpoint answers %v:\n%s", port, got, healthy(), r.logs.String())
	}
	if addr := r.httpURL(); addr != "http://127.0.0.1:"+port {
		t.Errorf("endpoint on %s after the move", addr)
	}
	// 192.0.2.1 (TEST-NET-1) is no address of this machine: the bind fails.
	r.write(yaml(r, "192.0.2.1:"+port))
	r.hup()
	r.waitFor("the refused move", func() bool { return strings.Contains(r.logs.String(), "configuration not reloaded") }, &r.logs)
	if !strings.Contains(r.logs.String(), "192.0.2.1") || !healthy() {
		t.Errorf("a move whose bind fails: endpoint answers %v, log:\n%s", healthy(), r.logs.String())
	}
}

// TestConfigThresholdAppliesToTheLoadedModel: model.threshold.value is the
// threshold in force also on a model file fitted before (a trial: a push of
// it answered "applied" while the model kept its fitted threshold); a
// reload that changes it moves it, and 0 brings the fitted one back. The
// pixel threshold keeps the model's ratio. While it is set, the threshold
// command, whose value the next load would undo, is refused.
func TestConfigThresholdAppliesToTheLoadedModel(t *testing.T) {
	wordsOnly(t)
	det := syntheticDetector(t)
	fitted := det.Info()
	yaml := func(r *runningDaemon, v string) string {
		return strings.Replace(r.baseYAML("cell1"), "model: {features: 16, min_features: 16}",
			"model: {features: 16, min_features: 16, threshold: {value: "+v+"}}", 1)
	}
	r := startDaemon(t, func(r *runningDaemon) string { r.withModel(det); return yaml(r, "2") })
	d := r.daemon()
	check := func(when string, image float64) {
		t.Helper()
		r.waitFor(when, func() bool { return d.ModelInfo().ImageThreshold == image })
		want := image * fitted.PixelThreshold / fitted.ImageThreshold
		if got := d.ModelInfo().PixelThreshold; got < want*(1-1e-9) || got > want*(1+1e-9) {
			t.Errorf("%s: pixel threshold %g, want %g (the model's ratio)", when, got, want)
		}
	}
	check("the configured threshold on the loaded model", 2)
	if _, err := d.SetThresholds(context.Background(), 5, 3); err == nil || !strings.Contains(err.Error(), "model.threshold.value") {
		t.Errorf("threshold command while model.threshold.value is set: %v", err)
	}
	r.write(yaml(r, "3"))
	r.hup()
	check("the configured threshold after a reload", 3)
	r.write(yaml(r, "0"))
	r.hup()
	check("the fitted threshold back after a reload to 0", fitted.ImageThreshold)
	if _, err := d.SetThresholds(context.Background(), 5, 3); err != nil {
		t.Errorf("threshold command without model.threshold.value: %v", err)
	}
}

// TestReloadToATakenBrokerPortKeepsTheBroker: a reload that moves
// mqtt.embedded_listen to a port another program holds is refused before
// the running broker stops (a trial: every client, inspectd's own too, was
// dropped by the stop and the old broker's restart, for a reload that then
// said it changed nothing).
func TestReloadToATakenBrokerPortKeepsTheBroker(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	r := startDaemon(t, nil)
	r.daemon()
	r.waitFor("connected", func() bool { return strings.Contains(r.logs.String(), "mqtt connected") }, &r.logs)
	failures := func() float64 { return testutil.ToFloat64(r.daemon().metrics.ReloadFailures) }
	r.write(strings.Replace(r.baseYAML("cell1"), "embedded_listen: 127.0.0.1:"+strconv.Itoa(r.port), "embedded_listen: "+taken.Addr().String(), 1))
	mark := len(r.logs.String())
	r.hup()
	r.waitFor("the reload refused", func() bool { return failures() == 1 })
	after := r.logs.String()[mark:]
	if !strings.Contains(after, "mqtt.embedded_listen") || !strings.Contains(after, taken.Addr().String()) {
		t.Errorf("the refusal does not name mqtt.embedded_listen and %s:\n%s", taken.Addr(), after)
	}
	for _, s := range []string{"mqtt connection lost", "embedded MQTT broker stopped", "gracefully stopping"} {
		if strings.Contains(after, s) {
			t.Errorf("the refused reload touched the running broker (%q):\n%s", s, after)
		}
	}
	r.moreInspections(2) // still inspecting, on the same connection
}

// TestConfigThresholdEdges: a value so small that the pixel threshold at
// the model's ratio falls below the smallest threshold loads with the
// pixel threshold at the value (config check passed it, the start failed);
// value 0 on a model whose fit was given a value says that it has no
// threshold from good images to go back to.
func TestConfigThresholdEdges(t *testing.T) {
	cfg := testDefaults(t)
	opts, err := ModelOptions(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.Features, opts.MinFeatures, opts.Threshold.Explicit = 16, 16, 5
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 99, NormalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	det, _, err := model.Fit(context.Background(), opts, FrameSource(syn, 12), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Model.Threshold.Value = 0
	if err := ConfigThreshold(cfg, det, "m.safetensors", log); err != nil || det.Info().ImageThreshold != 5 {
		t.Fatalf("value 0: %v, threshold %g", err, det.Info().ImageThreshold)
	}
	if !strings.Contains(logs.String(), "keeps it until a refit") {
		t.Errorf("value 0 on a model fitted with a value said nothing:\n%s", logs.String())
	}
	cfg.Model.Threshold.Value = model.MinThreshold
	if err := ConfigThreshold(cfg, det, "m.safetensors", log); err != nil {
		t.Fatalf("value %g: %v", model.MinThreshold, err)
	}
	if i := det.Info(); i.ImageThreshold != model.MinThreshold || i.PixelThreshold != model.MinThreshold {
		t.Errorf("value %g: thresholds %g / %g, want both %g", model.MinThreshold, i.ImageThreshold, i.PixelThreshold, model.MinThreshold)
	}
}

// TestReloadKeepsLearnedPacketLimit: the packet limit the JSON connection
// learned from a broker that limits packets (mosquitto's max_packet_size)
// is in force right after a reload that rebuilds the connection to the
// same broker: inspectd_mqtt_max_payload_bytes shows it and a larger image
// is refused before it costs a connection (the new publisher started
// knowing no limit and learned it again, a dropped session each time). A
// reload to another broker list forgets it.
func TestReloadKeepsLearnedPacketLimit(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxPacketSize: 65536})
	det := syntheticDetector(t)
	frames := t.TempDir() // no part comes: the test publishes as the pipeline does
	var yaml func(brokers string) string
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		y := strings.Replace(r.baseYAML("cell1"), syntheticLine,
			"capture: {source: folder, folder: {path: "+frames+", watch: true}}", 1)
		yaml = func(brokers string) string {
			return strings.Replace(y, "mqtt: {embedded_listen: 127.0.0.1:"+strconv.Itoa(r.port)+"}",
				"mqtt: {brokers: ["+brokers+"], max_reconnect_interval: 1s}", 1)
		}
		return yaml(b.URL)
	})
	d := r.daemon()
	pub := func() *mqttpub.Publisher {
		d.sink.mu.RLock()
		defer d.sink.mu.RUnlock()
		return d.sink.pub
	}
	metric := func() string {
		rec := httptest.NewRecorder()
		d.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		i := strings.Index(rec.Body.String(), "\ninspectd_mqtt_max_payload_bytes ")
		if i < 0 {
			t.Fatal("/metrics lacks inspectd_mqtt_max_payload_bytes")
		}
		v, _, _ := strings.Cut(rec.Body.String()[i+len("\ninspectd_mqtt_max_payload_bytes "):], "\n")
		return v
	}
	reload := func(yaml string) {
		t.Helper()
		before := pub()
		r.write(yaml)
		r.hup()
		r.waitFor("the connection rebuilt by the reload", func() bool { p := pub(); return p != nil && p != before })
	}
	r.waitFor("the MQTT connection", func() bool { return d.sink.state().Connected })

	// An image the broker drops the connection over teaches the limit.
	if err := d.sink.PublishHeatmap(make([]byte, 70_000), 1); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the learned packet limit", func() bool { return d.sink.state().BrokerPacketLimit == 65536 })
	// The limit is learned at the drop, the reconnect after it counted
	// once the connection is back: read the count after that (a loaded
	// race run read it before and saw one more after the reload).
	r.waitFor("the reconnect after the drop", func() bool { st := d.sink.state(); return st.Connected && st.Reconnects > 0 })
	want := mqttpub.PayloadLimit(pub().Topics().Heatmap, 1, 65536)
	reconnects := d.sink.state().Reconnects

	// Same broker, another keepalive: a new connection, the limit kept.
	reload(strings.Replace(yaml(b.URL), "mqtt: {", "mqtt: {keepalive: 20s, ", 1))
	if st := d.sink.state(); st.MaxPayload != want || st.BrokerPacketLimit != 65536 || metric() != strconv.Itoa(want) {
		t.Fatalf("right after a reload to the same broker: MaxPayload %d, packet limit %d, inspectd_mqtt_max_payload_bytes %s; want %d and 65536",
			st.MaxPayload, st.BrokerPacketLimit, metric(), want)
	}
	var tooLarge *mqttpub.PayloadTooLargeError
	if err := d.sink.PublishHeatmap(make([]byte, 70_000), 1); !errors.As(err, &tooLarge) || !tooLarge.Learned {
		t.Errorf("a heatmap over the kept limit after the reload: %v", err)
	}
	r.waitFor("the new connection", func() bool { return d.sink.state().Connected })
	if got := d.sink.state().Reconnects; got != reconnects {
		t.Errorf("%d reconnects after the reload, want still %d", got, reconnects)
	}
	if n := strings.Count(r.logs.String(), "carried over"); n != 1 {
		t.Errorf("%d log lines on the carried limit, want 1:\n%s", n, r.logs.String())
	}

	// Another broker: it may take more, nothing is known of it.
	other := testbroker.Start(t, testbroker.Options{})
	reload(yaml(other.URL))
	if st := d.sink.state(); st.MaxPayload != mqttpub.DefaultMaxPayload || st.BrokerPacketLimit != 0 {
		t.Errorf("after a reload to another broker: MaxPayload %d, packet limit %d; want mqtt.max_payload %d and none",
			st.MaxPayload, st.BrokerPacketLimit, mqttpub.DefaultMaxPayload)
	}
}
