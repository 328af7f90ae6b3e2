package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd eval --json F --save-model F` fitted, saved the model in F and
// then wrote the results over it: the run ended with exit 0 and a model
// file that `model info` could not load. The two outputs naming one file
// (by the same path, or through a link) are refused before any fit.
func TestEvalRefusesJSONAndModelInOneFile(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "out.x")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.x")
	if err := os.Symlink(f, link); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(mustGetwd(t), f)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{f, f}, {rel, f}, {link, f}} {
		code, _, stderr := runCaptureCmd(t, "eval", "--data", empty, "--config", cfg, "--json", c[0], "--save-model", c[1])
		t.Logf("--json %s --save-model %s: exit %d, %s", c[0], c[1], code, stderr)
		if code != 2 || !strings.Contains(stderr, "--json and --save-model name the same file") {
			t.Errorf("--json %s --save-model %s: exit %d, %q; want a usage error saying they name the same file", c[0], c[1], code, stderr)
		}
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
