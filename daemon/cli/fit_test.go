package cli

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/inspectd/inspectd/model"
)

// The 69-byte PNG of ../shared/cases/image-bombs, whose header declares
// 200000×200000 pixels: in train/good or test/good it ended fit and eval
// with "fatal error: runtime: out of memory".
const pngBombFile = "../../capture/testdata/png-200000x200000-gray.png"

// bombDataSet exports a small synthetic data set and drops into train/good
// and test/good a decompression bomb and a file that is not an image.
func bombDataSet(t *testing.T, train int) (dir, cfg string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "set")
	if code, _, stderr := runCaptureCmd(t, "capture", "export", "--out", dir, "--train", strconv.Itoa(train), "--test", "6",
		"--width", "96", "--height", "64", "--defect-rate", "0.5", "--seed", "5"); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	bomb, err := os.ReadFile(pngBombFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"train/good", "test/good"} {
		for name, data := range map[string][]byte{"bomb.png": bomb, "broken.png": []byte("\x89PNG\r\n\x1a\n not really")} {
			if err := os.WriteFile(filepath.Join(dir, sub, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg = filepath.Join(t.TempDir(), "inspectd.yaml")
	y := "state_dir: " + t.TempDir() + "\nmodel: {features: 32, min_features: 16, context_pool: 0, optimize: off}\n"
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

// fit and eval skip the bomb and the broken file, name each in the log,
// say how many were skipped and why, and finish.
func TestFitAndEvalSkipBadImages(t *testing.T) {
	if testing.Short() {
		t.Skip("two fits on the real backbone")
	}
	dir, cfg := bombDataSet(t, 12)
	// A JPEG cut short (a copy interrupted, a camera's last frame): its
	// header reads, its body does not. It once ended the fit after the
	// search had tried every candidate.
	cut := cutJPEG(t, filepath.Join(dir, "train", "good"))
	// A thumbnail: too small to show a part (model.MinFrameSide).
	tiny := filepath.Join(dir, "train", "good", "tiny.png")
	writeTinyPNG(t, tiny)
	out := filepath.Join(t.TempDir(), "m.safetensors")
	code, stdout, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", out)
	if _, err := os.Stat(out); code == 0 && err != nil {
		t.Error(err)
	}
	if code != 0 {
		t.Fatalf("fit: exit %d\n%s", code, stderr)
	}
	want := "skipped 4 files: 1 over capture.max_pixels (40000000 pixels), 2 unreadable or not an image, 1 under 16 pixels a side (the log names each)"
	if !strings.Contains(stdout, "on 12 images") || !strings.Contains(stdout, "from 12 good images") || !strings.Contains(stdout, want) {
		t.Errorf("fit stdout %q, want 12 images fitted, the threshold from 12 and %q", stdout, want)
	}
	for _, w := range []string{`file=` + filepath.Join(dir, "train", "good", "bomb.png"), `reason="too large"`, "200000×200000",
		`file=` + filepath.Join(dir, "train", "good", "broken.png"), `reason="unreadable or not an image"`, `file=` + cut,
		`file=` + tiny, `reason="too small"`, "4x4"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("fit log lacks %q:\n%s", w, stderr)
		}
	}

	// A thumbnail among the test images once ended the whole evaluation
	// (the model refuses it) where the training one was skipped.
	tinyTest := filepath.Join(dir, "test", "good", "tiny.png")
	writeTinyPNG(t, tinyTest)
	code, stdout, stderr = runCaptureCmd(t, "eval", "--data", dir, "--config", cfg, "--json", filepath.Join(t.TempDir(), "r.json"))
	if code != 0 {
		t.Fatalf("eval: exit %d\n%s", code, stderr)
	}
	// Eval fits too: the bad files of train/good and of test/good.
	want = "skipped 7 files: 2 over capture.max_pixels (40000000 pixels), 3 unreadable or not an image, 2 under 16 pixels a side (the log names each)"
	if !strings.Contains(stdout, want) || !strings.Contains(stdout, "(6 test images)") || !strings.Contains(stdout, " 12 images in") {
		t.Errorf("eval stdout %q, want %q, 12 training images and 6 test images inspected", stdout, want)
	}
	for _, f := range []string{"bomb.png", "tiny.png"} {
		if !strings.Contains(stderr, filepath.Join(dir, "test", "good", f)) {
			t.Errorf("eval log does not name the test set's %s:\n%s", f, stderr)
		}
	}
}

// Too few images are refused before the backbone is touched, with the
// minimum and the ways out; skipped files are named in the message too.
func TestFitTooFewImagesCLI(t *testing.T) {
	dir, cfg := bombDataSet(t, 3) // the fewest capture export writes; one goes
	goods, _ := filepath.Glob(filepath.Join(dir, "train", "good", "0*.png"))
	if len(goods) != 3 {
		t.Fatalf("export wrote %d training images: %v", len(goods), goods)
	}
	if err := os.Remove(goods[0]); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", filepath.Join(t.TempDir(), "m"))
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	for _, w := range []string{"too few normal images: 2 given", "at least 3", "Add images of good parts",
		"skipped 2 files: 1 over capture.max_pixels"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	if strings.Contains(stderr, "quantile") || strings.Contains(stderr, "backbone") {
		t.Errorf("the refusal came after backbone work:\n%s", stderr)
	}
}

// cutJPEG writes the first half of a JPEG of one of dir's PNG images into
// dir and returns its path.
func cutJPEG(t *testing.T, dir string) string {
	t.Helper()
	pngs, _ := filepath.Glob(filepath.Join(dir, "0*.png"))
	if len(pngs) == 0 {
		t.Fatal("no exported image to cut")
	}
	f, err := os.Open(pngs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cut.jpg")
	if err := os.WriteFile(path, b.Bytes()[:b.Len()/2], 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// --out's missing folders are created (0755), as a user following config
// check's advice "fit one first with 'inspectd fit --data DIR --out
// <model.path>'" expects (a trial: "cannot write in /x/nosuchdir: open
// /x/nosuchdir/.inspectd-write-check-…: no such file or directory"); a
// folder that cannot be made or written is refused before any fitting,
// naming it and why in plain words, not the write check's temp file.
func TestFitOutFolders(t *testing.T) {
	dir, cfg := bombDataSet(t, 3)
	tmp := t.TempDir()
	out := filepath.Join(tmp, "nosuchdir", "deeper", "m.safetensors")
	if code, _, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", out); code != 0 {
		t.Errorf("exit %d, want the model fitted into the new folder:\n%s", code, stderr)
	} else if _, err := os.Stat(out); err != nil {
		t.Errorf("no model: %v", err)
	}
	for _, d := range []string{filepath.Dir(filepath.Dir(out)), filepath.Dir(out)} {
		if st, err := os.Stat(d); err != nil || !st.IsDir() || st.Mode().Perm()&^0o755 != 0 || st.Mode().Perm()&0o700 != 0o700 {
			t.Errorf("folder %s: %v, %v; want it created 0755", d, st, err)
		}
	}

	file := filepath.Join(tmp, "plain")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	type refusal struct{ out, want string }
	cases := []refusal{
		{filepath.Join(file, "sub", "m.safetensors"), ": cannot create its folder " + filepath.Join(file, "sub") + ": " + file + " is a file, not a folder"},
		{filepath.Join(file, "m.safetensors"), ": cannot write in " + file + ": " + file + " is a file, not a folder"},
	}
	if os.Geteuid() != 0 { // root writes in a read-only folder
		ro := filepath.Join(tmp, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		cases = append(cases,
			refusal{filepath.Join(ro, "sub", "m.safetensors"), ": cannot create its folder " + filepath.Join(ro, "sub") + ": folder " + ro + " cannot be written by the user inspectd runs as (permission denied)"},
			refusal{filepath.Join(ro, "m.safetensors"), ": folder " + ro + " cannot be written by the user inspectd runs as (permission denied)"})
	}
	for _, tc := range cases {
		code, _, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", tc.out)
		if code != 1 || !strings.Contains(stderr, "model file "+tc.out+tc.want) || strings.Contains(stderr, "write-check") {
			t.Errorf("--out %s: exit %d, want 1 and %q:\n%s", tc.out, code, tc.want, stderr)
		}
		if strings.Contains(stderr, "fit done") || strings.Contains(stderr, "backbone") {
			t.Errorf("--out %s: the refusal came after fitting:\n%s", tc.out, stderr)
		}
	}
}

// A fit that ends without a model leaves none of the folders it made for
// --out (a trial found the tree of a mistyped --out left behind); a folder
// that was there stays.
func TestFitThatFailsLeavesNoFolders(t *testing.T) {
	dir, cfg := bombDataSet(t, 3)
	goods, _ := filepath.Glob(filepath.Join(dir, "train", "good", "0*.png"))
	if len(goods) != 3 {
		t.Fatalf("export wrote %d training images: %v", len(goods), goods)
	}
	for _, g := range goods[1:] { // one image: too few to fit
		if err := os.Remove(g); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	out := filepath.Join(tmp, "new", "deeper", "m.safetensors")
	code, _, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", out)
	if code == 0 || !strings.Contains(stderr, "image") {
		t.Fatalf("exit %d, want the fit refused for too few images:\n%s", code, stderr)
	}
	if _, err := os.Lstat(filepath.Join(tmp, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed fit left %s (%v), which it made for --out %s", filepath.Join(tmp, "new"), err, out)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("the folder that was there is gone: %v", err)
	}
}

// A model.path that is a folder is refused naming model.path, as the
// daemon names it: the user typed no path (a trial read "model file … is a
// folder: give a file in it" and looked for a flag).
func TestFitNamesModelPathFolder(t *testing.T) {
	dir, _ := bombDataSet(t, 3)
	folder := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "inspectd.yaml")
	y := "state_dir: " + t.TempDir() + "\nmodel: {path: " + folder + ", features: 32, min_features: 16, context_pool: 0, optimize: off}\n"
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg)
	want := "model.path: model file " + folder + " is a folder: give a file in it, such as " + filepath.Join(folder, "model.safetensors")
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "fit done") {
		t.Errorf("exit %d, want 1 and %q before any fitting:\n%s", code, want, stderr)
	}
}

// An --out that is a folder is refused before any fitting (the model is
// renamed into place at the end: it failed after the whole fit).
func TestFitRefusesFolderOutFirst(t *testing.T) {
	dir, cfg := bombDataSet(t, 3)
	out := t.TempDir()
	code, _, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", out)
	if code != 1 || !strings.Contains(stderr, "model file "+out+" is a folder: give a file in it, such as "+filepath.Join(out, "model.safetensors")) {
		t.Fatalf("exit %d, want 1 naming the folder and a file in it:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "fit done") || strings.Contains(stderr, "backbone") {
		t.Errorf("the refusal came after fitting:\n%s", stderr)
	}
}

// --max-train fits on that many of the folder's images, spread over it.
func TestFitMaxTrain(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 9, 2, 3)
	cfg := evalConfig(t, dir)
	code, stdout, stderr := runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "--out", filepath.Join(dir, "m.safetensors"), "--max-train", "5")
	if code != 0 || !strings.Contains(stdout, " on 5 images") {
		t.Errorf("exit %d, stdout %q, stderr %s: want a fit on 5 images", code, stdout, stderr)
	}
	// Too few for the search and for the fixed recipe's z-score: fit says
	// what it fitted instead of what it named first.
	if !strings.Contains(stdout, "fitted v1-fit-std-raw instead of v1-fit-std-z-ctx2: the position z-score and the context scale need at least 20 images (this fit had 5)") {
		t.Errorf("stdout %q: want the recipe fitted instead of the fixed one, and why", stdout)
	}
	if !strings.Contains(stdout, "WARNING: the threshold rests on 5 good images: with fewer than 50") {
		t.Errorf("stdout %q: want a warning that 5 images make a threshold that flags good parts", stdout)
	}
	// model info describes the file without a daemon.
	m := filepath.Join(dir, "m.safetensors")
	if code, out, errs := runCaptureCmd(t, "model", "info", "--config", cfg, m); code != 0 || !strings.Contains(out, "recipe           v1-fit-std-raw") ||
		!strings.Contains(out, "on 5 images") || !strings.Contains(out, "thresholds       image ") || !strings.Contains(out, "trained on       ") {
		t.Errorf("model info: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if code, out, errs := runCaptureCmd(t, "model", "info", "--config", cfg, "--json", m); code != 0 || !strings.Contains(out, `"recipe": "v1-fit-std-raw"`) {
		t.Errorf("model info --json: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	// Over a configuration's memory budget: described, with a warning.
	small := filepath.Join(dir, "small.yaml")
	cfgText, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(small, append(cfgText, "model:\n  memory_budget: 1MiB\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCaptureCmd(t, "model", "info", "--config", small, m); code != 0 || !strings.Contains(out, "recipe           v1-fit-std-raw") ||
		!strings.Contains(errs, "is over model.memory_budget (1048576 bytes)") {
		t.Errorf("model info over the memory budget: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if code, _, errs := runCaptureCmd(t, "model", "inspect", m); code != 1 || !strings.Contains(errs, "'inspectd model info "+m+"' describes it") {
		t.Errorf("model inspect on a fitted model: exit %d, stderr %s", code, errs)
	}
	if code, _, stderr := runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "--out", filepath.Join(dir, "m2.safetensors"), "--max-train", "2"); code != 1 || !strings.Contains(stderr, "(--max-train 2 kept 2 of the 9 images)") {
		t.Errorf("--max-train 2: exit %d, %s: want the refusal to say the flag kept 2 of 9", code, stderr)
	}
	if code, _, stderr := runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "extra"); code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) || strings.Contains(stderr, "--data is required") {
		t.Errorf("a stray argument: exit %d, %s: want it named, not --data asked for", code, stderr)
	}
	if code, _, stderr := runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "--max-train", "-1"); code != 2 || !strings.Contains(stderr, "--max-train -1") {
		t.Errorf("--max-train -1: exit %d, %s", code, stderr)
	}
}

// fit does not write a model whose chosen recipe separates the synthetic
// defects no better than chance; --force writes it after a warning. A
// threshold given in the configuration is said to be so, not to rest on
// no images.
func TestFitSeparationAndThresholdNote(t *testing.T) {
	weak := model.FitReport{Search: &model.SearchReport{Chosen: model.Candidate{Name: "v2-tiles4-std-z-ctx1",
		Figures: model.RecipeFigures{ImageAUROC: 0.5, Good: 12, Defects: 24, Misses: 1}}}}
	var w strings.Builder
	err := checkSeparation(&w, weak, "/srv/m.safetensors", false)
	if !errors.Is(err, model.ErrNoSeparation) || !strings.HasPrefix(err.Error(), "/srv/m.safetensors not written: ") ||
		!strings.HasSuffix(err.Error(), "(--force writes it anyway)") || w.Len() != 0 {
		t.Errorf("at chance: %v, printed %q", err, w.String())
	}
	if err := checkSeparation(&w, weak, "/srv/m.safetensors", true); err != nil || !strings.HasPrefix(w.String(), "WARNING: ") {
		t.Errorf("at chance with --force: %v, printed %q", err, w.String())
	}
	weak.Search.Chosen.Figures.ImageAUROC = 0.9
	if err := checkSeparation(&w, weak, "/srv/m.safetensors", false); err != nil {
		t.Errorf("a recipe that separates: %v", err)
	}
	if got := thresholdNote(5, 0); got != "threshold 5 (model.threshold.value)" {
		t.Errorf("explicit threshold: %q", got)
	}
	if got := thresholdNote(23.82, 60); got != "threshold 23.82 from 60 good images (each scored leave one out)" {
		t.Errorf("fitted threshold: %q", got)
	}
}

// writeTinyPNG writes a 4×4 grey PNG at path.
func writeTinyPNG(t *testing.T, path string) {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fit before the daemon's first start creates state_dir for the model that
// lives there, as the daemon would (a trial: "cannot write in …: no such
// file or directory" while config check said inspectd creates it).
func TestFitCreatesStateDir(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on the real backbone")
	}
	dir, _ := bombDataSet(t, 12)
	state := filepath.Join(t.TempDir(), "not", "yet")
	cfg := filepath.Join(t.TempDir(), "inspectd.yaml")
	y := "state_dir: " + state + "\nmodel: {recipe: fixed, features: 32, min_features: 16, context_pool: 0, optimize: off}\n"
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg); code != 0 {
		t.Fatalf("fit: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "model.safetensors")); err != nil {
		t.Errorf("model not in the new state_dir: %v", err)
	}
}

// An empty --out (a shell variable that expanded to nothing) is refused,
// not taken for model.path (a trial: it wrote the system's model file).
func TestFitEmptyOutRefused(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCaptureCmd(t, "fit", "--data", dir, "--out", "")
	if code != 2 || !strings.Contains(stderr, "--out is empty") {
		t.Errorf("exit %d, %s", code, stderr)
	}
}

// A flag after the model file is named as such (Go's flags stop at the
// first argument; a trial read "want exactly one model file").
func TestModelCommandsNameAFlagAfterTheFile(t *testing.T) {
	for _, args := range [][]string{{"model", "info", "m.safetensors", "--json"}, {"model", "inspect", "b.tflite", "--all"}} {
		code, _, stderr := runCaptureCmd(t, args...)
		if code != 2 || !strings.Contains(stderr, args[3]+" after the file: flags go before it") {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
	if code, _, stderr := runCaptureCmd(t, "model", "info", "a", "b"); code != 2 || !strings.Contains(stderr, "want exactly one model file, got 2") {
		t.Errorf("two files: exit %d, %s", code, stderr)
	}
}

// TestFitLogsAContextScaleItLeavesOut: with model.position_zscore false,
// model.context_pool (6 by default) was dropped by the fit without a word;
// the fit says so in its log, naming the setting and why.
func TestFitLogsAContextScaleItLeavesOut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "set")
	if code, _, stderr := runCaptureCmd(t, "capture", "export", "--out", dir, "--train", "3", "--test", "2",
		"--width", "96", "--height", "64", "--defect-rate", "0.5", "--seed", "5"); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	cfg := filepath.Join(t.TempDir(), "inspectd.yaml")
	y := "state_dir: " + t.TempDir() + "\nmodel: {recipe: fixed, features: 16, min_features: 16, position_zscore: false, optimize: off}\n"
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", filepath.Join(t.TempDir(), "m.safetensors"))
	if code != 0 {
		t.Fatalf("fit: exit %d\n%s", code, stderr)
	}
	if want := `msg="setting left out of the fit" field=model.context_pool why="6 is left out of the fit: the context scale needs model.position_zscore`; !strings.Contains(stderr, want) {
		t.Errorf("fit log lacks %q:\n%s", want, stderr)
	}
	if !strings.Contains(stdout, "no context scale") {
		t.Errorf("fit stdout %q: want no context scale", stdout)
	}
}

// folderRefusal and folderProblem word the errors a folder check meets
// without the path of the file being made (the write check's temp file):
// root, who runs the tests here, writes in a read-only folder, so these
// are not met above. A folder that is there is said in the daemon's words
// (config check's): /proc answers "no such file or directory", and fit
// said "/proc does not exist".
func TestFolderProblem(t *testing.T) {
	there := t.TempDir()
	dir := filepath.Join(there, "models")
	tmpFile := filepath.Join(there, ".inspectd-write-check-123")
	denied := "folder " + there + " cannot be written by the user inspectd runs as (permission denied); make it writable for that user (chown, chmod)"
	if os.Geteuid() == 0 {
		// No chown or chmod lets root write where root is refused.
		denied = "folder " + there + " cannot be written, not even by root, which inspectd runs as (permission denied): it is a kernel or read-only file system"
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&fs.PathError{Op: "open", Path: tmpFile, Err: syscall.EACCES}, denied},
		{&fs.PathError{Op: "open", Path: tmpFile, Err: syscall.EROFS}, "folder " + there + " cannot be written: it is on a read-only file system"},
		{&fs.PathError{Op: "open", Path: tmpFile, Err: syscall.ENOENT}, "folder " + there + " cannot be written: it takes no new files (creating one fails: no such file or directory)"},
		{&fs.PathError{Op: "open", Path: tmpFile, Err: syscall.ENOSPC}, ""},
	} {
		if got := folderRefusal(there, tc.err); got != tc.want {
			t.Errorf("%v in a folder that is there: %q, want %q", tc.err, got, tc.want)
		}
	}
	tmpFile = filepath.Join(dir, ".inspectd-write-check-123")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&fs.PathError{Op: "open", Path: tmpFile, Err: syscall.EACCES}, dir + " cannot be reached (permission denied)"},
		{&fs.PathError{Op: "open", Path: tmpFile, Err: syscall.ENOENT}, dir + " does not exist"},
		{&fs.PathError{Op: "open", Path: tmpFile, Err: syscall.EIO}, syscall.EIO.Error()},
	} {
		if got := folderRefusal(dir, tc.err); got != "" {
			t.Errorf("%v in a missing folder: folderRefusal %q, want none", tc.err, got)
		}
		if got := folderProblem(dir, tc.err); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
}

// fit --out in /proc, which is there but takes no new files, says so in
// config check's words, before any fitting (a trial: "cannot write in
// /proc: /proc does not exist"). Only a file creation is tried in /proc,
// which fails.
func TestFitOutInProc(t *testing.T) {
	if st, err := os.Stat("/proc/self"); err != nil || !st.IsDir() {
		t.Skip("no /proc here")
	}
	if f, err := os.CreateTemp("/proc", ".inspectd-test-*"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skip("/proc takes new files here")
	}
	dir, cfg := bombDataSet(t, 3)
	out := "/proc/m.safetensors"
	code, _, stderr := runCaptureCmd(t, "fit", "--data", dir, "--config", cfg, "--out", out)
	want := "model file " + out + ": folder /proc cannot be written: it takes no new files"
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "does not exist") || strings.Contains(stderr, "fit done") {
		t.Errorf("exit %d, want 1 and %q before any fitting:\n%s", code, want, stderr)
	}
	code, _, stderr = runCaptureCmd(t, "eval", "--data", dir, "--config", cfg, "--save-model", out)
	want = "--save-model file " + out + ": folder /proc cannot be written: it takes no new files"
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "does not exist") || strings.Contains(stderr, "fit done") {
		t.Errorf("eval: exit %d, want 1 and %q before any fitting:\n%s", code, want, stderr)
	}
}

// A model file that is there and is not a regular file (a device, a named
// pipe) is refused before any fitting: fit saved a temporary file renamed
// over it, so that a trial's 'inspectd fit --out /dev/null' as root put a
// 64 MB regular file in place of /dev/null and said "fitted /dev/null".
// The nodes are made in a temporary folder, never the system's. A path
// from the configuration is named by its key (model.path).
func TestFitRefusesADeviceOrPipeFirst(t *testing.T) {
	dir, cfg := bombDataSet(t, 3)
	tmp := t.TempDir()
	fifo := filepath.Join(tmp, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	type refusal struct {
		out, modelPath, want string
	}
	cases := []refusal{
		{out: fifo, want: "--out: " + fifo + " is a named pipe, not a model file"},
		{modelPath: fifo, want: "model.path: " + fifo + " is a named pipe, not a model file"},
	}
	dev := filepath.Join(tmp, "null")
	// /dev/null's numbers (1, 3), in the temporary folder.
	if err := syscall.Mknod(dev, syscall.S_IFCHR|0o600, 1<<8|3); err == nil {
		cases = append(cases, refusal{out: dev, want: "--out: " + dev + " is a device, not a model file"})
	} else {
		t.Logf("no device node (%v): its case is left out", err)
	}
	for _, tc := range cases {
		args := []string{"fit", "--data", dir, "--config", cfg}
		if tc.out != "" {
			args = append(args, "--out", tc.out)
		} else {
			c := filepath.Join(t.TempDir(), "inspectd.yaml")
			y := "state_dir: " + t.TempDir() + "\nmodel: {path: " + tc.modelPath + ", features: 32, min_features: 16, context_pool: 0, optimize: off}\n"
			if err := os.WriteFile(c, []byte(y), 0o644); err != nil {
				t.Fatal(err)
			}
			args[4] = c
		}
		target := tc.out + tc.modelPath
		before, err := os.Lstat(target)
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCaptureCmd(t, args...)
		if code != 1 || !strings.Contains(stderr, tc.want) || strings.Contains(stdout, "fitted") {
			t.Errorf("%v: exit %d, want 1 and %q:\n%s%s", args[3:], code, tc.want, stdout, stderr)
		}
		if strings.Contains(stderr, "fit done") || strings.Contains(stderr, "backbone") {
			t.Errorf("%v: the refusal came after fitting:\n%s", args[3:], stderr)
		}
		if after, err := os.Lstat(target); err != nil || after.Mode() != before.Mode() {
			t.Errorf("%s was %v, now %v (%v)", target, before.Mode(), after, err)
		}
	}
	// eval --save-model saves the same way.
	code, _, stderr := runCaptureCmd(t, "eval", "--data", dir, "--config", cfg, "--save-model", fifo)
	if want := "--save-model: " + fifo + " is a named pipe, not a model file"; code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "fit done") {
		t.Errorf("eval --save-model %s: exit %d, want 1 and %q before any fitting:\n%s", fifo, code, want, stderr)
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("%s after eval: %v, %v", fifo, st, err)
	}
}
