package daemon

import (
	"os"
	"os/exec"
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
	err := StateDirError(filepath.Join(d, "state"))
	t.Logf("%v", err)
	says := "folder " + d + " is immutable (chattr +i)"
	clears := "chattr -i " + d + " clears it"
	if err == nil || !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), clears) || strings.Contains(err.Error(), "kernel or read-only") {
		t.Errorf("state_dir in an immutable folder: %v, want it saying %q and %q", err, says, clears)
	}
}

// The state_dir write check made a file in the folder and removed it: in
// an append-only folder (chattr +a) the removal is refused, so every
// start, dry run or push that checked it left a .inspectd-check-* file
// there that not even root could remove. The folder's attribute is read
// first now, and nothing is made in it; the refusal names the attribute
// and what clears it, as before.
func TestStateDirCheckLeavesNoFileInAnAppendOnlyFolder(t *testing.T) {
	d := t.TempDir()
	if out, err := exec.Command("chattr", "+a", d).CombinedOutput(); err != nil {
		t.Skipf("chattr +a %s (it needs root and a file system with attributes): %v %s", d, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-a", d).Run() })
	for _, dir := range []string{d, filepath.Join(d, "state")} { // state_dir itself, or the folder it is to be made in
		err := StateDirError(dir)
		t.Logf("%v", err)
		says := "folder " + d + " is append-only (chattr +a)"
		if err == nil || !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), "chattr -a "+d+" clears it") {
			t.Errorf("state_dir %s: %v, want it saying %q and what clears it", dir, err, says)
		}
		if left, _ := os.ReadDir(d); len(left) > 0 {
			t.Errorf("state_dir %s: its check left %v in %s", dir, left, d)
		}
	}
}

// A relative state_dir to be made in a working folder that takes no
// folder was refused as "folder . is immutable … chattr -i . clears it":
// the folder is named by its whole path now.
func TestRelativeStateDirNamesTheWorkingFolder(t *testing.T) {
	d := t.TempDir()
	t.Chdir(d)
	immutable(t, d)
	err := StateDirError("state")
	says := "folder " + d + " is immutable (chattr +i)"
	if err == nil || !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "folder .") {
		t.Errorf("relative state_dir in an immutable working folder: %v, want it saying %q", err, says)
	}
}
