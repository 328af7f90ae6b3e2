package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestModelFilesErrorSaysTheModelFileCannotBeRead: a model file the user
// inspectd runs as cannot read (mode 0600, another owner) made a threshold
// command answer "keep … as ….prev: open …: permission denied". It now
// says, under model.path, that the file cannot be read and so cannot be
// kept for a rollback, and that the model in force stays. The tests run as
// root, who reads any file: the copy's failed open is made here.
func TestModelFilesErrorSaysTheModelFileCannotBeRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	cfg := testDefaults(t)
	cfg.Model.Path = path
	open := &unreadableError{&os.PathError{Op: "open", Path: path, Err: syscall.EACCES}}
	err := modelFilesError(cfg, fmt.Errorf("keep %s as %s: %w", path, PreviousModelPath(path), open))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "model.path" {
		t.Fatalf("got %v, want a FieldError under model.path", err)
	}
	for _, want := range []string{path + " cannot be read (permission denied)", "cannot be kept as " + PreviousModelPath(path), "the model in force stays"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}
