package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDryRunRefusesWhatThePushRefuses: a dry-run push answered ok for a
// model.path that is a folder, /dev/null or a file that is no model, and
// for a state_dir that cannot be created (/sys/st), all of which the real
// push then refused: the README promises that a dry run fails what
// applying would refuse for what is on the box. Each now fails, naming
// the key, and leaves nothing behind (real mosquitto, real files): code
// failed, but invalid for a file whose header is no model's, which the
// push refuses at its check as the value itself
// (TestPushOfAFileThatIsNoModelIsRefusedAtItsCheck).
func TestDryRunRefusesWhatThePushRefuses(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, det := startModelPushRig(t, "cell21")
	before := d.Config()

	tiny := plainFile(t, r.dir, "tiny.safetensors", "abc")
	type push struct{ name, config, key, path, code string }
	pushes := []push{
		{"a folder", `{"model":{"path":"` + r.dir + `"}}`, "model.path", r.dir, "failed"},
		{"the root folder", `{"model":{"path":"/"}}`, "model.path", "/", "failed"},
		{"/dev/null", `{"model":{"path":"/dev/null"}}`, "model.path", "/dev/null", "failed"},
		{"a 3-byte file", `{"model":{"path":"` + tiny + `"}}`, "model.path", tiny, "invalid"},
	}
	var uncreatable string
	if dir := unwritableFolder(); dir != "" {
		uncreatable = filepath.Join(dir, "st")
		pushes = append(pushes, push{"a state_dir that cannot be created", `{"state_dir":"` + uncreatable + `"}`, "state_dir", uncreatable, "failed"})
	} else {
		t.Log("no folder here refuses a new file to this user: a state_dir that cannot be created is not tried")
	}
	for i, p := range pushes {
		rep := op.reply("cell21", "config", fmt.Sprintf(`{"id":"dry%d","config":%s,"dry_run":true}`, i, p.config), 60*time.Second)
		t.Logf("%s: %v", p.name, rep)
		msg := fmt.Sprint(rep["error"])
		if rep["ok"] != false || rep["code"] != p.code || !strings.Contains(msg, "dry run: applying this would be refused: ") ||
			!strings.Contains(msg, p.key+": ") || !strings.Contains(msg, p.path) {
			t.Errorf("dry run of %s: %v, want it refused (code %s) naming %s and %s", p.name, rep, p.code, p.key, p.path)
		}
	}
	if uncreatable != "" {
		if _, err := os.Stat(uncreatable); !os.IsNotExist(err) {
			t.Errorf("the dry run created %s (%v)", uncreatable, err)
		}
	}
	if c := d.Config(); c.Model.Path != before.Model.Path || c.StateDir != before.StateDir {
		t.Errorf("model.path %q, state_dir %q in force after the dry runs, want %q, %q", c.Model.Path, c.StateDir, before.Model.Path, before.StateDir)
	}
	if got := d.pipe.Load().Detector().Info().ID; got != det.Info().ID {
		t.Errorf("model %s in force after the dry runs, want %s", got, det.Info().ID)
	}

	// The model in force, named again, reads as a model: no refusal.
	rep := op.reply("cell21", "config", `{"id":"dry-ok","config":{"model":{"path":"`+filepath.Join(before.StateDir, "model.safetensors")+`"}},"dry_run":true}`, 60*time.Second)
	if rep["ok"] != true {
		t.Errorf("dry run naming the model file in force: %v, want ok", rep)
	}
}
