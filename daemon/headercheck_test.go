package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/daemon/remote"
	"github.com/inspectd/inspectd/model"
)

// TestHeaderCheckLeavesWhatIsNotTheHeadersVerdictToTheLoad: the push's
// header check (modelHeaderError, since 6e1d39b and fe5589a) refused a
// model file that could not be opened (EACCES, EIO) as no model, code
// invalid, though the pushed value may be right; and a file with a sound
// header whose checksum fails and whose state is over the budget as over
// the budget, so that one raised the budget to hear of the checksum next.
// Now an open refused goes to the load as before (nil here, code failed
// there), and a checksum that fails is said first, as the load's refusal
// says it (loadRefusal), not with code invalid.
func TestHeaderCheckLeavesWhatIsNotTheHeadersVerdictToTheLoad(t *testing.T) {
	det := syntheticDetector(t)
	dir := t.TempDir()
	cfg := testDefaults(t)

	// A regular file whose open fails: root opens a 0000 file, but not a
	// write-only /proc/sys entry.
	unreadable := "/proc/sys/vm/drop_caches"
	if os.Geteuid() != 0 {
		unreadable = plainFile(t, dir, "locked.safetensors", "x")
		if err := os.Chmod(unreadable, 0); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := os.Open(unreadable); err == nil {
		f.Close()
		t.Skipf("%s opens here: no regular file whose open fails", unreadable)
	}
	cfg.Model.Path = unreadable
	if err := modelHeaderError(cfg, 0); err != nil {
		t.Errorf("header check of %s, which cannot be opened: %v; want nil (the load refuses it, code failed)", unreadable, err)
	}

	// A sound header, a failed checksum, a state over the budget.
	m := filepath.Join(dir, "corrupt.safetensors")
	if err := det.Save(m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff // the last data byte: the header stays sound
	if err := os.WriteFile(m, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Model.Path = m
	budget := det.Info().StateBytes / 2
	err = modelHeaderError(cfg, budget)
	var re *remote.Error
	switch {
	case err == nil:
		t.Fatalf("header check of a corrupt file over the budget: nil, want it refused for its checksum")
	case errors.Is(err, model.ErrOverBudget):
		t.Errorf("header check of a corrupt file over the budget: %v; want its checksum said first, not the budget", err)
	case !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), m+" is not a model file inspectd can load"):
		t.Errorf("header check of a corrupt file over the budget: %v; want it to say %s is not a model file inspectd can load, checksum mismatch", err, m)
	case errors.As(err, &re) && re.Code == remote.CodeInvalid:
		t.Errorf("header check of a corrupt file over the budget: code invalid; want the load's code (failed): %v", err)
	}
}
