package cli

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "image/jpeg" // decode the snapshots

	"github.com/inspectd/inspectd/capture"
)

func runCaptureCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func decodeFile(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return img
}

func TestCaptureListNoDevices(t *testing.T) {
	code, out, errs := runCaptureCmd(t, "capture", "list", "--dev", t.TempDir())
	if code != 0 || strings.TrimSpace(out) != "no V4L2 devices found" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestCaptureSnapshotSynthetic(t *testing.T) {
	dir := t.TempDir()
	jpg, mask := filepath.Join(dir, "s.jpg"), filepath.Join(dir, "m.png")
	code, out, errs := runCaptureCmd(t, "capture", "snapshot", "--synthetic", "--defect-rate", "1",
		"--defects", "spot", "--width", "160", "--height", "120", "--out", jpg, "--mask", mask)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "defect spot") {
		t.Errorf("stdout %q does not name the defect", out)
	}
	if b := decodeFile(t, jpg).Bounds(); b.Dx() != 160 || b.Dy() != 120 {
		t.Errorf("snapshot is %v", b)
	}
	m := decodeFile(t, mask).(*image.Gray)
	n := 0
	for _, v := range m.Pix {
		if v == 255 {
			n++
		}
	}
	if n == 0 {
		t.Error("mask of a defective frame is empty")
	}
}

func TestCaptureSnapshotFileWithROIAndRotation(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "in.png")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, image.NewGray(image.Rect(0, 0, 64, 32))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "out.png")
	code, _, errs := runCaptureCmd(t, "capture", "snapshot", "--file", src, "--roi", "4,2,40,20", "--rotate", "90", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if b := decodeFile(t, out).Bounds(); b.Dx() != 20 || b.Dy() != 40 {
		t.Errorf("rotated region is %v, want 20x40", b)
	}
	code, _, errs = runCaptureCmd(t, "capture", "snapshot", "--file", src, "--roi", "0,0,100,10", "--out", out)
	if code != 1 || !strings.Contains(errs, "does not fit") {
		t.Errorf("roi outside the image: exit %d, %s", code, errs)
	}
}

func TestCaptureSnapshotUsage(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.jpg")
	for _, args := range [][]string{
		{"--out", out},
		{"--out", out, "--synthetic", "--file", "a.png"},
		{"--out", filepath.Join(dir, "x.gif"), "--synthetic"},
		{"--synthetic"},
		{"--out", out, "--synthetic", "--rotate", "45"},
		{"--out", out, "--synthetic", "--roi", "1,2"},
		{"--out", out, "--file", "a.png", "--mask", "m.png"},
		{"--out", out, "--device", "/dev/video0", "--format", "H264"},
		{"--out", out, "--device", "/dev/video0", "--control", "exposure"},
		// A mask written as JPEG, or over the snapshot, and a timeout
		// no frame can meet were taken, the last failing after the
		// source was opened ("no frame within 0s").
		{"--out", out, "--synthetic", "--mask", filepath.Join(dir, "m.jpg")},
		{"--out", out, "--synthetic", "--mask", out},
		{"--out", filepath.Join(dir, "s.png"), "--synthetic", "--mask", filepath.Join(dir, ".", "s.png")},
		{"--out", out, "--synthetic", "--timeout", "0s"},
		{"--out", out, "--synthetic", "--timeout", "-1s"},
	} {
		code, _, errs := runCaptureCmd(t, append([]string{"capture", "snapshot"}, args...)...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage): %s", args, code, errs)
		}
	}
}

func TestCaptureSnapshotMissingDevice(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "video9")
	code, _, errs := runCaptureCmd(t, "capture", "snapshot", "--device", dev, "--out", filepath.Join(t.TempDir(), "c.jpg"), "--timeout", "5s")
	if code != 1 || !strings.Contains(errs, dev) {
		t.Errorf("missing camera: exit %d, stderr %q, want 1 naming %s", code, errs, dev)
	}
}

func TestCaptureSetUsage(t *testing.T) {
	for _, args := range [][]string{
		{"brightness=1"},
		{"--device", "/dev/video0"},
		{"--device", "/dev/video0", "brightness"},
		{"--device", "/dev/video0", "brightness=bright"},
	} {
		code, _, errs := runCaptureCmd(t, append([]string{"capture", "set"}, args...)...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage): %s", args, code, errs)
		}
	}
	dev := filepath.Join(t.TempDir(), "video9")
	code, _, errs := runCaptureCmd(t, "capture", "set", "--device", dev, "brightness=1")
	if code != 1 || !strings.Contains(errs, dev) {
		t.Errorf("missing camera: exit %d, stderr %q, want 1 naming %s", code, errs, dev)
	}
}

func TestPrintDevices(t *testing.T) {
	var b bytes.Buffer
	printDevices(&b, []capture.DeviceInfo{
		{
			Path: "/dev/video0", Card: "HD Webcam", Bus: "usb-0000:00:14.0-1",
			Links: []string{"/dev/v4l/by-id/usb-Cam_HD_Webcam-video-index0"},
			Formats: []capture.FormatInfo{{Format: capture.FormatMJPEG, Description: "Motion-JPEG", Sizes: []capture.SizeInfo{
				{Size: capture.FrameSize{MinWidth: 1280, MaxWidth: 1280, MinHeight: 720, MaxHeight: 720}, FPS: []float64{30, 7.5}},
			}}},
			Controls: []capture.ControlInfo{
				{Control: capture.Control{Name: "Exposure Time, Absolute", Min: 3, Max: 2047, Step: 1, Default: 156, Kind: capture.ControlInt}, Value: 250, Key: "exposure_time_absolute"},
				{Control: capture.Control{Name: "Auto Exposure", Min: 0, Max: 3, Default: 3, Kind: capture.ControlMenu,
					Menu: []capture.MenuItem{{Value: 1, Name: "Manual Mode"}, {Value: 3, Name: "Aperture Priority Mode"}}}, Value: 1, Key: "auto_exposure"},
				{Control: capture.Control{Name: "Trigger", Kind: capture.ControlButton, WriteOnly: true}, Key: "trigger"},
				{Control: capture.Control{Name: "Gain", Max: 255, Step: 1, Kind: capture.ControlInt, Inactive: true}, Value: 17, Key: "gain"},
				{Control: capture.Control{Name: "Sensor Temperature", Max: 100, Step: 1, Kind: capture.ControlInt, ReadOnly: true}, Value: 41, Key: "sensor_temperature"},
			},
		},
		{Path: "/dev/video1", Err: errors.New("not a video capture device")},
	})
	out := b.String()
	for _, want := range []string{
		"/dev/video0: HD Webcam (usb-0000:00:14.0-1)",
		"also /dev/v4l/by-id/usb-Cam_HD_Webcam-video-index0",
		"MJPG Motion-JPEG",
		"1280x720 @ 30, 7.5 fps",
		"exposure_time_absolute           int 3..2047 step 1, default 156, now 250",
		"auto_exposure                    menu 1 Manual Mode, 3 Aperture Priority Mode; default 3, now 1 (Manual Mode)",
		"trigger                          button: set it to 1 to press it\n",
		"gain                             int 0..255 step 1, default 0, now 17, inactive (an automatic mode overrides it)",
		"sensor_temperature               int 0..100 step 1, default 0, now 41, read-only",
		"/dev/video1: not usable: not a video capture device",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCaptureSnapshotChecksItsOutFolderFirst: an --out (or --mask) in a
// folder that is not there, or that is a folder, failed only after the
// frame was taken (a camera's warmup and all), in the words of the
// temporary file ("open nosuch/.a.jpg.tmp-1069761019: no such file or
// directory", "rename ./.d.jpg.tmp-904420131 d.jpg: file exists"). Each
// is refused first now, naming the flag and the folder.
func TestCaptureSnapshotChecksItsOutFolderFirst(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "d.jpg")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nosuch")
	good := filepath.Join(dir, "ok.jpg")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", filepath.Join(missing, "a.jpg")}, "--out " + filepath.Join(missing, "a.jpg") + ": folder " + missing + " does not exist; create it first (mkdir -p " + missing + ")"},
		{[]string{"--out", folder}, "--out " + folder + " is a folder: name an image file in it, such as " + filepath.Join(folder, "frame.jpg")},
		{[]string{"--out", filepath.Join(file, "a.png")}, "--out " + filepath.Join(file, "a.png") + ": " + file + " is a file, not a folder"},
		{[]string{"--out", good, "--mask", filepath.Join(missing, "m.png")}, "--mask " + filepath.Join(missing, "m.png") + ": folder " + missing + " does not exist"},
	} {
		args := append([]string{"capture", "snapshot", "--synthetic", "--width", "64", "--height", "64"}, tc.args...)
		code, out, errs := runCaptureCmd(t, args...)
		if code != 1 || !strings.Contains(errs, tc.want) || strings.Contains(errs, ".tmp-") || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q, want 1 and %q before any frame is written", tc.args, code, out, errs, tc.want)
		}
	}
	if _, err := os.Stat(good); err == nil {
		t.Errorf("--out %s written though --mask was refused", good)
	}
}

// TestCaptureSnapshotOfAFolderOrFileRunsOut: a --folder whose every image
// was skipped (one that does not decode) said only "capture: source
// exhausted: EOF", and a --file or --folder with a --warmup past its
// images failed so too, the frames read thrown away. The folder is named
// now, with where its skipped files are told, and a warmup longer than
// the images keeps the last one read.
func TestCaptureSnapshotOfAFolderOrFileRunsOut(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	if err := os.Mkdir(junk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(junk, "a.png"), []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "s.png")
	code, _, errs := runCaptureCmd(t, "capture", "snapshot", "--folder", junk, "--out", out)
	if want := "--folder " + junk + ": no image in it could be read (the files skipped are logged above)"; code != 1 || !strings.Contains(errs, want) || strings.Contains(errs, "source exhausted") {
		t.Errorf("a folder of no image: exit %d, stderr %q, want 1 and %q", code, errs, want)
	}

	img := filepath.Join(dir, "in.png")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, image.NewGray(image.Rect(0, 0, 64, 32))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	one := filepath.Join(dir, "one")
	if err := os.Mkdir(one, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(img, filepath.Join(one, "in.png")); err != nil {
		t.Fatal(err)
	}
	for _, src := range [][]string{{"--file", img}, {"--folder", one}} {
		os.Remove(out)
		code, _, errs := runCaptureCmd(t, append([]string{"capture", "snapshot", "--warmup", "3", "--out", out}, src...)...)
		if code != 0 {
			t.Errorf("%v --warmup 3: exit %d, stderr %q, want the image written", src, code, errs)
			continue
		}
		if b := decodeFile(t, out).Bounds(); b.Dx() != 64 || b.Dy() != 32 {
			t.Errorf("%v --warmup 3: snapshot is %v, want 64x32", src, b)
		}
	}
}
