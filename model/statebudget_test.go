package model

import (
	"errors"
	"fmt"
	"strings"
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

// The first refusal of a model over the memory budget names all that it
// needs: a budget under the patch scale's share was refused with that
// share alone (61.6 MiB), and a budget raised to it was refused again for
// all the scales, in other words. Both refusals, from Load and from the
// header as a dry run reads it, now give the total of all scales in bytes
// and MiB with each scale's share, and read alike.
func TestOverBudgetNamesAllScales(t *testing.T) {
	opts := contextOptions(t, 8)
	det, _, _, path := fitAndSave(t, opts)
	total := det.Info().StateBytes
	patch := padim.StateBytes(56*56, 32)
	if total <= patch {
		t.Fatalf("state %d bytes, want more than the patch scale's %d", total, patch)
	}
	wants := []string{
		fmt.Sprintf("scoring state needs %d bytes (%.1f MiB: ", total, float64(total)/(1<<20)),
		fmt.Sprintf("patch grid 56x56 d=32 %d bytes", patch),
		fmt.Sprintf("context grid 7x7 d=64 %d bytes", padim.StateBytes(7*7, 64)),
	}
	var words []string
	for _, b := range []int64{patch - 1, total - 1} {
		o := opts
		o.MemoryBudget = b
		_, lerr := Load(path, o)
		pm, herr := padim.Load(path, padim.LoadOptions{MaxStateBytes: b})
		if herr == nil {
			herr = CheckStateBudget(path, pm, b)
			pm.Close()
		}
		for _, err := range []error{lerr, herr} {
			if !errors.Is(err, ErrOverBudget) {
				t.Fatalf("budget %d: %v, want a refusal over the memory budget", b, err)
			}
			budget := fmt.Sprintf("over the memory budget of %d bytes (%.1f MiB)", b, float64(b)/(1<<20))
			for _, w := range append(wants, budget, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("budget %d: %q lacks %q", b, err, w)
				}
			}
			words = append(words, strings.ReplaceAll(err.Error(), budget, "BUDGET"))
		}
	}
	for _, w := range words[1:] {
		if w != words[0] {
			t.Errorf("refusals differ beyond the budget: %q and %q", words[0], w)
		}
	}
	t.Log(words[0])
}
