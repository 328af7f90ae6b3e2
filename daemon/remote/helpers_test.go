package remote

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/modeltest"
	"github.com/inspectd/inspectd/model/sysmem"
)

// testController is a Controller over real files: configurations saved
// with config.SaveKeepPrevious, models fitted with the real backbone and
// loaded with model.Load, frames rendered by the synthetic source. Only the
// pipeline is missing: NextFrame renders, Snapshot encodes a rendered
// frame.
type testController struct {
	t   testing.TB
	dir string

	cfg atomic.Pointer[config.Config]

	mu        sync.Mutex
	info      model.Info
	src       *capture.Synthetic
	defective bool // NextFrame renders defective frames only
	// defectiveAfter > 0: frames after that many are defective.
	defectiveAfter int64
	gate           chan struct{} // when set, NextFrame waits for a token
	applyErr       error
	applyHook      func() // when set, ApplyConfig calls it first (a slow apply)

	applies, installs, thresholds, restarts, frames atomic.Int64
	now                                             func() time.Time
}

func newController(t testing.TB, device, yamlCfg string) *testController {
	t.Helper()
	dir := t.TempDir()
	c := &testController{t: t, dir: dir, now: time.Now}
	cfg, err := config.Parse([]byte("state_dir: "+dir+"\ndevice_id: "+device+"\n"+yamlCfg), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := config.Save(c.ConfigPath(), cfg); err != nil {
		t.Fatal(err)
	}
	c.cfg.Store(cfg)
	c.src, err = capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 7, NormalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *testController) Config() *config.Config { return c.cfg.Load() }
func (c *testController) ConfigPath() string     { return filepath.Join(c.dir, "inspectd.yaml") }

func (c *testController) PlanConfig(*config.Config) ([]string, error) { return nil, nil }
func (c *testController) CheckConfig(*config.Config) error            { return nil }

func (c *testController) ApplyConfig(ctx context.Context, cfg *config.Config) (Applied, error) {
	c.applies.Add(1)
	c.mu.Lock()
	err, hook := c.applyErr, c.applyHook
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err != nil {
		return Applied{}, err
	}
	if err := config.SaveKeepPrevious(c.ConfigPath(), cfg); err != nil {
		return Applied{}, err
	}
	var restarted []string
	for _, f := range config.Diff(c.cfg.Load(), cfg) {
		part, _, _ := strings.Cut(f, ".")
		if len(restarted) == 0 || restarted[len(restarted)-1] != part {
			restarted = append(restarted, part)
		}
	}
	c.cfg.Store(cfg)
	return Applied{Restarted: restarted}, nil
}

func (c *testController) ModelInfo() model.Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

func (c *testController) modelPath() string { return filepath.Join(c.dir, "model.safetensors") }

func (c *testController) FitOptions() (model.Options, error) {
	return model.Options{
		Backbone:     backbone.Options{Path: modeltest.BackbonePath(c.t), Threads: 1},
		Features:     24,
		MinFeatures:  8,
		Seed:         1,
		MemoryBudget: 64 << 20,
		Sigma:        4,
		Standardize:  true,
	}, nil
}

func (c *testController) load(path string) (model.Info, error) {
	opts, _ := c.FitOptions()
	det, err := model.Load(path, opts)
	if err != nil {
		return model.Info{}, err
	}
	defer det.Close()
	return det.Info(), nil
}

func (c *testController) InstallModel(ctx context.Context, path string) (model.Info, error) {
	c.installs.Add(1)
	info, err := c.load(path)
	if err != nil {
		return model.Info{}, err
	}
	if _, err := os.Stat(c.modelPath()); err == nil {
		if err := os.Rename(c.modelPath(), c.modelPath()+".prev"); err != nil {
			return model.Info{}, err
		}
	}
	if err := os.Rename(path, c.modelPath()); err != nil {
		return model.Info{}, err
	}
	c.mu.Lock()
	c.info = info
	c.mu.Unlock()
	return info, nil
}

func (c *testController) CheckModelTarget() error { return model.CheckSaveTarget(c.modelPath()) }

func (c *testController) SetThresholds(ctx context.Context, image, pixel float64) (model.Info, error) {
	c.thresholds.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.info.ImageThreshold, c.info.PixelThreshold = image, pixel
	return c.info, nil
}

func (c *testController) RollbackModel(ctx context.Context) (model.Info, error) {
	prev := c.modelPath() + ".prev"
	info, err := c.load(prev)
	if err != nil {
		return model.Info{}, err
	}
	tmp := c.modelPath() + ".swap"
	if err := os.Rename(c.modelPath(), tmp); err != nil {
		return model.Info{}, err
	}
	if err := os.Rename(prev, c.modelPath()); err != nil {
		return model.Info{}, err
	}
	if err := os.Rename(tmp, prev); err != nil {
		return model.Info{}, err
	}
	c.mu.Lock()
	c.info = info
	c.mu.Unlock()
	return info, nil
}

func (c *testController) NextFrame(ctx context.Context) (image.Image, error) {
	c.mu.Lock()
	gate, defective, after := c.gate, c.defective, c.defectiveAfter
	c.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if n := c.frames.Add(1); after > 0 && n > after {
		defective = true
	}
	if defective {
		src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: uint64(100 + c.frames.Load()), DefectRate: 1,
			Kinds: []capture.DefectKind{capture.Contamination}})
		if err != nil {
			return nil, err
		}
		var f capture.Frame
		err = src.Next(ctx, &f)
		return f.Image, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var f capture.Frame
	if err := c.src.Next(ctx, &f); err != nil {
		return nil, err
	}
	return f.Image, nil
}

// holdFrames makes NextFrame (and so Snapshot) wait for a token on the
// returned channel, or for it to be closed.
func (c *testController) holdFrames() chan struct{} {
	gate := make(chan struct{})
	c.mu.Lock()
	c.gate = gate
	c.mu.Unlock()
	return gate
}

func (c *testController) RestartCamera(ctx context.Context) error {
	c.restarts.Add(1)
	return nil
}

// Trigger takes every trigger; the daemon's own tests cover the queue.
func (c *testController) Trigger(ctx context.Context, id string, sent time.Time) (*AnsweredTrigger, error) {
	return nil, nil
}

func (c *testController) Snapshot(ctx context.Context) ([]byte, time.Time, error) {
	img, err := c.NextFrame(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		return nil, time.Time{}, err
	}
	return b.Bytes(), time.Now(), nil
}

func (c *testController) Status() Status {
	return Status{Started: c.now().Add(-time.Hour), Inspections: 1234, InspectionsPerSecond: 36.5,
		Queues: map[string]int{"capture": 1}, Health: map[string]string{"camera": "ok"}}
}

// setModel makes a small real model, fitted on rendered frames (once per
// test binary), the model in force.
func (c *testController) setModel(t testing.TB) {
	t.Helper()
	path, info := sharedModel(t, c)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.modelPath(), data, 0o600); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.info = info
	c.mu.Unlock()
}

var shared struct {
	once sync.Once
	path string
	info model.Info
	err  error
}

func sharedModel(t testing.TB, c *testController) (string, model.Info) {
	shared.once.Do(func() {
		opts, _ := c.FitOptions()
		src, _ := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 3, NormalOnly: true})
		det, _, err := model.Fit(context.Background(), opts, frameList{src}, nil)
		if err != nil {
			shared.err = err
			return
		}
		defer det.Close()
		dir, err := os.MkdirTemp("", "inspectd-remote-test-")
		if err != nil {
			shared.err = err
			return
		}
		shared.path = filepath.Join(dir, "model.safetensors")
		shared.err = det.Save(shared.path)
		shared.info = det.Info()
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.path, shared.info
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.path != "" {
		os.RemoveAll(filepath.Dir(shared.path))
	}
	os.Exit(code)
}

// frameList is 30 rendered frames as a model.ImageSource.
type frameList struct{ src *capture.Synthetic }

func (f frameList) Len() int { return 30 }
func (f frameList) Image(int) (image.Image, error) {
	var fr capture.Frame
	err := f.src.Next(context.Background(), &fr)
	return fr.Image, err
}

// logSink collects log records for assertions.
type logSink struct {
	mu   sync.Mutex
	recs []string
}

func (l *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logSink) WithAttrs(as []slog.Attr) slog.Handler { return &attrSink{l, as} }
func (l *logSink) WithGroup(string) slog.Handler         { return l }

// count is the number of records containing every part.
func (l *logSink) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(r, p)
		}
		if ok {
			n++
		}
	}
	return n
}

func (l *logSink) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.recs, "\n")
}

type attrSink struct {
	l  *logSink
	as []slog.Attr
}

func (a *attrSink) Enabled(context.Context, slog.Level) bool { return true }
func (a *attrSink) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(a.as...)
	return a.l.Handle(ctx, r)
}
func (a *attrSink) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrSink{a.l, append(append([]slog.Attr(nil), a.as...), as...)}
}
func (a *attrSink) WithGroup(string) slog.Handler { return a }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rig is a dispatcher over a test controller, with helpers to send
// requests and wait for replies.
type rig struct {
	t   testing.TB
	ctl *testController
	d   *Dispatcher
	log *logSink
	clk *clock
	mem atomic.Int64 // bytes Memory reports
	// memUnknown makes Memory fail, as on a box whose available memory
	// cannot be read.
	memUnknown atomic.Bool
	opts       Options

	events eventLog
}

type eventLog struct {
	mu  sync.Mutex
	evs []event
}

type event struct {
	name    string
	payload []byte
	qos     byte
}

func (e *eventLog) Emit(name string, payload []byte, qos byte) error {
	e.mu.Lock()
	e.evs = append(e.evs, event{name, append([]byte(nil), payload...), qos})
	e.mu.Unlock()
	return nil
}

func (e *eventLog) named(name string) []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []event
	for _, ev := range e.evs {
		if ev.name == name {
			out = append(out, ev)
		}
	}
	return out
}

func newRig(t testing.TB, yamlCfg string) *rig { return newRigFor(t, "box1", yamlCfg) }

// newRigFor is newRig for another device id.
func newRigFor(t testing.TB, device, yamlCfg string) *rig {
	t.Helper()
	r := &rig{t: t, ctl: newController(t, device, yamlCfg), log: &logSink{}, clk: &clock{t: time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC)}}
	r.mem.Store(8 << 30)
	r.ctl.now = r.clk.Now
	r.opts = Options{Controller: r.ctl, DeviceID: device, StateDir: r.ctl.dir, Logger: slog.New(r.log), Now: r.clk.Now,
		Memory: func() (sysmem.Memory, error) {
			if r.memUnknown.Load() {
				return sysmem.Memory{}, errors.New("read /proc/meminfo: no such file or directory")
			}
			return sysmem.Memory{Bytes: r.mem.Load(), Source: "test"}, nil
		}}
	r.start()
	return r
}

func (r *rig) start() {
	r.t.Helper()
	d, err := New(r.opts)
	if err != nil {
		r.t.Fatal(err)
	}
	r.d = d
	d.AddEvents(&r.events)
	d.Started()
	r.t.Cleanup(func() { d.Close(context.Background()) })
}

// restart closes the dispatcher and opens a new one on the same state.
func (r *rig) restart() {
	r.t.Helper()
	if err := r.d.Close(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.start()
}

// send submits a request and returns its channel of replies.
func (r *rig) submit(name, origin string, body []byte) <-chan Reply {
	ch := make(chan Reply, 4)
	r.d.Submit(Request{Name: name, Body: body, Origin: origin}, func(rep Reply) { ch <- rep })
	return ch
}

// submitRunning submits a request from the device topic and returns once
// the command goroutine has taken it and recorded it as running (its
// Release), so that the queue is empty behind it; a test that slept
// instead found the request still queued on a loaded machine.
func (r *rig) submitRunning(name, body string) <-chan Reply {
	r.t.Helper()
	ch := make(chan Reply, 4)
	running := make(chan struct{})
	r.d.Submit(Request{Name: name, Body: []byte(body), Origin: "device", Release: func() { close(running) }},
		func(rep Reply) { ch <- rep })
	select {
	case <-running:
	case <-time.After(10 * time.Second):
		r.t.Fatalf("%s %s was not recorded as running within 10 s", name, body)
	}
	return ch
}

// do submits a request from the device topic and waits for its reply.
func (r *rig) do(name string, body string) Reply {
	r.t.Helper()
	return r.wait(r.submit(name, "device", []byte(body)))
}

// waitJob waits until a background job runs.
func (r *rig) waitJob() {
	r.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for r.d.runningJob() == nil {
		if time.Now().After(deadline) {
			r.t.Fatal("no background job started")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *rig) wait(ch <-chan Reply) Reply {
	r.t.Helper()
	select {
	case rep := <-ch:
		return rep
	case <-time.After(2 * time.Minute):
		r.t.Fatal("no reply within 2 minutes")
	}
	return Reply{}
}

// signer signs requests with a deterministic key.
type signer struct {
	name string
	priv ed25519.PrivateKey
}

func newSigner(name string, seed byte) signer {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return signer{name: name, priv: ed25519.NewKeyFromSeed(s)}
}

func (s signer) pub() string {
	return base64.StdEncoding.EncodeToString(s.priv.Public().(ed25519.PublicKey))
}

// sign wraps body for command and target at time at.
func (s signer) sign(t testing.TB, command, target string, body string, at time.Time) []byte {
	t.Helper()
	e, err := Sign(s.priv, s.name, target, command, []byte(body), at, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// code is a reply's error code ("" when ok).
func code(r Reply) string {
	s, _ := r.Data["code"].(string)
	return s
}

func field(r Reply) string {
	s, _ := r.Data["field"].(string)
	return s
}

// mustFail checks that a reply failed with code and an error containing
// every part.
func mustFail(t testing.TB, r Reply, wantCode string, parts ...string) {
	t.Helper()
	if r.OK || code(r) != wantCode {
		t.Errorf("reply %+v: want a %q refusal", r, wantCode)
		return
	}
	for _, p := range parts {
		if !strings.Contains(r.Error, p) {
			t.Errorf("reply error %q lacks %q", r.Error, p)
		}
	}
}

var errApply = errors.New("reopen capture: open /dev/video9: no such device")
