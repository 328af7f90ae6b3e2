//go:build unix

package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Load opened a named pipe named like an image (a link to one, or one in
// a data set's folder) and waited for a writer for good; a link to a
// device was read as it came. Both are now refused unopened, named with
// what they are.
func TestLoadRefusesPipesAndDevices(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "x.png")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	t.Cleanup(func() { // a reader left waiting gets a writer and the end
		if f, err := os.OpenFile(pipe, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
	link := filepath.Join(dir, "link.png")
	if err := os.Symlink(pipe, link); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{pipe: "x.png is a named pipe, not an image file", link: "link.png is a named pipe, not an image file",
		dir: "is a folder, not an image file"}
	if _, err := os.Stat("/dev/zero"); err == nil {
		zero := filepath.Join(dir, "zero.png")
		if err := os.Symlink("/dev/zero", zero); err != nil {
			t.Fatal(err)
		}
		cases[zero] = "zero.png is a device, not an image file"
	}
	for path, want := range cases {
		errc := make(chan error, 1)
		go func() {
			_, err := Load(path)
			errc <- err
		}()
		select {
		case err := <-errc:
			var nf *NotImageFileError
			if !errors.As(err, &nf) || nf.Path != path || !strings.Contains(err.Error(), want) {
				t.Errorf("Load(%s): %v, want a *NotImageFileError %q", path, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Load(%s): still waiting after 5s", path)
		}
	}
}
