package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fit's write check of the --out folder (and eval's of --save-model's)
// made and removed a file of its own there: in an append-only folder
// (chattr +a) the removal failed, so the check said only "remove
// …/.inspectd-write-check-…: operation not permitted" and left that file
// behind; in an immutable one (chattr +i) it said the folder cannot be
// written "not even by root … it is a kernel or read-only file system".
// Both now name the folder's attribute and what clears it, before the fit
// (a folder with no images is not even looked at), and leave nothing.
func TestWriteCheckNamesTheFolderAttribute(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ flag, attr string }{{"+a", "append-only"}, {"+i", "immutable"}} {
		out := filepath.Join(dir, "out"+c.flag[1:])
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		chattr(t, c.flag, out)
		m := filepath.Join(out, "m.safetensors")
		for _, args := range [][]string{
			{"fit", "--data", empty, "--config", cfg, "--out", m},
			{"eval", "--data", empty, "--config", cfg, "--save-model", m},
		} {
			code, _, stderr := runCaptureCmd(t, args...)
			t.Logf("%s in a %s folder: exit %d, %s", args[0], c.attr, code, stderr)
			says := "folder " + out + " is " + c.attr + " (chattr " + c.flag + ")"
			clears := "chattr -" + c.flag[1:] + " " + out + " clears it"
			if code == 0 || !strings.Contains(stderr, says) || !strings.Contains(stderr, clears) ||
				strings.Contains(stderr, "remove ") || strings.Contains(stderr, "not even by root") {
				t.Errorf("%s into the %s folder: exit %d, %q; want it refused saying %q and %q", args[0], c.attr, code, stderr, says, clears)
			}
			if entries, err := os.ReadDir(out); err != nil || len(entries) != 0 {
				t.Errorf("%s left in the %s folder: %v (%v)", args[0], c.attr, entries, err)
			}
		}
	}
}
