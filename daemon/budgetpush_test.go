package daemon

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPushMeasuresTheModelFileItNames: a push naming a model file whose
// scoring state is over model.memory_budget is refused by the load, but
// its dry run answered ok (it read the file's header and checksum, not
// its size); and a push naming another model file together with a new
// budget was measured against the model in force, which it replaces: a
// smaller model pushed with the budget lowered to fit it was refused,
// dry run and push. Now the dry run refuses an over-budget file in the
// push's words and field (config.model.memory_budget), a larger file
// pushed with a budget that holds it is applied, the same file with a
// budget below it refused, and the smaller model with the lower budget
// applied (real mosquitto, real files: a d=32 model and a d=16 one).
func TestPushMeasuresTheModelFileItNames(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, det := startModelPushRig(t, "cell45")
	big, b := filepath.Join(r.dir, "state", "model.safetensors"), det.Info().StateBytes
	// The smaller model: fitted by a push naming a file that is not there
	// (model.features 16), then in force.
	small := filepath.Join(r.dir, "small.safetensors")
	if rep := op.reply("cell45", "config", `{"id":"fit","config":{"model":{"path":"`+small+`"}}}`, 120*time.Second); rep["ok"] != true {
		t.Fatalf("push fitting the smaller model: %v", rep)
	}
	s := d.ModelInfo().StateBytes
	lo := max(s, 1<<20) // a budget takes 1 MiB at least
	mid := (lo + b) / 2
	t.Logf("scoring state: %s %d bytes, %s %d bytes; budgets %d, %d", big, b, small, s, lo, mid)
	if !(lo < mid && mid < b) {
		t.Fatalf("no budgets between the smaller model (%d bytes) and the larger (%d bytes) to try", s, b)
	}
	push := func(id, config string, dry bool) map[string]any {
		t.Helper()
		rep := op.reply("cell45", "config", fmt.Sprintf(`{"id":%q,"config":%s,"dry_run":%v}`, id, config, dry), 120*time.Second)
		t.Logf("%s (dry_run %v): %v", config, dry, rep)
		return rep
	}
	budget := func(n int64) string { return `"memory_budget":"` + fmt.Sprint(n) + `"` }
	// refused checks that the dry run and the push of config are both
	// refused under config.model.memory_budget in the same words, naming
	// the file, and that the model in force stays.
	refused := func(id, config string) {
		t.Helper()
		before := d.ModelInfo().ID
		dry, real := push(id+"-dry", config, true), push(id, config, false)
		dryMsg, _ := strings.CutPrefix(fmt.Sprint(dry["error"]), "dry run: applying this would be refused: ")
		realMsg, _ := strings.CutPrefix(fmt.Sprint(real["error"]), "not applied; the previous configuration is in force: ")
		if real["ok"] != false || real["field"] != "config.model.memory_budget" || !strings.Contains(realMsg, "over the memory budget") || !strings.Contains(realMsg, big) {
			t.Errorf("push of %s: %v, want it refused under config.model.memory_budget, naming %s", config, real, big)
		}
		if dry["ok"] != false || dry["code"] != real["code"] || dry["field"] != real["field"] || dryMsg != realMsg {
			t.Errorf("dry run of %s: %v\nwant it refused as the push is: %v", config, dry, real)
		}
		if got := d.ModelInfo().ID; got != before {
			t.Errorf("model %s in force after %s was refused, want %s", got, config, before)
		}
	}
	applied := func(id, config, want string) {
		t.Helper()
		if dry := push(id+"-dry", config, true); dry["ok"] != true {
			t.Errorf("dry run of %s: %v, want ok", config, dry)
		}
		if rep := push(id, config, false); rep["ok"] != true || rep["applied"] != true {
			t.Errorf("push of %s: %v, want it applied", config, rep)
		}
		if got := d.Config().Model.Path; got != want {
			t.Errorf("model.path %s in force after %s, want %s", got, config, want)
		}
	}

	// The smaller model in force under a budget between the two.
	if rep := push("mid", `{"model":{`+budget(mid)+`}}`, false); rep["ok"] != true {
		t.Fatalf("push of a budget the model in force fits: %v", rep)
	}
	// The larger file alone: over the budget in force.
	refused("big", `{"model":{"path":"`+big+`"}}`)
	// The larger file with a lower budget (still above the model in
	// force): over it.
	refused("big-lo", `{"model":{"path":"`+big+`",`+budget(lo)+`}}`)
	// The larger file, over the budget in force, with a budget that holds
	// it.
	applied("big-hi", `{"model":{"path":"`+big+`",`+budget(2*b)+`}}`, big)
	if got := d.ModelInfo().ID; got != det.Info().ID {
		t.Errorf("model %s in force after the larger file was applied, want %s", got, det.Info().ID)
	}
	// The smaller file with a budget below the larger model in force but
	// above its own: measured against the file it names.
	applied("small-mid", `{"model":{"path":"`+small+`",`+budget(mid)+`}}`, small)
	if got := d.ModelInfo().StateBytes; got != s {
		t.Errorf("model of %d bytes in force after the smaller file was applied, want %d", got, s)
	}
}
