package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
)

// TestPushCheckLogsNoRecipeSearchWarnings: with no share folder and
// model.backbone naming a .tflite file, a push's check (its dry run too)
// logged "bundled backbone missing: the recipe search leaves it out" once
// per bundled backbone, though it runs no search: it took ModelOptions for
// the budget. A dry run now logs none (real mosquitto, real files).
func TestPushCheckLogsNoRecipeSearchWarnings(t *testing.T) {
	wordsOnly(t)
	tflite := filepath.Join(os.Getenv("INSPECTD_SHARE"), "mobilenet_quant_v1_224.tflite")
	if _, err := os.Stat(tflite); err != nil {
		t.Skipf("no bundled backbone to name by its path: %v", err)
	}
	det := syntheticDetector(t)    // fitted with the bundled backbone, that file
	t.Setenv("INSPECTD_SHARE", "") // bundled backbones missing: only model.backbone's file
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b.URL)
	const dev = "cell48"
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		y := remoteYAML(b.URL, dev, "")(r)
		return strings.Replace(y, "model: {features: 16, min_features: 16}", "model: {features: 16, min_features: 16, backbone: "+tflite+"}", 1)
	})
	op.awaitCommands(r, dev)
	data, err := os.ReadFile(filepath.Join(r.dir, "state", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	other := plainFile(t, r.dir, "other.safetensors", string(data))
	const searchWarning = "bundled backbone missing: the recipe search leaves it out"
	before := strings.Count(r.logs.String(), searchWarning)
	rep := op.reply(dev, "config", `{"id":"dry","config":{"model":{"path":"`+other+`"}},"dry_run":true}`, 60*time.Second)
	if rep["ok"] != true {
		t.Fatalf("dry run of model.path %s: %v, want it answered ok", other, rep)
	}
	if n := strings.Count(r.logs.String(), searchWarning) - before; n != 0 {
		t.Errorf("the dry run logged %q %d times, want none: it runs no search; log:\n%s", searchWarning, n, r.logs.String())
	}
}
