package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// SaveModelFile renames its own temporary file over a model file there:
// over an immutable one it said only "rename …: operation not permitted",
// where Save (atomicfile) says the file is immutable and what clears it.
// It says so again, and leaves no temporary file.
func TestSaveModelFileSaysTheFileIsImmutable(t *testing.T) {
	det := syntheticDetector(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := os.WriteFile(path, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	immutable(t, path)
	err := SaveModelFile(det, path)
	t.Logf("%v", err)
	var ae *atomicfile.AttrError
	if want := path + " is immutable (chattr +i)"; !errors.As(err, &ae) || !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), want) {
		t.Errorf("SaveModelFile over an immutable file: %v, want an *atomicfile.AttrError saying %q", err, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%s holds %v, want the model file alone", dir, entries)
	}
}
