package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/model"
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

// A model refused for its size is sound: config check and the start file
// it under model.memory_budget and say what to change, not "fit one" under
// model.path (a new user's trial: the advice to refit a model inspectd had
// fitted itself).
func TestModelOverBudgetNamesTheBudget(t *testing.T) {
	det := syntheticDetector(t)
	cfg := testDefaults(t)
	cfg.Model.Path = filepath.Join(t.TempDir(), "m.safetensors")
	if err := det.Save(cfg.Model.Path); err != nil {
		t.Fatal(err)
	}
	cfg.Model.MemoryBudget = config.FixedMemoryBudget(config.Size(det.Info().StateBytes / 2))
	var found bool
	for _, f := range Preflight(cfg, testLogger(t)) {
		if f.Field == "model.path" && f.Fatal {
			t.Errorf("filed under model.path: %s", f)
		}
		if f.Field == "model.memory_budget" {
			found = f.Fatal && strings.Contains(f.Msg, "over the memory budget") && strings.Contains(f.Msg, "raise model.memory_budget")
			if !found {
				t.Errorf("finding: %s", f)
			}
		}
	}
	if !found {
		t.Error("config check does not name model.memory_budget")
	}
	mopts, err := ModelOptions(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = openDetector(context.Background(), cfg, mopts, RunOptions{Logger: testLogger(t)})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "model.memory_budget" || !errors.Is(err, model.ErrOverBudget) {
		t.Errorf("start: %v, want a model.memory_budget error wrapping model.ErrOverBudget", err)
	}
}

// A start that fails because state_dir is a file says so once; it does
// not claim a configuration push was reverted (a trial: an ERROR line
// "configuration push waiting for config-confirm does not start;
// reverted" with push="", though nothing had been pushed).
func TestStateDirFileNoRevertClaim(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.WriteFile(state, []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "inspectd.yaml")
	if err := os.WriteFile(cfgPath, []byte("state_dir: "+state+"\nhttp: {listen: \"\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	err := Run(context.Background(), RunOptions{ConfigPath: cfgPath, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil || !strings.Contains(err.Error(), "state_dir "+state) {
		t.Fatalf("Run: %v, want the state_dir error", err)
	}
	if strings.Contains(logs.String(), "revert") || strings.Contains(logs.String(), "level=ERROR") || strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("log claims a revert:\n%s", logs.String())
	}
}

// The configuration's least ROI side is the model's least frame side
// (config may not import model, so the number is written twice).
func TestMinROISideIsMinFrameSide(t *testing.T) {
	if config.MinROISide != model.MinFrameSide {
		t.Errorf("config.MinROISide %d, model.MinFrameSide %d", config.MinROISide, model.MinFrameSide)
	}
}
