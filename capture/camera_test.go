package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeWorld is the hardware edge for tests: a camera that can be plugged
// and unplugged, replaying queued frames through fakeDevices. It behaves
// as the kernel's vivid driver was seen to (capture/vivid): the driver
// picks the size and frame rate it offers, buffers carry CLOCK_MONOTONIC
// timestamps and may be flagged as errors, buttons have no value.
type fakeWorld struct {
	mu       sync.Mutex
	present  bool
	opens    int
	formats  []FormatDesc
	sizes    map[FourCC][]FrameSize
	rates    []float64
	rate     float64
	rng      YUVRange
	rngSaid  bool
	controls []Control
	values   map[uint32]int32
	sets     []string // "id=value" in the order they were set
	feed     []fakeEvent
	// oneAtATime makes polls (timeout 0) report nothing, so every queued
	// frame is delivered instead of only the newest.
	oneAtATime bool
	// startErrs fails that many StartStreaming calls, as vivid's "Inject
	// VIDIOC_STREAMON Error" button does once.
	startErrs int
	// noStamps delivers buffers without timestamps.
	noStamps bool
	outMax   int // most buffers the camera held at once
	cur      *fakeDevice
}

type fakeEvent struct {
	frame   []byte
	unplug  bool
	errFlag bool
	stamp   time.Duration // CLOCK_MONOTONIC capture time; 0: none
}

func newFakeWorld() *fakeWorld {
	return &fakeWorld{
		present: true,
		formats: []FormatDesc{{FormatYUYV, "YUYV 4:2:2"}, {FormatMJPEG, "Motion-JPEG"}},
		sizes: map[FourCC][]FrameSize{
			FormatYUYV:  {{MinWidth: 64, MaxWidth: 64, MinHeight: 48, MaxHeight: 48}, {MinWidth: 640, MaxWidth: 640, MinHeight: 480, MaxHeight: 480}},
			FormatMJPEG: {{MinWidth: 48, MaxWidth: 48, MinHeight: 32, MaxHeight: 32}},
		},
		rates: []float64{5, 15, 30},
		rate:  5,
		controls: []Control{
			{ID: 1, Name: "Brightness", Min: 0, Max: 255, Step: 1, Default: 128, Kind: ControlInt},
			{ID: 2, Name: "Auto Exposure", Min: 0, Max: 3, Step: 1, Default: 3, Kind: ControlMenu,
				Menu: []MenuItem{{1, "Manual Mode"}, {3, "Aperture Priority Mode"}}},
			{ID: 3, Name: "Exposure Time, Absolute", Min: 3, Max: 2047, Step: 1, Default: 250, Kind: ControlInt},
			{ID: 4, Name: "Gain", Min: 0, Max: 255, Step: 1, Kind: ControlInt},
			{ID: 5, Name: "Disconnect", Kind: ControlButton, WriteOnly: true},
			{ID: 6, Name: "Read-Only Integer 32 Bits", Max: 255, Step: 1, Kind: ControlInt, ReadOnly: true},
		},
		values: map[uint32]int32{},
	}
}

func (w *fakeWorld) open(path string) (Device, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.present {
		return nil, &fs.PathError{Op: "open", Path: path, Err: syscall.ENOENT}
	}
	w.opens++
	w.cur = &fakeDevice{w: w, bufs: make([][]byte, 4), held: map[uint32]bool{}}
	return w.cur, nil
}

// push queues frames captured now.
func (w *fakeWorld) push(frames ...[]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range frames {
		w.feed = append(w.feed, fakeEvent{frame: f, stamp: monotonicNow()})
	}
}

// pushEvent queues one event as given.
func (w *fakeWorld) pushEvent(ev fakeEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.feed = append(w.feed, ev)
}

func (w *fakeWorld) unplug() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.feed = append(w.feed, fakeEvent{unplug: true})
}

func (w *fakeWorld) setPresent(p bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.present = p
}

type fakeDevice struct {
	w         *fakeWorld
	dead      bool
	closed    bool
	streaming bool
	format    FourCC
	bufs      [][]byte
	held      map[uint32]bool
	next      uint32
}

func (d *fakeDevice) Card() string { return "Fake Cam" }
func (d *fakeDevice) Bus() string  { return "usb-fake-1" }
func (d *fakeDevice) Formats() []FormatDesc {
	return d.w.formats
}
func (d *fakeDevice) FrameSizes(f FourCC) []FrameSize { return d.w.sizes[f] }
func (d *fakeDevice) FrameRates(f FourCC, w, h uint32) []float64 {
	return d.w.rates
}
func (d *fakeDevice) Controls() []Control { return d.w.controls }
func (d *fakeDevice) control(id uint32) (Control, bool) {
	for _, c := range d.w.controls {
		if c.ID == id {
			return c, true
		}
	}
	return Control{}, false
}
func (d *fakeDevice) GetControl(id uint32) (int32, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	c, ok := d.control(id)
	switch {
	case !ok:
		return 0, syscall.EINVAL
	case c.WriteOnly:
		return 0, syscall.EACCES // as V4L2 answers for buttons
	}
	if v, ok := d.w.values[id]; ok {
		return v, nil
	}
	return c.Default, nil
}
func (d *fakeDevice) SetControl(id uint32, v int32) error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	c, ok := d.control(id)
	switch {
	case !ok:
		return syscall.EINVAL
	case c.ReadOnly:
		return syscall.EACCES
	case c.Kind != ControlButton && c.Kind != ControlBitmask && (v < c.Min || v > c.Max):
		return syscall.ERANGE
	}
	d.w.sets = append(d.w.sets, fmt.Sprintf("%d=%d", id, v))
	if c.Kind != ControlButton {
		d.w.values[id] = v
	}
	return nil
}

// SetFormat settles on the offered size nearest to the one asked for, as
// V4L2 drivers do.
func (d *fakeDevice) SetFormat(f FourCC, w, h uint32) (PixFormat, error) {
	sizes := d.w.sizes[f]
	if len(sizes) == 0 {
		return PixFormat{}, syscall.EINVAL
	}
	best, bd := sizes[0], int64(-1)
	for _, s := range sizes {
		dd := absDiff(s.MaxWidth, w) + absDiff(s.MaxHeight, h)
		if bd < 0 || dd < bd {
			best, bd = s, dd
		}
	}
	d.format = f
	return PixFormat{Format: f, Width: best.MaxWidth, Height: best.MaxHeight, BytesPerLine: 2 * best.MaxWidth,
		Range: d.w.rng, RangeDefault: !d.w.rngSaid}, nil
}

// SetFramerate takes the slowest offered rate at or above the one asked
// for (the fastest when none is), as vivid does.
func (d *fakeDevice) SetFramerate(fps float64) (float64, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	rates := slices.Sorted(slices.Values(d.w.rates))
	d.w.rate = rates[len(rates)-1]
	for _, r := range rates {
		if r >= fps-1e-9 {
			d.w.rate = r
			break
		}
	}
	return d.w.rate, nil
}
func (d *fakeDevice) Framerate() (float64, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	return d.w.rate, nil
}
func (d *fakeDevice) StartStreaming(n uint32) error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if d.w.startErrs > 0 {
		d.w.startErrs--
		return fmt.Errorf("VIDIOC_STREAMON: %w", syscall.EINVAL)
	}
	d.streaming = true
	return nil
}

func (d *fakeDevice) WaitFrame(timeout time.Duration) (bool, error) {
	d.w.mu.Lock()
	if d.closed {
		d.w.mu.Unlock()
		return false, errors.New("fake: wait on a closed device")
	}
	if d.dead {
		d.w.mu.Unlock()
		return false, syscall.ENODEV
	}
	ready := len(d.w.feed) > 0 && !(timeout == 0 && d.w.oneAtATime)
	d.w.mu.Unlock()
	if !ready && timeout > 0 {
		// Nothing to deliver: time passes, as on a camera that stalls.
		time.Sleep(min(timeout, 5*time.Millisecond))
	}
	return ready, nil
}

func (d *fakeDevice) GetFrame() (Buffer, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if d.dead {
		return Buffer{}, syscall.ENODEV
	}
	if !d.streaming {
		return Buffer{}, errors.New("fake: dequeue while not streaming")
	}
	if len(d.w.feed) == 0 {
		return Buffer{}, syscall.EAGAIN
	}
	ev := d.w.feed[0]
	d.w.feed = d.w.feed[1:]
	if ev.unplug {
		d.dead = true
		d.w.present = false
		return Buffer{}, syscall.ENODEV
	}
	idx := d.next % uint32(len(d.bufs))
	d.next++
	if d.held[idx] {
		return Buffer{}, fmt.Errorf("fake: buffer %d dequeued twice", idx)
	}
	// Like mmap buffers: the camera must decode before releasing.
	d.bufs[idx] = append(d.bufs[idx][:0], ev.frame...)
	d.held[idx] = true
	d.w.outMax = max(d.w.outMax, len(d.held))
	b := Buffer{Data: d.bufs[idx], Index: idx, Error: ev.errFlag, Timestamp: ev.stamp}
	if d.w.noStamps {
		b.Timestamp = 0
	}
	return b, nil
}

func (d *fakeDevice) ReleaseFrame(idx uint32) error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if d.dead {
		return syscall.ENODEV
	}
	if !d.held[idx] {
		return fmt.Errorf("fake: buffer %d released but not held", idx)
	}
	delete(d.held, idx)
	// Overwrite, so a camera that kept using released bytes would see junk.
	for i := range d.bufs[idx] {
		d.bufs[idx][i] = 0xee
	}
	return nil
}

func (d *fakeDevice) Close() error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if d.closed {
		return errors.New("fake: closed twice")
	}
	d.closed = true
	return nil
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestCamera(t *testing.T, w *fakeWorld, opts CameraOptions) *Camera {
	t.Helper()
	opts.Device = "/dev/video7"
	opts.Open = w.open
	if opts.Log == nil {
		opts.Log = quietLog()
	}
	if opts.FrameTimeout == 0 {
		opts.FrameTimeout = 200 * time.Millisecond
	}
	opts.ReopenMin, opts.ReopenMax = 5*time.Millisecond, 20*time.Millisecond
	c, err := NewCamera(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestCameraYUYVFrames(t *testing.T) {
	w := newFakeWorld()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatGREY, FormatYUYV}, Width: 60, Height: 50})
	src := testImage(64, 48)
	ctx := context.Background()
	var f Frame
	for i := 1; i <= 3; i++ {
		w.push(toYUYV(src, 0))
		if err := c.Next(ctx, &f); err != nil {
			t.Fatal(err)
		}
		if f.Seq != uint64(i) {
			t.Errorf("seq %d, want %d", f.Seq, i)
		}
		if d := maxDiff(t, src, f.Image.(*image.RGBA)); d > 2 {
			t.Fatalf("frame %d differs from the source image by %d levels", i, d)
		}
	}
	st := c.Status()
	if !st.Connected || st.Format != FormatYUYV || st.Width != 64 || st.Height != 48 {
		t.Errorf("status %+v: want connected YUYV 64x48 (nearest to 60x50)", st)
	}
	if got := c.Counters().Snapshot(); got.Frames != 3 || got.DecodeErrors != 0 {
		t.Errorf("counters %+v", got)
	}
}

func TestCameraMJPEGWithAndWithoutHuffmanTables(t *testing.T) {
	w := newFakeWorld()
	w.oneAtATime = true
	c := newTestCamera(t, w, CameraOptions{Width: 48, Height: 32})
	src := testImage(48, 32)
	withDHT := encodeJPEG(t, src)
	noDHT, _ := stripDHT(t, withDHT)
	ref, err := jpeg.Decode(bytes.NewReader(withDHT))
	if err != nil {
		t.Fatal(err)
	}
	w.push(withDHT, noDHT)
	var f Frame
	for i := 0; i < 2; i++ {
		if err := c.Next(context.Background(), &f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		want := convertInto(nil, ref, ColorRGB).(*image.RGBA)
		if d := maxDiff(t, want, f.Image.(*image.RGBA)); d != 0 {
			t.Fatalf("frame %d differs from image/jpeg's decoding by %d", i, d)
		}
	}
	if st := c.Status(); st.Format != FormatMJPEG {
		t.Errorf("format %v, want MJPEG first by default", st.Format)
	}
}

func TestCameraSkipsGarbageFrames(t *testing.T) {
	w := newFakeWorld()
	w.oneAtATime = true
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatMJPEG}})
	good := encodeJPEG(t, testImage(48, 32))
	noDHT, _ := stripDHT(t, good)
	w.push([]byte("garbage"), noDHT[:len(noDHT)/2], nil, bytes.Repeat([]byte{0xff}, 100), noDHT)
	var f Frame
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatalf("Next after garbage: %v", err)
	}
	if f.Image.Bounds().Dx() != 48 {
		t.Errorf("got a %v frame", f.Image.Bounds())
	}
	if got := c.Counters().Snapshot(); got.DecodeErrors != 4 || got.Frames != 1 {
		t.Errorf("counters %+v: want 4 decode errors, 1 frame", got)
	}
	// Only garbage: the wait ends as a timeout that says why.
	w.push([]byte("junk"))
	c.opts.FrameTimeout = 30 * time.Millisecond
	err := c.Next(context.Background(), &f)
	if !errors.Is(err, ErrTimeout) || !Temporary(err) || !strings.Contains(err.Error(), "1 corrupt") {
		t.Errorf("garbage only: err %v, want a timeout naming the corrupt frame", err)
	}
}

func TestCameraYUYVWrongSizeIsCorrupt(t *testing.T) {
	w := newFakeWorld()
	w.oneAtATime = true
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48})
	w.push(make([]byte, 100), toYUYV(testImage(64, 48), 0))
	var f Frame
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if got := c.Counters().DecodeErrors.Load(); got != 1 {
		t.Errorf("decode errors %d, want 1 for the short buffer", got)
	}
}

func TestCameraReturnsNewestFrame(t *testing.T) {
	w := newFakeWorld()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48})
	frames := make([][]byte, 3)
	for i := range frames {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for j := range img.Pix {
			img.Pix[j] = uint8(60 * (i + 1))
		}
		frames[i] = toYUYV(img, 0)
	}
	w.push(frames...)
	var f Frame
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if r := f.Image.(*image.RGBA).Pix[0]; r < 175 || r > 185 {
		t.Errorf("got a frame with red %d, want the newest (180)", r)
	}
	if d := c.Counters().Dropped.Load(); d != 2 {
		t.Errorf("dropped %d, want 2", d)
	}
	if w.outMax > 2 {
		t.Errorf("camera held %d buffers at once", w.outMax)
	}
	// Flush drops what waits so the next frame is fresh.
	w.push(frames[0], frames[1])
	c.Flush()
	w.push(frames[2])
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if d := c.Counters().Dropped.Load(); d != 4 {
		t.Errorf("dropped %d after flush, want 4", d)
	}
}

func TestCameraTimeoutsAndStallReopen(t *testing.T) {
	w := newFakeWorld()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48,
		FrameTimeout: 20 * time.Millisecond, ReopenAfterTimeouts: 2})
	var f Frame
	ctx := context.Background()
	for i := 1; i <= 2; i++ {
		err := c.Next(ctx, &f)
		if !errors.Is(err, ErrTimeout) || !Temporary(err) {
			t.Fatalf("try %d: err %v, want ErrTimeout", i, err)
		}
	}
	if got := c.Counters().Timeouts.Load(); got != 2 {
		t.Errorf("timeouts %d, want 2", got)
	}
	if st := c.Status(); st.LastError == "" {
		t.Error("status does not say why frames stopped")
	}
	// Two timeouts in a row closed the device; the next call reopens it.
	w.push(toYUYV(testImage(64, 48), 0))
	if err := c.Next(ctx, &f); err != nil {
		t.Fatal(err)
	}
	if w.opens != 2 || c.Counters().Reopens.Load() != 1 {
		t.Errorf("opens %d reopens %d, want 2 and 1", w.opens, c.Counters().Reopens.Load())
	}
	if st := c.Status(); st.LastError != "" || !st.Connected {
		t.Errorf("status after recovery: %+v", st)
	}
}

func TestCameraUnplugReplug(t *testing.T) {
	w := newFakeWorld()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48})
	frame := toYUYV(testImage(64, 48), 0)
	ctx := context.Background()
	var f Frame
	w.push(frame)
	if err := c.Next(ctx, &f); err != nil {
		t.Fatal(err)
	}
	w.unplug()
	err := c.Next(ctx, &f)
	if !errors.Is(err, ErrUnavailable) || !Temporary(err) || !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("unplug: err %v, want ErrUnavailable wrapping ENODEV", err)
	}
	if c.Status().Connected {
		t.Error("status still connected after unplug")
	}
	// While unplugged, each call waits out the backoff and reports why.
	for i := 0; i < 3; i++ {
		err = c.Next(ctx, &f)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("unplugged: err %v, want ErrUnavailable wrapping not-exist", err)
		}
	}
	w.setPresent(true)
	w.push(frame)
	deadline := time.Now().Add(2 * time.Second)
	for {
		err = c.Next(ctx, &f)
		if err == nil {
			break
		}
		if !Temporary(err) || time.Now().After(deadline) {
			t.Fatalf("after replug: %v", err)
		}
	}
	if got := c.Counters().Reopens.Load(); got != 1 {
		t.Errorf("reopens %d, want 1", got)
	}
	if f.Seq != 2 {
		t.Errorf("seq %d after replug, want 2 (sequence continues)", f.Seq)
	}
}

func TestCameraFirstOpenFailsAndRecovers(t *testing.T) {
	w := newFakeWorld()
	w.setPresent(false)
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48})
	var f Frame
	if err := c.Next(context.Background(), &f); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	w.setPresent(true)
	w.push(toYUYV(testImage(64, 48), 0))
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if got := c.Counters().Reopens.Load(); got != 0 {
		t.Errorf("first successful open counted as %d reopens", got)
	}
}

func TestCameraCancel(t *testing.T) {
	w := newFakeWorld()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48, FrameTimeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	var f Frame
	if err := c.Next(ctx, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

func TestCameraUnsupportedFormat(t *testing.T) {
	w := newFakeWorld()
	w.formats = []FormatDesc{{FourCC('H' | '2'<<8 | '6'<<16 | '4'<<24), "H.264"}}
	c := newTestCamera(t, w, CameraOptions{})
	var f Frame
	err := c.Next(context.Background(), &f)
	if err == nil || Temporary(err) || !strings.Contains(err.Error(), "H264") || !strings.Contains(err.Error(), "MJPG") {
		t.Fatalf("err %v: want a permanent error naming offered and wanted formats", err)
	}
}

func TestCameraControls(t *testing.T) {
	w := newFakeWorld()
	var logBuf bytes.Buffer
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48,
		Log:      slog.New(slog.NewTextHandler(&logBuf, nil)),
		Controls: map[string]int32{"exposure": 5000, "gain": 10, "zoom": 3, "brightness": 100}})
	w.push(toYUYV(testImage(64, 48), 0))
	var f Frame
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	// Brightness, then auto exposure to manual (1) before the exposure
	// (clamped to 2047), then gain.
	want := "1=100 2=1 3=2047 4=10"
	if got := strings.Join(w.sets, " "); got != want {
		t.Errorf("controls set %q, want %q", got, want)
	}
	if !strings.Contains(logBuf.String(), "zoom") || !strings.Contains(logBuf.String(), "clamped") {
		t.Errorf("log does not mention the missing zoom control or the clamped exposure:\n%s", logBuf.String())
	}
}

func TestCameraOptionErrors(t *testing.T) {
	if _, err := NewCamera(CameraOptions{}); err == nil {
		t.Error("no device: want an error")
	}
	if _, err := NewCamera(CameraOptions{Device: "/dev/video0", Formats: []FourCC{FourCC(0x34363248)}}); err == nil {
		t.Error("undecodable format: want an error")
	}
	c, err := NewCamera(CameraOptions{Device: "usb-Foo_Cam-video-index0", Open: newFakeWorld().open})
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.Device != "/dev/v4l/by-id/usb-Foo_Cam-video-index0" {
		t.Errorf("bare by-id name resolved to %s", c.opts.Device)
	}
}

func TestNearestSize(t *testing.T) {
	sizes := []FrameSize{
		{MinWidth: 640, MaxWidth: 640, MinHeight: 480, MaxHeight: 480},
		{MinWidth: 1280, MaxWidth: 1280, MinHeight: 720, MaxHeight: 720},
		{MinWidth: 1920, MaxWidth: 1920, MinHeight: 1080, MaxHeight: 1080},
	}
	cases := []struct{ w, h, ww, wh uint32 }{
		{1280, 720, 1280, 720},
		{1300, 700, 1280, 720},
		{100, 100, 640, 480},
		{4000, 3000, 1920, 1080},
	}
	for _, c := range cases {
		if w, h := nearestSize(sizes, c.w, c.h); w != c.ww || h != c.wh {
			t.Errorf("nearest to %dx%d = %dx%d, want %dx%d", c.w, c.h, w, h, c.ww, c.wh)
		}
	}
	step := []FrameSize{{MinWidth: 160, MaxWidth: 1920, StepWidth: 16, MinHeight: 120, MaxHeight: 1080, StepHeight: 8}}
	if w, h := nearestSize(step, 1000, 701); w != 1008 || h != 704 {
		t.Errorf("stepwise nearest to 1000x701 = %dx%d, want 1008x704", w, h)
	}
	if w, h := nearestSize(nil, 800, 600); w != 800 || h != 600 {
		t.Errorf("no sizes listed: %dx%d, want the request", w, h)
	}
}

func TestControlKey(t *testing.T) {
	for in, want := range map[string]string{
		"Exposure Time, Absolute":        "exposure_time_absolute",
		"White Balance Temperature":      "white_balance_temperature",
		"Focus (absolute)":               "focus_absolute",
		"  Gain ":                        "gain",
		"Power Line Frequency":           "power_line_frequency",
		"White Balance, Automatic":       "white_balance_automatic",
		"exposure_time_absolute":         "exposure_time_absolute",
		"Brightness__(--)":               "brightness",
		"Auto Exposure, Bias 2 (legacy)": "auto_exposure_bias_2_legacy",
	} {
		if got := controlKey(in); got != want {
			t.Errorf("controlKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestListDevices(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"video10", "video0", "video1"} {
		if err := writeFile(dir+"/"+n, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := mkLink(dir+"/video0", dir+"/v4l/by-id/usb-Fake_Cam-video-index0"); err != nil {
		t.Fatal(err)
	}
	w := newFakeWorld()
	open := func(p string) (Device, error) {
		if strings.HasSuffix(p, "video1") {
			return nil, errors.New("not a video capture device")
		}
		return w.open(p)
	}
	devs, err := ListDevices(ListOptions{Dir: dir, Open: open})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 3 || !strings.HasSuffix(devs[0].Path, "video0") || !strings.HasSuffix(devs[2].Path, "video10") {
		t.Fatalf("devices %+v: want video0, video1, video10", devs)
	}
	d := devs[0]
	if d.Card != "Fake Cam" || len(d.Formats) != 2 || len(d.Formats[0].Sizes) != 2 || len(d.Controls) != 6 {
		t.Errorf("video0 described as %+v", d)
	}
	// Buttons are listed, without a value to read (V4L2 refuses to read
	// write-only controls).
	if b := d.Controls[4]; b.Key != "disconnect" || b.Kind != ControlButton || b.ValueErr != nil {
		t.Errorf("button listed as %+v", b)
	}
	if m := d.Controls[1]; m.Value != 3 || len(m.Menu) != 2 || m.Menu[1].Name != "Aperture Priority Mode" {
		t.Errorf("menu listed as %+v", m)
	}
	if len(d.Links) != 1 || !strings.HasSuffix(d.Links[0], "usb-Fake_Cam-video-index0") {
		t.Errorf("links %v", d.Links)
	}
	if d.Controls[2].Key != "exposure_time_absolute" {
		t.Errorf("control key %q", d.Controls[2].Key)
	}
	if devs[1].Err == nil {
		t.Error("video1 should carry its open error")
	}
	empty, err := ListDevices(ListOptions{Dir: t.TempDir(), Open: open})
	if err != nil || len(empty) != 0 {
		t.Errorf("empty /dev: %v %v", empty, err)
	}
}
