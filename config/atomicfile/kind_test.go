package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FileKind's words are those model/padim's and capture's TestFileKindWords
// hold their refusals to.
func TestFileKindWords(t *testing.T) {
	for m, want := range map[fs.FileMode]string{
		fs.ModeDevice:                     "a device",
		fs.ModeDevice | fs.ModeCharDevice: "a device",
		fs.ModeNamedPipe:                  "a named pipe",
		fs.ModeSocket:                     "a socket",
		fs.ModeIrregular:                  "not a regular file",
		fs.ModeSymlink:                    "not a regular file",
	} {
		if got := FileKind(m); got != want {
			t.Errorf("FileKind(%v) = %q, want %q", m, got, want)
		}
	}
}

// ReplaceRefusal refuses what a rename into place would wrongly replace
// (/dev/null, a link into a process's open files) and nothing else: a new
// name, a regular file, a folder, a link to a file or to nothing.
func TestReplaceRefusal(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{"tofile": file, "tonothing": filepath.Join(dir, "none"),
		"tonull": "/dev/null", "tostdout": "/proc/self/fd/1"}
	for name, to := range links {
		if err := os.Symlink(to, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "new"):       "",
		file:                            "",
		dir:                             "",
		filepath.Join(dir, "tofile"):    "",
		filepath.Join(dir, "tonothing"): "",
		"/dev/null":                     "is a device",
		filepath.Join(dir, "tonull"):    "is a link to a device",
		filepath.Join(dir, "tostdout"):  "is a link to /proc/self/fd/1, a process's open file",
	} {
		if got := ReplaceRefusal(path); got != want {
			t.Errorf("ReplaceRefusal(%s) = %q, want %q", path, got, want)
		}
	}
}
