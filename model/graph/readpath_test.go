package graph

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/modeltest"
)

// TestReadBytesNamesADanglingLinkAndAnEmptyPath: `model inspect L` of a
// link L to a file not there said "read model L: open L: no such file or
// directory", as if the link were gone, and `model inspect ""` said
// "open : no such file or directory", naming no file. The link is named
// with where it leads, the empty path as empty; a link to the backbone
// still reads.
func TestReadBytesNamesADanglingLinkAndAnEmptyPath(t *testing.T) {
	dir := t.TempDir()
	dangling := filepath.Join(dir, "bb.tflite")
	if err := os.Symlink(filepath.Join(dir, "gone.tflite"), dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBytes(dangling); err == nil || !strings.Contains(err.Error(), dangling+" is a link to "+filepath.Join(dir, "gone.tflite")+", which does not exist") {
		t.Errorf("dangling link: %v", err)
	}
	if _, err := ReadBytes(""); err == nil || !strings.Contains(err.Error(), "the model path is empty") {
		t.Errorf("empty path: %v", err)
	}
	good := filepath.Join(dir, "good.tflite")
	if err := os.Symlink(modeltest.BackbonePath(t), good); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(good); err != nil {
		t.Errorf("link to the backbone: %v", err)
	}
}
