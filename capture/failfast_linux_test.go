//go:build linux

package capture

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// OpenV4L2 refuses what is not a character device unopened, naming what
// it is, and every path that is no camera (/dev/null too) matches
// ErrNotCamera. A regular file was opened and said "not a V4L2 device
// (VIDIOC_QUERYCAP: inappropriate ioctl for device)", a folder "is a
// directory", and nothing told them from a camera that is only gone.
func TestOpenV4L2RefusesWhatIsNoCamera(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "video0")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pipe := filepath.Join(dir, "video1")
	if err := syscall.Mkfifo(pipe, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/dev/null": "open /dev/null: not a V4L2 device (VIDIOC_QUERYCAP: inappropriate ioctl for device)",
		file:        "open " + file + ": is a regular file, not a V4L2 device",
		dir:         "open " + dir + ": is a folder, not a V4L2 device",
		pipe:        "open " + pipe + ": is a named pipe, not a V4L2 device",
	} {
		dev, err := OpenV4L2(path)
		if err == nil {
			dev.Close()
			t.Errorf("%s opened as a camera", path)
			continue
		}
		if err.Error() != want || !errors.Is(err, ErrNotCamera) {
			t.Errorf("OpenV4L2(%s): %v (ErrNotCamera: %v), want %q matching ErrNotCamera", path, err, errors.Is(err, ErrNotCamera), want)
		}
	}
	if _, err := OpenV4L2(filepath.Join(dir, "video9")); err == nil || errors.Is(err, ErrNotCamera) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing node: %v, want no such file, not ErrNotCamera", err)
	}
}

// A camera with FailFast (a one-shot snapshot's) returns at once, not
// Temporary, an open that waiting cannot mend: a path that is no camera,
// one not there, one it may not open. `capture snapshot --device
// /dev/null` retried "not a V4L2 device" until its --timeout. A busy
// device is still retried, and without FailFast (the daemon's camera)
// every one of them is, as an unplugged camera's must be.
func TestCameraFailFast(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "video9")
	denied := func(p string) (Device, error) { return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES} }
	busy := func(p string) (Device, error) { return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EBUSY} }
	for _, tc := range []struct {
		name      string
		device    string
		open      Opener
		permanent bool // with FailFast
	}{
		{"not V4L2", "/dev/null", nil, true},
		{"not there", missing, nil, true},
		{"permission denied", "/dev/video-denied", denied, true},
		{"busy", "/dev/video-busy", busy, false},
	} {
		for _, failFast := range []bool{true, false} {
			cam, err := NewCamera(CameraOptions{Device: tc.device, FailFast: failFast, Open: tc.open, Log: quietLog(),
				ReopenMin: time.Millisecond, ReopenMax: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			var f Frame
			err = cam.Next(context.Background(), &f)
			cam.Close()
			wantTemporary := !(failFast && tc.permanent)
			if err == nil || Temporary(err) != wantTemporary {
				t.Errorf("%s, FailFast %v: %v (Temporary %v), want Temporary %v", tc.name, failFast, err, Temporary(err), wantTemporary)
			}
			if !wantTemporary && (strings.Contains(err.Error(), "next try") || !strings.Contains(err.Error(), tc.device)) {
				t.Errorf("%s, FailFast: %q, want the open's own words naming %s", tc.name, err, tc.device)
			}
		}
	}
}
