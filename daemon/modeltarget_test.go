package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// TestModelCommandsRefuseWhatIsNotAModelFileAtModelPath: a threshold
// command, a refit and a model rollback install their model file with a
// rename over model.path, without the check 'inspectd fit --out' makes of
// its target (model.CheckSaveTarget). With a named pipe put at model.path
// while the daemon ran, a threshold command and a rollback answered ok
// and put a regular file in the pipe's place, the pipe moved to .prev;
// with a folder there, a threshold command failed in the copy's words
// ("keep … as ….prev: write …: copy_file_range: is a directory") and left
// the whole new model file beside it. Each is now refused before anything
// is written, naming model.path and what is there, saying the model in
// force stays; it does, with its thresholds, and what is at model.path is
// left as it was (real mosquitto, real files). So is a link at model.path
// to a named pipe or a folder: the command held in the pipe's open, or
// failed in the copy's words.
func TestModelCommandsRefuseWhatIsNotAModelFileAtModelPath(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, det := startModelPushRig(t, "cell51")
	path, _ := modelPathInOwnFolder(t, op, r, "cell51", "line.safetensors")
	dir := filepath.Dir(path)
	id, th := det.Info().ID, d.ModelInfo().ImageThreshold
	good := filepath.Join(t.TempDir(), "good")
	writePNGs(t, good, 24, 77, false)

	// A link at model.path is not followed by the install's rename, but
	// the model it leads to is read to be kept as .prev: a link to a
	// named pipe held the command in the pipe's open (where a hard link
	// of the link could not be made), a link to a folder failed in the
	// copy's words ("copy_file_range: is a directory").
	pipe := filepath.Join(r.dir, "thepipe")
	testfs.Mkfifo(t, pipe)
	folder := filepath.Join(r.dir, "afolder")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	i := 0 // each request its own id
	for _, c := range []struct {
		kind string
		put  func() error
		mode os.FileMode // what is at model.path, kept
	}{
		{"a folder", func() error { return os.Mkdir(path, 0o755) }, os.ModeDir},
		{"a named pipe", func() error { return syscall.Mkfifo(path, 0o600) }, os.ModeNamedPipe},
		{"a link to " + pipe + ", a named pipe", func() error { return os.Symlink(pipe, path) }, os.ModeSymlink},
		{"a link to " + folder + ", a folder", func() error { return os.Symlink("../afolder", path) }, os.ModeSymlink},
	} {
		i++
		if err := os.RemoveAll(path); err != nil {
			t.Fatal(err)
		}
		if err := c.put(); err != nil {
			t.Fatal(err)
		}
		// A refit is refused when accepted, before its fit (its install
		// checks again: TestRefitRefusesABadModelPathBeforeItsFit).
		for _, cmd := range modelCommands(2*th, id, good, "not started: ") {
			req := fmt.Sprintf(`{"id":"%s-%d",%s}`, cmd.name, i, cmd.args)
			rep := op.reply("cell51", cmd.name, req, 3*time.Minute)
			t.Logf("%s with %s at model.path: %v", cmd.name, c.kind, rep)
			msg := fmt.Sprint(rep["error"])
			for _, want := range []string{cmd.lead + "model.path: " + path + " is " + c.kind + ", not a model file", "the model in force stays"} {
				if rep["ok"] != false || !strings.Contains(msg, want) {
					t.Errorf("%s with %s at model.path: %v, want a refusal saying %q", cmd.name, c.kind, rep, want)
				}
			}
			if info := d.ModelInfo(); info.ID != id || info.ImageThreshold != th {
				t.Errorf("%s with %s at model.path: model %s threshold %g in force, want %s at %g", cmd.name, c.kind, info.ID, info.ImageThreshold, id, th)
			}
			if st, err := os.Lstat(path); err != nil || st.Mode().Type() != c.mode {
				t.Errorf("%s with %s at model.path: %s is now %v (%v), want it left as it was", cmd.name, c.kind, path, st.Mode(), err)
			}
			if st, err := os.Lstat(PreviousModelPath(path)); err != nil || !st.Mode().IsRegular() {
				t.Errorf("%s with %s at model.path: %s is now %v (%v), want the previous model left there", cmd.name, c.kind, PreviousModelPath(path), st.Mode(), err)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
				t.Errorf("%s with %s at model.path left %v", cmd.name, c.kind, left)
			}
		}
	}
	r.moreInspections(2)
}

// TestModelCommandsRefuseALinkLoopAtModelPath: with a link at model.path
// that leads round in a loop (ln -s model.safetensors model.safetensors),
// a threshold command answered the raw "model …: stat …: too many levels
// of symbolic links" with no key, and a refit was accepted, fitted, and
// failed only at its install. Each is now refused under model.path before
// anything is written, naming the loop and saying that the model in force
// stays; the link is left as it was (real mosquitto, real files).
func TestModelCommandsRefuseALinkLoopAtModelPath(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // refusals before anything is written: TestModelCommandsRefuseWhatIsNotAModelFileAtModelPath races them
	op, r, d, det := startModelPushRig(t, "cell66")
	path, _ := modelPathInOwnFolder(t, op, r, "cell66", "model.safetensors")
	dir := filepath.Dir(path)
	id, th := det.Info().ID, d.ModelInfo().ImageThreshold
	good := filepath.Join(t.TempDir(), "good")
	writePNGs(t, good, 24, 77, false)
	i := 0
	for _, c := range []struct {
		name string
		put  func() error
		loop string
	}{
		{"a link to itself", func() error { return os.Symlink("model.safetensors", path) }, "(model.safetensors → model.safetensors)"},
		{"a link to a link back to it", func() error {
			if err := os.Symlink(path, filepath.Join(dir, "other")); err != nil {
				return err
			}
			return os.Symlink("other", path)
		}, "(model.safetensors → other → model.safetensors)"},
	} {
		_ = os.Remove(path)
		if err := c.put(); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range modelCommands(2*th, id, good, "not started: ") {
			i++
			rep := op.reply("cell66", cmd.name, fmt.Sprintf(`{"id":"%s-%d",%s}`, cmd.name, i, cmd.args), 3*time.Minute)
			t.Logf("%s with %s at model.path: %v", cmd.name, c.name, rep)
			msg := fmt.Sprint(rep["error"])
			for _, want := range []string{cmd.lead + "model.path: " + path + " is a link that leads round in a loop " + c.loop, "the model in force stays"} {
				if rep["ok"] != false || !strings.Contains(msg, want) {
					t.Errorf("%s with %s at model.path: %v, want a refusal saying %q", cmd.name, c.name, rep, want)
				}
			}
			if info := d.ModelInfo(); info.ID != id || info.ImageThreshold != th {
				t.Errorf("%s with %s at model.path: model %s threshold %g in force, want %s at %g", cmd.name, c.name, info.ID, info.ImageThreshold, id, th)
			}
			if st, err := os.Lstat(path); err != nil || st.Mode().Type() != os.ModeSymlink {
				t.Errorf("%s with %s at model.path: %s is now %v (%v), want the link left", cmd.name, c.name, path, st.Mode(), err)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
				t.Errorf("%s with %s at model.path left %v", cmd.name, c.name, left)
			}
		}
	}
	r.moreInspections(2)
}
