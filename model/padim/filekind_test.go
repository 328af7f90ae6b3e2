package padim

import (
	"io/fs"
	"testing"
)

// FileKind's words are atomicfile.FileKind's, which capture and config
// use too; their TestFileKindWords hold them to this same table.
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
