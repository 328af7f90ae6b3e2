package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model"
)

// TestModelInfoPrintsPrecision: `inspectd model info FILE` printed the
// precision it scores in only with --json, though the README promises it
// from the configuration (model.precision); the text now has a precision
// line in the style of the others, the same as --json's, with the
// backbone and without it.
func TestModelInfoPrintsPrecision(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	_, cfg, m := fitSmallModel(t)
	for _, share := range []bool{true, false} {
		if !share {
			t.Setenv("INSPECTD_SHARE", "") // described without the backbone: the configuration's precision still
		}
		code, js, errs := runCaptureCmd(t, "model", "info", "--config", cfg, "--json", m)
		var info model.Info
		if code != 0 || json.Unmarshal([]byte(js), &info) != nil || info.Precision == "" {
			t.Fatalf("--json (backbone %v): exit %d, stdout %q, stderr %s", share, code, js, errs)
		}
		code, out, errs := runCaptureCmd(t, "model", "info", "--config", cfg, m)
		want := "\nprecision        " + info.Precision + "\n"
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("model info (backbone %v): exit %d, stdout\n%s\nstderr %s\nwant a line %q", share, code, out, errs, strings.TrimSpace(want))
		}
	}
}
