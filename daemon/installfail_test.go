package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// immutable makes path immutable (chattr +i): not even root may rename
// over it, remove it, or, for a folder, create a file in it; the test's
// cleanup makes it mutable again. It skips the test where the file system
// or the sandbox does not allow it (no chattr, no CAP_LINUX_IMMUTABLE, a
// file system without the flag).
func immutable(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
		t.Skipf("chattr +i %s: %v %s", path, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", path).Run() })
}

// TestFailedInstallKeepsThePreviousModel: a threshold command and a
// refit's install kept the model in force as .prev before they renamed the
// new model over model.path; where that rename failed (model.path made
// immutable: "install model …: rename …: operation not permitted"), the
// command failed, yet .prev had been overwritten with the model in force,
// the rollback point lost. The file to be kept is now renamed over .prev
// only once the new model is in place: a failed command leaves model.path
// and .prev as they were, and no temporary file (real mosquitto, real
// files).
func TestFailedInstallKeepsThePreviousModel(t *testing.T) {
	op, r, d, _ := startModelPushRig(t, "cell61")
	dir := filepath.Join(r.dir, "state")
	path := filepath.Join(dir, "model.safetensors")
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The rollback point: a model file other than the one in force.
	th, px := d.ModelInfo().ImageThreshold, d.ModelInfo().PixelThreshold
	if _, err := d.SetThresholds(context.Background(), 3*th, px); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetThresholds(context.Background(), th, px); err != nil {
		t.Fatal(err)
	}
	prev, err := os.ReadFile(PreviousModelPath(path))
	if err != nil {
		t.Fatal(err)
	}
	if cur, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(prev, cur) {
		t.Fatal("the previous model file is the one in force")
	}
	immutable(t, path)
	id := d.ModelInfo().ID
	good := filepath.Join(t.TempDir(), "good")
	writePNGs(t, good, 24, 77, false)
	for _, cmd := range []struct{ name, args string }{
		{"threshold", fmt.Sprintf(`"image":%g`, 2*th)},
		{"refit", `"folder":"` + good + `","max_false_alarm_rate":1`},
		{"rollback", `"target":"model"`},
	} {
		rep := op.reply("cell61", cmd.name, `{"id":"`+cmd.name+`",`+cmd.args+`}`, 3*time.Minute)
		t.Logf("%s with model.path immutable: %v", cmd.name, rep)
		if rep["ok"] != false {
			t.Errorf("%s with model.path immutable: %v, want it to fail", cmd.name, rep)
		}
		if info := d.ModelInfo(); info.ID != id || info.ImageThreshold != th {
			t.Errorf("%s: model %s threshold %g in force, want %s at %g", cmd.name, info.ID, info.ImageThreshold, id, th)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, cur) {
			t.Errorf("%s: %s changed (%v)", cmd.name, path, err)
		}
		if got, err := os.ReadFile(PreviousModelPath(path)); err != nil || !bytes.Equal(got, prev) {
			t.Errorf("%s: %s is no longer the previous model (%v): the rollback point is lost", cmd.name, PreviousModelPath(path), err)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".model.safetensors*")); len(left) > 0 {
			t.Errorf("%s left %v", cmd.name, left)
		}
	}
	r.moreInspections(2)
}
