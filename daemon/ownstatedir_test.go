package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
)

// TestOwnStateDirSpelledDifferently: a push, a dry run or a reload naming
// the daemon's own state_dir spelled differently (a trailing slash, "/./",
// a symlink to it) changes nothing. Each was refused as "in use by another
// inspectd (process <its own>)" with "changed":["state_dir"]. A push that
// also changes another setting lists that one only and saves the state_dir
// in force.
func TestOwnStateDirSpelledDifferently(t *testing.T) {
	t.Parallel()
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

// TestOwnStateDirAfterItsLinkIsRepointed: with state_dir given as a
// symlink (st1link/ → st1) and the link re-pointed while the daemon runs
// (ln -sfn st4 st1link), a push of st1, the folder the daemon holds
// locked, was refused "state_dir: …/st1 is in use by another inspectd
// (process <its own pid>)": the daemon named itself another inspectd.
// The dry run, the push and a reload of the file now say it is this
// inspectd's own state folder, name the state_dir in force and where it
// leads now, and say to restart; nothing changes (real mosquitto, real
// links).
func TestOwnStateDirAfterItsLinkIsRepointed(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b.URL)
	var st1, st4, link string
	r := startDaemon(t, func(r *runningDaemon) string {
		st1, st4, link = filepath.Join(r.dir, "st1"), filepath.Join(r.dir, "st4"), filepath.Join(r.dir, "st1link")
		for _, dir := range []string{st1, st4} {
			if err := os.Mkdir(dir, 0o750); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(st1, link); err != nil {
			t.Fatal(err)
		}
		return strings.Replace(remoteYAML(b.URL, "cell32", "")(r), "state_dir: "+filepath.Join(r.dir, "state"), "state_dir: "+link+"/", 1)
	})
	d := r.daemon()
	op.awaitCommands(r, "cell32")
	if got := d.Config().StateDir; got != link+"/" {
		t.Fatalf("state_dir in force %q, want %q", got, link+"/")
	}
	// ln -sfn st4 st1link: a new link renamed over the old one.
	tmp := link + ".new"
	if err := os.Symlink(st4, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}

	wants := []string{"state_dir: " + st1 + " is this inspectd's own state folder", "its state_dir " + link + "/ now leads to " + st4, "restart inspectd"}
	check := func(what, msg string) {
		t.Helper()
		for _, want := range wants {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: %q lacks %q", what, msg, want)
			}
		}
		if strings.Contains(msg, "another inspectd") {
			t.Errorf("%s: %q names the daemon's own folder another inspectd's", what, msg)
		}
	}
	for _, dry := range []bool{true, false} {
		rep := op.reply("cell32", "config", fmt.Sprintf(`{"id":"rp-%v","config":{"state_dir":%q},"dry_run":%v}`, dry, st1, dry), 60*time.Second)
		t.Logf("dry run %v: %v", dry, rep)
		if rep["ok"] != false || rep["field"] != "config.state_dir" {
			t.Errorf("push (dry run %v) of state_dir %s: %v, want a refusal with field config.state_dir", dry, st1, rep)
		}
		check(fmt.Sprintf("push (dry run %v) of state_dir %s", dry, st1), fmt.Sprint(rep["error"]))
	}
	if got := d.Config().StateDir; got != link+"/" {
		t.Errorf("state_dir in force %q after the refused push, want %q", got, link+"/")
	}
	// A reload of the file naming st1 says the same.
	next := d.Config().Clone()
	next.StateDir = st1
	if _, err := d.Apply(context.Background(), next); err == nil {
		t.Errorf("reload naming %s: applied, want it refused", st1)
	} else {
		check("reload naming "+st1, err.Error())
	}
}
