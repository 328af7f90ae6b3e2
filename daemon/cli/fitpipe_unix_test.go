//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// `inspectd fit` over a data set whose train/good held a named pipe named
// like an image (or a link to one) waited in the pipe's open for good. It
// is now skipped with the other unreadable files, the log naming it and
// what it is, and the fit goes on with the rest (here: too few are left,
// refused before the backbone is touched, as with any skipped file).
func TestFitSkipsANamedPipe(t *testing.T) {
	dir, cfg := bombDataSet(t, 3)
	goods, _ := filepath.Glob(filepath.Join(dir, "train", "good", "0*.png"))
	if len(goods) != 3 {
		t.Fatalf("export wrote %d training images: %v", len(goods), goods)
	}
	if err := os.Remove(goods[0]); err != nil {
		t.Fatal(err)
	}
	pipe := filepath.Join(dir, "train", "good", "x.png")
	testfs.Mkfifo(t, pipe)
	out := filepath.Join(t.TempDir(), "m")
	var code int
	var stderr string
	testfs.Within(t, 10*time.Second, "fit over a data set holding a named pipe", func() {
		code, _, stderr = runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", out)
	})
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	for _, w := range []string{"too few normal images: 2 given", "skipped 3 files: 1 over capture.max_pixels (40000000 pixels), 2 unreadable or not an image",
		"file=" + pipe, pipe + " is a named pipe, not an image file"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
}
