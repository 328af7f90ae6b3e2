package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// modelLinkLoops makes, in dir, lpa.safetensors → lpb.safetensors → lpa
// (a loop of the file's own links) and lm → ext/b/m where ext/b → x → b (a
// loop partway), and returns each path with what its refusal must say.
func modelLinkLoops(t *testing.T, dir string) map[string]string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "ext"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"lpb.safetensors", "lpa.safetensors"}, {"lpa.safetensors", "lpb.safetensors"}, {"x", "ext/b"}, {"b", "ext/x"}, {"ext/b/m", "lm"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	lpa, lm := filepath.Join(dir, "lpa.safetensors"), filepath.Join(dir, "lm")
	return map[string]string{
		lpa: lpa + " is a link that leads round in a loop (lpa.safetensors → lpb.safetensors → lpa.safetensors)",
		lm:  lm + " is a link to " + filepath.Join(dir, "ext/b/m") + ", through " + filepath.Join(dir, "ext/b") + ", a link that leads round in a loop (ext/b → ext/x → ext/b)",
	}
}

// TestConfigCheckNamesAModelLinkLoop: config check of a model.path that
// is a link leading round in a loop said "folder DIR cannot be reached
// (stat …: too many levels of symbolic links)", blaming a folder that is
// fine (a new user's trial). It now names the loop under model.path.
func TestConfigCheckNamesAModelLinkLoop(t *testing.T) {
	for path, want := range modelLinkLoops(t, t.TempDir()) {
		cfg := testDefaults(t)
		cfg.Model.Path = path
		var found bool
		for _, f := range Preflight(cfg, testLogger(t)) {
			if f.Field != "model.path" {
				continue
			}
			found = found || f.Fatal && strings.Contains(f.Msg, want) && !strings.Contains(f.Msg, "cannot be reached (")
			if strings.Contains(f.Msg, "too many levels") {
				t.Errorf("model.path %s: finding %s, want the loop named", path, f)
			}
		}
		if !found {
			t.Errorf("model.path %s: no fatal model.path finding saying %q: %v", path, want, Preflight(cfg, testLogger(t)))
		}
	}
}

// TestPushOfAModelLinkLoopIsInvalid: a push of model.path naming a link
// that leads round in a loop answered code failed, "folder DIR cannot be
// reached (stat …: too many levels of symbolic links)", blaming a folder
// that is fine (a new user's trial). It is the value that is wrong: code
// invalid, field config.model.path, the loop named, the dry run alike
// (real mosquitto, real files).
func TestPushOfAModelLinkLoopIsInvalid(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, det := startModelPushRig(t, "cell81")
	for path, want := range modelLinkLoops(t, filepath.Join(r.dir, "loops")) {
		for _, dry := range []bool{true, false} {
			rep := op.reply("cell81", "config", fmt.Sprintf(`{"id":"loop-%s-%v","config":{"model":{"path":%q}},"dry_run":%v}`, filepath.Base(path), dry, path, dry), 60*time.Second)
			t.Logf("push of %s (dry run %v): %v", path, dry, rep)
			msg := fmt.Sprint(rep["error"])
			if rep["ok"] != false || rep["code"] != "invalid" || rep["field"] != "config.model.path" || !strings.Contains(msg, want) ||
				strings.Contains(msg, "cannot be reached (") || strings.Contains(msg, "too many levels") {
				t.Errorf("push of %s (dry run %v): %v\nwant code invalid, field config.model.path, saying %q", path, dry, rep, want)
			}
		}
	}
	if id := d.ModelInfo().ID; id != det.Info().ID {
		t.Errorf("model %s in force after the refused pushes, want %s", id, det.Info().ID)
	}
}
