//go:build unix

package remote

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// A folder refit whose folder held an image name leading to a named pipe
// (x.png, a link to a pipe elsewhere) waited for good in the pipe's open:
// the job never ended, and no other refit could start. Pipes and devices
// are now skipped and counted as unreadable images are, each named with
// what it is, and the refit goes on with the other images; one put in a
// listed image's place before the job decodes it is refused there too.
func TestRefitFolderSkipsPipesAndDevices(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	writeFrames(t, dir, 5)
	pipe := filepath.Join(elsewhere, "pipe")
	testfs.Mkfifo(t, pipe)
	if err := os.Symlink(pipe, filepath.Join(dir, "a_link.png")); err != nil {
		t.Fatal(err)
	}
	testfs.Mkfifo(t, filepath.Join(dir, "b_pipe.png"))
	want := []string{"a_link.png: a named pipe, not an image file", "b_pipe.png: a named pipe, not an image file"}
	if _, err := os.Stat("/dev/zero"); err == nil {
		// Read, it never ends; it is not opened.
		if err := os.Symlink("/dev/zero", filepath.Join(dir, "c_zero.png")); err != nil {
			t.Fatal(err)
		}
		want = append(want, "c_zero.png: a device, not an image file")
	}
	var f *folderImages
	var err error
	testfs.Within(t, 5*time.Second, "listing a folder with a link to a named pipe", func() { f, err = listFolder(dir, 1000) })
	if err != nil {
		t.Fatal(err)
	}
	reasons := strings.Join(f.reasons, "; ")
	if len(f.paths) != 5 || f.skipped != len(want) {
		t.Fatalf("listed %d, skipped %d (%s): want 5 listed, %d skipped", len(f.paths), f.skipped, reasons, len(want))
	}
	for _, w := range want {
		if !strings.Contains(reasons, w) {
			t.Errorf("reasons %q lack %q", reasons, w)
		}
	}

	f.pick(4, 1)
	swapped := f.fit[0]
	if err := os.Remove(swapped); err != nil {
		t.Fatal(err)
	}
	testfs.Mkfifo(t, swapped)
	testfs.Within(t, 5*time.Second, "decoding the picked images, one of them now a named pipe", func() { err = f.admit() })
	if err != nil {
		t.Fatal(err)
	}
	w := filepath.Base(swapped) + ": a named pipe, not an image file"
	if len(f.fit) != 3 || len(f.val) != 1 || f.skipped != len(want)+1 || !strings.Contains(strings.Join(f.reasons, "; "), w) {
		t.Errorf("fit %d, validate %d, skipped %d (%v): want 3, 1, %d and %q", len(f.fit), len(f.val), f.skipped, f.reasons, len(want)+1, w)
	}
}

// A refit command whose folder named a named pipe waited in its open for
// good, holding the command handler; it is now refused unopened, saying
// what the path is.
func TestRefitFolderThatIsANamedPipe(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "images")
	testfs.Mkfifo(t, pipe)
	plain := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{pipe: pipe + " is a named pipe, not a folder of images", plain: plain + " is a file, not a folder of images"} {
		var err error
		testfs.Within(t, 5*time.Second, "listing "+path, func() { _, err = listFolder(path, 1000) })
		var e *Error
		if !errors.As(err, &e) || e.Field != "folder" || !strings.Contains(err.Error(), want) {
			t.Errorf("listFolder(%s): %v, want a refusal of the folder field %q", path, err, want)
		}
	}
}
