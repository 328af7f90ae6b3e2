package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModelInfoAndBenchNameALinkLoop: `inspectd model info` and `inspectd
// bench --model` of a model file that is a link leading round in a loop
// (lpa → lpb → lpa), or a link whose way passes a folder link that does
// (lm → ext/b/m, b → x → b), said only "stat …: too many levels of
// symbolic links" (a new user's trial). Each now names the loop's links,
// in dataset.LinkLoopError's words.
func TestModelInfoAndBenchNameALinkLoop(t *testing.T) {
	dir := t.TempDir()
	for _, l := range [][2]string{{"lpb.safetensors", "lpa.safetensors"}, {"lpa.safetensors", "lpb.safetensors"}, {"x", "ext/b"}, {"b", "ext/x"}, {"ext/b/m", "lm"}} {
		if err := os.MkdirAll(filepath.Join(dir, "ext"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ file, want string }{
		{"lpa.safetensors", "lpa.safetensors is a link that leads round in a loop (lpa.safetensors → lpb.safetensors → lpa.safetensors)"},
		{"lm", "lm is a link to " + filepath.Join(dir, "ext/b/m") + ", through " + filepath.Join(dir, "ext/b") + ", a link that leads round in a loop (ext/b → ext/x → ext/b)"},
	} {
		path := filepath.Join(dir, c.file)
		for _, args := range [][]string{{"model", "info", path}, {"bench", "--model", path, "--count", "1", "--no-mqtt"}} {
			code, _, errs := runCaptureCmd(t, args...)
			if code == 0 || !strings.Contains(errs, c.want) || strings.Contains(errs, "too many levels") {
				t.Errorf("%s: exit %d, stderr %q; want it refused naming the loop: %q", strings.Join(args, " "), code, errs, c.want)
			}
		}
	}
}
