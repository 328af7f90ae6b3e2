package model

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Save refuses a path that is there and is not a regular file: it wrote a
// temporary file and renamed it over the path, so that a trial's
// 'inspectd fit --out /dev/null' as root put a 64 MB regular file in place
// of /dev/null. The nodes here are made in a temporary folder, never the
// system's. A symbolic link is replaced by the model, as before, and what
// it points to is left alone.
func TestSaveRefusesWhatIsNotARegularFile(t *testing.T) {
	det, _, err := Fit(context.Background(), testOptions(t), textures(12), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	dir := t.TempDir()
	type target struct{ path, kind string }
	var targets []target
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	targets = append(targets, target{fifo, "a named pipe"})
	dev := filepath.Join(dir, "null")
	// /dev/null's numbers (1, 3), in the temporary folder.
	if err := syscall.Mknod(dev, syscall.S_IFCHR|0o600, 1<<8|3); err == nil {
		targets = append(targets, target{dev, "a device"})
	} else {
		t.Logf("no device node (%v): its case is left out", err)
	}
	sock := filepath.Join(dir, "sock")
	if l, err := net.Listen("unix", sock); err == nil {
		defer l.Close()
		targets = append(targets, target{sock, "a socket"})
	} else {
		t.Logf("no socket (%v): its case is left out", err)
	}
	folder := filepath.Join(dir, "folder")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	targets = append(targets, target{folder, "a folder"})
	for _, tc := range targets {
		before, err := os.Lstat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		err = det.Save(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.path+" is "+tc.kind+", not a model file") {
			t.Errorf("Save(%s): %v, want a refusal naming it %s", tc.path, err, tc.kind)
		}
		if after, err := os.Lstat(tc.path); err != nil || after.Mode() != before.Mode() {
			t.Errorf("%s was %v, now %v (%v)", tc.path, before.Mode(), after, err)
		}
	}
	if err := CheckSaveTarget(filepath.Join(dir, "new.safetensors")); err != nil {
		t.Errorf("a new file: %v", err)
	}

	real := filepath.Join(dir, "real.safetensors")
	if err := os.WriteFile(real, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.safetensors")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := det.Save(link); err != nil {
		t.Fatalf("Save over a link to a regular file: %v", err)
	}
	if st, err := os.Lstat(link); err != nil || !st.Mode().IsRegular() {
		t.Errorf("link after Save: %v, %v; want the model in its place", st, err)
	}
	if b, err := os.ReadFile(real); err != nil || string(b) != "old" {
		t.Errorf("the link's target: %q, %v; want it untouched", b, err)
	}
}

// A link is replaced by a saved model (what it leads to left alone),
// unless it leads to what was meant to be written into: a named pipe, or
// a process's open files (/dev/stdout → /proc/self/fd/1), which the
// rename replaced as root.
func TestCheckSaveTargetFollowsLinksToWhatItWouldReplace(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "old.safetensors")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ to, says string }{
		{"fifo", "is a link to a named pipe"},
		{"/proc/self/fd/1", "is a link to /proc/self/fd/1, a process's open file"},
		{"old.safetensors", ""},
		{"gone", ""},
	} {
		l := filepath.Join(dir, "to-"+filepath.Base(c.to))
		if err := os.Symlink(c.to, l); err != nil {
			t.Fatal(err)
		}
		err := CheckSaveTarget(l)
		if c.says == "" && err != nil || c.says != "" && (err == nil || !strings.Contains(err.Error(), l+" "+c.says)) {
			t.Errorf("a link to %s: %v, want %q", c.to, err, c.says)
		}
	}
}
