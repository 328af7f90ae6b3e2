package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestDiffCaptureFolderAsTheFolder: Diff listed capture.folder.path as
// changed for the folder in force spelled otherwise ("./frames" for
// "frames", "frames/", "a/../frames"), and the daemon restarted capture for
// it; it compares the setting as the folder it names now (SamePath), as it
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

// TestDiffCaptureFileAsTheFile: Diff listed capture.file.path as changed for
// the file in force spelled otherwise ("./part.png" for "part.png",
// "a/../part.png", a symlink or hard link to it), and the daemon rebuilt the
// file source for it; it compares the setting as the file it names now
// (SamePath), and another file, there or not, is still a change.
func TestDiffCaptureFileAsTheFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, f := range []string{"part.png", "other.png"} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("part.png", "link.png"); err != nil {
		t.Fatal(err)
	}
	if err := os.Link("part.png", "hard.png"); err != nil {
		t.Fatal(err)
	}
	with := func(path string) *Config {
		c := Default()
		c.Capture.Source = SourceFile
		c.Capture.File.Path = path
		return c
	}
	for _, s := range []string{"./part.png", "a/../part.png", filepath.Join(dir, "part.png"), "link.png", "hard.png"} {
		if got := Diff(with("part.png"), with(s)); len(got) != 0 {
			t.Errorf("Diff of capture.file.path %q and %q: %v, want nothing", "part.png", s, got)
		}
	}
	for _, s := range []string{"other.png", "a/part.png", "/part.png", "missing.png", ""} {
		if got := Diff(with("part.png"), with(s)); !reflect.DeepEqual(got, []string{"capture.file.path"}) {
			t.Errorf("Diff of capture.file.path %q and %q: %v, want [capture.file.path]", "part.png", s, got)
		}
	}
}

// KeepSpelling puts back the spelling in force of every path setting
// that names the same place (the daemon listed them by hand), and leaves
// another place, other settings and both arguments alone.
func TestKeepSpelling(t *testing.T) {
	dir := t.TempDir()
	cur := Default()
	cur.StateDir, cur.Capture.Folder.Path, cur.Capture.File.Path = dir, filepath.Join(dir, "frames"), filepath.Join(dir, "part.png")
	next := cur.Clone()
	next.StateDir = dir + "/"
	next.Capture.Folder.Path = filepath.Join(dir, "x") + "/../frames"
	next.Capture.File.Path = filepath.Join(dir, "other.png")
	next.MQTT.ClientID = "a"
	got := KeepSpelling(cur, next)
	if got.StateDir != cur.StateDir || got.Capture.Folder.Path != cur.Capture.Folder.Path {
		t.Errorf("state_dir %q, folder %q: want the spelling in force %q, %q", got.StateDir, got.Capture.Folder.Path, cur.StateDir, cur.Capture.Folder.Path)
	}
	if got.Capture.File.Path != next.Capture.File.Path || got.MQTT.ClientID != "a" {
		t.Errorf("file %q, client_id %q: want next's, another file and another setting", got.Capture.File.Path, got.MQTT.ClientID)
	}
	if next.StateDir != dir+"/" {
		t.Errorf("next changed: state_dir %q", next.StateDir)
	}
	if same := cur.Clone(); KeepSpelling(cur, same) != same {
		t.Error("nothing spelled otherwise: want next itself")
	}
}
