package remote

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestMemoryBudgetOfAnotherModelFile: a push naming another model file
// with a model.memory_budget below the model in force (a smaller model,
// the budget lowered to fit it) was refused, dry run and push alike, as
// "below the scoring state of the model in force": the model the push
// replaces, not the one it loads. It now reaches the apply, whose load
// (and the dry run, from the file's header) measures the file it names;
// the same budget without a new file is still refused for the model in
// force.
func TestMemoryBudgetOfAnotherModelFile(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	r.mem.Store(512 << 20)
	state := r.ctl.ModelInfo().StateBytes
	if state/2 < 1<<20 {
		t.Fatalf("test model state %d bytes: a budget below it is below the 1 MiB a budget takes at least", state)
	}
	small := filepath.Join(t.TempDir(), "small.safetensors")
	below := fmt.Sprint(state / 2)
	push := `{"model":{"path":"` + small + `","memory_budget":"` + below + `"}}`
	if rep := r.do("config", `{"id":"d1","config":`+push+`,"dry_run":true}`); !rep.OK {
		t.Errorf("dry run of another model file with a budget below the model in force: %+v, want it passed to the apply's check", rep)
	}
	if rep := r.do("config", `{"id":"p1","config":`+push+`}`); !rep.OK {
		t.Errorf("push of another model file with a budget below the model in force: %+v, want it applied", rep)
	}
	if n := r.ctl.applies.Load(); n != 1 {
		t.Errorf("%d applies, want 1", n)
	}
	// The file in force named again (no new file): measured against the
	// model in force, as before.
	mustFail(t, r.do("config", `{"id":"p2","config":{"model":{"memory_budget":"`+fmt.Sprint(state*3/4)+`"}}}`), CodeInvalid,
		"model.memory_budget", "below the", "scoring state of the model in force")
}
