package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestModelCommandsKeepTheModelInForceWhereModelPathHoldsNone: with
// model.path moved aside (as a refusal of what was there advises) or a
// dangling link there, a threshold command answered ok, naming the
// previous threshold, but kept nothing as .prev, which stayed an older
// file: the next rollback brought back that one, not the model the
// command replaced; a rollback failed in the copy's words. The model in
// force is now saved from memory as .prev where model.path holds no file,
// so that a rollback brings back the model each command replaced (real
// mosquitto, real files).
func TestModelCommandsKeepTheModelInForceWhereModelPathHoldsNone(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // the commands' installs: TestModelCommandsKeepTheModelFileMode races them
	op, r, d, _ := startModelPushRig(t, "cell62")
	path := filepath.Join(r.dir, "state", "model.safetensors")
	aside := filepath.Join(r.dir, "aside.safetensors")
	th := d.ModelInfo().ImageThreshold
	n := 0
	command := func(name, args string) map[string]any {
		t.Helper()
		n++
		rep := op.reply("cell62", name, fmt.Sprintf(`{"id":"%s-%d"%s}`, name, n, args), time.Minute)
		if rep["ok"] != true {
			t.Fatalf("%s: %v", name, rep)
		}
		return rep
	}
	threshold := func(v float64) { command("threshold", fmt.Sprintf(`,"image":%g`, v)) }
	inForce := func(when string, want float64) {
		t.Helper()
		if got := d.ModelInfo().ImageThreshold; got != want {
			t.Errorf("%s: image threshold %g in force, want %g", when, got, want)
		}
	}
	moveAside := func() {
		t.Helper()
		if err := os.Rename(path, aside); err != nil {
			t.Fatal(err)
		}
	}

	threshold(1.5 * th) // .prev: the start's model
	moveAside()
	threshold(2 * th)
	command("rollback", `,"target":"model"`)
	inForce("rollback after a threshold command with model.path moved aside", 1.5*th)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(r.dir, "gone.safetensors"), path); err != nil {
		t.Fatal(err)
	}
	threshold(2.5 * th)
	command("rollback", `,"target":"model"`)
	inForce("rollback after a threshold command with a dangling link at model.path", 1.5*th)

	// A rollback with model.path moved aside: the model in force becomes
	// the previous one, so that a second rollback goes forward again.
	moveAside()
	command("rollback", `,"target":"model"`)
	inForce("rollback with model.path moved aside", 2.5*th)
	command("rollback", `,"target":"model"`)
	inForce("second rollback", 1.5*th)
	if left, _ := filepath.Glob(filepath.Join(r.dir, "state", ".model.safetensors*")); len(left) > 0 {
		t.Errorf("left %v", left)
	}
	r.moreInspections(2)
}
