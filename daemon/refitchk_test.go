package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// TestRefitRefusesABadModelPathBeforeItsFit: a refit met the check of
// what is at the model path (modelTargetError) only at its install, after
// the whole fit and validation (seconds to minutes of a core), then was
// refused. It is now refused when it is accepted, in the same words, with
// no fit run: the reply says it did not start and carries no validation
// figures; the model in force and the folder at the path stay (real
// mosquitto, real files).
func TestRefitRefusesABadModelPathBeforeItsFit(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // refusals before anything is written: TestModelCommandsRefuseWhatIsNotAModelFileAtModelPath races them
	op, r, d, det := startModelPushRig(t, "cell61")
	path := d.Config().ModelPath()
	good := filepath.Join(t.TempDir(), "good")
	writePNGs(t, good, 24, 77, false)
	if err := os.Rename(path, path+".kept"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rep := op.reply("cell61", "refit", `{"id":"early","folder":"`+good+`","max_false_alarm_rate":1}`, 3*time.Minute)
	t.Logf("refit with a folder at the model path, answered in %v: %v", time.Since(start).Round(time.Millisecond), rep)
	msg := fmt.Sprint(rep["error"])
	for _, want := range []string{"not started: ", path + " is a folder, not a model file", "the model in force stays"} {
		if rep["ok"] != false || !strings.Contains(msg, want) {
			t.Errorf("refit with a folder at the model path: %v, want a refusal saying %q", rep, want)
		}
	}
	if strings.Contains(msg, "install: ") || rep["validation"] != nil || rep["fit_s"] != nil {
		t.Errorf("refit with a folder at the model path was refused only after its fit: %v", rep)
	}
	if id := d.ModelInfo().ID; id != det.Info().ID {
		t.Errorf("model %s in force after the refused refit, want %s", id, det.Info().ID)
	}
	if st, err := os.Lstat(path); err != nil || !st.IsDir() {
		t.Errorf("%s is now %v (%v), want the folder left as it was", path, st.Mode(), err)
	}

	// The install checks again: a folder put at the path during the fit
	// is refused there, after the fit.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".kept", path); err != nil {
		t.Fatal(err)
	}
	op.send("inspectd/cell61/cmd/refit", `{"id":"late","folder":"`+good+`","max_false_alarm_rate":1}`)
	for i := 0; ; i++ {
		st := op.reply("cell61", "status", fmt.Sprintf(`{"id":"st%d"}`, i), time.Minute)
		if p, _ := st["refit"].(map[string]any); p != nil && p["id"] == "late" && p["phase"] == "fitting" {
			break
		}
		if len(op.got("cell61", "late")) > 0 || i > 600 {
			t.Fatalf("refit late answered or not fitting: %v", op.got("cell61", "late"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Rename(path, path+".kept"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the reply to refit late", func() bool { return len(op.got("cell61", "late")) > 0 })
	rep = op.got("cell61", "late")[0]
	if msg := fmt.Sprint(rep["error"]); rep["ok"] != false || !strings.Contains(msg, "install: ") || !strings.Contains(msg, path+" is a folder, not a model file") {
		t.Errorf("refit with a folder put at the model path during its fit: %v, want its install refused", rep)
	}
	if id := d.ModelInfo().ID; id != det.Info().ID {
		t.Errorf("model %s in force after the refused install, want %s", id, det.Info().ID)
	}
	r.moreInspections(2)
}

// TestModelCommandsRefuseWhatIsNotAModelFileAtPrev: a threshold command
// and a refit's install rename the model in force over the model path's
// .prev, without a check of what is there: a folder failed them in the
// rename's words ("keep … as ….prev: rename …"), and a named pipe, which
// is not inspectd's, was replaced by a regular file, the command answered
// ok. Each is now refused before anything is written (a refit when it is
// accepted), naming the .prev path, what is there and that the model in
// force stays; a rollback, which loads .prev, refuses it as it loads it.
// The model in force, its threshold and file, and what is at .prev stay
// (real mosquitto, real files).
func TestModelCommandsRefuseWhatIsNotAModelFileAtPrev(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // refusals before anything is written: TestModelCommandsRefuseWhatIsNotAModelFileAtModelPath races them
	op, r, d, det := startModelPushRig(t, "cell62")
	path := d.Config().ModelPath()
	prev := PreviousModelPath(path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id, th := det.Info().ID, d.ModelInfo().ImageThreshold
	good := filepath.Join(t.TempDir(), "good")
	writePNGs(t, good, 24, 77, false)

	for _, c := range []struct {
		kind string
		put  func()
		mode os.FileMode
	}{
		{"a folder", func() {
			if err := os.Mkdir(prev, 0o755); err != nil {
				t.Fatal(err)
			}
		}, os.ModeDir},
		{"a named pipe", func() { testfs.Mkfifo(t, prev) }, os.ModeNamedPipe},
	} {
		if err := os.RemoveAll(prev); err != nil {
			t.Fatal(err)
		}
		c.put()
		for _, cmd := range modelCommands(2*th, id, good, "not started: ") {
			// A threshold command and a refit would keep the model in
			// force there; a rollback would load it.
			mend := "the model in force stays: move it aside (inspectd keeps the model it replaces there"
			if cmd.name == "rollback" {
				mend = "move it aside"
			}
			req := fmt.Sprintf(`{"id":"%s-%s",%s}`, cmd.name, strings.Fields(c.kind)[1], cmd.args)
			rep := op.reply("cell62", cmd.name, req, 3*time.Minute)
			t.Logf("%s with %s at .prev: %v", cmd.name, c.kind, rep)
			msg := fmt.Sprint(rep["error"])
			for _, want := range []string{cmd.lead, prev + " is " + c.kind + ", not a model file", mend} {
				if rep["ok"] != false || !strings.Contains(msg, want) {
					t.Errorf("%s with %s at .prev: %v, want a refusal saying %q", cmd.name, c.kind, rep, want)
				}
			}
			if info := d.ModelInfo(); info.ID != id || info.ImageThreshold != th {
				t.Errorf("%s with %s at .prev: model %s threshold %g in force, want %s at %g", cmd.name, c.kind, info.ID, info.ImageThreshold, id, th)
			}
			if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, data) {
				t.Errorf("%s with %s at .prev: the model file at %s changed (%v)", cmd.name, c.kind, path, err)
			}
			if st, err := os.Lstat(prev); err != nil || st.Mode().Type() != c.mode {
				t.Errorf("%s with %s at .prev: %s is now %v (%v), want it left as it was", cmd.name, c.kind, prev, st.Mode(), err)
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".*"))
			if more, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".refit-*")); len(more) > 0 {
				left = append(left, more...)
			}
			if len(left) > 0 {
				t.Errorf("%s with %s at .prev left %v", cmd.name, c.kind, left)
			}
		}
	}
	r.moreInspections(2)
}
