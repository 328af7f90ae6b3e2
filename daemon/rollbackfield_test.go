package daemon

import (
	"bytes"
	"fmt"
	"os"
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
