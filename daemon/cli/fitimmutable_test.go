package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// chattr sets attribute flag ("+i", "+a") on path and returns what clears
// it, which t's cleanup also runs, so that t.TempDir can be removed. It
// skips t where that is refused (not root, no chattr, a file system
// without attributes).
func chattr(t *testing.T, flag, path string) (clear func()) {
	t.Helper()
	if out, err := exec.Command("chattr", flag, path).CombinedOutput(); err != nil {
		t.Skipf("chattr %s %s: %v %s", flag, path, err, out)
	}
	clear = func() { _ = exec.Command("chattr", "-"+flag[1:], path).Run() }
	t.Cleanup(clear)
	return clear
}

// `inspectd fit --out PATH` over an immutable (chattr +i) model file was
// refused, after the fit, in the rename's words ("rename …: operation not
// permitted") once fit renamed its own temporary file over PATH to keep
// the file's permissions; before, atomicfile's check said the file is
// immutable and what clears it. An immutable or append-only file is now
// refused before the fit (a folder with no images is not even looked at)
// in those words, and the file is left as it was.
func TestFitRefusesAnImmutableModelFileBeforeTheFit(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	dir, cfg, m := fitSmallModel(t)
	before, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ flag, attr string }{{"+i", "immutable"}, {"+a", "append-only"}} {
		clear := chattr(t, c.flag, m)
		for _, data := range []string{filepath.Join(dir, "set"), empty} {
			code, _, stderr := runCaptureCmd(t, "fit", "--data", data, "--config", cfg, "--out", m)
			t.Logf("%s file, --data %s: exit %d, %s", c.attr, data, code, stderr)
			says := m + " is " + c.attr + " (chattr " + c.flag + ")"
			clears := "chattr -" + c.flag[1:] + " " + m + " clears it"
			if code == 0 || !strings.Contains(stderr, says) || !strings.Contains(stderr, clears) || strings.Contains(stderr, "rename") {
				t.Errorf("fit over the %s model file, --data %s: exit %d, %q; want it refused saying %q and %q", c.attr, data, code, stderr, says, clears)
			}
		}
		clear()
		if after, err := os.ReadFile(m); err != nil || !bytes.Equal(after, before) {
			t.Errorf("the %s model file changed (%v)", c.attr, err)
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
