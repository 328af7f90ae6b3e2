//go:build unix

package cli

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// TestCaptureSnapshotRefusesToReplaceAPipe: `capture snapshot --out p.jpg`
// renamed its image over a named pipe at p.jpg (and a device, a socket, a
// link to one), leaving a regular file in its place, while fit --out
// refuses such a target. It is refused now, before a frame is taken, in
// words naming the flag and what is there; the pipe stays a pipe. --mask
// alike.
func TestCaptureSnapshotRefusesToReplaceAPipe(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "p.jpg")
	testfs.Mkfifo(t, pipe)
	type target struct{ flag, path, what string }
	targets := []target{{"--out", pipe, "is a named pipe"}}
	link := filepath.Join(dir, "l.jpg")
	if err := os.Symlink(pipe, link); err != nil {
		t.Fatal(err)
	}
	targets = append(targets, target{"--out", link, "is a link to a named pipe"})
	dev := filepath.Join(dir, "null.jpg")
	// /dev/null's numbers (1, 3), in the temporary folder.
	if err := syscall.Mknod(dev, syscall.S_IFCHR|0o600, 1<<8|3); err == nil {
		targets = append(targets, target{"--out", dev, "is a device"})
	} else {
		t.Logf("no device node (%v): its case is left out", err)
	}
	sock := filepath.Join(dir, "s.png")
	if l, err := net.Listen("unix", sock); err == nil {
		defer l.Close()
		targets = append(targets, target{"--out", sock, "is a socket"})
	} else {
		t.Logf("no socket (%v): its case is left out", err)
	}
	maskPipe := filepath.Join(dir, "m.png")
	testfs.Mkfifo(t, maskPipe)
	targets = append(targets, target{"--mask", maskPipe, "is a named pipe"})
	for _, tc := range targets {
		before, err := os.Lstat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"capture", "snapshot", "--synthetic", "--width", "64", "--height", "64", "--out", tc.path}
		if tc.flag == "--mask" {
			args = append(args[:len(args)-2], "--out", filepath.Join(dir, "ok.jpg"), "--mask", tc.path)
		}
		var code int
		var stderr string
		testfs.Within(t, 20*time.Second, "capture snapshot "+tc.flag+" "+tc.path, func() {
			code, _, stderr = runCaptureCmd(t, args...)
		})
		if want := tc.flag + " " + tc.path + " " + tc.what + ": the image, written to a new file and renamed into place, would put a regular file in its place"; code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s %s: exit %d, stderr %q, want 1 and %q", tc.flag, tc.path, code, stderr, want)
		}
		if after, err := os.Lstat(tc.path); err != nil || after.Mode() != before.Mode() {
			t.Errorf("%s was %v, now %v", tc.path, before.Mode(), describeMode(after, err))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ok.jpg")); err == nil {
		t.Errorf("--out written though --mask was refused")
	}
}

// describeMode is a file's mode as Lstat found it, or why it could not.
func describeMode(st os.FileInfo, err error) string {
	if err != nil {
		return err.Error()
	}
	return st.Mode().String()
}
