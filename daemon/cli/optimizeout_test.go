package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/modeltest"
)

// TestModelOptimizeChecksItsOutFolderFirst: `model optimize IN OUT` with
// an OUT in a folder that is not there, or that is a folder, ran the
// rewrite and its check and failed only then, in the temporary file's
// words ("open nosuch/.o.tflite.tmp-…: no such file or directory",
// "rename ./.out.tmp-… out: file exists"). Each is refused first, naming
// OUT and the folder, with nothing printed.
func TestModelOptimizeChecksItsOutFolderFirst(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ out, want string }{
		{filepath.Join(dir, "nosuch", "o.tflite"), "folder " + filepath.Join(dir, "nosuch") + " does not exist; create it first"},
		{dir, "output " + dir + " is a folder: name a .tflite file in it"},
		{filepath.Join(plain, "o.tflite"), plain + " is a file, not a folder"},
	} {
		code, out, errs := runCaptureCmd(t, "model", "optimize", "--threads", "1", modeltest.BackbonePath(t), c.out)
		if code != 1 || !strings.Contains(errs, c.want) || out != "" {
			t.Errorf("model optimize to %s: exit %d, want 1 and %q before any work; stdout:\n%s\nstderr:\n%s", c.out, code, c.want, out, errs)
		}
	}
}
