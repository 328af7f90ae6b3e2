package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd eval --save-model PATH` over an immutable or append-only file
// (chattr +i, +a) was refused only by the save, after the whole fit; fit
// --out refused it before. eval now refuses it before it reads its data
// set (a folder with no images is not even looked at), in the attribute's
// words, and the file is left as it was.
func TestEvalRefusesAnImmutableSaveModelFileBeforeTheFit(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(dir, "m.safetensors")
	if err := os.WriteFile(m, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ flag, attr string }{{"+i", "immutable"}, {"+a", "append-only"}} {
		clear := chattr(t, c.flag, m)
		code, stdout, stderr := runCaptureCmd(t, "eval", "--data", empty, "--config", cfg, "--save-model", m)
		t.Logf("%s file: exit %d, %s", c.attr, code, stderr)
		says := "--save-model: " + m + " is " + c.attr + " (chattr " + c.flag + ")"
		clears := "chattr -" + c.flag[1:] + " " + m + " clears it"
		if code == 0 || !strings.Contains(stderr, says) || !strings.Contains(stderr, clears) || strings.Contains(stderr, "fit done") {
			t.Errorf("eval --save-model over the %s file: exit %d, %q%q; want it refused first saying %q and %q", c.attr, code, stdout, stderr, says, clears)
		}
		clear()
		if b, err := os.ReadFile(m); err != nil || string(b) != "old" {
			t.Errorf("the %s file now holds %q (%v)", c.attr, b, err)
		}
	}
}
