//go:build unix

package capture

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mkfifo makes a named pipe at path, or skips the test where there are
// none. Its cleanup opens the pipe for reading and writing, which never
// waits, so that a reader left waiting in its open gets a writer, reads
// the end at once and returns instead of outliving the test.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
}

// within runs f and fails the test if it has not returned after d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still waiting after %v", what, d)
	}
}

// DecodeImageFile and CheckImageFile (fit's and eval's images and masks,
// the capture.file source, preflight) opened a named pipe under an image's
// name and waited for a writer for good: `inspectd fit` over a data set
// holding one never finished. A link to a device was opened and read.
// Both are now refused unopened, named with what they are.
func TestImageFileRefusesPipesAndDevices(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "x.png")
	mkfifo(t, pipe)
	link := filepath.Join(dir, "link.png")
	if err := os.Symlink(pipe, link); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{pipe: "x.png is a named pipe, not an image file", link: "link.png is a named pipe, not an image file"}
	if _, err := os.Stat("/dev/zero"); err == nil {
		zero := filepath.Join(dir, "zero.png")
		if err := os.Symlink("/dev/zero", zero); err != nil {
			t.Fatal(err)
		}
		cases[zero] = "zero.png is a device, not an image file"
	}
	for path, want := range cases {
		for name, call := range map[string]func() error{
			"DecodeImageFile": func() error { _, _, err := DecodeImageFile(path, 0); return err },
			"CheckImageFile":  func() error { _, _, err := CheckImageFile(path, 0); return err },
			"NewFile":         func() error { _, err := NewFile(FileOptions{Path: path}); return err },
		} {
			var err error
			within(t, 5*time.Second, name+"("+path+")", func() { err = call() })
			if !errors.Is(err, errNotRegular) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s(%s): %v, want %q", name, path, err, want)
			}
		}
	}
}

// A named pipe dropped in a folder source's folder under an image's name
// was passed over without a word; one reached through a link was answered
// only after Settle, as "empty" would be. Both are now answered at once as
// unreadable, named with what they are, logged once, and the source goes
// on with the next file.
func TestFolderPipesInTheFolderAnsweredOnce(t *testing.T) {
	dir := t.TempDir()
	mkfifo(t, filepath.Join(dir, "a.jpg"))
	if err := writeFile(filepath.Join(dir, "b.png"), encodePNG(t, testImage(16, 16))); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	fl, err := NewFolder(FolderOptions{Dir: dir, Loop: true, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var f Frame
	for pass := range 3 {
		if err := fl.Next(ctx, &f); err != nil || f.Name != "b.png" {
			t.Fatalf("pass %d: %v %q, want b.png after the pipe", pass, err, f.Name)
		}
	}
	if n := strings.Count(logs.String(), "file skipped"); n != 1 || !strings.Contains(logs.String(), "a.jpg is a named pipe, not an image file") {
		t.Errorf("%d lines for the pipe over 3 passes, want 1 naming it:\n%s", n, logs.String())
	}
	if n := fl.Counters().DecodeErrors.Load(); n != 3 {
		t.Errorf("%d decode errors over 3 passes, want 3", n)
	}

	// Watched, with every file answered: a pipe and a link to a device
	// dropped in are answered at once, not after Settle.
	watched := t.TempDir()
	ws, err := NewFolder(FolderOptions{Dir: watched, Watch: true, ReportSkips: true, PollInterval: 5 * time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(watched, "c.jpg"))
	want := map[string]string{"c.jpg": "c.jpg is a named pipe, not an image file"}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if err := os.Symlink("/dev/zero", filepath.Join(watched, "d.jpg")); err != nil {
			t.Fatal(err)
		}
		want["d.jpg"] = "d.jpg is a device, not an image file"
	}
	for range len(want) {
		var skipped *SkippedFileError
		err := ws.Next(ctx, &f)
		if !errors.As(err, &skipped) || skipped.Reason != "unreadable or corrupt" || !strings.Contains(err.Error(), want[skipped.Name]) {
			t.Fatalf("%v, want each of %v answered as unreadable", err, want)
		}
		delete(want, skipped.Name)
	}
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if err := ws.Next(short, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("after the pipe and the device: %v %q, want nothing more", err, f.Name)
	}
}
