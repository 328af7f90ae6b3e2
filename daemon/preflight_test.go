package daemon

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// config check loads the model to see that it loads, not to time the
// backbone's variants: with optimize auto on a fresh state folder that
// took 6 s and logged INFO lines among its output (a trial).
func TestPreflightLoadsWithoutTiming(t *testing.T) {
	det := syntheticDetector(t)
	cfg := testDefaults(t)
	cfg.Model.Path = filepath.Join(t.TempDir(), "m.safetensors")
	cfg.Model.Optimize = "auto"
	if err := det.Save(cfg.Model.Path); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var loads bool
	for _, f := range Preflight(cfg, slog.New(slog.NewTextHandler(&logs, nil))) {
		if f.Fatal {
			t.Errorf("fatal finding: %s", f)
		}
		loads = loads || (f.Field == "model.path" && strings.Contains(f.Msg, " loads: "))
	}
	if !loads || strings.Contains(logs.String(), "backbone") {
		t.Errorf("model loads: %v; log:\n%s", loads, logs.String())
	}
}
