package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRollbackOfNoModelAtPrevNamesItsField: a model rollback whose .prev
// is a regular file that is no model (garbage, a model file cut short, an
// empty file) was refused in words naming the file ("previous model: load
// model …") but with no field, while a folder, a named pipe or a link loop
// there, and a push naming such a file, carry config.model.path. It now
// carries the same field; the model in force, its file and the .prev stay.
// Nothing at .prev is still "no previous model", without a field (real
// mosquitto, real files).
func TestRollbackOfNoModelAtPrevNamesItsField(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // a rollback's refusal words and field, on paths TestModelCommandRefusalsNameTheirField shares
	op, r, d, det := startModelPushRig(t, "cell83")
	path, data := modelPathInOwnFolder(t, op, r, "cell83", "line.safetensors")
	prev := PreviousModelPath(path)
	id, th := det.Info().ID, d.ModelInfo().ImageThreshold
	n := 0
	rollback := func(what string, at []byte, field any, lead string) {
		t.Helper()
		if at != nil {
			if err := os.WriteFile(prev, at, 0o600); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Remove(prev); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		n++
		rep := op.reply("cell83", "rollback", fmt.Sprintf(`{"id":"rb-%d","target":"model"}`, n), 2*time.Minute)
		t.Logf("rollback %s: %v", what, rep)
		if rep["ok"] != false || rep["code"] != "failed" || rep["field"] != field {
			t.Errorf("rollback %s: %v, want code failed, field %v", what, rep, field)
		}
		if msg := fmt.Sprint(rep["error"]); !strings.HasPrefix(msg, lead) {
			t.Errorf("rollback %s: error %q, want it to start %q", what, msg, lead)
		}
		if info := d.ModelInfo(); info.ID != id || info.ImageThreshold != th {
			t.Errorf("rollback %s: model %s threshold %g in force, want %s at %g", what, info.ID, info.ImageThreshold, id, th)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
			t.Errorf("rollback %s: model file %s changed (%d bytes, %v), want the %d it held", what, path, len(got), err, len(data))
		}
		if at == nil {
			return
		}
		if got, err := os.ReadFile(prev); err != nil || !bytes.Equal(got, at) {
			t.Errorf("rollback %s: %s changed (%d bytes, %v), want the %d put there", what, prev, len(got), err, len(at))
		}
	}
	lead := "model unchanged (" + id + "): previous model: load model " + prev + ": "
	rollback("with garbage text at .prev", []byte("not a model, just some words\n"), "config.model.path", lead)
	rollback("with a model file cut short at .prev", data[:len(data)/2], "config.model.path", lead)
	rollback("with an empty file at .prev", []byte{}, "config.model.path", lead)
	rollback("with nothing at .prev", nil, nil, "model unchanged ("+id+"): no previous model to roll back to")
	r.moreInspections(2)
}

// TestRollbackOverTheBudgetNamesItsField: a model rollback whose .prev is
// a sound model file over model.memory_budget was refused in the load's
// words with no field, while a push naming such a file is refused under
// config.model.memory_budget. It now carries that field, with what to do;
// the model in force, its file and the .prev stay (real mosquitto, real
// files: a d=32 model at .prev, a d=16 one in force).
func TestRollbackOverTheBudgetNamesItsField(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // a rollback's refusal words and field
	op, r, d, det := startModelPushRig(t, "cell47")
	big, b := filepath.Join(r.dir, "state", "model.safetensors"), det.Info().StateBytes
	data, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	// The smaller model: fitted by a push naming a file that is not
	// there (model.features 16), then in force; the larger one kept at
	// its .prev.
	small := filepath.Join(r.dir, "small.safetensors")
	if rep := op.reply("cell47", "config", `{"id":"fit","config":{"model":{"path":"`+small+`"}}}`, 120*time.Second); rep["ok"] != true {
		t.Fatalf("push fitting the smaller model: %v", rep)
	}
	prev := PreviousModelPath(small)
	if err := os.WriteFile(prev, data, 0o600); err != nil {
		t.Fatal(err)
	}
	in := d.ModelInfo()
	mid := (max(in.StateBytes, 1<<20) + b) / 2 // a budget takes 1 MiB at least
	if !(in.StateBytes < mid && mid < b) {
		t.Fatalf("no budget between the smaller model (%d bytes) and the larger (%d bytes) to try", in.StateBytes, b)
	}
	if rep := op.reply("cell47", "config", fmt.Sprintf(`{"id":"mid","config":{"model":{"memory_budget":"%d"}}}`, mid), 120*time.Second); rep["ok"] != true {
		t.Fatalf("push of a budget the model in force fits: %v", rep)
	}
	smallData, err := os.ReadFile(small)
	if err != nil {
		t.Fatal(err)
	}
	rep := op.reply("cell47", "rollback", `{"id":"rb","target":"model"}`, 2*time.Minute)
	t.Logf("rollback: %v", rep)
	msg := fmt.Sprint(rep["error"])
	if rep["ok"] != false || rep["code"] != "failed" || rep["field"] != "config.model.memory_budget" {
		t.Errorf("rollback of a .prev over the budget: %v, want code failed, field config.model.memory_budget", rep)
	}
	if lead := "model unchanged (" + in.ID + "): previous model: "; !strings.HasPrefix(msg, lead) || !strings.Contains(msg, "load model "+prev+": ") ||
		!strings.Contains(msg, "over the memory budget") || !strings.Contains(msg, "raise model.memory_budget") {
		t.Errorf("rollback of a .prev over the budget: error %q, want %q…, naming %s, over the memory budget, and what to do", msg, lead, prev)
	}
	if got := d.ModelInfo().ID; got != in.ID {
		t.Errorf("model %s in force after the rollback was refused, want %s", got, in.ID)
	}
	if got, err := os.ReadFile(small); err != nil || !bytes.Equal(got, smallData) {
		t.Errorf("model file %s changed (%d bytes, %v)", small, len(got), err)
	}
	if got, err := os.ReadFile(prev); err != nil || !bytes.Equal(got, data) {
		t.Errorf("%s changed (%d bytes, %v)", prev, len(got), err)
	}
}
