package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBudgetRefusalNamesMemoryFraction: a push naming a model file over
// a budget that is auto (model.memory_fraction of the available memory)
// was refused under config.model.memory_budget, rightly, but advised only
// "raise model.memory_budget", which is "auto" and has nothing to raise
// (a new user's trial). The advice now names model.memory_fraction, with
// its value; a fixed budget's advice is as it was (real mosquitto, real
// files).
func TestBudgetRefusalNamesMemoryFraction(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, _, _ := startModelPushRig(t, "cell82")
	data, err := os.ReadFile(filepath.Join(r.dir, "state", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(r.dir, "big.safetensors")
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, model, want, not string }{
		{"auto", `"memory_budget":"auto","memory_fraction":0.0001`, "raise model.memory_fraction (0.0001: model.memory_budget auto is that share of the available memory), or set model.memory_budget to a size", "raise model.memory_budget"},
		{"fixed", `"memory_budget":"1MiB"`, "raise model.memory_budget for this box", "memory_fraction"},
	} {
		for _, dry := range []bool{true, false} {
			rep := op.reply("cell82", "config", fmt.Sprintf(`{"id":"%s-%v","config":{"model":{"path":%q,%s}},"dry_run":%v}`, c.name, dry, big, c.model, dry), 60*time.Second)
			t.Logf("push of %s with a budget %s (dry run %v): %v", big, c.name, dry, rep)
			msg := fmt.Sprint(rep["error"])
			if rep["ok"] != false || rep["code"] != "invalid" || rep["field"] != "config.model.memory_budget" ||
				!strings.Contains(msg, "over the memory budget") || !strings.Contains(msg, c.want) || strings.Contains(msg, c.not) {
				t.Errorf("push with a budget %s (dry run %v): %v\nwant code invalid, field config.model.memory_budget, advising %q", c.name, dry, rep, c.want)
			}
		}
	}
}
