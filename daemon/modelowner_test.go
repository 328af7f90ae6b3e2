package daemon

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// nobody is a uid and gid that are not root's, for the owner of a model
// file an operator shares with a group.
const nobody = 65534

// ownerOf is the owner, group and permissions of the file at path.
func ownerOf(t *testing.T, path string) (uid, gid uint32, perm fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return sys.Uid, sys.Gid, st.Mode().Perm()
}

// TestModelFilesKeepTheOwner: a model file written over an operator's
// (by `fit --out`, SaveModelFile, and by the threshold, refit and
// rollback commands, keepModelMode and the rollback's swap) kept its
// mode but took the process's owner and group: a 0640 file of
// nobody:nogroup, shared with that group, became root:root, unreadable by
// the group. Run as root, each now keeps the replaced file's owner and
// group, and its mode.
func TestModelFilesKeepTheOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file another user's owner takes root")
	}
	det := syntheticDetector(t)
	dir := t.TempDir()
	dst := filepath.Join(dir, "model.safetensors")
	share := func(path string) {
		t.Helper()
		if err := os.Chown(path, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	kept := func(what, path string) {
		t.Helper()
		if uid, gid, perm := ownerOf(t, path); uid != nobody || gid != nobody || perm != 0o640 {
			t.Errorf("%s: %s is %d:%d %v, want %d:%d 0640", what, path, uid, gid, perm, nobody, nobody)
		}
	}
	if err := det.Save(dst); err != nil {
		t.Fatal(err)
	}
	share(dst)

	// fit --out over it.
	if err := SaveModelFile(det, dst); err != nil {
		t.Fatal(err)
	}
	kept("SaveModelFile over it", dst)

	// A threshold command's or a refit's install: the new file and the
	// model in force, which .prev keeps, both written by this process.
	src, inForce := filepath.Join(dir, ".new"), filepath.Join(dir, ".inforce")
	for _, f := range []string{src, inForce} {
		if err := det.Save(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := installModelFile(src, dst, inForce); err != nil {
		t.Fatal(err)
	}
	kept("an install over it", dst)
	kept("an install over it, the kept model", PreviousModelPath(dst))

	// A rollback: .prev of root's (a file the operator copied there)
	// takes dst's place, and the model in force, saved by this process,
	// becomes .prev.
	prev := PreviousModelPath(dst)
	if err := os.Chown(prev, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := det.Save(inForce); err != nil {
		t.Fatal(err)
	}
	if err := swapWithPrevious(dst, inForce); err != nil {
		t.Fatal(err)
	}
	kept("a rollback", dst)
	kept("a rollback, the kept model", prev)
}
