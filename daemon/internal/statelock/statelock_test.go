package statelock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFreeSeesTheHolderAndWritesNothing: Free must tell a folder another
// daemon holds (flock conflicts between open files, so a second open in
// this process stands for another process) without creating anything,
// since the remote front end asks it before it writes into a folder.
func TestFreeSeesTheHolderAndWritesNothing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "not", "there")
	if err := Free(missing); err != nil {
		t.Fatalf("Free on a missing folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "not")); !os.IsNotExist(err) {
		t.Fatalf("Free created %s: %v", missing, err)
	}
	if err := Free(dir); err != nil {
		t.Fatalf("Free on a folder without a lock file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, File)); !os.IsNotExist(err) {
		t.Fatalf("Free created the lock file: %v", err)
	}
	l, err := Take(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = Free(dir)
	if err == nil || !strings.Contains(err.Error(), "in use by another inspectd (process ") {
		t.Fatalf("Free on a held folder: %v, want the holder named", err)
	}
	if _, err := Take(dir); err == nil {
		t.Fatal("a second Take of a held folder succeeded")
	}
	l.Release()
	if err := Free(dir); err != nil {
		t.Fatalf("Free after Release: %v", err)
	}
	// Free left the lock takeable: it released what it tried.
	l2, err := Take(dir)
	if err != nil {
		t.Fatalf("Take after Free: %v", err)
	}
	l2.Release()
}

// TestInUseWords: the in-use refusal says "state_dir: " as every other
// state_dir refusal does. (One folder spelled differently is the same
// folder: config.SamePath, TestDiffStateDirAsTheFolder.)
func TestInUseWords(t *testing.T) {
	st := t.TempDir()
	l, err := Take(st)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := Free(st); err == nil || !strings.HasPrefix(err.Error(), "state_dir: "+st+" is in use by another inspectd") {
		t.Errorf("Free on a held folder: %v, want it to start with %q", err, "state_dir: "+st)
	}
}

// TestHoldsTheFolderItLockedWhateverItsPath: a lock taken through a
// symlink holds the folder the link led to, under its real path and any
// other, also after the link is re-pointed; neither the folder the link
// leads to now nor another folder whose lock another Lock holds is its.
func TestHoldsTheFolderItLockedWhateverItsPath(t *testing.T) {
	dir := t.TempDir()
	st1, st4, link := filepath.Join(dir, "st1"), filepath.Join(dir, "st4"), filepath.Join(dir, "st1link")
	for _, d := range []string{st1, st4} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(st1, link); err != nil {
		t.Fatal(err)
	}
	l, err := Take(link + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	other, err := Take(st4)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	for _, p := range []string{link + "/", st1, st1 + "/", filepath.Join(dir, ".", "st1")} {
		if !l.Holds(p) {
			t.Errorf("the lock taken through %s/ does not hold %s", link, p)
		}
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(st4, link); err != nil {
		t.Fatal(err)
	}
	if !l.Holds(st1) {
		t.Errorf("the lock does not hold %s after %s was re-pointed", st1, link)
	}
	for _, p := range []string{link, st4, filepath.Join(dir, "missing")} {
		if l.Holds(p) {
			t.Errorf("the lock of %s holds %s", st1, p)
		}
	}
	if (*Lock)(nil).Holds(st1) {
		t.Error("a nil Lock holds a folder")
	}
}
