// Package httpapi serves inspectd's local HTTP endpoints: /healthz,
// /metrics (Prometheus), and /snapshot.jpg and /heatmap.jpg of the latest
// inspection. It knows the rest of the daemon only through the small
// interfaces and setters below.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Checker reports one component's health; detail is a short sentence for
// an operator ("streaming /dev/video0 at 30 fps", "not connected: ...").
// Implementations must return quickly: /healthz calls them inline.
type Checker interface {
	Health() (ok bool, detail string)
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func() (bool, string)

// Health calls f.
func (f CheckerFunc) Health() (bool, string) { return f() }

// Options wires the handler to the daemon. A nil checker reports the
// component as unhealthy ("no health check wired"), so that a missing
// wire shows up instead of passing silently.
type Options struct {
	Camera Checker
	Model  Checker
	MQTT   Checker
	// Metrics is served on /metrics; nil creates a fresh set (see Handler.Metrics).
	Metrics *Metrics
	// JPEGQuality for images handed over with SetSnapshot/SetHeatmap (default 85).
	JPEGQuality int
	// Logger gets one line per failed request handler; default slog.Default().
	Logger *slog.Logger
}

// Handler is the http.Handler for all endpoints.
type Handler struct {
	opts     Options
	mux      *http.ServeMux
	metrics  *Metrics
	snapshot *imageSlot
	heatmap  *imageSlot
	log      *slog.Logger
}

// ComponentHealth is one component's entry in the /healthz document.
type ComponentHealth struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// HealthReport is the /healthz JSON document.
type HealthReport struct {
	OK     bool            `json:"ok"`
	Camera ComponentHealth `json:"camera"`
	Model  ComponentHealth `json:"model"`
	MQTT   ComponentHealth `json:"mqtt"`
}

// New builds the handler.
func New(opts Options) *Handler {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.JPEGQuality <= 0 || opts.JPEGQuality > 100 {
		opts.JPEGQuality = 85
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Handler{
		opts:     opts,
		mux:      http.NewServeMux(),
		metrics:  opts.Metrics,
		snapshot: newImageSlot("snapshot", opts.JPEGQuality),
		heatmap:  newImageSlot("heatmap", opts.JPEGQuality),
		log:      opts.Logger.With("component", "http"),
	}
	h.mux.HandleFunc("GET /healthz", h.serveHealth)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Metrics.Registry, promhttp.HandlerOpts{
		Registry: opts.Metrics.Registry, // also counts its own scrape errors
	}))
	h.mux.HandleFunc("GET /snapshot.jpg", h.serveImage(h.snapshot))
	h.mux.HandleFunc("GET /heatmap.jpg", h.serveImage(h.heatmap))
	h.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "inspectd\n/healthz\n/metrics\n/snapshot.jpg\n/heatmap.jpg\n")
	})
	return h
}

// Metrics returns the metrics served on /metrics.
func (h *Handler) Metrics() *Metrics { return h.metrics }

// ServeHTTP dispatches to the endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Health evaluates all checkers, as /healthz does.
func (h *Handler) Health() HealthReport {
	check := func(c Checker) ComponentHealth {
		if c == nil {
			return ComponentHealth{OK: false, Detail: "no health check wired"}
		}
		ok, d := c.Health()
		return ComponentHealth{OK: ok, Detail: d}
	}
	r := HealthReport{Camera: check(h.opts.Camera), Model: check(h.opts.Model), MQTT: check(h.opts.MQTT)}
	r.OK = r.Camera.OK && r.Model.OK && r.MQTT.OK
	return r
}

func (h *Handler) serveHealth(w http.ResponseWriter, _ *http.Request) {
	r := h.Health()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !r.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r)
}

func (h *Handler) serveImage(s *imageSlot) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		data, at, err := s.get()
		if err != nil {
			h.log.Error("encode image", "image", s.name, "error", err)
			http.Error(w, fmt.Sprintf("cannot encode the %s: %v", s.name, err), http.StatusInternalServerError)
			return
		}
		if data == nil {
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf("no %s yet: it appears after the first inspection", s.name), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Last-Modified", at.UTC().Format(http.TimeFormat))
		_, _ = w.Write(data)
	}
}

// SetSnapshotJPEG hands over the JPEG of the latest inspected frame; the
// handler keeps data, so the caller must not modify it afterwards.
func (h *Handler) SetSnapshotJPEG(data []byte) { h.snapshot.setJPEG(data) }

// SetHeatmapJPEG hands over the JPEG heatmap of the latest inspection;
// the handler keeps data.
func (h *Handler) SetHeatmapJPEG(data []byte) { h.heatmap.setJPEG(data) }

// SetSnapshot copies img (the caller may reuse it at once); it is
// JPEG-encoded only when /snapshot.jpg is requested. The copy reuses its
// buffer, so a steady stream of same-sized frames does not allocate.
func (h *Handler) SetSnapshot(img image.Image) { h.snapshot.setImage(img, nil) }

// Snapshot returns the latest frame handed over with SetSnapshot as a JPEG
// and when it was handed over; an error before the first.
func (h *Handler) Snapshot() ([]byte, time.Time, error) {
	data, at, err := h.snapshot.get()
	if err == nil && data == nil {
		err = errors.New("no frame inspected yet")
	}
	return data, at, err
}

// SetHeatmap is SetSnapshot for /heatmap.jpg; the JPEG carries tag (the
// inspection's, as in the heatmap published on MQTT) as its comment
// segment, none when tag is empty. The tag is copied.
func (h *Handler) SetHeatmap(img image.Image, tag []byte) { h.heatmap.setImage(img, tag) }

// IdleTimeout closes a keep-alive connection idle this long; WriteTimeout
// bounds a request from the end of its header to the end of its response
// (a Prometheus scrape or a JPEG takes milliseconds).
const (
	IdleTimeout  = 60 * time.Second
	WriteTimeout = 30 * time.Second
)

// Server is a running HTTP server.
type Server struct {
	srv     *http.Server
	ln      net.Listener
	stopped chan struct{} // closed when Serve has returned
	err     error         // Serve's error, readable after stopped
}

// Start listens on addr (host:port, port 0 for any) and serves handler
// until ctx ends or Shutdown is called.
func Start(ctx context.Context, addr string, handler http.Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// net's error names the address already ("listen tcp ADDR: bind:
		// address already in use").
		return nil, fmt.Errorf("http endpoint: %w", err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 5 * time.Second,
			// Without them a client that keeps its connection open and
			// idle, or stops reading a response, held a descriptor and a
			// goroutine for good (300 idle keep-alive connections were all
			// still open after 30 s, the daemon's descriptors 16 → 316).
			IdleTimeout:  IdleTimeout,
			WriteTimeout: WriteTimeout,
			ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:      ln,
		stopped: make(chan struct{}),
	}
	go func() {
		err := s.srv.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
		close(s.stopped)
	}()
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = s.srv.Shutdown(sctx)
		case <-s.stopped:
		}
	}()
	log.Info("http listening", "address", ln.Addr().String())
	return s, nil
}

// Addr is the listening address (with the real port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Done is closed once the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.stopped }

// Shutdown stops accepting requests and waits for running ones until ctx
// ends, then closes the connections still open; it is safe to call more
// than once.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close() // requests still running (a client that stopped reading)
	}
	<-s.stopped
	if err == nil {
		err = s.err
	}
	return err
}
