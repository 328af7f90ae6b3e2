//go:build unix

package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// TestSignRefusesAKeyThatIsANamedPipe: `inspectd sign --key K` with a K
// that is a named pipe waited in the open for a writer for good (SIGTERM
// too, which the CLI catches), and /dev/zero was read until memory ran
// out. It is refused unopened, under --key, naming what it is. A writer
// puts bytes in the pipe here, so that the old read returned (and failed
// on them) instead of waiting; /dev/null stands for a device because the
// old read of it ends.
func TestSignRefusesAKeyThatIsANamedPipe(t *testing.T) {
	pipe := filepath.Join(t.TempDir(), "ops.key")
	testfs.Mkfifo(t, pipe)
	sign := func(key string) (int, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), []string{"sign", "--key", key}, strings.NewReader(`{"id":"x"}`), &out, &errb)
		return code, errb.String()
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if w, err := os.OpenFile(pipe, os.O_WRONLY, 0); err == nil {
			w.WriteString("not a key")
			w.Close()
		}
	}()
	code, errs := sign(pipe)
	// Releases the writer's open, as sign did not open the pipe.
	if r, err := os.OpenFile(pipe, os.O_RDWR, 0); err == nil {
		<-wrote
		r.Close()
	}
	if want := "--key: " + pipe + " is a named pipe, not a private key file"; code != 1 || !strings.Contains(errs, want) {
		t.Errorf("sign --key of a named pipe: exit %d, want 1 and %q; stderr:\n%s", code, want, errs)
	}
	if code, errs := sign("/dev/null"); code != 1 || !strings.Contains(errs, "--key: /dev/null is a device, not a private key file") {
		t.Errorf("sign --key /dev/null: exit %d; stderr:\n%s", code, errs)
	}
}
