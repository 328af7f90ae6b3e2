package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	op, r, d, det := startModelPushRig(t, "cell21")
	prev := PreviousModelPath(filepath.Join(r.dir, "state", "model.safetensors"))
	if err := syscall.Mkfifo(prev, 0o600); err != nil {
		t.Fatal(err)
	}
	// On the old code the rollback's open waits for a writer: one opened
	// at the test's end lets it go, so that the daemon stops and the test
	// fails instead of hanging. Cleanups run last first: before the stop.
	t.Cleanup(func() {
		if w, err := os.OpenFile(prev, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	})
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
