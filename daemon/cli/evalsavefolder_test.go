package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd eval --save-model D/new/m.safetensors` refused a folder that
// does not exist ("cannot write in D/new: D/new does not exist"), where
// `inspectd fit --out` makes it: the same code readies both now
// (prepareModelFile), so eval makes the missing folders and saves the
// model there, and a run refused before it saves one leaves none of them.
func TestEvalSaveModelMakesItsFolder(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 12, 6, 3)
	cfg := evalConfig(t, dir)
	m := filepath.Join(dir, "models", "new", "m.safetensors")

	// Refused after the folders are made (no such set): none left.
	code, _, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", filepath.Join(dir, "nowhere"), "--recipe", "plain", "--save-model", m)
	if code == 0 || strings.Contains(stderr, "fit done") {
		t.Fatalf("eval of a set that is not there: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "models")); !os.IsNotExist(err) {
		t.Errorf("a refused eval left the folders it made for --save-model %s (%v)", m, err)
	}

	if testing.Short() {
		t.Skip("a fit on an exported synthetic set")
	}
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", set, "--recipe", "plain", "--features", "16", "--save-model", m)
	if code != 0 {
		t.Fatalf("eval --save-model %s: exit %d, %s%s", m, code, stdout, stderr)
	}
	if st, err := os.Stat(m); err != nil || !st.Mode().IsRegular() {
		t.Errorf("eval --save-model %s: no model file there (%v)", m, err)
	}
}
