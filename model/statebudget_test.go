package model

import (
	"errors"
	"testing"

	"github.com/inspectd/inspectd/model/padim"
)

// budgetAsLoad checks that CheckStateBudget, after padim.Load's own check
// (the dry run's reading of a model file's header), refuses the model
// file at path under each budget exactly when Load refuses it for its
// size, in Load's words: a dry run of a push answered ok for a file the
// push's load then refused as over model.memory_budget.
func budgetAsLoad(t *testing.T, path string, opts Options, budgets ...int64) {
	t.Helper()
	for _, b := range budgets {
		o := opts
		o.MemoryBudget = b
		det, lerr := Load(path, o)
		if lerr == nil {
			det.Close()
		}
		pm, err := padim.Load(path, padim.LoadOptions{MaxStateBytes: b})
		if err == nil {
			err = CheckStateBudget(path, pm, b)
			pm.Close()
		}
		switch {
		case errors.Is(lerr, ErrOverBudget) != errors.Is(err, ErrOverBudget):
			t.Errorf("budget %d: Load: %v; from the header: %v", b, lerr, err)
		case errors.Is(lerr, ErrOverBudget) && err.Error() != lerr.Error():
			t.Errorf("budget %d: from the header %q, want Load's words %q", b, err, lerr)
		case lerr != nil && !errors.Is(lerr, ErrOverBudget):
			t.Errorf("budget %d: Load: %v", b, lerr)
		}
	}
}
