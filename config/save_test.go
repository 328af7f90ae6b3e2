package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSaveNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inspectd.yaml")
	c := nonDefault()
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %v; want 0600 (it may hold the MQTT password)", fi.Mode().Perm())
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("Load(Save(c)) differs:\n got  %+v\n want %+v", back, c)
	}
	assertNoTemp(t, dir)
}

func TestSaveReplacesKeepingMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inspectd.yaml")
	if err := os.WriteFile(path, []byte("log_level: warn\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.LogLevel = "error"
	if err := Save(path, c); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v; want the old 0640", fi.Mode().Perm())
	}
	back, err := Load(path)
	if err != nil || back.LogLevel != "error" {
		t.Errorf("Load after Save: %v, %v", back, err)
	}
	assertNoTemp(t, dir)
}

func TestSaveFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.yaml")
	link := filepath.Join(dir, "inspectd.yaml")
	if err := os.WriteFile(real, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.yaml", link); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.DeviceID = "linked"
	if err := Save(link, c); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v, %v", fi, err)
	}
	back, err := Load(real)
	if err != nil || back.DeviceID != "linked" {
		t.Errorf("target not written: %v, %v", back, err)
	}
}

// A symlink whose file does not exist yet stays a symlink: the file is
// created where it points (relative to the link's folder), as Save's doc
// promises; chains are followed, loops refused.
func TestSaveDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "inspectd.yaml")
	mid := filepath.Join(dir, "etc", "current.yaml")
	real := filepath.Join(dir, "etc", "line3.yaml")
	if err := os.Symlink("etc/current.yaml", link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, mid); err != nil { // absolute, and dangling
		t.Fatal(err)
	}
	c := Default()
	c.DeviceID = "dangling"
	if err := Save(link, c); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{link, mid} {
		if fi, err := os.Lstat(l); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symlink: %v, %v", l, fi, err)
		}
	}
	fi, err := os.Stat(real)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("target %v, %v; want a new 0600 file", fi, err)
	}
	if back, err := Load(link); err != nil || back.DeviceID != "dangling" {
		t.Errorf("read back %v, %v", back, err)
	}
	assertNoTemp(t, dir)
	assertNoTemp(t, filepath.Join(dir, "etc"))

	loop := filepath.Join(dir, "loop.yaml")
	if err := os.Symlink("loop.yaml", loop); err != nil {
		t.Fatal(err)
	}
	if err := Save(loop, c); err == nil || !strings.Contains(err.Error(), "symbolic links") {
		t.Errorf("symlink loop: %v", err)
	}
}

// A save through a link into a folder that does not exist fails, naming
// the path, and leaves nothing behind (the failures after the temporary
// file exists are atomicfile's tests).
func TestSaveFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "inspectd.yaml")
	// A dangling link into a folder that does not exist: nothing to write to.
	if err := os.Symlink("nowhere/inspectd.yaml", link); err != nil {
		t.Fatal(err)
	}
	if err := Save(link, Default()); err == nil || !strings.Contains(err.Error(), "save config "+link) {
		t.Errorf("save into a missing folder: %v", err)
	}
	assertNoTemp(t, dir)
}

// A temporary file that a crash left in the middle of a save, an hour
// old, is removed by the next save.
func TestSaveRemovesStaleTemp(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".inspectd.yaml.tmp-123")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	if err := Save(filepath.Join(dir, "inspectd.yaml"), Default()); err != nil {
		t.Fatal(err)
	}
	assertNoTemp(t, dir)
}

func TestSaveRefusesInvalid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inspectd.yaml")
	old := []byte("log_level: warn\n")
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.Model.Features = 0
	c.Pipeline.Queue = 0
	err := Save(path, c)
	want := "save config " + path + ": refusing an invalid configuration:\n" +
		"model.features: 0 is out of range 1..2048\npipeline.queue: 0 is out of range 1..1024"
	if err == nil || err.Error() != want {
		t.Errorf("error %v; want %s", err, want)
	}
	if ps := Problems(err); len(ps) != 2 || ps[0].Field != "model.features" || ps[1].Field != "pipeline.queue" {
		t.Errorf("Problems(%v) = %v", err, ps)
	}
	if b, _ := os.ReadFile(path); string(b) != string(old) {
		t.Errorf("file changed to %q", b)
	}
	assertNoTemp(t, dir)
}

func TestSaveErrors(t *testing.T) {
	dir := t.TempDir()
	err := Save(filepath.Join(dir, "missing", "inspectd.yaml"), Default())
	if err == nil || !strings.HasPrefix(err.Error(), "save config "+filepath.Join(dir, "missing", "inspectd.yaml")+": ") {
		t.Errorf("missing directory: %v", err)
	}
	err = Save(dir, Default())
	if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("directory as path: %v", err)
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		if err := Save(filepath.Join(ro, "inspectd.yaml"), Default()); err == nil {
			t.Error("saved into a read-only directory")
		}
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
