package daemon

import (
	"path/filepath"
	"strings"
	"testing"
)

// A state_dir to be made in an immutable folder (chattr +i) was refused
// as one on "a kernel or read-only file system" (unwritable, as root); it
// names the attribute now, and what clears it, as a file written there is
// refused (atomicfile.CheckFolder).
func TestStateDirInAnImmutableFolderNamesTheAttribute(t *testing.T) {
	d := t.TempDir()
	immutable(t, d)
	err := stateDirError(filepath.Join(d, "state"))
	t.Logf("%v", err)
	says := "folder " + d + " is immutable (chattr +i)"
	clears := "chattr -i " + d + " clears it"
	if err == nil || !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), clears) || strings.Contains(err.Error(), "kernel or read-only") {
		t.Errorf("state_dir in an immutable folder: %v, want it saying %q and %q", err, says, clears)
	}
}
