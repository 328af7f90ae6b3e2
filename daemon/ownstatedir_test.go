package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config"
)

// TestOwnStateDirSpelledDifferently: a push, a dry run or a reload naming
// the daemon's own state_dir spelled differently (a trailing slash, "/./",
// a symlink to it) changes nothing. Each was refused as "in use by another
// inspectd (process <its own>)" with "changed":["state_dir"]. A push that
// also changes another setting lists that one only and saves the state_dir
// in force.
func TestOwnStateDirSpelledDifferently(t *testing.T) {
	wordsOnly(t) // state_dir pushes: TestPendingPushRevertsAfterRestart races them
	op, r, d := startPushRig(t, "cell31", nil)
	state := d.Config().StateDir
	link := filepath.Join(r.dir, "state-link")
	if err := os.Symlink(state, link); err != nil {
		t.Fatal(err)
	}
	spellings := []string{state + "/", filepath.Join(filepath.Dir(state), ".") + "/./" + filepath.Base(state), link}
	for i, s := range spellings {
		for _, dry := range []bool{true, false} {
			rep := op.reply("cell31", "config", fmt.Sprintf(`{"id":"own%d-%v","config":{"state_dir":%q},"dry_run":%v}`, i, dry, s, dry), 60*time.Second)
			if rep["ok"] != true || fmt.Sprint(rep["changed"]) != "[]" {
				t.Errorf("push (dry run %v) of the own state_dir as %s: %v, want ok with nothing changed", dry, s, rep)
			}
		}
		// With another change: only that one is listed, the push is not
		// refused on the request table's copy into the folder (its own
		// lock), and the file saved names the state_dir in force, as
		// config-get does.
		qos := (i + 1) % 2
		rep := op.reply("cell31", "config", fmt.Sprintf(`{"id":"own%d-qos","config":{"state_dir":%q,"mqtt":{"result_qos":%d}}}`, i, s, qos), 60*time.Second)
		if rep["ok"] != true || fmt.Sprint(rep["changed"]) != "[mqtt.result_qos]" {
			t.Errorf("push of the own state_dir as %s with result_qos %d: %v, want ok with [mqtt.result_qos] changed", s, qos, rep)
		}
		if c, err := config.Load(r.cfgPath); err != nil || c.StateDir != state || c.MQTT.ResultQoS != qos {
			t.Errorf("file saved by the push of the own state_dir as %s: %+v, %v; want state_dir %s", s, c, err, state)
		}
		// A SIGHUP reload applies the file's configuration so.
		next := d.Config().Clone()
		next.StateDir = s
		if changed, err := d.Apply(context.Background(), next); err != nil || len(changed) > 0 {
			t.Errorf("reload naming the own state_dir as %s: changed %v, %v; want nothing changed", s, changed, err)
		}
		if got := d.Config().StateDir; got != state {
			t.Errorf("state_dir in force %q after naming it as %s, want %q", got, s, state)
		}
	}
}
