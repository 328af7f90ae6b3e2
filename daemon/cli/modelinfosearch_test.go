package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With no share folder and model.backbone naming a .tflite file,
// `inspectd model info` logged "bundled backbone missing: the recipe
// search leaves it out" once per bundled backbone before its own
// output, though it runs no search. It logs none; fit, which searches,
// still logs them.
func TestModelInfoLogsNoRecipeSearchWarnings(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	dir, cfg, m := fitSmallModel(t)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tflite := filepath.Join(dir, "mine.tflite") // not there: model info says so, fit never gets to it
	own := filepath.Join(dir, "own.yaml")
	if err := os.WriteFile(own, append(text, "model:\n  backbone: "+tflite+"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INSPECTD_SHARE", "") // as unset: the test binary has no share folder beside it
	const searchWarning = "bundled backbone missing: the recipe search leaves it out"
	code, out, errs := runCaptureCmd(t, "model", "info", "--config", own, m)
	if code != 0 || !strings.Contains(out, "recipe ") || strings.Contains(errs, searchWarning) {
		t.Errorf("model info: exit %d, stdout %q, stderr %q: want its description and no %q", code, out, errs, searchWarning)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, errs = runCaptureCmd(t, "fit", "--data", empty, "--config", own, "--out", filepath.Join(dir, "new.safetensors"))
	if n := strings.Count(errs, searchWarning); n == 0 {
		t.Errorf("fit: stderr %q, want %q for each bundled backbone", errs, searchWarning)
	}
}
