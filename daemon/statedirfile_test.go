package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStateDirUnderAFileIsRefusedForOneReason: a push of a state_dir under
// a plain file, the model living there (model.path empty), was refused by
// its dry run as "model …/plainfile.txt/st/model.safetensors: stat …: not
// a directory", naming neither key, and by the real push for another
// reason, the state folder's lock file. The dry run, the push and a
// reload of the file now give one reason, naming state_dir and the file
// in the way, and create nothing (real mosquitto, real files).
func TestStateDirUnderAFileIsRefusedForOneReason(t *testing.T) {
	wordsOnly(t)
	op, r, d, _ := startModelPushRig(t, "cell22")
	before := d.Config().StateDir
	file := plainFile(t, r.dir, "plainfile.txt", "not a folder")
	state := filepath.Join(file, "st")
	want := "state_dir: " + state + " cannot be created: " + file + " is a file, not a folder"

	var reasons []string
	for _, p := range []struct {
		dry    bool
		prefix string
	}{
		{true, "dry run: applying this would be refused: "},
		{false, "not applied; the previous configuration is in force: "},
	} {
		rep := op.reply("cell22", "config", fmt.Sprintf(`{"id":"sf-%v","config":{"state_dir":%q},"dry_run":%v}`, p.dry, state, p.dry), 60*time.Second)
		t.Logf("dry_run %v: %v", p.dry, rep)
		msg := fmt.Sprint(rep["error"])
		reason, ok := strings.CutPrefix(msg, p.prefix)
		if rep["ok"] != false || !ok || !strings.HasPrefix(reason, want) {
			t.Errorf("push (dry_run %v) of state_dir %s: %v, want %q%s…", p.dry, state, rep, p.prefix, want)
		}
		reasons = append(reasons, reason)
	}
	if reasons[0] != reasons[1] {
		t.Errorf("the dry run says %q, the push %q: want one reason", reasons[0], reasons[1])
	}

	// A reload of the file says the same.
	data, err := os.ReadFile(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "state_dir: "+before) {
		t.Fatalf("the configuration file does not say state_dir: %s:\n%s", before, data)
	}
	r.write(strings.Replace(string(data), "state_dir: "+before, "state_dir: "+state, 1))
	r.hup()
	r.waitFor("the refused reload", func() bool { return strings.Contains(r.logs.String(), "configuration not reloaded") }, &r.logs)
	if l := r.logs.String(); !strings.Contains(l[strings.Index(l, "configuration not reloaded"):], "err=\""+want) {
		t.Errorf("the reload was refused for another reason than %q:\n%s", want, l)
	}
	if c := d.Config(); c.StateDir != before {
		t.Errorf("state_dir %s after the refusals, want %s", c.StateDir, before)
	}
}
