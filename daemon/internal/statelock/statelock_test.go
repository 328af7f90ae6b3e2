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
// folder: config.SameDir, TestDiffStateDirAsTheFolder.)
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
