package atomicfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// chattr sets attribute flag ("+a", "+i") on path, skipping t where that
// is refused (not root, a file system without attributes), and clears it
// when t ends so that t.TempDir can be removed.
func chattr(t *testing.T, flag, path string) {
	t.Helper()
	if out, err := exec.Command("chattr", flag, path).CombinedOutput(); err != nil {
		t.Skipf("chattr %s %s: %v %s", flag, path, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-"+flag[1:], path).Run() })
}

// A write into an append-only folder (chattr +a) created its temporary
// file, failed to rename it, and failed to remove it: each refused write
// left a file nobody could remove. It is now refused before anything is
// created, with EPERM and the attribute named; so is a write over an
// immutable or append-only file, whose rename fails the same way.
func TestWriteRefusesAppendOnlyOrImmutable(t *testing.T) {
	for _, c := range []struct{ name, flag, attr string }{
		{"append-only folder", "+a", "folder %s is append-only (chattr +a)"},
		{"immutable target", "+i", "%s is immutable (chattr +i)"},
		{"append-only target", "+a", "%s is append-only (chattr +a)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "m.bin")
			attrOn := dir
			if !strings.Contains(c.name, "folder") {
				if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
				attrOn = path
			}
			chattr(t, c.flag, attrOn)
			before, _ := os.ReadDir(dir)
			err := WriteBytes(path, 0o644, []byte("new"))
			t.Logf("%s: %v", c.name, err)
			if !errors.Is(err, syscall.EPERM) {
				t.Errorf("error %v, want one wrapping EPERM", err)
			}
			var ae *AttrError
			if want := strings.Replace(c.attr, "%s", attrOn, 1); !errors.As(err, &ae) || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v, want an *AttrError saying %q", err, want)
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Errorf("directory holds %v, held %v", after, before)
			}
		})
	}
}

// A plain folder, and a plain file replaced in it, are written as ever.
func TestWritePlainFolderPassesAttrCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.bin")
	for _, content := range []string{"one", "two"} {
		if err := WriteBytes(path, 0o644, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Fatalf("content %q, want %q", b, content)
		}
	}
}
