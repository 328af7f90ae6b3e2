package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With no share folder and model.backbone naming a .tflite file, `inspectd
// bench --model FILE`, its camera replay and `inspectd eval --model FILE`
// logged "bundled backbone missing: the recipe search leaves it out" once
// per bundled backbone, though they load a model and run no search (as
// model info did before 27c2d0b). They log none. The model file named is
// not there: its load fails after the options are taken, which is all
// this looks at.
func TestLoadingCommandsLogNoRecipeSearchWarnings(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "own.yaml")
	y := "state_dir: " + filepath.Join(dir, "state") + "\nmodel:\n  backbone: " + filepath.Join(dir, "mine.tflite") + "\n"
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	set := filepath.Join(dir, "set")
	exportSet(t, set, 3, 2, 3)
	rec := filepath.Join(dir, "r.mjpeg")
	if code, _, errs := runCaptureCmd(t, "capture", "encode", "--out", rec, "--size", "64x48", "--frames", "2"); code != 0 {
		t.Fatalf("capture encode: exit %d: %s", code, errs)
	}
	m := filepath.Join(dir, "none.safetensors")
	t.Setenv("INSPECTD_SHARE", "") // as unset: the test binary has no share folder beside it
	const searchWarning = "bundled backbone missing: the recipe search leaves it out"
	for _, args := range [][]string{
		{"bench", "--no-mqtt", "--count", "5", "--config", cfg, "--model", m},
		{"bench", "--no-mqtt", "--count", "5", "--config", cfg, "--camera-replay", rec, "--model", m},
		{"eval", "--config", cfg, "--data", set, "--model", m},
	} {
		code, _, errs := runCaptureCmd(t, args...)
		t.Logf("%v: exit %d, %s", args, code, errs)
		if !strings.Contains(errs, m) {
			t.Errorf("%v: stderr %q, want the missing model file %s named (the options taken before)", args, errs, m)
		}
		if strings.Contains(errs, searchWarning) {
			t.Errorf("%v: stderr %q, want no %q: no recipe search runs", args, errs, searchWarning)
		}
	}
}
