package capture

import (
	"io/fs"
	"testing"
)

// capture keeps its own copy of padim.FileKind's words (it may not import
// model): this table is the one model/padim's TestFileKindWords holds
// padim.FileKind to, the folder apart. What is none of the kinds named
// was "a special file" here and "not a regular file" in a refused model
// file; both now say the latter.
func TestFileKindWords(t *testing.T) {
	for m, want := range map[fs.FileMode]string{
		fs.ModeDir:                        "a folder",
		fs.ModeDevice:                     "a device",
		fs.ModeDevice | fs.ModeCharDevice: "a device",
		fs.ModeNamedPipe:                  "a named pipe",
		fs.ModeSocket:                     "a socket",
		fs.ModeIrregular:                  "not a regular file",
		fs.ModeSymlink:                    "not a regular file",
	} {
		if got := fileKind(m); got != want {
			t.Errorf("fileKind(%v) = %q, want %q", m, got, want)
		}
	}
}
