package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/inspectd/inspectd/config"
)

// A link at model.path's .prev: the replaced model is renamed over
// .prev, which replaces the link itself (.prev is never a link), so a
// link there to a file elsewhere, a folder, nothing or itself is
// replaced and what it led to left as it was; a link to a named pipe is
// refused before anything is written, as such a link at model.path is,
// and the refusal says so: it said ".prev is not a regular file", naming
// neither the link nor the pipe.
func TestALinkAtPrevIsReplacedOrRefusedInItsWords(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Model.Path = filepath.Join(dir, "m.safetensors")
	prev := PreviousModelPath(cfg.Model.Path)
	pipe, folder, other := filepath.Join(dir, "thepipe"), filepath.Join(dir, "afolder"), filepath.Join(dir, "other.safetensors")
	if err := syscall.Mkfifo(pipe, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(other, "another model")
	link := func(to string) {
		t.Helper()
		if err := os.Remove(prev); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := os.Symlink(to, prev); err != nil {
			t.Fatal(err)
		}
	}

	link("thepipe")
	err := installTargetError(cfg)
	want := "model.path: " + prev + " is a link to " + pipe + ", a named pipe, not a model file"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "the model in force stays") {
		t.Errorf("a link at .prev to a named pipe: %v, want a refusal beginning %q", err, want)
	}

	for _, to := range []string{"other.safetensors", "afolder", "gone", filepath.Base(prev)} {
		write(cfg.Model.Path, "old model")
		link(to)
		if err := installTargetError(cfg); err != nil {
			t.Errorf("a link at .prev to %s: %v, want it replaced", to, err)
			continue
		}
		src, inForce := filepath.Join(dir, ".new"), filepath.Join(dir, ".inforce")
		write(src, "new model")
		write(inForce, "model in force")
		if err := installModelFile(src, cfg.Model.Path, inForce); err != nil {
			t.Errorf("install with a link at .prev to %s: %v", to, err)
			continue
		}
		if st, err := os.Lstat(prev); err != nil || !st.Mode().IsRegular() {
			t.Errorf("install with a link at .prev to %s: .prev is %v (%v), want the model in force in a file of its own", to, st.Mode(), err)
		} else if b, _ := os.ReadFile(prev); string(b) != "model in force" {
			t.Errorf("install with a link at .prev to %s: .prev holds %q", to, b)
		}
		if b, _ := os.ReadFile(other); string(b) != "another model" {
			t.Errorf("install with a link at .prev to %s: %s now holds %q, want it left as it was", to, other, b)
		}
		if left, _ := os.ReadDir(folder); len(left) > 0 {
			t.Errorf("install with a link at .prev to %s: %s now holds %v", to, folder, left)
		}
	}
}

// TestALinkThroughLinksIsRefusedNamingWhereItEnds: a link at model.path or
// at its .prev that leads to a named pipe through another link (.prev →
// hop → thepipe) was refused as "a link to DIR/hop, a named pipe", calling
// the link on the way a pipe; the refusal names the pipe now.
func TestALinkThroughLinksIsRefusedNamingWhereItEnds(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Model.Path = filepath.Join(dir, "m.safetensors")
	pipe, hop := filepath.Join(dir, "thepipe"), filepath.Join(dir, "hop")
	if err := syscall.Mkfifo(pipe, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("thepipe", hop); err != nil {
		t.Fatal(err)
	}
	for _, at := range []string{PreviousModelPath(cfg.Model.Path), cfg.Model.Path} {
		if err := os.Symlink("hop", at); err != nil {
			t.Fatal(err)
		}
		want := at + " is a link to " + pipe + ", a named pipe, not a model file"
		if err := installTargetError(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a link at %s to a named pipe through %s: %v, want a refusal saying %q", at, hop, err, want)
		}
	}
}
