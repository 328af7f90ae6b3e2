package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fit --data DIR with DIR/train/good there but empty (its images copied
// elsewhere) fitted DIR's own stray images in its place, or, with none,
// said "no train/good folder with images" of a folder that is there. It
// is now refused, naming train/good and what it holds; so is eval.
func TestFitDataEmptyTrainGood(t *testing.T) {
	dir, set, good, imgs := setWithImagesMovedUp(t)
	cfg := evalConfig(t, dir)
	out := filepath.Join(dir, "m.safetensors")
	code, stdout, stderr := runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "--out", out)
	want := "data " + set + ": " + good + " holds no images: it is empty: put the normal images in it (the 5 images in " + set +
		" itself are not fitted in its place: move them into train/good, or remove train/good to fit on them)"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("fit: exit %d, stdout %q, stderr %q: want %q", code, stdout, stderr, want)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("fit wrote a model from the folder's own images")
	}
	if code, _, stderr := runCaptureCmd(t, "eval", "--data", set, "--config", cfg); code != 1 || !strings.Contains(stderr, good+" holds no images: it is empty") {
		t.Errorf("eval: exit %d, stderr %q", code, stderr)
	}
	// Files of another kind: named as such. No image in DIR: no note.
	for _, p := range imgs {
		if err := os.Rename(filepath.Join(set, filepath.Base(p)), p+".raw"); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr = runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "--out", out)
	want = good + " holds no images: 5 files, none an image (.jpg .jpeg .png .bmp .tif .tiff .gif): put the normal images in it\n"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("fit with .raw files: exit %d, stderr %q: want %q", code, stderr, want)
	}
	// Images that cannot be read are skipped and counted, not taken for
	// no train/good: the refusal says so.
	for i, p := range imgs {
		os.Remove(p + ".raw")
		if err := os.WriteFile(p, []byte("not a png"), 0o644); err != nil || i == 2 {
			break
		}
	}
	code, _, stderr = runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "--out", out)
	if code != 1 || !strings.Contains(stderr, "0 given") || !strings.Contains(stderr, "skipped 3 files: 3 unreadable or not an image") {
		t.Errorf("fit with unreadable images: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a model was written")
	}
}

// A train/good that is a file, a train with no good in it, and a folder of
// images named straight but holding none (the README's own
// `--data /var/lib/inspectd/good`): fit fitted DIR's own images in the
// first two cases without a word, and said only "no train/good folder with
// images and no … images in the folder itself" in the last (a new user's
// trial). Each is refused naming what is there.
func TestFitDataTrainGoodNotAFolder(t *testing.T) {
	dir, set, good, _ := setWithImagesMovedUp(t)
	cfg := evalConfig(t, dir)
	out := filepath.Join(dir, "m.safetensors")
	if err := os.Remove(good); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	note := " (the 5 images in " + set + " itself are not fitted in its place: move them into train/good, or remove "
	for _, c := range []struct {
		name string
		prep func()
		want string
	}{
		{"train/good a file", func() {}, "data " + set + ": " + good + " is a file, not a folder: put the normal images in a folder train/good" + note + "train/good to fit on them)"},
		{"train without good", func() { os.Remove(good) }, "data " + set + ": " + filepath.Join(set, "train") + " has no folder good in it: put the normal images in " + good + note + "train to fit on them)"},
	} {
		c.prep()
		code, _, stderr := runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "--out", out)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q: want %q", c.name, code, stderr, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: fit wrote a model from the folder's own images", c.name)
		}
	}
	// A folder of images named straight, holding a sub-folder of them.
	flat := filepath.Join(dir, "good")
	if err := os.MkdirAll(filepath.Join(flat, "day1"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCaptureCmd(t, "fit", "--data", flat, "--config", cfg, "--out", out)
	want := "data " + flat + ": no train/good folder in it, and " + flat + " holds no images: 1 sub-folder (images go in the folder itself, not below it)"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("a folder holding a sub-folder: exit %d, stderr %q: want %q", code, stderr, want)
	}
}

// setWithImagesMovedUp exports a small data set under a temporary folder
// dir and moves its 5 train/good images up into the set's folder itself
// (enough for a fit of their own), leaving train/good empty; it returns
// the folder, the set, train/good and the images' old paths there.
func setWithImagesMovedUp(t *testing.T) (dir, set, good string, imgs []string) {
	t.Helper()
	dir = t.TempDir()
	set = filepath.Join(dir, "set")
	exportSet(t, set, 5, 2, 3)
	good = filepath.Join(set, "train", "good")
	imgs, err := filepath.Glob(filepath.Join(good, "*.png"))
	if err != nil || len(imgs) != 5 {
		t.Fatalf("exported train images: %v %v", imgs, err)
	}
	for _, p := range imgs {
		if err := os.Rename(p, filepath.Join(set, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	return dir, set, good, imgs
}
