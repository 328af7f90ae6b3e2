package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// `eval --json L --save-model F`, L a link to F where F was not there
// yet, was not taken for one file (it was where F was there); nor was
// --json D2/o.x --save-model D/o.x, D2 a link to the folder D, where the
// results were then written over the model saved, exit 0. --json or
// --save-model naming the --report folder ran the whole evaluation and
// failed writing onto the folder the report made. All are refused before
// any fit, and nothing is made.
func TestEvalRefusesOutputsThroughALinkToOnePath(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	empty := filepath.Join(dir, "empty")
	folder := filepath.Join(dir, "d")
	for _, d := range []string{empty, folder} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := filepath.Join(dir, "out.x") // not there
	link := filepath.Join(dir, "link.x")
	if err := os.Symlink("out.x", link); err != nil {
		t.Fatal(err)
	}
	folderLink := filepath.Join(dir, "dl")
	if err := os.Symlink(folder, folderLink); err != nil {
		t.Fatal(err)
	}
	rep := filepath.Join(dir, "rep")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--json", link, "--save-model", f}, "--json and --save-model name the same file"},
		{[]string{"--json", f, "--save-model", link}, "--json and --save-model name the same file"},
		{[]string{"--json", filepath.Join(folderLink, "o.x"), "--save-model", filepath.Join(folder, "o.x")}, "--json and --save-model name the same file"},
		{[]string{"--json", filepath.Join(folderLink, "new", "o.x"), "--save-model", filepath.Join(folder, "new", "o.x")}, "--json and --save-model name the same file"},
		{[]string{"--json", rep, "--report", rep}, "--json and --report name the same path"},
		{[]string{"--save-model", rep, "--report", rep}, "--save-model and --report name the same path"},
		{[]string{"--json", link, "--report", f}, "--json and --report name the same path"},
	} {
		code, _, stderr := runCaptureCmd(t, append([]string{"eval", "--data", empty, "--config", cfg}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("eval %v: exit %d, %q; want a usage error saying %q", c.args, code, stderr, c.want)
		}
		for _, p := range []string{f, rep, filepath.Join(folder, "new")} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("eval %v made %s", c.args, p)
				os.RemoveAll(p)
			}
		}
	}
	// Results in the report's folder are two outputs apart.
	code, _, stderr := runCaptureCmd(t, "eval", "--data", empty, "--config", cfg, "--json", filepath.Join(rep, "eval.json"), "--report", rep)
	if code == 0 || strings.Contains(stderr, "name the same") {
		t.Errorf("--json in the --report folder: exit %d, %q; want the empty set refused, not the outputs", code, stderr)
	}
}

// `eval --save-model REP/roc.png --report REP` saved the model, then the
// report wrote its ROC curve over it: exit 0 and no model. A --json or
// --save-model that ends in .png in the report's folder, or below it,
// through a link too, is refused before any fit now; another name there
// is not.
func TestEvalRefusesAnOutputTheReportWritesOver(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	empty := filepath.Join(dir, "empty")
	rep := filepath.Join(dir, "rep") // there from an earlier run
	for _, d := range []string{empty, rep} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	repLink := filepath.Join(dir, "rl")
	if err := os.Symlink("rep", repLink); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--save-model", filepath.Join(rep, "roc.png"), "--report", rep},
		{"--json", filepath.Join(repLink, "syn", "ROC.PNG"), "--report", rep},
		{"--save-model", filepath.Join(rep, "good_highest_1_good_0004_score0.841.png"), "--report", repLink},
	} {
		code, _, stderr := runCaptureCmd(t, append([]string{"eval", "--data", empty, "--config", cfg}, args...)...)
		if code != 2 || !strings.Contains(stderr, "lies in the --report folder") {
			t.Errorf("eval %v: exit %d, %q; want a usage error saying it lies in the --report folder", args, code, stderr)
		}
	}
	code, _, stderr := runCaptureCmd(t, "eval", "--data", empty, "--config", cfg, "--save-model", filepath.Join(rep, "model.safetensors"), "--report", rep)
	if code == 0 || strings.Contains(stderr, "--report folder") {
		t.Errorf("--save-model model.safetensors in the --report folder: exit %d, %q; want the empty set refused, not the outputs", code, stderr)
	}
}

// `eval --json /dev/null`, run as root, replaced the device /dev/null
// with a regular file holding the results, and `--json /dev/stdout` the
// link /dev/stdout itself (the results are renamed into place): a named
// pipe, a link to one, or a link into a process's open files is refused
// before any fit now, and left as it was.
func TestEvalJSONRefusesWhatItWouldReplace(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	toFifo := filepath.Join(dir, "to-fifo")
	stdout := filepath.Join(dir, "stdout")
	for l, to := range map[string]string{toFifo: "fifo", stdout: "/proc/self/fd/1"} {
		if err := os.Symlink(to, l); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ path, says string }{
		{fifo, "is a named pipe"},
		{toFifo, "is a link to a named pipe"},
		{stdout, "is a link to /proc/self/fd/1, a process's open file"},
	} {
		before, _ := os.Lstat(c.path)
		code, _, stderr := runCaptureCmd(t, "eval", "--data", empty, "--config", cfg, "--json", c.path)
		if code == 0 || !strings.Contains(stderr, "--json file "+c.path+" "+c.says) {
			t.Errorf("--json %s: exit %d, %q; want it refused saying it %s", c.path, code, stderr, c.says)
		}
		if after, err := os.Lstat(c.path); err != nil || after.Mode() != before.Mode() {
			t.Errorf("--json %s: left as %v (%v), was %v", c.path, after.Mode(), err, before.Mode())
		}
	}
}

// `fit --out L`, L a link to /proc/self/fd/1 (as /dev/stdout is) or to a
// named pipe, replaced the link with the model file after the fit; as
// root with --out /dev/stdout, the system's link. Refused before the fit
// now, the link left as it was.
func TestFitOutRefusesALinkToAPipeOrStdout(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	set := filepath.Join(dir, "set")
	exportSet(t, set, 5, 2, 3)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ link, to, says string }{
		{"stdout", "/proc/self/fd/1", "is a link to /proc/self/fd/1, a process's open file"},
		{"to-fifo", "fifo", "is a link to a named pipe"},
	} {
		l := filepath.Join(dir, c.link)
		if err := os.Symlink(c.to, l); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"fit", "--data", set, "--out", l}, {"eval", "--data", set, "--save-model", l}} {
			code, _, stderr := runCaptureCmd(t, append(args, "--config", cfg)...)
			if code == 0 || !strings.Contains(stderr, l+" "+c.says) {
				t.Errorf("%v: exit %d, %q; want it refused saying it %s", args, code, stderr, c.says)
			}
			if st, err := os.Lstat(l); err != nil || st.Mode()&os.ModeSymlink == 0 {
				t.Errorf("%v: the link replaced (%v, %v)", args, st.Mode(), err)
			}
		}
	}
}

// A --report folder from before holding links with the names the report
// writes (roc.png, an overlay's) had the files they lead to, outside the
// folder, overwritten with the ROC curve and the overlay: each report
// file is a new file renamed into place now, replacing such a link.
func TestEvalReportWritesNotThroughLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("a fit on an exported synthetic set")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 8, 4, 3)
	rep := filepath.Join(dir, "rep")
	if err := os.Mkdir(rep, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim.txt")
	if err := os.WriteFile(victim, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	roc := filepath.Join(rep, "roc.png")
	if err := os.Symlink(victim, roc); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCaptureCmd(t, "eval", "--config", evalConfig(t, dir), "--data", set, "--recipe", "plain", "--features", "16", "--report", rep)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep me" {
		t.Errorf("the file a link in the report folder led to: %d bytes, %v; want it left as it was", len(b), err)
	}
	if st, err := os.Lstat(roc); err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
		t.Errorf("roc.png: %v, %v; want the ROC curve in a file of its own", st.Mode(), err)
	}
}

// `eval --data SET --report SET/train/good` wrote its overlays into the
// set's training images, and the next fit trained on them as good parts;
// --save-model SET/test/good/m.png put the model among the test images.
// Refused before any fit now, through a link to the set too; a report
// beside those folders, or results named as no image, are not.
func TestEvalRefusesOutputsInTheDataSet(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	set := filepath.Join(dir, "set")
	exportSet(t, set, 5, 2, 3)
	link := filepath.Join(dir, "set-link")
	if err := os.Symlink("set", link); err != nil {
		t.Fatal(err)
	}
	before, _ := filepath.Glob(filepath.Join(set, "*", "*", "*"))
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--data", set, "--report", filepath.Join(set, "train", "good")}, "--report " + filepath.Join(set, "train", "good") + " lies in " + filepath.Join(set, "train")},
		{[]string{"--data", link, "--report", filepath.Join(set, "test", "rep")}, "lies in " + filepath.Join(link, "test")},
		{[]string{"--data", set, "--report", filepath.Join(link, "ground_truth")}, "lies in " + filepath.Join(set, "ground_truth")},
		{[]string{"--data", set, "--save-model", filepath.Join(set, "test", "good", "m.png")}, "named as an image"},
		{[]string{"--data", set, "--json", filepath.Join(link, "train", "good", "r.JPG")}, "named as an image"},
	} {
		code, _, stderr := runCaptureCmd(t, append([]string{"eval", "--config", cfg}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.says) {
			t.Errorf("eval %v: exit %d, %q; want a usage error saying %q", c.args, code, stderr, c.says)
		}
	}
	if after, _ := filepath.Glob(filepath.Join(set, "*", "*", "*")); len(after) != len(before) {
		t.Errorf("the set's folders hold %d files, were %d", len(after), len(before))
	}
	// Beside the set's folders, or not named as an image: not refused for it.
	for _, args := range [][]string{
		{"--report", filepath.Join(set, "report")},
		{"--json", filepath.Join(set, "train", "good", "r.json")},
	} {
		_, _, stderr := runCaptureCmd(t, append([]string{"eval", "--config", cfg, "--data", set, "--max-train", "1"}, args...)...)
		if strings.Contains(stderr, "data set") && strings.Contains(stderr, "own folder") {
			t.Errorf("eval %v refused as in the set: %s", args, stderr)
		}
	}
}
