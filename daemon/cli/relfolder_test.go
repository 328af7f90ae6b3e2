package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A relative --out, --json, --save-model or --report in a working folder
// that takes no files (append-only or immutable) was refused naming it
// "folder ." ("chattr -a . clears it"): the folder is named by its
// absolute path now, as it is for an absolute one.
func TestRelativeOutputNamesTheWorkingFolder(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ flag, attr string }{{"+a", "append-only"}, {"+i", "immutable"}} {
		work := filepath.Join(dir, "work"+c.flag[1:])
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
		cases := [][]string{
			{"fit", "--data", empty, "--config", cfg, "--out", "m.safetensors"},
			{"eval", "--data", empty, "--config", cfg, "--json", "e.json"},
			{"eval", "--data", empty, "--config", cfg, "--save-model", "m.safetensors"},
			{"eval", "--data", empty, "--config", cfg, "--save-model", filepath.Join("new", "m.safetensors")},
		}
		if c.attr == "immutable" {
			// An append-only folder takes a --report folder (nothing in
			// it is replaced): only an immutable one refuses it.
			cases = append(cases, []string{"eval", "--data", empty, "--config", cfg, "--report", "rep"})
		}
		t.Chdir(work)
		chattr(t, c.flag, work)
		for _, args := range cases {
			code, _, stderr := runCaptureCmd(t, args...)
			says := "folder " + work + " is " + c.attr
			clears := "chattr -" + c.flag[1:] + " " + work + " clears it"
			if code == 0 || !strings.Contains(stderr, says) || !strings.Contains(stderr, clears) || strings.Contains(stderr, "folder . ") {
				t.Errorf("%v in a %s working folder: exit %d, %q; want it refused saying %q and %q", args, c.attr, code, stderr, says, clears)
			}
		}
	}
}
