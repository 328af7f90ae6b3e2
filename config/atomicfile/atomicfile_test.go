package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.json")
	for _, content := range []string{"first", "second"} {
		if err := WriteBytes(path, 0o640, []byte(content)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("read %q, %v; want %q", b, err, content)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(entries))
	}
}

// A failing writer leaves the old content and no temporary file.
func TestWriteErrorKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.bin")
	if err := WriteBytes(path, 0o644, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, 0o644, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("content %q after a failed write, want old", b)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if IsTemp(e.Name()) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{".m.bin.tmp-123": true, "m.bin": false, "m.tmp-1": false, ".hidden": false} {
		if IsTemp(name) != want {
			t.Errorf("IsTemp(%q) = %v", name, !want)
		}
	}
}

// A panic in the writer (a bug in an encoder) leaves no temporary file
// either.
func TestWritePanicLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.bin")
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		Write(path, 0o644, func(w io.Writer) error {
			w.Write([]byte("half"))
			panic("encoder bug")
		})
	}()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
}

// A rename that fails (the target is a directory) leaves the target and
// no temporary file.
func TestWriteRenameFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "m.bin")
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(target, 0o644, []byte("new")); err == nil {
		t.Fatal("replaced a non-empty directory")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "m.bin" || !entries[0].IsDir() {
		t.Errorf("directory holds %v", entries)
	}
}

// Temporary files a crash left behind are removed by RemoveStale once they
// are stale; fresh ones (a write in progress) and other targets' are kept.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-StaleAfter - time.Minute)
	mk := func(name string, mtime time.Time) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("leftover"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	mk(".model [1].bin.tmp-111", old)        // stale, this target (glob characters in the name)
	mk(".model [1].bin.tmp-222", time.Now()) // in progress
	mk(".other.bin.tmp-333", old)            // another target's
	target := filepath.Join(dir, "model [1].bin")
	if n := RemoveStale(target); n != 1 {
		t.Errorf("removed %d, want 1", n)
	}
	if err := WriteBytes(target, 0o644, []byte("x")); err != nil {
		t.Fatal(err)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{".model [1].bin.tmp-222", ".other.bin.tmp-333", "model [1].bin"}; !slices.Equal(names, want) {
		t.Errorf("directory holds %q, want %q", names, want)
	}
}

// MkdirAll creates the missing directories and fsyncs the parent of each
// one it created, top down; existing ones cost nothing.
func TestMkdirAllSyncsParents(t *testing.T) {
	root := t.TempDir()
	var synced []string
	rec := func(d string) error { synced = append(synced, d); return nil }
	deep := filepath.Join(root, "a", "b", "c")
	if err := mkdirAll(deep, 0o750, rec); err != nil {
		t.Fatal(err)
	}
	want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}
	if !slices.Equal(synced, want) {
		t.Errorf("synced %q, want %q", synced, want)
	}
	if fi, err := os.Stat(deep); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("created %v, %v", fi, err)
	}
	synced = nil
	if err := mkdirAll(deep, 0o750, rec); err != nil || len(synced) != 0 {
		t.Errorf("existing directory: %v, synced %q", err, synced)
	}
	// A failed sync is an error: the directory may not survive a power cut.
	boom := errors.New("boom")
	err := mkdirAll(filepath.Join(root, "d"), 0o750, func(string) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("sync failure: %v", err)
	}
	// A file in the way.
	f := filepath.Join(root, "file")
	os.WriteFile(f, nil, 0o644)
	if err := MkdirAll(filepath.Join(f, "x"), 0o755); err == nil {
		t.Error("made a directory under a file")
	}
	if err := MkdirAll(f, 0o755); err == nil {
		t.Error("a file taken for a directory")
	}
	if err := MkdirAll(filepath.Join(root, "e", "f"), 0o755); err != nil {
		t.Error(err)
	}
}
