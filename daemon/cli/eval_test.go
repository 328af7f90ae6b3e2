package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// eval takes several data sets and a second recipe, and prints and writes
// one table: every set with both recipes' figures, and their means.
func TestEvalSetsAndCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("four fits on exported synthetic sets")
	}
	dir := t.TempDir()
	var sets []string
	for i, name := range []string{"a", "b"} {
		out := filepath.Join(dir, name)
		code, _, stderr := runCaptureCmd(t, "capture", "export", "--out", out, "--train", "24", "--test", "10",
			"--width", "96", "--height", "72", "--defect-rate", "0.5", "--seed", string(rune('3'+i)))
		if code != 0 {
			t.Fatalf("export: %s", stderr)
		}
		sets = append(sets, out)
	}
	cfg := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+filepath.Join(dir, "state")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(dir, "eval.json")
	code, stdout, stderr := runCaptureCmd(t, "eval", "--config", cfg, "--data", sets[0], "--data", sets[1], "--recipe", "fixed",
		"--compare", "plain", "--features", "16", "--json", js)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"image AUROC", "pixel AUROC", "PRO", "region IoU", "F1-max", "false alarms", "misses", "ms/image",
		"v1-fit-std-z-ctx2", "plain", "mean"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep EvalReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Sets) != 2 || len(rep.Mean) != 2 || rep.Mean[1].Recipe != "plain" {
		t.Fatalf("report %+v", rep)
	}
	for _, s := range rep.Sets {
		if len(s.Results) != 2 || s.Results[0].Recipe != "v1-fit-std-z-ctx2" || s.Results[1].Recipe != "plain" {
			t.Fatalf("set %s: results %+v", s.Data, s.Results)
		}
		for _, r := range s.Results {
			if r.TestImages != 10 || r.TrainImages != 24 || r.ThresholdImages != 24 || !(r.ImageAUROC > 0) || !(r.PRO > 0) ||
				r.FalseAlarmRate < 0 || r.FalseAlarmRate > 1 || r.MissRate < 0 || r.MissRate > 1 || r.RegionIoU < 0 || r.RegionIoU > 1 {
				t.Errorf("set %s, recipe %s: %+v", s.Data, r.Recipe, r)
			}
		}
	}
	if code, _, stderr := runCaptureCmd(t, "eval", "--recipe", "fixed"); code != 2 || !strings.Contains(stderr, "--data is required") {
		t.Errorf("without --data: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCaptureCmd(t, "eval", "--data", sets[0], "--compare", "v9-fit-raw", "--config", cfg); code != 2 || !strings.Contains(stderr, `unknown backbone "v9"`) {
		t.Errorf("unknown compare recipe: exit %d, %s", code, stderr)
	}
}
