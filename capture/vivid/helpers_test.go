//go:build vivid

package vivid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inspectd/inspectd/capture"
)

// device is vivid's video capture node.
const device = "/dev/video0"

// TestMain times the first frame after boot (a figure of the run) before
// the tests start.
func TestMain(m *testing.M) {
	cam, err := capture.NewCamera(capture.CameraOptions{Device: device, Formats: []capture.FourCC{capture.FormatYUYV},
		Width: 640, Height: 480, FPS: 25, Log: slog.New(slog.DiscardHandler)})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		var f capture.Frame
		for err = cam.Next(ctx, &f); err != nil && capture.Temporary(err); err = cam.Next(ctx, &f) {
		}
		cancel()
		_ = cam.Close()
	}
	if err != nil {
		fmt.Printf("VIVID-FIRST-FRAME none: %v\n", err)
	} else {
		fmt.Printf("VIVID-FIRST-FRAME at %s s of uptime\n", uptime())
	}
	os.Exit(m.Run())
}

func uptime() string {
	b, _ := os.ReadFile("/proc/uptime")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// figure prints a measured figure on its own line, for vm.sh's log and the
// README.
func figure(format string, a ...any) { fmt.Printf("VIVID-FIGURE "+format+"\n", a...) }

// command runs a program and returns its combined output.
func command(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: no answer within %v: %w", name, strings.Join(args, " "), timeout, ctx.Err())
	}
	return string(out), err
}

// inspectd runs the inspectd binary and fails the test if it fails.
func inspectd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := command(t, 2*time.Minute, "inspectd", args...)
	if err != nil {
		t.Fatalf("inspectd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// setControls sets vivid's controls (buttons too) with `inspectd capture
// set`, the command a person would use.
func setControls(t *testing.T, kv ...string) string {
	t.Helper()
	return inspectd(t, append([]string{"capture", "set", "--device", device}, kv...)...)
}

// v4l2ctl asks Debian's v4l2-ctl, an independent reader of the driver.
func v4l2ctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := command(t, time.Minute, "v4l2-ctl", append([]string{"-d", device}, args...)...)
	if err != nil {
		t.Fatalf("v4l2-ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// reloadVivid unloads and loads the driver: every control back to its
// default and, after a Disconnect, the device back. Unloading waits until
// nothing holds the device open.
func reloadVivid(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := command(t, 30*time.Second, "rmmod", "vivid")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rmmod vivid: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := command(t, 30*time.Second, "modprobe", "vivid", "n_devs=1"); err != nil {
		t.Fatalf("modprobe vivid: %v\n%s", err, out)
	}
	for time.Now().Before(deadline) {
		if _, err := os.Stat(device); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not come back after modprobe vivid", device)
}

// lockedBuffer collects log lines written from the camera's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openCamera returns a camera on vivid whose log lines are collected.
func openCamera(t *testing.T, opts capture.CameraOptions) (*capture.Camera, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	opts.Device = device
	opts.Log = slog.New(slog.NewTextHandler(logs, nil))
	cam, err := capture.NewCamera(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cam.Close() })
	return cam, logs
}

// next returns the next frame, riding out the temporary errors the camera
// recovers from by itself, and the errors it saw on the way.
func next(t *testing.T, cam *capture.Camera, f *capture.Frame, within time.Duration) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var seen []error
	for {
		err := cam.Next(ctx, f)
		switch {
		case err == nil:
			return seen
		case capture.Temporary(err) && ctx.Err() == nil:
			seen = append(seen, err)
		default:
			t.Fatalf("no frame within %v: %v (before: %v)", within, err, errors.Join(seen...))
		}
	}
}

// bars75 are the colours of vivid's default test pattern, "75% Colorbar":
// eight vertical bars of equal width.
var bars75 = []color.RGBA{
	{191, 191, 191, 255}, {191, 191, 0, 255}, {0, 191, 191, 255}, {0, 191, 0, 255},
	{191, 0, 191, 255}, {191, 0, 0, 255}, {0, 0, 191, 255}, {0, 0, 0, 255},
}

// luma is the gray level of a colour in vivid's GREY frames: its test
// pattern generator weighs R, G and B as Rec. 709 does (full range).
func luma(c color.RGBA) uint8 {
	return uint8(0.2126*float64(c.R) + 0.7152*float64(c.G) + 0.0722*float64(c.B) + 0.5)
}

// checkBars compares the middle of each bar, halfway down the frame (below
// vivid's on-screen text), with the test pattern.
func checkBars(t *testing.T, img image.Image, what string) {
	t.Helper()
	b := img.Bounds()
	y := b.Min.Y + b.Dy()/2
	const tol = 8
	for i, want := range bars75 {
		x := b.Min.X + (2*i+1)*b.Dx()/16
		r, g, bl, _ := img.At(x, y).RGBA()
		got := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}
		if _, gray := img.(*image.Gray); gray {
			want = color.RGBA{luma(want), luma(want), luma(want), 255}
		}
		if absDiff(got.R, want.R) > tol || absDiff(got.G, want.G) > tol || absDiff(got.B, want.B) > tol {
			t.Errorf("%s: bar %d at (%d,%d) is %v, want %v (75%% colour bars)", what, i, x, y, got, want)
		}
	}
}

func absDiff(a, b uint8) uint8 {
	if a > b {
		return a - b
	}
	return b - a
}
