//go:build vivid

package vivid

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
)

// TestList checks `capture list` against vivid and against v4l2-ctl's
// reading of the same driver: formats, sizes, frame rates and controls,
// buttons included.
func TestList(t *testing.T) {
	reloadVivid(t)
	out := inspectd(t, "capture", "list")
	for _, want := range []string{
		"/dev/video0: vivid (platform:vivid-000)",
		"YUYV YUYV 4:2:2",
		"GREY 8-bit Greyscale",
		"640x480 @ 1, 2, 4, 5, 10, 12.5, 15, 25 fps",
		"3840x2160 @ 1, 2 fps",
		"brightness                       int 0..255 step 1, default 128, now 128",
		"disconnect                       button: set it to 1 to press it",
		"inject_v4l2_buf_flag_error       button",
		"inject_vidioc_streamon_error     button",
		"percentage_of_dropped_buffers    int 0..100 step 1, default 0, now 0",
		"test_pattern                     menu 0 75% Colorbar, 1 100% Colorbar,",
		"now 0 (75% Colorbar)",
		"gain                             int 0..255 step 1, default 100, now",
		"inactive (an automatic mode overrides it)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("capture list does not show %q", want)
		}
	}
	// vivid's other nodes (video output, VBI) are listed as not usable.
	if !regexp.MustCompile(`/dev/video1: not usable: .*not a video capture device`).MatchString(out) {
		t.Errorf("capture list does not mark the output node /dev/video1 as not usable")
	}
	if t.Failed() {
		t.Logf("capture list:\n%s", out)
	}

	devs, err := capture.ListDevices(capture.ListOptions{})
	if err != nil || len(devs) == 0 || devs[0].Err != nil {
		t.Fatalf("ListDevices: %v %+v", err, devs)
	}
	d := devs[0]

	// Formats, sizes and rates as v4l2-ctl reads them.
	ref := v4l2ctl(t, "--list-formats-ext")
	for _, fi := range d.Formats {
		if fi.Format != capture.FormatYUYV && fi.Format != capture.FormatGREY {
			continue
		}
		want := v4l2Sizes(ref, fi.Format.String())
		var got []string
		for _, s := range fi.Sizes {
			fps := make([]string, len(s.FPS))
			for i, r := range s.FPS {
				fps[i] = strconv.FormatFloat(r, 'f', 3, 64)
			}
			got = append(got, s.Size.String()+"@"+strings.Join(fps, ","))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s sizes and rates:\n got %v\nwant %v (v4l2-ctl --list-formats-ext)", fi.Format, got, want)
		}
	}

	// Every control with its range, default and value as v4l2-ctl reads it.
	ctls := v4l2Controls(v4l2ctl(t, "--list-ctrls"))
	n := 0
	for _, c := range d.Controls {
		ref, ok := ctls[c.Key]
		if !ok {
			t.Errorf("control %s (%s) is not in v4l2-ctl's list", c.Key, c.Name)
			continue
		}
		n++
		if ref["type"] != string(c.Kind) && !(ref["type"] == "intmenu" && c.Kind == capture.ControlMenu) {
			t.Errorf("control %s: kind %s, v4l2-ctl says %s", c.Key, c.Kind, ref["type"])
		}
		check := map[string]int64{"min": int64(c.Min), "max": int64(c.Max), "default": int64(c.Default), "value": int64(c.Value)}
		for k, v := range check {
			s, ok := ref[k]
			if !ok || (k == "value" && (c.WriteOnly || c.Inactive)) {
				continue // an inactive control follows its automatic mode
			}
			rv, err := strconv.ParseInt(s, 0, 64)
			if c.Kind == capture.ControlBitmask {
				rv = int64(int32(uint32(rv))) // printed as hex or as a signed value
			}
			if err != nil || rv != v {
				t.Errorf("control %s: %s %d, v4l2-ctl says %s", c.Key, k, v, s)
			}
		}
	}
	for _, key := range []string{"disconnect", "inject_v4l2_buf_flag_error", "brightness", "test_pattern"} {
		if !slices.ContainsFunc(d.Controls, func(c capture.ControlInfo) bool { return c.Key == key }) {
			t.Errorf("control %s missing", key)
		}
	}
	t.Logf("%d controls agree with v4l2-ctl", n)
}

// v4l2Sizes reads one format's "WxH@fps,fps" list from v4l2-ctl
// --list-formats-ext.
func v4l2Sizes(out, format string) []string {
	var sizes []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "["):
			in = strings.Contains(line, "'"+format+"'")
		case !in:
		case strings.HasPrefix(line, "Size: Discrete "):
			sizes = append(sizes, strings.TrimPrefix(line, "Size: Discrete ")+"@")
		case strings.HasPrefix(line, "Interval: Discrete ") && len(sizes) > 0:
			m := regexp.MustCompile(`\(([0-9.]+) fps\)`).FindStringSubmatch(line)
			if m != nil {
				if !strings.HasSuffix(sizes[len(sizes)-1], "@") {
					sizes[len(sizes)-1] += ","
				}
				sizes[len(sizes)-1] += m[1]
			}
		}
	}
	return sizes
}

// v4l2Controls parses v4l2-ctl --list-ctrls lines such as
// "brightness 0x00980900 (int) : min=0 max=255 step=1 default=128 value=128".
func v4l2Controls(out string) map[string]map[string]string {
	re := regexp.MustCompile(`^\s*(\S+) 0x[0-9a-f]+ \((\w+)\)\s*:(.*)$`)
	ctls := map[string]map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		kv := map[string]string{"type": m[2]}
		for _, f := range strings.Fields(m[3]) {
			if k, v, ok := strings.Cut(f, "="); ok {
				kv[k] = v
			}
		}
		ctls[m[1]] = kv
	}
	return ctls
}

// TestSnapshot takes frames through `capture snapshot` in YUYV and GREY at
// several sizes, one not offered, and checks the colour bars.
func TestSnapshot(t *testing.T) {
	reloadVivid(t)
	setControls(t, "osd_text_mode=2") // no on-screen text over the bars
	dir := t.TempDir()
	for _, c := range []struct {
		format             string
		w, h, wantW, wantH int
	}{
		{"YUYV", 320, 180, 320, 180},
		{"YUYV", 640, 480, 640, 480},
		{"YUYV", 1280, 720, 1280, 720},
		{"YUYV", 800, 600, 640, 480}, // not offered: the nearest
		{"GREY", 320, 180, 320, 180},
		{"GREY", 640, 480, 640, 480},
		{"GREY", 1920, 1080, 1920, 1080},
	} {
		name := fmt.Sprintf("%s-%dx%d", c.format, c.w, c.h)
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name+".png")
			log := inspectd(t, "capture", "snapshot", "--device", device, "--format", c.format,
				"--width", strconv.Itoa(c.w), "--height", strconv.Itoa(c.h), "--warmup", "1", "--out", out)
			img := decodePNG(t, out)
			if b := img.Bounds(); b.Dx() != c.wantW || b.Dy() != c.wantH {
				t.Fatalf("snapshot is %dx%d, want %dx%d\n%s", b.Dx(), b.Dy(), c.wantW, c.wantH, log)
			}
			if _, gray := img.(*image.Gray); gray != (c.format == "GREY") {
				t.Errorf("a %s snapshot decoded as %T", c.format, img)
			}
			if c.wantW != c.w && !strings.Contains(log, fmt.Sprintf("wanted=%dx%d using=%dx%d", c.w, c.h, c.wantW, c.wantH)) {
				t.Errorf("no log line says that %dx%d became %dx%d:\n%s", c.w, c.h, c.wantW, c.wantH, log)
			}
			checkBars(t, img, name)
		})
	}
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return img
}

// TestNegotiation asks for a format vivid lacks, a size and frame rates it
// does not offer: the nearest ones are used and logged, and the driver
// (read by v4l2-ctl while the camera streams) agrees.
func TestNegotiation(t *testing.T) {
	reloadVivid(t)
	for _, c := range []struct {
		w, h     int
		fps      float64
		wantSize string
		wantFPS  float64
	}{
		{700, 500, 18, "640x480", 15},     // vivid alone would pick 25 for 18
		{640, 480, 22, "640x480", 25},     // nearest
		{1280, 720, 30, "1280x720", 12.5}, // the fastest at that size
		{320, 180, 100, "320x180", 60},
	} {
		name := fmt.Sprintf("%dx%d@%g", c.w, c.h, c.fps)
		t.Run(name, func(t *testing.T) {
			cam, logs := openCamera(t, capture.CameraOptions{Formats: []capture.FourCC{capture.FormatMJPEG, capture.FormatYUYV},
				Width: c.w, Height: c.h, FPS: c.fps})
			var f capture.Frame
			next(t, cam, &f, 30*time.Second)
			st := cam.Status()
			if got := fmt.Sprintf("%dx%d", st.Width, st.Height); got != c.wantSize || st.Format != capture.FormatYUYV || st.FPS != c.wantFPS {
				t.Errorf("negotiated %s %s@%g, want YUYV %s@%g", st.Format, got, st.FPS, c.wantSize, c.wantFPS)
			}
			if b := f.Image.Bounds(); fmt.Sprintf("%dx%d", b.Dx(), b.Dy()) != c.wantSize {
				t.Errorf("frame is %v", b)
			}
			parm := v4l2ctl(t, "--get-parm")
			if !strings.Contains(parm, fmt.Sprintf("Frames per second: %.3f", c.wantFPS)) {
				t.Errorf("v4l2-ctl --get-parm while streaming:\n%s\nwant %g fps", parm, c.wantFPS)
			}
			fmtOut := v4l2ctl(t, "--get-fmt-video")
			if !strings.Contains(fmtOut, "Width/Height      : "+strings.Replace(c.wantSize, "x", "/", 1)) || !strings.Contains(fmtOut, "'YUYV'") {
				t.Errorf("v4l2-ctl --get-fmt-video while streaming:\n%s", fmtOut)
			}
			l := logs.String()
			for _, want := range []*regexp.Regexp{
				regexp.MustCompile(`msg="camera: preferred pixel format not offered, using the next one" .*wanted=MJPG,YUYV using=YUYV`),
				regexp.MustCompile(fmt.Sprintf(`msg="camera: frame rate not offered, using the nearest" .*wanted=%g using=%g`, c.fps, c.wantFPS)),
			} {
				if !want.MatchString(l) {
					t.Errorf("log lacks %q:\n%s", want, l)
				}
			}
			if fmt.Sprintf("%dx%d", c.w, c.h) != c.wantSize && !strings.Contains(l, fmt.Sprintf("wanted=%dx%d using=%s", c.w, c.h, c.wantSize)) {
				t.Errorf("log does not say %dx%d became %s:\n%s", c.w, c.h, c.wantSize, l)
			}
		})
	}
}

// TestControls sets the user controls by name, reads them back through
// v4l2-ctl and sees brightness in the pixels.
func TestControls(t *testing.T) {
	reloadVivid(t)
	out := setControls(t, "brightness=200", "contrast=100", "saturation=50", "hue=-20", "gain=30")
	for _, want := range []string{"brightness = 200", "contrast = 100", "saturation = 50", "hue = -20", "gain = 30", "gain_automatic = 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("capture set printed\n%s\nwithout %q", out, want)
		}
	}
	ref := v4l2ctl(t, "-C", "brightness,contrast,saturation,hue,gain,gain_automatic")
	for _, want := range []string{"brightness: 200", "contrast: 100", "saturation: 50", "hue: -20", "gain: 30", "gain_automatic: 0"} {
		if !strings.Contains(ref, want) {
			t.Errorf("v4l2-ctl reads back\n%s\nwithout %q", ref, want)
		}
	}
	// Out of range is clamped; an unknown name and a read-only control fail.
	if out := setControls(t, "hue=500"); !strings.Contains(out, "hue = 128") {
		t.Errorf("hue=500: %s", out)
	}
	bad, err := command(t, time.Minute, "inspectd", "capture", "set", "--device", device, "zoom=3", "read_only_integer_32_bits=1")
	if err == nil || !strings.Contains(bad, "no such control") || !strings.Contains(bad, "read-only") {
		t.Errorf("unknown and read-only controls: err %v\n%s", err, bad)
	}

	// The camera's own controls: brightness changes the frame.
	mean := func(brightness int) float64 {
		cam, _ := openCamera(t, capture.CameraOptions{Formats: []capture.FourCC{capture.FormatGREY}, Width: 320, Height: 180,
			FPS: 25, Controls: map[string]int32{"brightness": int32(brightness), "osd_text_mode": 2}})
		var f capture.Frame
		next(t, cam, &f, 30*time.Second)
		next(t, cam, &f, 30*time.Second) // one taken after the change
		_ = cam.Close()
		sum := 0
		for _, v := range f.Image.(*image.Gray).Pix {
			sum += int(v)
		}
		return float64(sum) / float64(len(f.Image.(*image.Gray).Pix))
	}
	dark, bright := mean(60), mean(220)
	if bright < dark+20 {
		t.Errorf("mean gray %.1f at brightness 60 and %.1f at 220: the control does not reach the frames", dark, bright)
	}
	if v := v4l2ctl(t, "-C", "brightness"); !strings.Contains(v, "brightness: 220") {
		t.Errorf("after the camera set brightness 220, v4l2-ctl reads %s", v)
	}
}

// TestFrameTimestamps checks that frames carry the driver's capture time.
// A camera not read for a while finds its buffers filled long ago: vivid
// fills the three queued buffers within three frame periods and then drops
// frames, so the newest buffer is about half a second old when it is
// dequeued after 600 ms, and its frame time says so (a dequeue time would
// not). vivid stamps the end of a frame 0.9 of a period after it fills the
// buffer, before the frame is dequeued: such stamps are taken as the
// dequeue time, never in the future. A trigger binds to a frame captured
// after it. Timestamps that cannot be on the monotonic clock (vivid's
// 64-bit wrap) fall back to the dequeue time with one log line.
func TestFrameTimestamps(t *testing.T) {
	reloadVivid(t)
	const period, hold = 40 * time.Millisecond, 600 * time.Millisecond
	cam, logs := openCamera(t, capture.CameraOptions{Formats: []capture.FourCC{capture.FormatYUYV}, Width: 320, Height: 180,
		FPS: 25, Buffers: 3})
	var f capture.Frame
	// End of frame (vivid's default): stamps ahead of delivery.
	for i := 0; i < 25; i++ {
		next(t, cam, &f, 30*time.Second)
		if age := time.Since(f.Time); age < 0 {
			t.Fatalf("frame %d stamped %v in the future", f.Seq, -age)
		}
	}
	setControls(t, "timestamp_source=1") // start of exposure: when vivid fills the buffer
	// Three pauses; a stamp taken at dequeue would fail all three. Two must
	// pass: vivid's kernel thread, starved on a loaded host, once filled a
	// buffer at the pause's end (a CI run: 605 ms).
	var late []time.Duration
	for i := 0; i < 3; i++ {
		next(t, cam, &f, 30*time.Second)
		t0 := time.Now()
		time.Sleep(hold)
		next(t, cam, &f, 30*time.Second)
		if d := f.Time.Sub(t0); d < 0 || d > 4*period+100*time.Millisecond {
			late = append(late, d)
		}
	}
	if len(late) > 1 {
		t.Errorf("after %v without reading, the newest frame was stamped %v after the pause began; want within the first three frame periods (%v), as the driver filled it, in 2 of 3 pauses",
			hold, late, 3*period)
	} else if len(late) == 1 {
		t.Logf("one pause of three: newest frame stamped %v after it began (the driver's thread late)", late[0])
	}
	if strings.Contains(logs.String(), "timestamps are not on the monotonic clock") {
		t.Errorf("good timestamps refused:\n%s", logs)
	}

	// A trigger gets a frame captured after it, even after a pause.
	tr := capture.NewTriggered(cam, capture.TriggerOptions{})
	time.Sleep(hold)
	at := time.Now()
	if err := tr.NextTriggered(t.Context(), "part-1", &f); err != nil {
		t.Fatal(err)
	}
	if f.Time.Before(at) || f.Trigger != "part-1" {
		t.Errorf("trigger at %v answered with a frame captured at %v (%q)", at, f.Time, f.Trigger)
	}
	_ = cam.Close()

	setControls(t, "timestamp_source=0", "wrap_timestamp=1") // 64-bit wrap: far from the monotonic clock
	cam, logs = openCamera(t, capture.CameraOptions{Formats: []capture.FourCC{capture.FormatYUYV}, Width: 320, Height: 180, FPS: 25})
	next(t, cam, &f, 30*time.Second)
	if age := time.Since(f.Time); age < 0 || age > time.Second {
		t.Errorf("with wrapped driver timestamps the frame is %v old; want the dequeue time", age)
	}
	if !strings.Contains(logs.String(), "timestamps are not on the monotonic clock") {
		t.Errorf("no log line about the unusable timestamps:\n%s", logs)
	}
}

// TestCaptureRate measures what 640x480 YUYV at 25 fps delivers over
// VIVID_RATE_SECONDS (5 by default) and the capture's CPU time per frame
// (dequeue, decode to RGBA, requeue: this process does nothing else).
func TestCaptureRate(t *testing.T) {
	reloadVivid(t)
	secs, _ := strconv.Atoi(os.Getenv("VIVID_RATE_SECONDS"))
	if secs <= 0 {
		secs = 5
	}
	cam, _ := openCamera(t, capture.CameraOptions{Formats: []capture.FourCC{capture.FormatYUYV}, Width: 640, Height: 480, FPS: 25})
	var f capture.Frame
	next(t, cam, &f, 30*time.Second)
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	n := 0
	for time.Since(start) < time.Duration(secs)*time.Second {
		next(t, cam, &f, 10*time.Second)
		n++
	}
	wall := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := rusageCPU(ru1) - rusageCPU(ru0)
	rate := float64(n) / wall.Seconds()
	c := cam.Counters().Snapshot()
	// Baseline in the same run: decoding a 640x480 YUYV frame alone.
	yuyv := make([]byte, 640*480*2)
	for i := range yuyv {
		yuyv[i] = byte(i * 7)
	}
	var dst image.Image
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	const decodes = 50
	for i := 0; i < decodes; i++ {
		dst, _ = capture.DecodeYUYV(dst, yuyv, 640, 480, capture.YUVLimited)
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	perFrame := float64(cpu) / float64(n) / 1e6
	perDecode := float64(rusageCPU(ru1)-rusageCPU(ru0)) / decodes / 1e6
	figure("capture 640x480 YUYV at 25 fps for %.1f s: %d frames delivered, %.2f/s = %.1f%% of the 25 requested; "+
		"CPU %.2f ms per frame (%.1f%% of one CPU), %.2fx the %.2f ms of decoding a frame alone; %d dropped as older than the newest, %d timeouts",
		wall.Seconds(), n, rate, 4*rate, perFrame, 100*cpu.Seconds()/wall.Seconds(), perFrame/perDecode, perDecode, c.Dropped, c.Timeouts)
	if rate < 0.8*25 {
		t.Errorf("%.2f frames/s delivered of 25 requested", rate)
	}
}

func rusageCPU(r syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// TestInjectedErrors drives vivid's error injection against the camera:
// buffers flagged V4L2_BUF_FLAG_ERROR are counted and never returned, a
// failed VIDIOC_REQBUFS or VIDIOC_STREAMON is retried with backoff, a
// fatal streaming error and a stalled stream (every buffer dropped) reopen
// the device, and a disconnected device (vivid unregisters its nodes, as a
// USB camera that is unplugged, and registers them again once nobody holds
// them open) is reopened once it is back.
func TestInjectedErrors(t *testing.T) {
	opts := capture.CameraOptions{Formats: []capture.FourCC{capture.FormatYUYV}, Width: 320, Height: 180, FPS: 25,
		FrameTimeout: 500 * time.Millisecond, ReopenAfterTimeouts: 3, ReopenMin: 100 * time.Millisecond, ReopenMax: 400 * time.Millisecond}
	var f capture.Frame

	t.Run("flagged-buffers", func(t *testing.T) {
		reloadVivid(t)
		cam, logs := openCamera(t, opts)
		next(t, cam, &f, 30*time.Second)
		for i := 0; i < 3; i++ {
			setControls(t, "inject_v4l2_buf_flag_error=1")
			for j := 0; j < 5; j++ {
				next(t, cam, &f, 30*time.Second)
			}
		}
		if got := cam.Counters().DecodeErrors.Load(); got != 3 {
			t.Errorf("%d frames counted as corrupt after 3 injected V4L2_BUF_FLAG_ERROR buffers", got)
		}
		if !strings.Contains(logs.String(), "flagged as corrupt by the driver") {
			t.Errorf("no log line for the flagged buffers:\n%s", logs)
		}
	})

	for _, c := range []struct{ button, want string }{
		{"inject_vidioc_reqbufs_error", "VIDIOC_REQBUFS"},
		{"inject_vidioc_streamon_error", "VIDIOC_STREAMON"},
	} {
		t.Run(c.button, func(t *testing.T) {
			reloadVivid(t)
			setControls(t, c.button+"=1")
			cam, logs := openCamera(t, opts)
			errs := next(t, cam, &f, 30*time.Second)
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) || !strings.Contains(errs[0].Error(), "next try in") {
				t.Errorf("errors before the first frame: %v; want one that names %s and the backoff", errs, c.want)
			}
			if !strings.Contains(logs.String(), "camera: unavailable, retrying with backoff") {
				t.Errorf("no log line for the retry:\n%s", logs)
			}
			if r := cam.Counters().Reopens.Load(); r != 0 {
				t.Errorf("a retried first open counted as %d reopens", r)
			}
		})
	}

	t.Run("fatal-streaming-error", func(t *testing.T) {
		reloadVivid(t)
		cam, _ := openCamera(t, opts)
		next(t, cam, &f, 30*time.Second)
		setControls(t, "inject_fatal_streaming_error=1")
		errs := next(t, cam, &f, 30*time.Second)
		// Streaming again (next returned a frame) after reopening. Once as
		// a rule; a second time when the first reopen still met the
		// queue's error state (poll: POLLERR, "no such device"), which the
		// kernel clears as the old handle is released — seen once in CI.
		if r := cam.Counters().Reopens.Load(); len(errs) == 0 || r < 1 || r > 3 {
			t.Errorf("after a fatal streaming error: errors %v, reopens %d; want the device reopened (1 to 3 times) and streaming again", errs, r)
		}
	})

	t.Run("stalled", func(t *testing.T) {
		reloadVivid(t)
		cam, logs := openCamera(t, opts)
		next(t, cam, &f, 30*time.Second)
		setControls(t, "percentage_of_dropped_buffers=100")
		// Buffers filled before the control took effect come first.
		for i := 0; ; i++ {
			err := cam.Next(t.Context(), &f)
			if capture.Temporary(err) {
				break
			}
			if err != nil || i == 10 {
				t.Fatalf("stalled stream: err %v after %d frames, want a timeout", err, i)
			}
		}
		for i := 0; i < 3; i++ {
			if err := cam.Next(t.Context(), &f); !capture.Temporary(err) {
				t.Fatalf("stalled stream: err %v, want a timeout", err)
			}
		}
		c := cam.Counters().Snapshot()
		if c.Timeouts < 3 || c.Reopens < 1 {
			t.Errorf("stalled for 4 frame timeouts: %d timeouts, %d reopens; want 3+ and a reopen after 3", c.Timeouts, c.Reopens)
		}
		if st := cam.Status(); !strings.Contains(st.LastError, "no frame") {
			t.Errorf("status while stalled: %+v", st)
		}
		setControls(t, "percentage_of_dropped_buffers=0")
		next(t, cam, &f, 30*time.Second)
		if st := cam.Status(); st.LastError != "" || !st.Connected {
			t.Errorf("status after recovery: %+v", st)
		}
		if !strings.Contains(logs.String(), "camera: stalled, reopening") || !strings.Contains(logs.String(), "camera: frames resumed") {
			t.Errorf("log:\n%s", logs)
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		reloadVivid(t)
		cam, logs := openCamera(t, opts)
		next(t, cam, &f, 30*time.Second)
		seq := f.Seq
		setControls(t, "disconnect=1")
		err := cam.Next(t.Context(), &f)
		if !capture.Temporary(err) || !strings.Contains(err.Error(), "no such device") {
			t.Fatalf("after Disconnect: err %v, want the device unavailable (ENODEV)", err)
		}
		if cam.Status().Connected {
			t.Error("status still connected after Disconnect")
		}
		// vivid comes back once its last user closed it, as a camera that
		// is plugged in again; the camera closed it when it was lost.
		next(t, cam, &f, 30*time.Second)
		if r := cam.Counters().Reopens.Load(); r != 1 {
			t.Errorf("%d reopens after Disconnect and reload, want 1", r)
		}
		if f.Seq != seq+1 {
			t.Errorf("frame %d after the reopen, want %d", f.Seq, seq+1)
		}
		if !strings.Contains(logs.String(), "camera: lost, reopening with backoff") {
			t.Errorf("log:\n%s", logs)
		}
	})
}
