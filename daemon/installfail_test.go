package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// saysImmutableOnce fails t unless msg, a model command's refusal where
// the OS said EPERM (an immutable file or folder, as root), says once
// that the model in force stays (a refit's install said it twice) and
// points at the attribute, not at modes or owners ("make … writable for
// the user inspectd runs as" was no advice for root).
func saysImmutableOnce(t *testing.T, what, msg string) {
	t.Helper()
	if n := strings.Count(msg, "the model in force"); n != 1 {
		t.Errorf("%s: %q says %d times that the model in force stays, want once", what, msg, n)
	}
	// Where atomicfile read the folder's attribute, the words name it.
	named := strings.Contains(msg, "it is immutable (chattr +i; chattr -i ") || strings.Contains(msg, "it is append-only (chattr +a; chattr -a ")
	if strings.Contains(msg, "writable for the user") || !named && (!strings.Contains(msg, "immutable or append-only attribute") || !strings.Contains(msg, "lsattr")) {
		t.Errorf("%s: %q does not point at an immutable or append-only attribute", what, msg)
	}
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
	t.Parallel()
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
		saysImmutableOnce(t, cmd.name+" with model.path immutable", fmt.Sprint(rep["error"]))
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

// TestModelCommandsSayTheModelFolderCannotBeWritten: with model.path's
// folder one that takes no new file (read-only, or not writable for the
// user inspectd runs as; here immutable, which refuses root too), a
// threshold command, a refit and a model rollback answered the OS's words
// naming temporary files ("save model …/.model.safetensors.new-…: open
// …/..model.safetensors.new-…tmp-…: permission denied"). Each now says,
// under model.path, that the folder cannot be written and why, and that
// the model in force stays; it does, and model.path and .prev are left as
// they were (real mosquitto, real files). With the folder append-only
// (chattr +a) each command answered so too, but left its temporary copy
// of the model there, which append-only forbids removing: atomicfile now
// refuses such a folder before it creates anything, and the words name
// the attribute and what clears it.
func TestModelCommandsSayTheModelFolderCannotBeWritten(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // the commands' refusals at their install: TestFailedInstallKeepsThePreviousModel races them
	op, r, d, _ := startModelPushRig(t, "cell63")
	path, data := modelPathInOwnFolder(t, op, r, "cell63", "line.safetensors")
	dir := filepath.Dir(path)
	id, th := d.ModelInfo().ID, d.ModelInfo().ImageThreshold
	good := filepath.Join(t.TempDir(), "good")
	writePNGs(t, good, 24, 77, false)
	// Append-only (chattr +a) takes new files but neither their rename
	// nor their removal: each command left its temporary file of the
	// model there for good, which a retrying host piled up.
	for _, attr := range []struct{ flag, name string }{{"i", "immutable"}, {"a", "append-only"}} {
		if out, err := exec.Command("chattr", "+"+attr.flag, dir).CombinedOutput(); err != nil {
			t.Skipf("chattr +%s %s: %v %s", attr.flag, dir, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("chattr", "-"+attr.flag, dir).Run() })
		for _, cmd := range modelCommands(2*th, id, good, "install: ") {
			what := cmd.name + " with the model folder " + attr.name
			rep := op.reply("cell63", cmd.name, `{"id":"`+cmd.name+attr.flag+`",`+cmd.args+`}`, 3*time.Minute)
			t.Logf("%s: %v", what, rep)
			msg := fmt.Sprint(rep["error"])
			for _, want := range []string{cmd.lead + "model.path: folder " + dir + " cannot be written (operation not permitted)", path, "the model in force stays",
				"it is " + attr.name + " (chattr +" + attr.flag + "; chattr -" + attr.flag + " " + dir + " clears it)"} {
				if rep["ok"] != false || !strings.Contains(msg, want) {
					t.Errorf("%s: %v, want a refusal saying %q", what, rep, want)
				}
			}
			saysImmutableOnce(t, what, msg)
			if strings.Contains(msg, "tmp-") || strings.Contains(msg, ".new-") {
				t.Errorf("%s: %q names a temporary file", what, msg)
			}
			if info := d.ModelInfo(); info.ID != id || info.ImageThreshold != th {
				t.Errorf("%s: model %s threshold %g in force, want %s at %g", what, info.ID, info.ImageThreshold, id, th)
			}
			for _, p := range []string{path, PreviousModelPath(path)} {
				if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s: %s changed (%v)", what, p, err)
				}
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if n := e.Name(); n != filepath.Base(path) && n != filepath.Base(PreviousModelPath(path)) {
					t.Errorf("%s: left %s in the folder", what, n)
				}
			}
		}
		if out, err := exec.Command("chattr", "-"+attr.flag, dir).CombinedOutput(); err != nil {
			t.Fatalf("chattr -%s %s: %v %s", attr.flag, dir, err, out)
		}
	}
	r.moreInspections(2)
}

// TestFailedKeepOfThePreviousModelPutsModelPathBack: with .prev immutable
// (chattr +i: not even root may rename over it), a threshold command and a
// refit's install answered failed ("folder … cannot be written …; the
// model in force stays") after they had renamed the new model over
// model.path, which a restart then loaded: the model the reply said was
// refused. With model.path moved aside, they created it. What model.path
// held is now put back (or model.path removed where it held nothing), so
// that a failed command leaves model.path and .prev as they were, and no
// temporary file; the words name .prev, not the folder. A rollback, which
// cannot move .prev either, says so too, under the key that sets the
// path (state_dir here) (real mosquitto, real files).
func TestFailedKeepOfThePreviousModelPutsModelPathBack(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // the commands' refusals at their install: TestFailedInstallKeepsThePreviousModel races them
	op, r, d, _ := startModelPushRig(t, "cell65")
	dir := filepath.Join(r.dir, "state")
	path := filepath.Join(dir, "model.safetensors")
	prev := PreviousModelPath(path)
	aside := filepath.Join(r.dir, "aside.safetensors")
	th, px := d.ModelInfo().ImageThreshold, d.ModelInfo().PixelThreshold
	if _, err := d.SetThresholds(context.Background(), 3*th, px); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetThresholds(context.Background(), th, px); err != nil {
		t.Fatal(err)
	}
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(prev)
	if err != nil {
		t.Fatal(err)
	}
	immutable(t, prev)
	id := d.ModelInfo().ID
	good := filepath.Join(t.TempDir(), "good")
	writePNGs(t, good, 24, 77, false)
	n := 0
	for _, movedAside := range []bool{false, true} {
		where := "model.path there"
		if movedAside {
			where = "model.path moved aside"
			if err := os.Rename(path, aside); err != nil {
				t.Fatal(err)
			}
		}
		for _, cmd := range modelCommands(2*th, id, good, "install: ") {
			// A threshold command and a refit keep the model in force as
			// .prev; a rollback moves .prev over model.path.
			says := prev + " cannot be replaced (operation not permitted)"
			if cmd.name == "rollback" {
				says = prev + " cannot be moved over " + path + " (operation not permitted)"
			}
			n++
			rep := op.reply("cell65", cmd.name, fmt.Sprintf(`{"id":"%s-%d",%s}`, cmd.name, n, cmd.args), 3*time.Minute)
			t.Logf("%s with .prev immutable, %s: %v", cmd.name, where, rep)
			msg := fmt.Sprint(rep["error"])
			for _, want := range []string{cmd.lead + "state_dir: " + says, "the model in force stays"} {
				if rep["ok"] != false || !strings.Contains(msg, want) {
					t.Errorf("%s with .prev immutable, %s: %v, want a failure saying %q", cmd.name, where, rep, want)
				}
			}
			saysImmutableOnce(t, cmd.name+" with .prev immutable, "+where, msg)
			if strings.Contains(msg, "folder "+dir+" cannot be written") {
				t.Errorf("%s with .prev immutable, %s: %q blames the folder", cmd.name, where, msg)
			}
			if info := d.ModelInfo(); info.ID != id || info.ImageThreshold != th {
				t.Errorf("%s with .prev immutable, %s: model %s threshold %g in force, want %s at %g", cmd.name, where, info.ID, info.ImageThreshold, id, th)
			}
			if movedAside {
				if _, err := os.Lstat(path); !os.IsNotExist(err) {
					t.Errorf("%s with .prev immutable, %s: %s is there (%v), want it left absent", cmd.name, where, path, err)
				}
			} else if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, cur) {
				t.Errorf("%s with .prev immutable, %s: %s changed (%v)", cmd.name, where, path, err)
			}
			if got, err := os.ReadFile(prev); err != nil || !bytes.Equal(got, old) {
				t.Errorf("%s with .prev immutable, %s: %s changed (%v)", cmd.name, where, prev, err)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".model.safetensors*")); len(left) > 0 {
				t.Errorf("%s with .prev immutable, %s: left %v", cmd.name, where, left)
			}
		}
	}
	r.moreInspections(2)
}
