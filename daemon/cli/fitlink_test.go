package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd fit --data DIR` where DIR/train/good was a link to a folder
// that is not there said only that DIR held no train/good folder with
// images and no images of its own (and fitted DIR's own images, had it
// any). It now says the link and where it leads.
func TestFitDataLinkToNothing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(t.TempDir(), "x", "y")
	if err := os.MkdirAll(filepath.Join(dir, "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "train", "good")
	if err := os.Symlink(missing, good); err != nil {
		t.Fatal(err)
	}
	// An image of DIR's own is not fitted in train/good's place.
	if err := os.WriteFile(filepath.Join(dir, "stray.png"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m.safetensors")
	code, _, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", evalConfig(t, t.TempDir()), "--out", out)
	want := good + " is a link to " + missing + ", which does not exist"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q: want %q", code, stderr, want)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a model was written")
	}
}
