package cli

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// `inspectd fit --out PATH` over a 0640 model file of another owner and
// group (nobody:nogroup, shared with that group) kept its mode but made it
// root:root, unreadable by the group it was shared with. Run as root, fit
// now keeps the replaced file's owner and group, and its mode.
func TestFitKeepsTheReplacedModelFilesOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	if os.Geteuid() != 0 {
		t.Skip("giving a file another user's owner takes root")
	}
	const nobody = 65534
	dir, cfg, m := fitSmallModel(t)
	if err := os.Chown(m, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(m, 0o640); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCaptureCmd(t, "fit", "--data", filepath.Join(dir, "set"), "--config", cfg, "--out", m); code != 0 {
		t.Fatalf("fit over the shared file: exit %d, %s", code, stderr)
	}
	st, err := os.Stat(m)
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != nobody || sys.Gid != nobody || st.Mode().Perm() != 0o640 {
		t.Errorf("fit over a 0640 %d:%d model file: %d:%d %v, want it kept", nobody, nobody, sys.Uid, sys.Gid, st.Mode().Perm())
	}
}
