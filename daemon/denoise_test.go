package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/model"
)

// TestDaemonRunsAMedianFilteredModel: a model fitted with the 3×3 median
// filter (a "-med" recipe) is run by the daemon with the filter, and its
// "model ready" log names the recipe, as the README says the daemon logs
// the model's Info (a trial found the log naming neither the recipe nor
// the filter, only its id, grid and threshold).
func TestDaemonRunsAMedianFilteredModel(t *testing.T) {
	t.Parallel()
	cfg := testDefaults(t)
	cfg.Model.Recipe = "v1-squash-med-std-z"
	opts, err := ModelOptions(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.Features, opts.MinFeatures = 32, 32
	syn, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 7, NormalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	det, _, err := model.Fit(context.Background(), opts, FrameSource(syn, model.MinZScoreImages), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	frames := filepath.Join(t.TempDir(), "frames")
	writePNGs(t, frames, 3, 1, false)
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		return strings.Replace(r.baseYAML("cell1"), syntheticLine,
			"capture: {source: folder, folder: {path: "+frames+", watch: true}}", 1)
	})
	d := r.daemon()
	if i := d.ModelInfo(); i.Recipe != "v1-squash-med-std-z" || !i.Denoise {
		t.Errorf("model in force: recipe %q, denoise %v; want v1-squash-med-std-z with the filter", i.Recipe, i.Denoise)
	}
	r.waitFor("3 inspections", func() bool { return r.inspections() >= 3 })
	logs := r.logs.String()
	i := strings.Index(logs, "model ready")
	if i < 0 {
		t.Fatalf("no model ready line:\n%s", logs)
	}
	line, _, _ := strings.Cut(logs[i:], "\n")
	if !strings.Contains(line, "recipe=v1-squash-med-std-z") || !strings.Contains(line, "median_filter=3x3") {
		t.Errorf("model ready line %q: want recipe=v1-squash-med-std-z and median_filter=3x3", line)
	}
}
