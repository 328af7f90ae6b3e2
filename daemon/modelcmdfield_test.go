package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// TestModelCommandRefusalsNameTheirField: a threshold command's, a model
// rollback's and a refit's refusals of what is at the model file's path or
// its .prev (a folder, a named pipe), or of its folder (append-only), named
// model.path (or state_dir) in their words but carried no field, while a
// push refused for its model file names config.model.path (or
// config.state_dir where the model lives there) in field. Each now carries
// the same field as the push, its words unchanged (real mosquitto, real
// files).
func TestModelCommandRefusalsNameTheirField(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // fields of refusals on paths TestModelCommandsRefuseWhatIsNotAModelFileAtModelPath races
	op, r, d, det := startModelPushRig(t, "cell71")
	id, th := det.Info().ID, d.ModelInfo().ImageThreshold
	good := filepath.Join(t.TempDir(), "good")
	writePNGs(t, good, 24, 77, false)
	n := 0
	check := func(what, cmd, args, field, lead string) {
		t.Helper()
		n++
		rep := op.reply("cell71", cmd, fmt.Sprintf(`{"id":"%s-%d",%s}`, cmd, n, args), 3*time.Minute)
		t.Logf("%s %s: %v", cmd, what, rep)
		msg := fmt.Sprint(rep["error"])
		if rep["ok"] != false || rep["code"] != "failed" || rep["field"] != field {
			t.Errorf("%s %s: %v, want code failed, field %q", cmd, what, rep, field)
		}
		if !strings.HasPrefix(msg, lead) {
			t.Errorf("%s %s: error %q, want it to start %q (no field before it)", cmd, what, msg, lead)
		}
		if info := d.ModelInfo(); info.ID != id || info.ImageThreshold != th {
			t.Errorf("%s %s: model %s threshold %g in force, want %s at %g", cmd, what, info.ID, info.ImageThreshold, id, th)
		}
	}
	type command struct{ name, args, lead string }
	threshold := command{"threshold", fmt.Sprintf(`"image":%g`, 2*th), "thresholds unchanged: "}
	rollback := command{"rollback", `"target":"model"`, "model unchanged (" + id + "): "}
	refit := command{"refit", `"folder":"` + good + `","max_false_alarm_rate":1`, "not started: "}

	// The model in state_dir (no model.path): its key is state_dir.
	prev := PreviousModelPath(filepath.Join(r.dir, "state", "model.safetensors"))
	if err := os.Remove(prev); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	testfs.Mkfifo(t, prev)
	for _, c := range []command{threshold, rollback, refit} {
		check("with a named pipe at state_dir's "+filepath.Base(prev), c.name, c.args, "config.state_dir", c.lead)
	}
	if err := os.Remove(prev); err != nil {
		t.Fatal(err)
	}

	path, _ := modelPathInOwnFolder(t, op, r, "cell71", "line.safetensors")
	dir := filepath.Dir(path)
	for _, at := range []struct {
		what string
		put  func() error
		undo func() error
	}{
		{"with a folder at model.path", func() error {
			if err := os.Rename(path, path+".aside"); err != nil {
				return err
			}
			return os.Mkdir(path, 0o755)
		}, func() error {
			if err := os.Remove(path); err != nil {
				return err
			}
			return os.Rename(path+".aside", path)
		}},
		{"with a named pipe at model.path's .prev", func() error {
			if err := os.Rename(PreviousModelPath(path), path+".aside"); err != nil {
				return err
			}
			testfs.Mkfifo(t, PreviousModelPath(path))
			return nil
		}, func() error {
			return os.Rename(path+".aside", PreviousModelPath(path))
		}},
	} {
		if err := at.put(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []command{threshold, rollback, refit} {
			check(at.what, c.name, c.args, "config.model.path", c.lead)
		}
		if err := at.undo(); err != nil {
			t.Fatal(err)
		}
	}

	// A model folder that cannot be written: refused by the write itself
	// (modelFilesError), the refit at its install.
	if out, err := exec.Command("chattr", "+a", dir).CombinedOutput(); err != nil {
		t.Skipf("chattr +a %s: %v %s", dir, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-a", dir).Run() })
	for _, c := range []command{threshold, rollback, {refit.name, refit.args, "install: "}} {
		check("with the model folder append-only", c.name, c.args, "config.model.path", c.lead)
	}
	if out, err := exec.Command("chattr", "-a", dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr -a %s: %v %s", dir, err, out)
	}
	r.moreInspections(2)
}
