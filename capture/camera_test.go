package capture

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestCamera(t *testing.T, w *FakeCamera, opts CameraOptions) *Camera {
	t.Helper()
	opts.Device = "/dev/video7"
	opts.Open = w.Open
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
	w := NewFakeCamera()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatGREY, FormatYUYV}, Width: 60, Height: 50})
	src := testImage(64, 48)
	ctx := context.Background()
	var f Frame
	for i := 1; i <= 3; i++ {
		w.Push(toYUYV(src, 0))
		if err := c.Next(ctx, &f); err != nil {
			t.Fatal(err)
		}
		if f.Seq != uint64(i) {
			t.Errorf("seq %d, want %d", f.Seq, i)
		}
		if _, ok := f.Image.(*YUYV); !ok {
			t.Fatalf("frame %d is a %T, want the packed *YUYV (ColorAuto)", i, f.Image)
		}
		if d := maxDiff(t, src, flat(f.Image)); d > 2 {
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
	w := NewFakeCamera()
	w.oneAtATime = true
	c := newTestCamera(t, w, CameraOptions{Width: 48, Height: 32})
	src := testImage(48, 32)
	withDHT := encodeJPEG(t, src)
	noDHT, _ := stripDHT(t, withDHT)
	ref, err := jpeg.Decode(bytes.NewReader(withDHT))
	if err != nil {
		t.Fatal(err)
	}
	w.Push(withDHT, noDHT)
	var f Frame
	for i := 0; i < 2; i++ {
		if err := c.Next(context.Background(), &f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if _, ok := f.Image.(*image.YCbCr); !ok {
			t.Fatalf("frame %d is a %T, want the JPEG's own planes (*image.YCbCr)", i, f.Image)
		}
		want := convertInto(nil, ref, ColorRGB).(*image.RGBA)
		if d := maxDiff(t, want, flat(f.Image)); d > jpegTolerance {
			t.Fatalf("frame %d differs from image/jpeg's decoding by %d levels, want <= %d", i, d, jpegTolerance)
		}
	}
	if st := c.Status(); st.Format != FormatMJPEG {
		t.Errorf("format %v, want MJPEG first by default", st.Format)
	}
}

func TestCameraSkipsGarbageFrames(t *testing.T) {
	w := NewFakeCamera()
	w.oneAtATime = true
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatMJPEG}})
	good := encodeJPEG(t, testImage(48, 32))
	noDHT, _ := stripDHT(t, good)
	w.Push([]byte("garbage"), noDHT[:len(noDHT)/2], nil, bytes.Repeat([]byte{0xff}, 100), noDHT)
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
	w.Push([]byte("junk"))
	c.opts.FrameTimeout = 30 * time.Millisecond
	err := c.Next(context.Background(), &f)
	if !errors.Is(err, ErrTimeout) || !Temporary(err) || !strings.Contains(err.Error(), "1 corrupt") {
		t.Errorf("garbage only: err %v, want a timeout naming the corrupt frame", err)
	}
}

func TestCameraYUYVWrongSizeIsCorrupt(t *testing.T) {
	w := NewFakeCamera()
	w.oneAtATime = true
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48})
	w.Push(make([]byte, 100), toYUYV(testImage(64, 48), 0))
	var f Frame
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if got := c.Counters().DecodeErrors.Load(); got != 1 {
		t.Errorf("decode errors %d, want 1 for the short buffer", got)
	}
}

func TestCameraReturnsNewestFrame(t *testing.T) {
	w := NewFakeCamera()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48})
	frames := make([][]byte, 3)
	for i := range frames {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for j := range img.Pix {
			img.Pix[j] = uint8(60 * (i + 1))
		}
		frames[i] = toYUYV(img, 0)
	}
	w.Push(frames...)
	var f Frame
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if r := flat(f.Image).Pix[0]; r < 175 || r > 185 {
		t.Errorf("got a frame with red %d, want the newest (180)", r)
	}
	if d := c.Counters().Dropped.Load(); d != 2 {
		t.Errorf("dropped %d, want 2", d)
	}
	if w.outMax > 2 {
		t.Errorf("camera held %d buffers at once", w.outMax)
	}
	// Flush drops what waits so the next frame is fresh.
	w.Push(frames[0], frames[1])
	c.Flush()
	w.Push(frames[2])
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if d := c.Counters().Dropped.Load(); d != 4 {
		t.Errorf("dropped %d after flush, want 4", d)
	}
}

func TestCameraTimeoutsAndStallReopen(t *testing.T) {
	w := NewFakeCamera()
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
	w.Push(toYUYV(testImage(64, 48), 0))
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
	w := NewFakeCamera()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48})
	frame := toYUYV(testImage(64, 48), 0)
	ctx := context.Background()
	var f Frame
	w.Push(frame)
	if err := c.Next(ctx, &f); err != nil {
		t.Fatal(err)
	}
	w.Unplug()
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
	w.SetPresent(true)
	w.Push(frame)
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
	w := NewFakeCamera()
	w.SetPresent(false)
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48})
	var f Frame
	if err := c.Next(context.Background(), &f); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	w.SetPresent(true)
	w.Push(toYUYV(testImage(64, 48), 0))
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	if got := c.Counters().Reopens.Load(); got != 0 {
		t.Errorf("first successful open counted as %d reopens", got)
	}
}

func TestCameraCancel(t *testing.T) {
	w := NewFakeCamera()
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
	w := NewFakeCamera()
	w.formats = []FormatDesc{{FourCC('H' | '2'<<8 | '6'<<16 | '4'<<24), "H.264"}}
	c := newTestCamera(t, w, CameraOptions{})
	var f Frame
	err := c.Next(context.Background(), &f)
	if err == nil || Temporary(err) || !strings.Contains(err.Error(), "H264") || !strings.Contains(err.Error(), "MJPG") {
		t.Fatalf("err %v: want a permanent error naming offered and wanted formats", err)
	}
}

func TestCameraControls(t *testing.T) {
	w := NewFakeCamera()
	var logBuf bytes.Buffer
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48,
		Log:      slog.New(slog.NewTextHandler(&logBuf, nil)),
		Controls: map[string]int32{"exposure": 5000, "gain": 10, "zoom": 3, "brightness": 100}})
	w.Push(toYUYV(testImage(64, 48), 0))
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
	c, err := NewCamera(CameraOptions{Device: "usb-Foo_Cam-video-index0", Open: NewFakeCamera().Open})
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
	w := NewFakeCamera()
	open := func(p string) (Device, error) {
		if strings.HasSuffix(p, "video1") {
			return nil, errors.New("not a video capture device")
		}
		return w.Open(p)
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

// A camera that must be there (a running line switched to it) is refused
// at once when its node is missing, by its resolved path; one that may
// wait for its device is not.
func TestNewCameraRequireDevice(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "video-nope")
	if _, err := NewCamera(CameraOptions{Device: missing, RequireDevice: true}); !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing device: %v, want ErrNoDevice naming %s", err, missing)
	}
	if _, err := NewCamera(CameraOptions{Device: "usb-Nope_Cam-video-index0", RequireDevice: true}); !errors.Is(err, ErrNoDevice) ||
		!strings.Contains(err.Error(), "/dev/v4l/by-id/usb-Nope_Cam-video-index0") {
		t.Errorf("bare by-id name: %v, want ErrNoDevice naming its /dev/v4l/by-id path", err)
	}
	c, err := NewCamera(CameraOptions{Device: missing})
	if err != nil {
		t.Fatalf("a camera that waits for its device: %v", err)
	}
	_ = c.Close()
	there := filepath.Join(t.TempDir(), "video0")
	if err := os.WriteFile(there, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = NewCamera(CameraOptions{Device: there, RequireDevice: true}); err != nil {
		t.Fatalf("device node there: %v", err)
	}
	_ = c.Close()
}

// SameDevice: a link and the node it points at are one camera; so are two
// spellings of a path that cannot be resolved (an unplugged camera's); a
// bare by-id name is its /dev/v4l/by-id path.
func TestSameDevice(t *testing.T) {
	dir := t.TempDir()
	if err := writeFile(dir+"/video0", nil); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir+"/video1", nil); err != nil {
		t.Fatal(err)
	}
	link := dir + "/v4l/by-id/usb-Fake_Cam-video-index0"
	if err := mkLink(dir+"/video0", link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{dir + "/video0", link, true},
		{link, dir + "//video0", true},
		{dir + "/video1", link, false},
		{"/dev/video-gone", "/dev//video-gone/", true},
		{"/dev/video-gone", "/dev/video-other", false},
		{"usb-Gone_Cam-video-index0", "/dev/v4l/by-id/usb-Gone_Cam-video-index0", true},
	} {
		if got := SameDevice(c.a, c.b); got != c.same {
			t.Errorf("SameDevice(%q, %q) = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

// A camera named by its by-id link, unplugged (the link gone) while a
// node is there (another camera at video0): one setting is one camera,
// whatever its link resolves to; a missing link is not the node that is
// there. SameDevice resolved each setting on its own, so the same
// setting read as two cameras where the camera was unplugged or plugged
// between the two looks (a reload or restart-camera then took it for a
// change of camera).
func TestSameDeviceUnplugged(t *testing.T) {
	dir := t.TempDir()
	node := dir + "/video0"
	if err := writeFile(node, nil); err != nil {
		t.Fatal(err)
	}
	link := dir + "/v4l/by-id/usb-Fake_Cam-video-index0"
	if err := mkLink("../../video0", link); err != nil {
		t.Fatal(err)
	}
	if !SameDevice(link, node) {
		t.Fatalf("SameDevice(%q, %q) plugged in = false, want true", link, node)
	}
	if err := os.Remove(link); err != nil { // unplugged
		t.Fatal(err)
	}
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{link, link, true},
		{link, dir + "/v4l//by-id/./usb-Fake_Cam-video-index0", true},
		{link, node, false},
		{node, link, false},
	} {
		if got := SameDevice(c.a, c.b); got != c.same {
			t.Errorf("unplugged: SameDevice(%q, %q) = %v, want %v", c.a, c.b, got, c.same)
		}
	}

	// Plugged and unplugged while the setting is compared with itself.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = os.Symlink("../../video0", link)
			_ = os.Remove(link)
		}
	}()
	differ := 0
	for range 20000 {
		if !SameDevice(link, link) {
			differ++
		}
	}
	close(stop)
	<-done
	if differ > 0 {
		t.Errorf("SameDevice(%q, itself) = false %d times of 20000 while the camera came and went", link, differ)
	}
}
