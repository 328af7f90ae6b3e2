//go:build vivid

package vivid

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/capture"
)

// fitImages is the number of vivid frames the model is fitted on: the
// backbone runs on an emulated CPU here, a second or more per image.
const fitImages = 8

// TestDaemon runs `inspectd run` on vivid with a model fitted on vivid's
// own frames and the embedded MQTT broker, then injects faults through
// vivid while it runs: a stalled stream with a failing VIDIOC_STREAMON,
// a buffer flagged as corrupt and a disconnect.
func TestDaemon(t *testing.T) {
	reloadVivid(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	fitDir := filepath.Join(dir, "fit")
	for _, d := range []string{state, fitDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// Fit on vivid's own frames.
	cam, _ := openCamera(t, capture.CameraOptions{Formats: []capture.FourCC{capture.FormatYUYV}, Width: 320, Height: 180, FPS: 25})
	var f capture.Frame
	for i := 0; i < fitImages; i++ {
		next(t, cam, &f, 30*time.Second)
		writePNG(t, filepath.Join(fitDir, fmt.Sprintf("vivid-%02d.png", i)), f)
	}
	_ = cam.Close()
	modelPath := filepath.Join(state, "model.safetensors")
	cfgPath := filepath.Join(dir, "inspectd.yaml")
	cfg := fmt.Sprintf(`device_id: vivid
state_dir: %s
capture:
  source: camera
  camera: {device: %s, formats: [YUYV], width: 320, height: 180, fps: 10, buffers: 2, timeout: 1s}
model:
  path: %s
  features: 16
  min_features: 8
  context_pool: 0
  optimize: int8
  threads: 1
  threshold: {holdout: 0.25}
mqtt:
  brokers: []
  embedded_listen: 127.0.0.1:1883
  mask: never
  heatmap: never
http: {listen: 127.0.0.1:9100}
pipeline: {queue: 2}
`, state, device, modelPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := inspectd(t, "fit", "--data", fitDir, "--config", cfgPath)
	figure("fit on %d vivid frames (320x180, d=16, no context scale): %.1f s", fitImages, time.Since(start).Seconds())
	t.Logf("%s", strings.TrimSpace(out))

	// MQTT subscriber on the daemon's embedded broker.
	results := &resultLog{}

	d := startDaemon(t, cfgPath)
	waitFor(t, "the daemon's HTTP endpoint", 3*time.Minute, func() bool { _, err := health(); return err == nil })
	// The endpoint is bound first, before the model loads; the embedded
	// broker starts after it.
	waitFor(t, "the daemon's embedded broker", 3*time.Minute, func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:1883", time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	client := subscribe(t, "127.0.0.1:1883", "inspectd/vivid/result", results)
	defer client.Disconnect(100)

	t.Run("frames-flow", func(t *testing.T) {
		waitFor(t, "the first result", 3*time.Minute, func() bool { return results.count() > 0 })
		f0, w0 := metric(t, "inspectd_frames_total"), time.Now()
		// 10 fps: the emulated CPU inspects a frame in about 1.4 s on one
		// of its two cores, and the host may be busy; the rate is what the
		// camera path keeps up with, inspection drops the rest.
		waitFor(t, "150 frames", 2*time.Minute, func() bool { return metric(t, "inspectd_frames_total") >= f0+150 })
		rate := (metric(t, "inspectd_frames_total") - f0) / time.Since(w0).Seconds()
		inspected := results.count()
		figure("inspectd run on vivid 320x180 at 10 fps: %.2f frames/s captured, %d inspections published in %.1f s (the rest dropped: inspection on the emulated CPU is slower than the camera)",
			rate, inspected, time.Since(w0).Seconds())
		if rate < 0.8*10 || rate > 1.1*10 {
			t.Errorf("frames captured at %.2f/s, want the configured 10/s", rate)
		}
		if ok, detail := healthOK(t); !ok {
			t.Errorf("/healthz not ok while frames flow: %s", detail)
		}
	})

	t.Run("stalled-then-streamon-error", func(t *testing.T) {
		to0, r0 := metric(t, "inspectd_camera_timeouts_total"), metric(t, "inspectd_camera_reopens_total")
		setControls(t, "inject_vidioc_streamon_error=1", "percentage_of_dropped_buffers=100")
		waitFor(t, "/healthz 503 while every buffer is dropped", 30*time.Second, func() bool { ok, _ := healthOK(t); return !ok })
		_, detail := healthOK(t)
		t.Logf("/healthz camera detail while stalled: %s", detail)
		// After 3 timeouts the daemon reopens the camera; the injected
		// VIDIOC_STREAMON error makes that fail once, and it is retried.
		waitFor(t, "a reopen retried after VIDIOC_STREAMON failed", time.Minute, func() bool {
			return strings.Contains(d.logs.String(), "VIDIOC_STREAMON") && metric(t, "inspectd_camera_reopens_total") > r0
		})
		if metric(t, "inspectd_camera_timeouts_total") < to0+3 {
			t.Errorf("timeouts counted: %v before, %v now", to0, metric(t, "inspectd_camera_timeouts_total"))
		}
		setControls(t, "percentage_of_dropped_buffers=0")
		waitFor(t, "/healthz 200 after the stream resumed", time.Minute, func() bool { ok, _ := healthOK(t); return ok })
		if !regexp.MustCompile(`msg="camera: unavailable, retrying with backoff".*VIDIOC_STREAMON`).MatchString(d.logs.String()) {
			t.Errorf("no log line for the retried VIDIOC_STREAMON:\n%s", d.logs)
		}
	})

	t.Run("flagged-buffer", func(t *testing.T) {
		e0, f0 := metric(t, "inspectd_camera_decode_errors_total"), metric(t, "inspectd_frames_total")
		setControls(t, "inject_v4l2_buf_flag_error=1")
		waitFor(t, "the flagged buffer counted", 30*time.Second, func() bool {
			return metric(t, "inspectd_camera_decode_errors_total") == e0+1 && metric(t, "inspectd_frames_total") > f0+25
		})
		if got := metric(t, "inspectd_camera_decode_errors_total"); got != e0+1 {
			t.Errorf("decode errors %v after one injected V4L2_BUF_FLAG_ERROR buffer, want %v", got, e0+1)
		}
		if !strings.Contains(d.logs.String(), "frame flagged as corrupt by the driver") {
			t.Errorf("no log line for the flagged buffer")
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		r0, n0 := metric(t, "inspectd_camera_reopens_total"), results.count()
		// vivid unregisters its nodes, as an unplugged USB camera does, and
		// registers them again once nobody holds them open: the daemon lets
		// go of the lost device, and it comes back.
		setControls(t, "disconnect=1")
		waitFor(t, "the daemon to see the camera lost", 30*time.Second, func() bool {
			return strings.Contains(d.logs.String(), "camera: lost, reopening with backoff")
		})
		waitFor(t, "frames and results after the device came back", 2*time.Minute, func() bool {
			ok, _ := healthOK(t)
			return ok && results.count() > n0+1
		})
		if got := metric(t, "inspectd_camera_reopens_total"); got != r0+1 {
			t.Errorf("reopens %v after Disconnect and reload, want %v", got, r0+1)
		}
	})

	d.stop(t)
	client.Disconnect(100)

	t.Run("results", func(t *testing.T) {
		rs := results.all()
		if len(rs) < 3 {
			t.Fatalf("%d results published", len(rs))
		}
		seqs, times := map[uint64]bool{}, map[time.Time]bool{}
		var lat []float64
		for i, r := range rs {
			if seqs[r.Seq] || times[r.FrameTime] {
				t.Errorf("frame reported twice: seq %d, frame_time %v", r.Seq, r.FrameTime)
			}
			seqs[r.Seq], times[r.FrameTime] = true, true
			if i > 0 && !r.FrameTime.After(rs[i-1].FrameTime) {
				t.Errorf("result %d: frame_time %v not after the previous %v", r.Seq, r.FrameTime, rs[i-1].FrameTime)
			}
			total := 0.0
			for _, v := range r.LatencyMS {
				total += v
			}
			if r.LatencyMS["backbone"] <= 0 || total <= 0 {
				t.Errorf("result %d reports no latency: %v", r.Seq, r.LatencyMS)
			}
			if r.Verdict == "error" {
				t.Errorf("result %d: verdict error", r.Seq)
			}
			lat = append(lat, total)
		}
		figure("%d results, none twice; latency (sum of the stages) first %.0f ms, last %.0f ms", len(rs), lat[0], lat[len(lat)-1])
		lines := strings.Count(d.logs.String(), "\n")
		if lines > 80 {
			t.Errorf("%d log lines for %d results: one line per event, not per frame:\n%s", lines, len(rs), d.logs)
		}
	})
}

func writePNG(t *testing.T, path string, f capture.Frame) {
	t.Helper()
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(w, f.Image); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// daemon is a running `inspectd run`.
type daemon struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan error
}

func startDaemon(t *testing.T, cfg string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command("inspectd", "run", "--config", cfg), logs: &lockedBuffer{}, done: make(chan error, 1)}
	d.cmd.Stdout = io.Discard
	d.cmd.Stderr = d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("inspectd run log:\n%s", d.logs)
		}
	})
	return d
}

// stop sends SIGTERM and expects a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("inspectd run after SIGTERM: %v", err)
		}
	case <-time.After(time.Minute):
		t.Errorf("inspectd run did not stop within a minute of SIGTERM")
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type healthDoc struct {
	OK     bool `json:"ok"`
	Camera struct {
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"camera"`
}

func health() (healthDoc, error) {
	var h healthDoc
	resp, err := http.Get("http://127.0.0.1:9100/healthz")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, err
	}
	if (resp.StatusCode == http.StatusOK) != h.OK || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable) {
		return h, fmt.Errorf("/healthz status %d with ok=%v", resp.StatusCode, h.OK)
	}
	return h, nil
}

// healthOK says whether /healthz answers 200, with the camera's detail.
func healthOK(t *testing.T) (bool, string) {
	t.Helper()
	h, err := health()
	if err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	return h.OK, h.Camera.Detail
}

// metric reads one unlabelled counter from /metrics.
func metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:9100/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// result is the part of a result message the test reads.
type result struct {
	Seq       uint64             `json:"seq"`
	FrameTime time.Time          `json:"frame_time"`
	Verdict   string             `json:"verdict"`
	LatencyMS map[string]float64 `json:"latency_ms"`
}

type resultLog struct {
	mu sync.Mutex
	rs []result
}

func (l *resultLog) add(r result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rs = append(l.rs, r)
}

func (l *resultLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.rs)
}

func (l *resultLog) all() []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]result(nil), l.rs...)
}

func subscribe(t *testing.T, addr, topic string, log *resultLog) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("vivid-test").SetConnectTimeout(10 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to the embedded broker %s: %v", addr, tok.Error())
	}
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		var r result
		if err := json.Unmarshal(m.Payload(), &r); err != nil {
			t.Errorf("result %q: %v", m.Payload(), err)
			return
		}
		log.add(r)
	})
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return c
}
