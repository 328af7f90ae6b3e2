package capture

import (
	"io/fs"
	"testing"
)

// capture words a file's kind as atomicfile.FileKind does (padim.FileKind
// too), the folder apart: this table is the one their TestFileKindWords
// hold them to. What is none of the kinds named
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
