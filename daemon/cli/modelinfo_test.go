package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/padim"
)

// `inspectd model info FILE` run outside its install without
// INSPECTD_SHARE said only "model.backbone: bundled backbone mobilenet_v1
// … not found" and exit 1: nothing of the file's own recipe, thresholds,
// grid or state. It now describes the file from itself and says in one
// line what it could not check and why, exit 0.
func TestModelInfoWithoutTheBackbone(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	dir, cfg, m := fitSmallModel(t)
	code, withShare, errs := runCaptureCmd(t, "model", "info", "--config", cfg, m)
	if code != 0 {
		t.Fatalf("model info with the backbone: exit %d, %s", code, errs)
	}
	_, jsonShare, _ := runCaptureCmd(t, "model", "info", "--config", cfg, "--json", m)

	t.Setenv("INSPECTD_SHARE", "") // as unset: the test binary has no share folder beside it
	code, out, errs := runCaptureCmd(t, "model", "info", "--config", cfg, m)
	if code != 0 {
		t.Fatalf("model info without the backbone: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	// Every line as with the backbone, but the backbone's own: its name
	// for its path.
	lines, want := strings.Split(out, "\n"), strings.Split(withShare, "\n")
	if len(lines) != len(want) {
		t.Fatalf("stdout\n%s\nwant the lines of\n%s", out, withShare)
	}
	for i := range lines {
		if strings.HasPrefix(want[i], "backbone ") {
			if !strings.HasPrefix(lines[i], "backbone         mobilenet_v1 (sha256 ") {
				t.Errorf("line %q: want the bundled backbone named", lines[i])
			}
			continue
		}
		if lines[i] != want[i] {
			t.Errorf("line %q, with the backbone %q", lines[i], want[i])
		}
	}
	note := "NOTE: not checked that the backbone it was fitted on (mobilenet_v1, sha256 "
	if n := strings.Count(errs, "\n"); !strings.HasPrefix(errs, note) || n != 1 || !strings.Contains(errs, "set INSPECTD_SHARE to the folder that holds it") {
		t.Errorf("stderr %q: want one line, %q…, naming INSPECTD_SHARE", errs, note)
	}
	code, out, errs = runCaptureCmd(t, "model", "info", "--config", cfg, "--json", m)
	var got, with model.Info
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || json.Unmarshal([]byte(jsonShare), &with) != nil || !strings.HasPrefix(errs, note) {
		t.Fatalf("--json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if got.Recipe != with.Recipe || got.ImageThreshold != with.ImageThreshold || got.GridH != with.GridH || got.StateBytes != with.StateBytes ||
		got.ID != with.ID || got.BackboneSHA256 != with.BackboneSHA256 || got.Backbone != "mobilenet_v1" {
		t.Errorf("--json without the backbone %+v, with it %+v", got, with)
	}
	// A file that is not a model is still refused, in its own words.
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCaptureCmd(t, "model", "info", "--config", cfg, bad); code != 1 || !strings.Contains(errs, bad) || strings.Contains(errs, "NOTE") {
		t.Errorf("a file that is not a model: exit %d, stderr %q", code, errs)
	}
}

// A model fitted on a backbone that the configuration cannot run (here
// model.backbone names another .tflite file) was refused by model info
// as by a start; it is now described, with a warning that says why
// inspectd would not load it under this configuration.
func TestModelInfoWithAnotherBackbone(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	dir, cfg, m := fitSmallModel(t)
	// A copy of the second bundled backbone: a file of the user's.
	b, err := os.ReadFile(filepath.Join(os.Getenv("INSPECTD_SHARE"), "mobilenet_v2_1.0_224_quant.tflite"))
	if err != nil {
		t.Skipf("no second backbone: %v", err)
	}
	other := filepath.Join(dir, "other.tflite")
	if err := os.WriteFile(other, b, 0o644); err != nil {
		t.Fatal(err)
	}
	v2 := filepath.Join(dir, "v2.yaml")
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v2, append(text, "model:\n  backbone: "+other+"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCaptureCmd(t, "model", "info", "--config", v2, m)
	if code != 0 || !strings.Contains(out, "recipe           ") || !strings.Contains(out, "thresholds       image ") ||
		!strings.Contains(errs, "WARNING: inspectd would not load it under this configuration: ") || !strings.Contains(errs, "fitted on the bundled backbone mobilenet_v1, but model.backbone is "+other) ||
		strings.Count(errs, "\n") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// `inspectd model info FILE` without the backbone (no INSPECTD_SHARE)
// said nothing of a file over model.memory_budget, which it warns of with
// the backbone, and gave its precision as float32 where the configuration
// (auto, on a CPU with F16C) scores in float16, as model info with the
// backbone says. And a model.backbone naming a .tflite file that is not
// there was blamed on the backbone's name ("fitted on the bundled
// backbone mobilenet_v1, but model.backbone is …") before the missing
// file: the file, with its key, now comes first.
func TestModelInfoWithoutTheBackboneWarnsAsWithIt(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	dir, cfg, m := fitSmallModel(t)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeCfg := func(name, model string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, append(text, "model:\n"+model...), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	small := writeCfg("small.yaml", "  memory_budget: 1MiB\n")
	_, jsonShare, _ := runCaptureCmd(t, "model", "info", "--config", cfg, "--json", m)
	var with model.Info
	if err := json.Unmarshal([]byte(jsonShare), &with); err != nil {
		t.Fatalf("--json with the backbone: %v: %q", err, jsonShare)
	}
	if padim.HalfSupported() && with.Precision != "float16" {
		t.Fatalf("with the backbone, precision auto on a CPU with F16C: %q", with.Precision)
	}
	overBudget := "WARNING: its scoring state, "
	if _, _, errs := runCaptureCmd(t, "model", "info", "--config", small, m); !strings.Contains(errs, overBudget) {
		t.Fatalf("with the backbone, over the budget: stderr %q", errs)
	}

	// A .tflite file that is not there, with the backbone installed.
	missing := filepath.Join(dir, "gone.tflite")
	gone := writeCfg("gone.yaml", "  backbone: "+missing+"\n")
	code, _, errs := runCaptureCmd(t, "model", "info", "--config", gone, m)
	head := "WARNING: inspectd would not load it under this configuration: load model " + m + ": model.backbone " + missing + " does not exist; the model was fitted on the bundled backbone mobilenet_v1: set model.backbone to mobilenet_v1"
	if code != 0 || !strings.HasPrefix(errs, head) || strings.Count(errs, "\n") != 1 {
		t.Errorf("model.backbone a missing file: exit %d, stderr %q, want one line %q…", code, errs, head)
	}

	t.Setenv("INSPECTD_SHARE", "") // as unset: the test binary has no share folder beside it
	code, out, errs := runCaptureCmd(t, "model", "info", "--config", cfg, "--json", m)
	var got model.Info
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("--json without the backbone: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if got.Precision != with.Precision {
		t.Errorf("without the backbone, precision %q; with it %q", got.Precision, with.Precision)
	}
	code, out, errs = runCaptureCmd(t, "model", "info", "--config", small, m)
	if code != 0 || !strings.Contains(out, "thresholds       image ") || !strings.Contains(errs, overBudget) || !strings.Contains(errs, "is over model.memory_budget (1048576 bytes)") ||
		!strings.Contains(errs, "NOTE: not checked that the backbone it was fitted on") || strings.Count(errs, "\n") != 2 {
		t.Errorf("without the backbone, over the budget: exit %d, stdout %q, stderr %q: want the budget's warning and the note", code, out, errs)
	}
}

// fitSmallModel fits a model on a small exported set with the tests'
// configuration and returns the folder, the configuration file and the
// model file.
func fitSmallModel(t *testing.T) (dir, cfg, m string) {
	t.Helper()
	dir = t.TempDir()
	set := filepath.Join(dir, "set")
	exportSet(t, set, 5, 2, 3)
	cfg = evalConfig(t, dir)
	m = filepath.Join(dir, "m.safetensors")
	if code, _, stderr := runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "--out", m); code != 0 {
		t.Fatalf("fit: exit %d, %s", code, stderr)
	}
	return dir, cfg, m
}

// `inspectd model info` of a model fitted with model.threshold.value
// said "thresholds image 7, pixel 5.25 (from 0 good images)", as if the
// fit had seen none; it names the value now, as fit and eval do, and
// speaks of one good image in the singular.
func TestModelInfoThresholdFromTheValue(t *testing.T) {
	for _, c := range []struct {
		images, heldOut int
		want            string
	}{
		{0, 0, "thresholds       image 7, pixel 5.25 (model.threshold.value at the fit)"},
		{1, 0, "thresholds       image 7, pixel 5.25 (from 1 good image)"},
		{40, 0, "thresholds       image 7, pixel 5.25 (from 40 good images)"},
	} {
		var out strings.Builder
		env := &Env{Stdout: &out, Stderr: &out}
		writeModelInfo(env, model.Info{Recipe: "plain", ImageThreshold: 7, PixelThreshold: 5.25, ThresholdImages: c.images, HeldOut: c.heldOut}, "")
		if !strings.Contains(out.String(), c.want+"\n") {
			t.Errorf("%d threshold images: want %q in\n%s", c.images, c.want, &out)
		}
	}
}

// `inspectd model info` of a model fitted with the median filter (a
// "-med" recipe) said so only inside the recipe's name; the backbone line
// says it in words, and a model without it says nothing of it.
func TestModelInfoSaysTheMedianFilter(t *testing.T) {
	for _, denoise := range []bool{true, false} {
		var out strings.Builder
		env := &Env{Stdout: &out, Stderr: &out}
		writeModelInfo(env, model.Info{Recipe: "v1-squash-med-std-z", Resize: "squash", Denoise: denoise, ImageThreshold: 7, PixelThreshold: 5}, "")
		if got := strings.Contains(out.String(), "resize squash, every frame filtered by a 3×3 median first\n"); got != denoise {
			t.Errorf("denoise %v: the filter said %v in\n%s", denoise, got, &out)
		}
	}
}
