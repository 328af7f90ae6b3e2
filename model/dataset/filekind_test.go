package dataset

import (
	"io/fs"
	"testing"

	"github.com/inspectd/inspectd/model/padim"
)

// An image file that is not a regular file is refused in padim.FileKind's
// words (those of a refused model file), after the folder case; what is
// none of the kinds named was "a special file" here and "not a regular
// file" there.
func TestFileKindIsPadims(t *testing.T) {
	if got := fileKind(fs.ModeDir); got != "a folder" {
		t.Errorf("fileKind(folder) = %q, want \"a folder\"", got)
	}
	for _, m := range []fs.FileMode{fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice, fs.ModeNamedPipe, fs.ModeSocket, fs.ModeIrregular, fs.ModeSymlink} {
		if got, want := fileKind(m), padim.FileKind(m); got != want {
			t.Errorf("fileKind(%v) = %q, padim.FileKind says %q", m, got, want)
		}
	}
}
