package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestModelCommandsKeepTheModelFileMode: a threshold command, a refit's
// install and a model rollback each wrote their model file 0644 over
// model.path, so that an operator's 0444 or 0640 model file became 0644
// (readable by all, writable by its owner) at the first command, and the
// .prev kept beside it 0644 too. The file written at model.path now keeps
// the mode of the one it replaces, and .prev takes the mode of the file
// whose model it keeps, as a configuration push keeps its file's (real
// mosquitto, real files).
func TestModelCommandsKeepTheModelFileMode(t *testing.T) {
	t.Parallel()
	op, r, d, _ := startModelPushRig(t, "cell72")
	path, _ := modelPathInOwnFolder(t, op, r, "cell72", "line.safetensors")
	prev := PreviousModelPath(path)
	good := filepath.Join(t.TempDir(), "good")
	writePNGs(t, good, 24, 77, false)
	th := d.ModelInfo().ImageThreshold
	set := func(p string, m os.FileMode) {
		t.Helper()
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []struct {
		name, args string
		mode, prev os.FileMode // of model.path and .prev before
	}{
		{"threshold", fmt.Sprintf(`"image":%g`, 2*th), 0o444, 0o600},
		{"refit", `"folder":"` + good + `","max_false_alarm_rate":1`, 0o640, 0o444},
		{"rollback", `"target":"model"`, 0o444, 0o600},
	} {
		set(path, c.mode)
		set(prev, c.prev)
		id := d.ModelInfo().ID
		rep := op.reply("cell72", c.name, fmt.Sprintf(`{"id":"%s-%d",%s}`, c.name, i, c.args), 3*time.Minute)
		if rep["ok"] != true || d.ModelInfo().ID == id && c.name != "threshold" {
			t.Fatalf("%s: %v (model %s, was %s)", c.name, rep, d.ModelInfo().ID, id)
		}
		for _, p := range []string{path, prev} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode(); !got.IsRegular() || got.Perm() != c.mode {
				t.Errorf("%s with model.path %v and .prev %v: %s is %v, want %v", c.name, c.mode, c.prev, filepath.Base(p), got, c.mode)
			}
		}
	}
	r.moreInspections(2)
}
