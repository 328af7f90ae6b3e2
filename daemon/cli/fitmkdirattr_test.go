package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `inspectd fit --out D/new/m.safetensors` where D is immutable (chattr
// +i) could not make D/new, and said D "cannot be written, not even by
// root, …: it is a kernel or read-only file system", where the write
// check of an immutable --out folder names the attribute. The folder's
// making now names it too, and what clears it, before the fit (a folder
// with no images is not even looked at), and makes nothing.
func TestFitNamesTheAttributeOfTheFolderItCannotMakeIn(t *testing.T) {
	dir := t.TempDir()
	cfg := evalConfig(t, dir)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, "models")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	chattr(t, "+i", d)
	m := filepath.Join(d, "new", "m.safetensors")
	code, _, stderr := runCaptureCmd(t, "fit", "--data", empty, "--config", cfg, "--out", m)
	t.Logf("exit %d, %s", code, stderr)
	says := "folder " + d + " is immutable (chattr +i)"
	clears := "chattr -i " + d + " clears it"
	if code == 0 || !strings.Contains(stderr, says) || !strings.Contains(stderr, clears) ||
		strings.Contains(stderr, "kernel or read-only") {
		t.Errorf("fit --out %s: exit %d, %q; want it refused saying %q and %q", m, code, stderr, says, clears)
	}
	if entries, err := os.ReadDir(d); err != nil || len(entries) != 0 {
		t.Errorf("fit left in %s: %v (%v)", d, entries, err)
	}
}
