package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// `inspectd fit --out PATH` over an operator's 0444 or 0640 model file
// wrote the new one 0644, while the daemon's threshold, refit and
// rollback commands keep the replaced file's permissions. Fit keeps them
// too; a new file is written 0644 as before, and no temporary file is
// left beside it.
func TestFitKeepsTheReplacedModelFilesMode(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	dir, cfg, m := fitSmallModel(t)
	mode := func() fs.FileMode {
		t.Helper()
		st, err := os.Stat(m)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if got := mode(); got != 0o644 {
		t.Errorf("a new model file: mode %v, want 0644", got)
	}
	set := filepath.Join(dir, "set")
	for _, perm := range []fs.FileMode{0o444, 0o640} {
		if err := os.Chmod(m, perm); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := runCaptureCmd(t, "fit", "--data", set, "--config", cfg, "--out", m); code != 0 {
			t.Fatalf("fit over a %v file: exit %d, %s", perm, code, stderr)
		}
		if got := mode(); got != perm {
			t.Errorf("fit over a %v model file: mode %v, want %v", perm, got, perm)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if name := e.Name(); name[0] == '.' {
			t.Errorf("left beside the model: %s", name)
		}
	}
}

// `inspectd eval --save-model PATH` over an operator's 0444 or 0640 model
// file wrote the new one 0644, where fit --out keeps the replaced file's
// permissions; eval keeps them too.
func TestEvalKeepsTheReplacedModelFilesMode(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	dir, cfg, m := fitSmallModel(t)
	set := filepath.Join(dir, "set")
	for _, perm := range []fs.FileMode{0o444, 0o640} {
		if err := os.Chmod(m, perm); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := runCaptureCmd(t, "eval", "--data", set, "--config", cfg, "--save-model", m); code != 0 {
			t.Fatalf("eval over a %v file: exit %d, %s", perm, code, stderr)
		}
		st, err := os.Stat(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != perm {
			t.Errorf("eval --save-model over a %v model file: mode %v, want %v", perm, got, perm)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if name := e.Name(); name[0] == '.' {
			t.Errorf("left beside the model: %s", name)
		}
	}
}
