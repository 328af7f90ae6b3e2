package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestModelCommandsKeepTheModelInForceNotWhatModelPathLeadsTo: the model
// a threshold command or a model rollback replaces was kept as .prev as a
// hard link of what was at model.path, which need not be the model in
// force. A link there to its own .prev (relative or absolute) made .prev
// a link to itself, the previous model lost; a link to another model file
// B kept B, which the next rollback loaded instead of the model in force;
// a hard link of .prev at model.path left the kept file behind, a whole
// hidden model file. The model in force is now what is kept, saved from
// memory: after a threshold command and a rollback the model in force is
// the one that ran before, with its threshold, .prev is never a link, and
// no temporary file is left (real mosquitto, real files).
func TestModelCommandsKeepTheModelInForceNotWhatModelPathLeadsTo(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // the commands' installs: TestModelCommandsKeepTheModelFileMode races them
	op, r, d, _ := startModelPushRig(t, "cell64")
	dir := filepath.Join(r.dir, "state")
	path := filepath.Join(dir, "model.safetensors")
	prev := PreviousModelPath(path)
	id, th, px := d.ModelInfo().ID, d.ModelInfo().ImageThreshold, d.ModelInfo().PixelThreshold
	// Another model file: the same model at another threshold.
	if _, err := d.SetThresholds(context.Background(), 3*th, px); err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(r.dir, "b.safetensors")
	if err := os.WriteFile(b, other, 0o600); err != nil {
		t.Fatal(err)
	}
	n := 0
	command := func(when, name, args string) {
		t.Helper()
		n++
		rep := op.reply("cell64", name, fmt.Sprintf(`{"id":"%s-%d"%s}`, name, n, args), time.Minute)
		if rep["ok"] != true {
			t.Errorf("%s: %s: %v", when, name, rep)
		}
	}
	check := func(when string, want float64) {
		t.Helper()
		if info := d.ModelInfo(); info.ID != id || info.ImageThreshold != want {
			t.Errorf("%s: model %s at %g in force, want %s at %g", when, info.ID, info.ImageThreshold, id, want)
		}
		if st, err := os.Lstat(prev); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s: %s is %v (%v), want a model file", when, prev, st.Mode(), err)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".model.safetensors*")); len(left) > 0 {
			t.Errorf("%s: left %v", when, left)
		}
	}
	// Each case starts with the model at th in force and in model.path,
	// and another file at .prev.
	reset := func() {
		t.Helper()
		if _, err := d.SetThresholds(context.Background(), th, px); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		put  func() error
	}{
		{"a relative link to its own .prev", func() error { return os.Symlink(filepath.Base(prev), path) }},
		{"an absolute link to its own .prev", func() error { return os.Symlink(prev, path) }},
		{"a link to another model file", func() error { return os.Symlink(b, path) }},
		{"a hard link of .prev", func() error { return os.Link(prev, path) }},
	} {
		reset()
		if err := c.put(); err != nil {
			t.Fatal(err)
		}
		command(c.name+" at model.path", "threshold", fmt.Sprintf(`,"image":%g`, 2*th))
		check("threshold with "+c.name+" at model.path", 2*th)
		command(c.name+" at model.path, then a threshold command", "rollback", `,"target":"model"`)
		check("rollback after a threshold command with "+c.name+" at model.path", th)
	}
	// A rollback with a link at model.path to its own .prev: the model in
	// force is kept, not the link.
	reset()
	if err := os.Symlink(prev, path); err != nil {
		t.Fatal(err)
	}
	command("rollback with an absolute link to .prev at model.path", "rollback", `,"target":"model"`)
	check("rollback with an absolute link to .prev at model.path", d.ModelInfo().ImageThreshold)
	command("second rollback", "rollback", `,"target":"model"`)
	check("second rollback", th)
	if got, err := os.ReadFile(b); err != nil || !bytes.Equal(got, other) {
		t.Errorf("%s changed (%v)", b, err)
	}
	r.moreInspections(2)
}
