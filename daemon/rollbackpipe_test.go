package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// TestRollbackToWhatIsNotAModelFile: start, reload and push refuse a model
// path that is a folder, a device or a named pipe before opening it, but a
// model rollback opened model.path's .prev as it was: a named pipe there
// made the open wait for a writer for good, so that the rollback never
// answered and held the daemon's model lock (a later rollback, threshold
// or push waited behind it), and a device was refused only as "not a
// regular file". Each is now refused at once, naming the file and what it
// is; the reply says the model in force stays, which it does, and
// inspection goes on (real mosquitto, real files).
func TestRollbackToWhatIsNotAModelFile(t *testing.T) {
	t.Parallel()
	op, r, d, det := startModelPushRig(t, "cell21")
	prev := PreviousModelPath(filepath.Join(r.dir, "state", "model.safetensors"))
	// On the old code the rollback's open waits for a writer: Mkfifo's
	// cleanup, run before the rig's stop, lets it go, so that the daemon
	// stops and the test fails instead of hanging.
	testfs.Mkfifo(t, prev)
	id := det.Info().ID
	rollback := func(req, kind string) {
		t.Helper()
		op.send("inspectd/cell21/cmd/rollback", `{"id":"`+req+`","target":"model"}`)
		deadline := time.Now().Add(15 * time.Second)
		for len(op.got("cell21", req)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("rollback with %s at %s: no reply after 15 s", kind, prev)
			}
			time.Sleep(50 * time.Millisecond)
		}
		rep := op.got("cell21", req)[0]
		msg := fmt.Sprint(rep["error"])
		for _, want := range []string{"model unchanged (" + id + ")", prev + " is " + kind + ", not a model file", "move it aside"} {
			if rep["ok"] != false || !strings.Contains(msg, want) {
				t.Errorf("rollback with %s at %s: %v, want a refusal saying %q", kind, prev, rep, want)
			}
		}
		if got := d.ModelInfo().ID; got != id {
			t.Errorf("model %s in force after the refused rollback, want %s", got, id)
		}
		if st, err := os.Lstat(prev); err != nil || st.Mode().IsRegular() {
			t.Errorf("%s after the refused rollback: %v, %v; want it left as it was", prev, st, err)
		}
	}
	rollback("pipe", "a named pipe")

	if err := os.Remove(prev); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", prev); err != nil {
		t.Fatal(err)
	}
	rollback("zero", "a device")
	r.moreInspections(2)
}

// TestRollbackWithNoPreviousModel: a model rollback with no file at
// model.path's .prev, or a dangling link there, answered the raw
// "previous model: load model ….prev: stat ….prev: no such file or
// directory", no advice. It now says there is no previous model to roll
// back to, naming the path (and, for a link, where it leads), that the
// model in force stays, and what keeps one there; the model in force
// stays and inspection goes on (real mosquitto, real files).
func TestRollbackWithNoPreviousModel(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, det := startModelPushRig(t, "cell23")
	prev := PreviousModelPath(filepath.Join(r.dir, "state", "model.safetensors"))
	id := det.Info().ID
	gone := filepath.Join(r.dir, "moved-away.safetensors")
	for _, c := range []struct {
		req  string
		set  func()
		want string
	}{
		{"none", func() {}, "there is no file at " + prev},
		{"dangling", func() {
			if err := os.Symlink(gone, prev); err != nil {
				t.Fatal(err)
			}
		}, prev + " is a link to " + gone + ", which is not there"},
	} {
		c.set()
		rep := op.reply("cell23", "rollback", `{"id":"`+c.req+`","target":"model"}`, 30*time.Second)
		t.Logf("%s: %v", c.req, rep)
		msg := fmt.Sprint(rep["error"])
		for _, want := range []string{"model unchanged (" + id + ")", "no previous model to roll back to", c.want,
			"the model in force stays", "a refit or a threshold command keeps the model it replaces as " + prev} {
			if rep["ok"] != false || !strings.Contains(msg, want) {
				t.Errorf("rollback (%s) with no model at %s: %v, want a refusal saying %q", c.req, prev, rep, want)
			}
		}
		if strings.Contains(msg, "no such file or directory") {
			t.Errorf("rollback (%s): %q gives the raw stat error", c.req, msg)
		}
		if got := d.ModelInfo().ID; got != id {
			t.Errorf("model %s in force after the refused rollback, want %s", got, id)
		}
	}
	r.moreInspections(2)
}

// TestRollbackWithPreviousModelLinkLoop: a model rollback with a link at
// model.path's .prev that leads round in a loop answered the raw
// "previous model: load model ….prev: stat ….prev: too many levels of
// symbolic links". It now names the loop's links, says that the model in
// force stays and to move the link aside (real mosquitto, real files).
func TestRollbackWithPreviousModelLinkLoop(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, det := startModelPushRig(t, "cell24")
	prev := PreviousModelPath(filepath.Join(r.dir, "state", "model.safetensors"))
	other := filepath.Join(r.dir, "state", "other.link")
	if err := os.Symlink(other, prev); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(prev, other); err != nil {
		t.Fatal(err)
	}
	id := det.Info().ID
	rep := op.reply("cell24", "rollback", `{"id":"loop","target":"model"}`, 30*time.Second)
	t.Logf("loop: %v", rep)
	msg := fmt.Sprint(rep["error"])
	for _, want := range []string{"model unchanged (" + id + ")", prev + " is a link that leads round in a loop (",
		"other.link", "the model in force stays", "move the link aside"} {
		if rep["ok"] != false || !strings.Contains(msg, want) {
			t.Errorf("rollback with a link loop at %s: %v, want a refusal saying %q", prev, rep, want)
		}
	}
	if strings.Contains(msg, "too many levels") {
		t.Errorf("rollback: %q gives the raw stat error", msg)
	}
	if got := d.ModelInfo().ID; got != id {
		t.Errorf("model %s in force after the refused rollback, want %s", got, id)
	}
	r.moreInspections(2)
}
