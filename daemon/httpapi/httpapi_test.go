package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

type fixed struct {
	ok     bool
	detail string
}

func (f *fixed) Health() (bool, string) { return f.ok, f.detail }

func TestHealthz(t *testing.T) {
	cam := &fixed{true, "streaming /dev/video0"}
	mqtt := &fixed{true, "connected to tcp://127.0.0.1:1883"}
	h := New(Options{Camera: cam, Model: CheckerFunc(func() (bool, string) { return true, "model m1 loaded" }), MQTT: mqtt, Logger: quiet()})

	rec := get(t, h, "/healthz")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("all healthy: %d %s", rec.Code, rec.Body)
	}
	var r HealthReport
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Camera.Detail != "streaming /dev/video0" || r.Model.Detail != "model m1 loaded" || !r.MQTT.OK {
		t.Fatalf("report %+v", r)
	}

	mqtt.ok, mqtt.detail = false, "not connected: not Authorized"
	rec = get(t, h, "/healthz")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("broker down: status %d", rec.Code)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.OK || r.MQTT.OK || r.MQTT.Detail != "not connected: not Authorized" || !r.Camera.OK {
		t.Fatalf("report %+v", r)
	}
	if !strings.Contains(rec.Body.String(), `"mqtt": {`) {
		t.Fatalf("JSON keys: %s", rec.Body)
	}

	// An unwired component is unhealthy, not silently fine.
	h2 := New(Options{Camera: cam, MQTT: mqtt, Logger: quiet()})
	if r := h2.Health(); r.OK || r.Model.Detail != "no health check wired" {
		t.Fatalf("unwired model: %+v", r)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz: %d", rec.Code)
	}
	if rec := get(t, h, "/nope"); rec.Code != http.StatusNotFound {
		t.Fatalf("/nope: %d", rec.Code)
	}
}

func TestMetrics(t *testing.T) {
	h := New(Options{Logger: quiet()})
	m := h.Metrics()
	var mu sync.Mutex
	mq := MQTTStats{Connected: true, Reconnects: 2, Queued: 5}
	if err := m.WatchMQTT(func() MQTTStats { mu.Lock(); defer mu.Unlock(); return mq }); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchMQTT(func() MQTTStats { return MQTTStats{} }); err == nil {
		t.Fatal("second WatchMQTT accepted")
	}
	if err := m.WatchCamera(func() CameraStats { return CameraStats{Reopens: 1, Timeouts: 4, DecodeErrors: 3} }); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.Frame()
	}
	m.Drop("overload")
	m.Drop("overload")
	m.Drop("stale")
	m.ObserveStage("backbone", 30*time.Millisecond)
	m.ObserveStage("backbone", 40*time.Millisecond)
	m.ObserveStage("padim", 3*time.Millisecond)
	m.ObserveInspection(14, 1.4, true)
	m.ObserveInspection(5, 0.5, false)
	m.ObserveInspection(6, 0.6, false)

	rec := get(t, h, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		"inspectd_frames_total 3",
		`inspectd_frame_drops_total{reason="overload"} 2`,
		`inspectd_frame_drops_total{reason="stale"} 1`,
		`inspectd_inspections_total{verdict="anomalous"} 1`,
		`inspectd_inspections_total{verdict="normal"} 2`,
		`inspectd_stage_latency_seconds_count{stage="backbone"} 2`,
		`inspectd_stage_latency_seconds_bucket{stage="backbone",le="0.032"} 1`,
		`inspectd_stage_latency_seconds_count{stage="padim"} 1`,
		`inspectd_score_normalized_bucket{le="1"} 2`,
		"inspectd_score_normalized_count 3",
		"inspectd_last_score 6",
		"inspectd_last_score_normalized 0.6",
		"inspectd_mqtt_connected 1",
		"inspectd_mqtt_reconnects_total 2",
		"inspectd_mqtt_queue_depth 5",
		"inspectd_camera_reopens_total 1",
		"inspectd_camera_timeouts_total 4",
		"inspectd_camera_decode_errors_total 3",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want+" ") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Func metrics are read at scrape time.
	mu.Lock()
	mq.Connected, mq.Queued = false, 7
	mu.Unlock()
	body = get(t, h, "/metrics").Body.String()
	if !strings.Contains(body, "inspectd_mqtt_connected 0\n") || !strings.Contains(body, "inspectd_mqtt_queue_depth 7\n") {
		t.Error("func metrics not re-read on scrape")
	}
}

// TestHotPathDoesNotAllocate: per-frame calls allocate nothing once their
// label values and image size have been seen.
func TestHotPathDoesNotAllocate(t *testing.T) {
	h := New(Options{Logger: quiet()})
	m := h.Metrics()
	frame := image.NewGray(image.Rect(0, 0, 640, 480))
	rgba := image.NewRGBA(image.Rect(0, 0, 224, 224))
	m.Drop("overload")
	m.ObserveStage("backbone", time.Millisecond)
	h.SetSnapshot(frame)
	tag := []byte(`{"seq":1}`)
	h.SetHeatmap(rgba, tag)
	for name, f := range map[string]func(){
		"Frame":             m.Frame,
		"Drop":              func() { m.Drop("overload") },
		"ObserveStage":      func() { m.ObserveStage("backbone", 3*time.Millisecond) },
		"ObserveInspection": func() { m.ObserveInspection(3, 0.3, false) },
		"SetSnapshot(Gray)": func() { h.SetSnapshot(frame) },
		"SetHeatmap(RGBA)":  func() { h.SetHeatmap(rgba, tag) },
	} {
		if a := testing.AllocsPerRun(100, f); a != 0 {
			t.Errorf("%s allocates %.1f times per call", name, a)
		}
	}
}

func grayFrame(w, h int, v uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = v
	}
	return g
}

func TestSnapshotAndHeatmap(t *testing.T) {
	h := New(Options{Logger: quiet()})
	for _, p := range []string{"/snapshot.jpg", "/heatmap.jpg"} {
		rec := get(t, h, p)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "after the first inspection") {
			t.Fatalf("%s before any inspection: %d %q", p, rec.Code, rec.Body)
		}
	}
	src := grayFrame(64, 48, 200)
	h.SetSnapshot(src)
	for i := range src.Pix { // the pipeline reuses its buffer at once
		src.Pix[i] = 10
	}
	rec := get(t, h, "/snapshot.jpg")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/jpeg" {
		t.Fatalf("/snapshot.jpg: %d %s", rec.Code, rec.Header())
	}
	img, err := jpeg.Decode(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 64 || img.Bounds().Dy() != 48 {
		t.Fatalf("size %v", img.Bounds())
	}
	if y := color.GrayModel.Convert(img.At(30, 20)).(color.Gray).Y; y < 190 || y > 210 {
		t.Fatalf("pixel %d: the served image is not the one handed over", y)
	}
	// A newer frame replaces the cached encoding.
	h.SetSnapshot(grayFrame(64, 48, 50))
	img, _ = jpeg.Decode(get(t, h, "/snapshot.jpg").Body)
	if y := color.GrayModel.Convert(img.At(30, 20)).(color.Gray).Y; y > 60 {
		t.Fatalf("stale snapshot served: %d", y)
	}

	// Colour images and sub-images.
	rgba := image.NewRGBA(image.Rect(0, 0, 100, 100))
	for i := 0; i < len(rgba.Pix); i += 4 {
		rgba.Pix[i], rgba.Pix[i+3] = 255, 255
	}
	h.SetHeatmap(rgba.SubImage(image.Rect(10, 10, 42, 34)), nil)
	img, err = jpeg.Decode(get(t, h, "/heatmap.jpg").Body)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 32 || b.Dy() != 24 {
		t.Fatalf("heatmap bounds %v", b)
	}
	if r, g, _, _ := img.At(img.Bounds().Min.X+5, img.Bounds().Min.Y+5).RGBA(); r>>8 < 200 || g>>8 > 60 {
		t.Fatalf("heatmap colour r=%d g=%d", r>>8, g>>8)
	}

	// Pre-encoded bytes are served as they are.
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, grayFrame(8, 8, 1), nil)
	h.SetHeatmapJPEG(buf.Bytes())
	if got := get(t, h, "/heatmap.jpg").Body.Bytes(); !bytes.Equal(got, buf.Bytes()) {
		t.Fatal("SetHeatmapJPEG bytes not served verbatim")
	}
}

// TestConcurrentSetAndGet runs the pipeline's setter against readers (for -race).
func TestConcurrentSetAndGet(t *testing.T) {
	h := New(Options{Logger: quiet()})
	frames := []*image.Gray{grayFrame(64, 64, 0), grayFrame(64, 64, 255)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			h.SetSnapshot(frames[i%2])
			if i%7 == 0 {
				h.SetSnapshotJPEG(nil) // occasionally "nothing"
			}
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				rec := get(t, h, "/snapshot.jpg")
				if rec.Code == http.StatusOK {
					if _, err := jpeg.Decode(rec.Body); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
}

func TestServerStartStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := New(Options{Camera: &fixed{true, "ok"}, Model: &fixed{true, "ok"}, MQTT: &fixed{true, "ok"}, Logger: quiet()})
	s, err := Start(ctx, "127.0.0.1:0", h, quiet())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok": true`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// The address once: the error was "http listen on A: listen tcp A: ...".
	if _, err := Start(ctx, s.Addr(), h, quiet()); err == nil || strings.Count(err.Error(), s.Addr()) != 1 {
		t.Fatalf("second listener on the same port: %v", err)
	}
	cancel()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop on context cancel")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestServerLetsGoOfClients: connections are bounded in time (an idle
// keep-alive connection, a response its client stopped reading: each held
// a descriptor and a goroutine for good), and Shutdown closes a request
// still running once its context ends instead of leaving it behind.
func TestServerLetsGoOfClients(t *testing.T) {
	entered := make(chan struct{})
	ended := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // a response that never completes
		close(ended)
	})
	s, err := Start(context.Background(), "127.0.0.1:0", slow, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if s.srv.IdleTimeout <= 0 || s.srv.WriteTimeout <= 0 || s.srv.ReadHeaderTimeout <= 0 {
		t.Errorf("timeouts idle %v, write %v, read header %v: want all set", s.srv.IdleTimeout, s.srv.WriteTimeout, s.srv.ReadHeaderTimeout)
	}
	go func() {
		if resp, err := http.Get("http://" + s.Addr() + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Error("Shutdown with a request still running returned nil, want its context's error")
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the running request was left behind by Shutdown")
	}
}

// BenchmarkSetSnapshot: the per-frame cost of handing a 640x480 gray frame
// to the HTTP API, as a ratio to a plain copy of the same bytes measured in
// the same run.
func BenchmarkSetSnapshot(b *testing.B) {
	frame := grayFrame(640, 480, 7)
	dst := make([]byte, len(frame.Pix))
	const base = 2000
	copy(dst, frame.Pix) // fault the pages in before timing
	start := time.Now()
	for range base {
		copy(dst, frame.Pix)
	}
	perCopy := time.Since(start) / base
	h := New(Options{Logger: quiet()})
	h.SetSnapshot(frame)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.SetSnapshot(frame)
	}
	b.StopTimer()
	per := b.Elapsed() / time.Duration(b.N)
	if perCopy > 0 {
		b.ReportMetric(float64(per)/float64(perCopy), "x_memcpy")
	}
}
