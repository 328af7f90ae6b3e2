package remote

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestRefitRefusedAfterItsFolderLogsEveryFileItSkipped: a folder refit
// refused by a check after its folder was listed (a folder at the model
// path, features over model.memory_budget, too little memory left) logged
// none of the files the folder skipped, while one refused at its image
// check and one that runs log each once (TestRefusedRefitLogsEveryFileItSkipped,
// TestRefitLogsEveryFileItSkipped). Each such refusal now logs them once.
func TestRefitRefusedAfterItsFolderLogsEveryFileItSkipped(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	dir := t.TempDir()
	writeFrames(t, dir, 6)
	var bad []string
	for i := range 7 {
		p := filepath.Join(dir, fmt.Sprintf("bad%02d.png", i))
		if err := os.WriteFile(p, []byte("not an image at all"), 0o644); err != nil {
			t.Fatal(err)
		}
		bad = append(bad, p)
	}
	logged := func(what string, times int) {
		t.Helper()
		for _, p := range bad {
			if n := r.log.count("WARN file skipped", "file="+p+" reason=", filepath.Base(p)+": "); n != times {
				t.Errorf("%s: %d log lines name %s as skipped, want %d:\n%s", what, n, p, times, r.log.all())
			}
		}
		if n := r.log.count("WARN file skipped"); n != times*len(bad) {
			t.Errorf("%s: %d file skipped lines, want %d:\n%s", what, n, times*len(bad), r.log.all())
		}
	}

	// The model target: a folder where the model file goes.
	model := r.ctl.modelPath()
	data, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(model); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(model, 0o755); err != nil {
		t.Fatal(err)
	}
	rep := r.do("refit", `{"id":"t1","folder":"`+dir+`"}`)
	mustFail(t, rep, CodeFailed, "not started: ")
	logged("a folder at the model path", 1)
	if err := os.Remove(model); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(model, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// The memory budget: d over what model.memory_budget holds.
	rep = r.do("refit", `{"id":"t2","folder":"`+dir+`","features":2048}`)
	mustFail(t, rep, CodeInvalid, "features: ")
	logged("features over the memory budget", 2)

	// The memory left on the box.
	r.mem.Store(1 << 20)
	rep = r.do("refit", `{"id":"t3","folder":"`+dir+`"}`)
	mustFail(t, rep, CodeFailed, "not started: the fit needs about ")
	logged("too little memory", 3)
}
