package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd eval --save-model D/new/m.safetensors` where D is append-only
// (chattr +a) made D/new, which the kernel lets one make there but never
// remove: a run that then saved no model (its set refused, a stop) left
// D/new behind for good, where README says such a folder is refused by
// its attribute, whether the model is to go in it or in a folder to be
// made in it (as a state_dir to be made in one is). It is refused now,
// naming the attribute and what clears it, and nothing is made in D.
func TestModelFolderInAnAppendOnlyFolderIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	empty := filepath.Join(dir, "empty")
	d := filepath.Join(dir, "models")
	for _, f := range []string{empty, d} {
		if err := os.Mkdir(f, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	chattr(t, "+a", d)
	m := filepath.Join(d, "new", "m.safetensors")
	for _, args := range [][]string{
		{"eval", "--data", empty, "--config", cfg, "--save-model", m},
		{"fit", "--data", empty, "--config", cfg, "--out", m},
	} {
		code, _, stderr := runCaptureCmd(t, args...)
		t.Logf("%s: exit %d, %s", args[0], code, stderr)
		says := "folder " + d + " is append-only (chattr +a)"
		clears := "chattr -a " + d + " clears it"
		if code == 0 || !strings.Contains(stderr, says) || !strings.Contains(stderr, clears) {
			t.Errorf("%s with the model at %s: exit %d, %q; want it refused saying %q and %q", args[0], m, code, stderr, says, clears)
		}
		if entries, err := os.ReadDir(d); err != nil || len(entries) != 0 {
			t.Errorf("%s left in the append-only %s: %v (%v)", args[0], d, entries, err)
		}
	}
}
