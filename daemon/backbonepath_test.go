package daemon

import (
	"strings"
	"testing"
)

// A bundled backbone not found says how to point inspectd at it: the
// INSPECTD_SHARE variable the search starts with (a trial: a binary copied
// out of build/bin failed with the folders searched and "run make deps",
// which had been run, and no word of the variable).
func TestBackbonePathNotFoundNamesTheVariable(t *testing.T) {
	t.Setenv("INSPECTD_SHARE", t.TempDir())
	p, err := BackbonePath("mobilenet_v1")
	if err == nil {
		t.Skipf("mobilenet_v1 found at %s (installed on this machine): nothing to report", p)
	}
	for _, want := range []string{"INSPECTD_SHARE", "mobilenet_v1", "model.backbone"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if p, err := BackbonePath("/some/model.tflite"); err != nil || p != "/some/model.tflite" {
		t.Errorf("a file in model.backbone: %q, %v; want the path itself", p, err)
	}
}
