//go:build unix

package capture

import (
	"errors"
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
