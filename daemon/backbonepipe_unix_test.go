//go:build unix

package daemon

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// TestBackbonePathRefusesANamedPipe: a model.backbone that is a named
// pipe (or a device) was passed on to the backbone's load, which opened
// and read it: config check, a start and a reload waited for a writer
// for good (SIGTERM too: a trial's config check had to be killed). It is
// refused unopened, under model.backbone, naming what it is.
func TestBackbonePathRefusesANamedPipe(t *testing.T) {
	pipe := filepath.Join(t.TempDir(), "bb.tflite")
	testfs.Mkfifo(t, pipe)
	want := pipe + " is a named pipe, not a TFLite file"
	if p, err := BackbonePath(pipe); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("BackbonePath(a named pipe): %q, %v; want %q", p, err, want)
	}
	cfg := config.Default()
	cfg.Model.Backbone = pipe
	_, err := ModelOptions(cfg, testLogger(t))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "model.backbone" || !strings.Contains(err.Error(), want) {
		t.Errorf("ModelOptions with a named pipe in model.backbone: %v, want a model.backbone refusal %q", err, want)
	}
}
