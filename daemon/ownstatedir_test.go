package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
)

// TestOwnStateDirSpelledDifferently: a push, a dry run or a reload naming
// the daemon's own state_dir spelled differently (a trailing slash, "/./",
// a symlink to it) changes nothing. Each was refused as "in use by another
// inspectd (process <its own>)" with "changed":["state_dir"].
func TestOwnStateDirSpelledDifferently(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b.URL)
	r := startDaemon(t, remoteYAML(b.URL, "cell31", ""))
	d := r.daemon()
	op.awaitCommands(r, "cell31")
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
