//go:build unix

package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
	"github.com/inspectd/inspectd/model/modeltest"
)

// TestModelInspectAndOptimizeRefuseANamedPipe: `model inspect` and
// `model optimize` of a named pipe waited in the open for a writer for
// good (SIGTERM too, which the CLI catches), and a device was read as a
// file (/dev/zero until memory ran out). Each is refused unopened now,
// naming the path and what it is, in the words model info uses. Here a
// writer puts bytes in the pipe, so that the old read returned (and
// failed on them) instead of waiting; /dev/null stands for a device
// because the old read of it ends.
func TestModelInspectAndOptimizeRefuseANamedPipe(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "b.tflite")
	testfs.Mkfifo(t, pipe)
	for _, args := range [][]string{
		{"model", "inspect", pipe},
		{"model", "optimize", pipe, filepath.Join(dir, "out.tflite")},
	} {
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if w, err := os.OpenFile(pipe, os.O_WRONLY, 0); err == nil {
				w.WriteString("TFL3 not a model")
				w.Close()
			}
		}()
		code, _, errs := runCaptureCmd(t, args...)
		// Releases the writer's open, as the command did not open the pipe.
		if r, err := os.OpenFile(pipe, os.O_RDWR, 0); err == nil {
			<-wrote
			r.Close()
		}
		if want := pipe + " is a named pipe, not a TFLite file"; code != 1 || !strings.Contains(errs, want) {
			t.Errorf("%s of a named pipe: exit %d, want 1 and %q; stderr:\n%s", strings.Join(args[:2], " "), code, want, errs)
		}
		code, _, errs = runCaptureCmd(t, append(args[:2:2], append([]string{"/dev/null"}, args[3:]...)...)...)
		if want := "/dev/null is a device, not a TFLite file"; code != 1 || !strings.Contains(errs, want) {
			t.Errorf("%s of /dev/null: exit %d, want 1 and %q; stderr:\n%s", strings.Join(args[:2], " "), code, want, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out.tflite")); err == nil {
		t.Error("model optimize of a named pipe wrote an output")
	}
}

// TestModelOptimizeRefusesAnOutputPipe: `model optimize IN OUT` with an
// OUT that is a named pipe rewrote and checked the model, then waited in
// the write for a reader for good (SIGTERM too; a trial's ran into
// timeout's kill); a device there was written into. It is refused before
// the input is read, as fit --out refuses it, and the model is renamed
// into place whole (atomicfile) rather than written into OUT. Here a
// reader takes what the old command wrote, so that it ended (exit 0)
// instead of waiting.
func TestModelOptimizeRefusesAnOutputPipe(t *testing.T) {
	pipe := filepath.Join(t.TempDir(), "out.tflite")
	testfs.Mkfifo(t, pipe)
	// The reader's end is open before the command runs (O_RDWR does not
	// wait for a partner), so that the old command's write finds it
	// whenever it comes; closing it ends the read. A reader that opened
	// only in its goroutine could open after the refused command was
	// done, and wait for a writer for good (a make test run hung there).
	r, err := os.OpenFile(pipe, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(io.Discard, r)
	}()
	code, out, errs := runCaptureCmd(t, "model", "optimize", "--threads", "1", modeltest.BackbonePath(t), pipe)
	r.Close()
	<-read
	if want := "output " + pipe + " is a named pipe: the model, written to a new file and renamed into place, would put a regular file in its place"; code != 1 || !strings.Contains(errs, want) || out != "" {
		t.Errorf("model optimize to a named pipe: exit %d, want 1 and %q before any work; stdout:\n%s\nstderr:\n%s", code, want, out, errs)
	}
}
