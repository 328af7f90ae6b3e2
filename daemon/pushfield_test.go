package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestModelRefusalsNameTheirField: a push (or its dry run) refused for its
// model file (a folder, /dev/null, a file that is no model, a folder the
// model cannot be saved in) answered code failed with no field, where a
// refused state_dir names "config.state_dir"; each now names the key that
// sets the path, config.model.path, or config.state_dir when the model
// lives there (real mosquitto, real files). A file whose header is no
// model's is refused at the push's check as the value itself, code
// invalid (TestPushOfAFileThatIsNoModelIsRefusedAtItsCheck); the others
// for what is on the box, code failed.
func TestModelRefusalsNameTheirField(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, _, _ := startModelPushRig(t, "cell23")
	tiny := plainFile(t, r.dir, "tiny.safetensors", "abc")
	// A state folder whose model file is a folder: state_dir sets the path.
	state := filepath.Join(r.dir, "other-state")
	if err := os.MkdirAll(filepath.Join(state, "model.safetensors"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, p := range []struct{ config, field, code string }{
		{`{"model":{"path":"` + r.dir + `"}}`, "config.model.path", "failed"},
		{`{"model":{"path":"/dev/null"}}`, "config.model.path", "failed"},
		{`{"model":{"path":"` + tiny + `"}}`, "config.model.path", "invalid"},
		{`{"model":{"path":"` + filepath.Join(r.dir, "no-such-folder", "m.safetensors") + `"}}`, "config.model.path", "failed"},
		{`{"state_dir":"` + state + `"}`, "config.state_dir", "failed"},
	} {
		for _, dry := range []bool{true, false} {
			rep := op.reply("cell23", "config", fmt.Sprintf(`{"id":"pf%d-%v","config":%s,"dry_run":%v}`, i, dry, p.config, dry), 60*time.Second)
			t.Logf("%s (dry_run %v): %v", p.config, dry, rep)
			if rep["ok"] != false || rep["code"] != p.code || rep["field"] != p.field {
				t.Errorf("push (dry_run %v) of %s: %v, want it refused with code %s, field %s", dry, p.config, rep, p.code, p.field)
			}
			// The message is as it was: it names the key itself.
			if msg := fmt.Sprint(rep["error"]); strings.HasPrefix(msg, "config.") {
				t.Errorf("push (dry_run %v) of %s: error %q is prefixed with its field", dry, p.config, msg)
			}
		}
	}
}

// wordsOnly skips a test in the -short race run (make test): it checks
// only words (a refusal's and its field, a note's, a log line's) or values
// (files left, a threshold, a mode) on paths that TestRemoteConfigPush,
// TestRefusedPushRemovesTheModelItFitted, the reload tests and, for the
// threshold, rollback and refit commands, TestModelCommandsKeepTheModelFileMode
// (installs), TestFailedInstallKeepsThePreviousModel (refusals at the
// install) and TestModelCommandsRefuseWhatIsNotAModelFileAtModelPath
// (refusals before anything is written) already race, and has no
// goroutines of its own, while it starts a daemon (per
// case, some) and costs seconds under -race; it runs in the full run.
func wordsOnly(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("words or values on paths other tests race; checked in the full run")
	}
}
