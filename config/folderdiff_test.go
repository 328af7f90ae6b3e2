package config

import (
	"path/filepath"
	"reflect"
	"testing"
)

// TestDiffCaptureFolderAsTheFolder: Diff listed capture.folder.path as
// changed for the folder in force spelled otherwise ("./frames" for
// "frames", "frames/", "a/../frames"), and the daemon restarted capture for
// it; it compares the setting as the folder it names now (SameDir), as it
// does state_dir, and another folder is still a change.
func TestDiffCaptureFolderAsTheFolder(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	with := func(path string) *Config {
		c := Default()
		c.Capture.Source = SourceFolder
		c.Capture.Folder.Path = path
		return c
	}
	for _, s := range []string{"./frames", "frames/", "a/../frames", "./frames/.", filepath.Join(dir, "frames")} {
		if got := Diff(with("frames"), with(s)); len(got) != 0 {
			t.Errorf("Diff of capture.folder.path %q and %q: %v, want nothing", "frames", s, got)
		}
	}
	for _, s := range []string{"frames2", "a/frames", "/frames", ""} {
		if got := Diff(with("frames"), with(s)); !reflect.DeepEqual(got, []string{"capture.folder.path"}) {
			t.Errorf("Diff of capture.folder.path %q and %q: %v, want [capture.folder.path]", "frames", s, got)
		}
	}
}
