package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/statelock"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
)

// The broker a push moves the box to; nothing listens there (the test
// controller does not connect).
const movedBroker = `{"mqtt":{"brokers":["tcp://10.99.0.1:1883"]}}`

// waitFor waits up to limit for cond (testbroker.WaitFor), failing the
// test naming what did not happen.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !testbroker.WaitFor(t.Context(), limit, cond) {
		t.Fatalf("%s: not within %s", what, limit)
	}
}

func brokers(r *rig) []string { return r.ctl.Config().MQTT.Brokers }

// TestConnectionChangeNeedsConfirmOrForce: a push that moves the connection
// carrying remote control is refused without "confirm" or "force", naming
// the setting (a dry run too).
func TestConnectionChangeNeedsConfirmOrForce(t *testing.T) {
	r := newRig(t, unsigned)
	for i, doc := range []string{movedBroker, `{"mqtt":{"topic_prefix":"plant2"}}`, `{"mqtt":{"tls":{"server_name":"b.example"}}}`,
		`{"remote":{"allow_unsigned":false}}`, `{"mqtt":{"profile":"sparkplug"}}`, `{"remote":{"max_skew":"1s"}}`} {
		rep := r.do("config", `{"id":"p`+string(rune('0'+i))+`","config":`+doc+`}`)
		mustFail(t, rep, CodeInvalid, "changes the connection that carries remote control", `"confirm":"5m"`, `"force":true`)
		if f := field(rep); f == "" || f == "config" {
			t.Errorf("%s: field %q, want the setting", doc, f)
		}
	}
	if n := r.ctl.applies.Load(); n != 0 {
		t.Fatalf("refused pushes applied %d times", n)
	}
	// A dry run answers as the push would be answered.
	mustFail(t, r.do("config", `{"id":"d1","config":`+movedBroker+`,"dry_run":true}`), CodeInvalid, "changes the connection")
	if rep := r.do("config", `{"id":"d2","config":`+movedBroker+`,"dry_run":true,"confirm":"5m"}`); !rep.OK || !slices.Equal(rep.Data["changed"].([]string), []string{"mqtt.brokers"}) {
		t.Errorf("dry run: %+v", rep)
	}
	// Other settings need neither.
	if rep := r.do("config", `{"id":"q1","config":{"mqtt":{"result_qos":1}}}`); !rep.OK {
		t.Errorf("an ordinary push: %+v", rep)
	}
	if rep := r.do("config", `{"id":"f1","config":`+movedBroker+`,"force":true}`); !rep.OK || !slices.Equal(brokers(r), []string{"tcp://10.99.0.1:1883"}) {
		t.Errorf("forced push: %+v, brokers %v", rep, brokers(r))
	}
	for _, bad := range []struct{ confirm, want string }{
		{`"1s"`, "out of range 5s..24h0m0s"}, {`"48h"`, "out of range"}, {`"soon"`, `"soon" is not a duration`}, {`300`, `expected a duration such as "5m"`},
	} {
		mustFail(t, r.do("config", `{"id":"c-bad","config":{"mqtt":{"result_qos":0}},"confirm":`+bad.confirm+`}`), CodeInvalid, bad.want)
	}
}

// TestSparkplugChangeNeedsConfirmWhenItCarriesControl: the edge node's
// settings name its NCMD topic and session, so on a box running Sparkplug
// (or a push that starts it) a change to them needs confirm or force; on a
// JSON-only box they carry no command and are applied as any setting.
func TestSparkplugChangeNeedsConfirmWhenItCarriesControl(t *testing.T) {
	jsonBox := newRig(t, unsigned)
	if rep := jsonBox.do("config", `{"id":"j1","config":{"sparkplug":{"group_id":"line2"}}}`); !rep.OK {
		t.Fatalf("JSON-only box: %+v", rep)
	}
	mustFail(t, jsonBox.do("config", `{"id":"j2","config":{"mqtt":{"profile":"both"},"sparkplug":{"group_id":"line3"}}}`),
		CodeInvalid, "changes the connection that carries remote control")
	spBox := newRig(t, unsigned+"mqtt: {profile: both}\n")
	for i, doc := range []string{`{"sparkplug":{"group_id":"line2"}}`, `{"sparkplug":{"edge_node_id":"press-7"}}`,
		`{"sparkplug":{"client_id":"other"}}`, `{"sparkplug":{"primary_host_id":"scada-b"}}`} {
		rep := spBox.do("config", `{"id":"s`+string(rune('0'+i))+`","config":`+doc+`}`)
		mustFail(t, rep, CodeInvalid, "changes the connection that carries remote control")
		if f := field(rep); !strings.HasPrefix(f, "config.sparkplug.") {
			t.Errorf("%s: field %q, want config.sparkplug.*", doc, f)
		}
	}
	if rep := spBox.do("config", `{"id":"s9","config":{"sparkplug":{"group_id":"line2"}},"force":true}`); !rep.OK || spBox.ctl.Config().Sparkplug.GroupID != "line2" {
		t.Errorf("forced: %+v", rep)
	}
}

// TestUnconfirmedPushReverts: a push with a confirm window is applied,
// blocks other configuration changes while it waits, and comes back out by
// itself when config-confirm does not arrive; the revert is published as an
// event and shown by status.
func TestUnconfirmedPushReverts(t *testing.T) {
	r := newRig(t, unsigned)
	rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"5s","version":4}`)
	if !rep.OK || rep.Data["applied"] != true || rep.Data["revert_at"] == nil || len(brokers(r)) != 1 {
		t.Fatalf("push with confirm: %+v, brokers %v", rep, brokers(r))
	}
	st := r.do("status", `{"id":"s1"}`)
	if p, _ := st.Data["config_pending"].(map[string]any); p == nil || p["id"] != "c1" {
		t.Errorf("status while waiting: config_pending %v", st.Data["config_pending"])
	}
	mustFail(t, r.do("config", `{"id":"c2","config":{"mqtt":{"result_qos":1}}}`), CodeBusy, `push "c1" waits for config-confirm`)
	mustFail(t, r.do("trust-keys", `{"id":"k1","keys":{"a":"`+newSigner("a", 1).pub()+`"}}`), CodeBusy, "changing the trust keys")
	waitFor(t, 30*time.Second, "revert", func() bool { return len(brokers(r)) == 0 })
	waitFor(t, 5*time.Second, "config-revert event", func() bool { return len(r.events.named("config-revert")) == 1 })
	var ev map[string]any
	if err := json.Unmarshal(r.events.named("config-revert")[0].payload, &ev); err != nil || ev["id"] != "c1" || ev["reverted"] != true {
		t.Errorf("config-revert event %s (%v)", r.events.named("config-revert")[0].payload, err)
	}
	onDisk, err := config.Load(r.ctl.ConfigPath())
	if err != nil || len(onDisk.MQTT.Brokers) != 0 {
		t.Errorf("file after the revert: %v %v", err, onDisk)
	}
	st = r.do("status", `{"id":"s2"}`)
	if st.Data["config_pending"] != nil || st.Data["config_version"] != int64(0) {
		t.Errorf("status after the revert: pending %v version %v", st.Data["config_pending"], st.Data["config_version"])
	}
	// Told what became of the push, not that none waited.
	mustFail(t, r.do("config-confirm", `{"id":"k2"}`), CodeFailed, `push "c1" no longer waits for confirmation: its wait ended at 2026-11-28T16:00:`)
	mustFail(t, r.do("config-confirm", `{"id":"k3","push":"c1"}`), CodeFailed, "ran out (2026-11-28T16:00:05Z) and it was reverted")
	if rep := r.do("config", `{"id":"c3","config":{"mqtt":{"result_qos":1}}}`); !rep.OK {
		t.Errorf("a push after the revert: %+v", rep)
	}
	if rep := r.do("config", `{"id":"c4","config":{"mqtt":{"result_qos":2}},"confirm":"1h"}`); !rep.OK {
		t.Fatalf("a push with a confirm after the revert: %+v", rep)
	}
	if rep := r.do("config-confirm", `{"id":"k4"}`); !rep.OK {
		t.Errorf("confirm of c4: %+v", rep)
	}
	// c4 was confirmed: a confirm now is told so, not of c1.
	mustFail(t, r.do("config-confirm", `{"id":"k5"}`), CodeFailed, `push "c4" no longer waits`, "it was confirmed")
}

// TestConfirmedPushStays: config-confirm keeps the push; the deadline then
// passes without a revert.
func TestConfirmedPushStays(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"5s"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	rep := r.do("config-confirm", `{"id":"k1"}`)
	if !rep.OK || rep.Data["confirmed"] != "c1" {
		t.Fatalf("config-confirm: %+v", rep)
	}
	time.Sleep(6 * time.Second)
	if len(brokers(r)) != 1 || len(r.events.named("config-revert")) != 0 {
		t.Errorf("confirmed push reverted: brokers %v, events %d", brokers(r), len(r.events.named("config-revert")))
	}
	if rep := r.do("config-confirm", `{"id":"k1"}`); !rep.OK || rep.Data["duplicate"] != true {
		t.Errorf("repeated config-confirm: %+v", rep)
	}
}

// TestPendingPushSurvivesRestart: a restart while a push waits (the push's
// own effect, a power cut) still reverts it at its deadline; a rollback
// reverts it at once.
func TestPendingPushSurvivesRestart(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"5s"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	r.restart()
	if p := r.d.store.pendingConfirm(); p == nil || p.ID != "c1" || p.After == "" {
		t.Fatalf("pending push after a restart: %+v", p)
	}
	waitFor(t, 30*time.Second, "revert after a restart", func() bool { return len(brokers(r)) == 0 })

	if rep := r.do("config", `{"id":"c2","config":`+movedBroker+`,"confirm":"1h"}`); !rep.OK {
		t.Fatalf("second push: %+v", rep)
	}
	rep := r.do("rollback", `{"id":"r1","target":"config"}`)
	if !rep.OK || rep.Data["reverted"] != "c2" || len(brokers(r)) != 0 || r.d.store.pendingConfirm() != nil {
		t.Errorf("rollback while waiting: %+v, brokers %v", rep, brokers(r))
	}
}

// TestRevertLeavesAnEditedFile: a configuration file changed on the box
// after the push is not replaced by the revert; a push that was never
// saved (a crash before it) has nothing to revert.
func TestRevertLeavesAnEditedFile(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"5s"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	edited := r.ctl.Config().Clone()
	edited.MQTT.ResultQoS = 1
	if err := config.Save(r.ctl.ConfigPath(), edited); err != nil {
		t.Fatal(err)
	}
	applies := r.ctl.applies.Load()
	waitFor(t, 30*time.Second, "the wait to end", func() bool { return r.d.store.pendingConfirm() == nil })
	if r.ctl.applies.Load() != applies || len(brokers(r)) != 1 {
		t.Errorf("an edited file was reverted: applies %d → %d, brokers %v", applies, r.ctl.applies.Load(), brokers(r))
	}
	// The event is emitted just after the wait is cleared.
	waitFor(t, 10*time.Second, "the config-revert event", func() bool { return len(r.events.named("config-revert")) > 0 })
	var ev map[string]any
	if evs := r.events.named("config-revert"); len(evs) != 1 || json.Unmarshal(evs[0].payload, &ev) != nil || ev["reverted"] != false {
		t.Errorf("config-revert events: %v", evs)
	}

	// A pending push recorded, then a crash before the file was saved.
	sum, err := fileSHA256(r.ctl.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.d.store.setPending(&pendingConfirm{ID: "c2", Deadline: r.clk.Now().Add(-time.Minute), Before: sum}, r.clk.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	// A restart runs on the file (the edit above was never reloaded).
	onDisk, err := config.Load(r.ctl.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	r.ctl.cfg.Store(onDisk)
	r.restart()
	waitFor(t, 10*time.Second, "the never-saved push to be cleared", func() bool { return r.d.store.pendingConfirm() == nil })
	if r.ctl.applies.Load() != applies {
		t.Errorf("a push that was never saved was reverted")
	}
	if _, err := os.Stat(config.PreviousPath(r.ctl.ConfigPath())); err != nil {
		t.Error(err)
	}
}

// TestConfirmMustComeAfterThePush: a confirm that reached the box before
// the push took effect (sent right behind it, over the old connection) is
// refused and can be sent again; the window counts from the apply, however
// long it took; a confirm naming another push is refused.
func TestConfirmMustComeAfterThePush(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.mu.Lock()
	r.ctl.applyHook = func() { r.clk.Add(time.Hour) } // a slow apply
	r.ctl.mu.Unlock()
	push := r.submit("config", "device", []byte(`{"id":"c1","config":`+movedBroker+`,"confirm":"5m"}`))
	early := r.submit("config-confirm", "device", []byte(`{"id":"k1"}`))
	if rep := r.wait(push); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	mustFail(t, r.wait(early), CodeFailed, "before push \"c1\" took effect", "send it again")
	p := r.d.store.pendingConfirm()
	if p == nil || !p.Deadline.Equal(p.AppliedAt.Add(5*time.Minute)) || !p.AppliedAt.Equal(r.clk.Now()) {
		t.Fatalf("pending push %+v: want the window counted from the apply (now %s)", p, r.clk.Now())
	}
	mustFail(t, r.do("config-confirm", `{"id":"k1","push":"c0"}`), CodeInvalid, `"c0" does not wait for confirmation; push "c1" does`)
	if rep := r.do("config-confirm", `{"id":"k1","push":"c1"}`); !rep.OK || rep.Data["confirmed"] != "c1" {
		t.Errorf("confirm sent again after the push: %+v", rep)
	}
}

// TestRollbackOfAConnectionNeedsConfirm: rolling the configuration back
// (or forward again) onto another broker follows the rule of pushes.
func TestRollbackOfAConnectionNeedsConfirm(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"f1","config":`+movedBroker+`,"force":true}`); !rep.OK {
		t.Fatalf("forced push: %+v", rep)
	}
	mustFail(t, r.do("rollback", `{"id":"r1","target":"config"}`), CodeInvalid, "changes the connection", "Send the roll back with")
	mustFail(t, r.do("rollback", `{"id":"r2","target":"model","force":true}`), CodeInvalid, "target config only")
	rep := r.do("rollback", `{"id":"r3","target":"config","confirm":"5s"}`)
	if !rep.OK || len(brokers(r)) != 0 || rep.Data["revert_at"] == nil {
		t.Fatalf("rollback on probation: %+v, brokers %v", rep, brokers(r))
	}
	mustFail(t, r.do("rollback", `{"id":"r4","target":"config","confirm":"5s"}`), CodeInvalid, `reverts push "r3"`)
	waitFor(t, 30*time.Second, "the unconfirmed rollback to be undone", func() bool { return len(brokers(r)) == 1 })
	if rep := r.do("rollback", `{"id":"r5","target":"config","force":true}`); !rep.OK || len(brokers(r)) != 0 {
		t.Errorf("forced rollback: %+v", rep)
	}
}

// TestCommandsWaitForStarted: commands taken before the daemon runs wait
// for Started (they apply configurations and swap models); closed before
// it, what waits is refused.
func TestCommandsWaitForStarted(t *testing.T) {
	r := newRig(t, unsigned)
	for _, start := range []bool{true, false} {
		d, err := New(r.opts)
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan Reply, 1)
		d.Submit(Request{Name: "status", Body: []byte(`{"id":"early"}`), Origin: "device"}, func(rep Reply) { ch <- rep })
		select {
		case rep := <-ch:
			t.Fatalf("answered before Started: %+v", rep)
		case <-time.After(200 * time.Millisecond):
		}
		if start {
			d.Started()
			if rep := r.wait(ch); !rep.OK {
				t.Errorf("after Started: %+v", rep)
			}
		}
		if err := d.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !start {
			mustFail(t, r.wait(ch), CodeFailed, "inspectd is stopping")
		}
	}
}

// TestRevertUnstartable: a pushed configuration waiting for config-confirm
// that the daemon cannot start on is rolled back on disk for the next
// start; any other file is left alone.
func TestRevertUnstartable(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"1h","version":2}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	if err := r.d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	id, err := RevertUnstartable(r.ctl.ConfigPath(), r.ctl.dir, nil, r.clk.Now(), nil)
	if err != nil || id != "c1" {
		t.Fatalf("RevertUnstartable: %q, %v", id, err)
	}
	c, err := config.Load(r.ctl.ConfigPath())
	if err != nil || len(c.MQTT.Brokers) != 0 {
		t.Errorf("the file after the revert: %v, %v", c, err)
	}
	r.start()
	if p := r.d.store.pendingConfirm(); p != nil || r.d.store.configVersion().Current != 0 {
		t.Errorf("after the revert: pending %+v, version %+v", p, r.d.store.configVersion())
	}
	// Nothing waits now: a failed start is not a push's.
	if id, err := RevertUnstartable(r.ctl.ConfigPath(), r.ctl.dir, nil, r.clk.Now(), nil); id != "" || err != nil {
		t.Errorf("a second call: %q, %v", id, err)
	}
}

// TestConfirmRefusals: a confirm id used before for another push, a
// confirm the broker kept for the session while the box was away, and
// confirm with force are refused; a repeat of a reverted push says it was
// reverted; a file changed on the box ends the wait at once.
func TestConfirmRefusals(t *testing.T) {
	r := newRig(t, unsigned)
	mustFail(t, r.do("config", `{"id":"cf","config":`+movedBroker+`,"confirm":"5m","force":true}`), CodeInvalid, "not both")
	if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"5s"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	if rep := r.do("config-confirm", `{"id":"k1"}`); !rep.OK {
		t.Fatalf("confirm: %+v", rep)
	}
	if rep := r.do("rollback", `{"id":"r1","target":"config","confirm":"5s"}`); !rep.OK {
		t.Fatalf("rollback on probation: %+v", rep)
	}
	mustFail(t, r.do("config-confirm", `{"id":"k1"}`), CodeInvalid, `answered an earlier config-confirm (of push c1); push "r1" waits`)
	backlog := make(chan Reply, 1)
	r.d.Submit(Request{Name: "config-confirm", Body: []byte(`{"id":"k2"}`), Origin: "device", Backlog: true}, func(rep Reply) { backlog <- rep })
	mustFail(t, r.wait(backlog), CodeFailed, "waited on the broker for this box's session")
	waitFor(t, 30*time.Second, "the rollback to be undone", func() bool { return len(brokers(r)) == 1 })
	rep := r.do("rollback", `{"id":"r1","target":"config","confirm":"5s"}`)
	if rep.Data["duplicate"] != true || rep.Data["reverted"] != true {
		t.Errorf("a repeat of the reverted rollback: %+v", rep)
	}

	// Edited on the box: the wait ends at the next look, not at the deadline.
	if rep := r.do("config", `{"id":"c2","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	edited := r.ctl.Config().Clone()
	edited.MQTT.ResultQoS = 2
	if err := config.Save(r.ctl.ConfigPath(), edited); err != nil {
		t.Fatal(err)
	}
	if st := r.do("status", `{"id":"s1"}`); st.Data["config_pending"] != nil {
		t.Errorf("status after an edit on the box: %v", st.Data["config_pending"])
	}
	if rep := r.do("config", `{"id":"c3","config":{"mqtt":{"result_qos":0}}}`); !rep.OK {
		t.Errorf("a push after an edit on the box: %+v", rep)
	}
}

// TestReloadOfAnEditedFileEndsTheWaitAtOnce: a SIGHUP that applies a file
// edited on the box since a push ends the push's wait for config-confirm
// then, with its log line; it was said only at the next command that
// looked (hours later on a quiet box), and a reload of the pushed file
// itself changes nothing.
func TestReloadOfAnEditedFileEndsTheWaitAtOnce(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	const ended = "it no longer waits for config-confirm"
	r.d.FileReloaded() // the pushed file, not edited: still waiting
	if rep := r.do("config", `{"id":"c2","config":{"mqtt":{"result_qos":0}}}`); code(rep) != CodeBusy {
		t.Fatalf("a push while c1 waits: %+v, want busy", rep)
	}
	edited := r.ctl.Config().Clone()
	edited.MQTT.ResultQoS = 2
	if err := config.Save(r.ctl.ConfigPath(), edited); err != nil {
		t.Fatal(err)
	}
	r.d.FileReloaded()
	waitFor(t, 10*time.Second, "the wait to end with a log line", func() bool { return r.log.count(ended, "c1") == 1 })
	if p := r.d.store.pendingConfirm(); p != nil {
		t.Errorf("still pending after the reload: %+v", p)
	}
	r.do("status", `{"id":"s1"}`)
	if n := r.log.count(ended); n != 1 {
		t.Errorf("%d log lines for one end of the wait", n)
	}
	// Published at the reload as the deadline would have published it
	// (config-revert, not reverted, saying why): an operator who watches
	// for the outcome of the push learned nothing, the deadline never came.
	evs := r.events.named("config-revert")
	if len(evs) != 1 {
		t.Fatalf("%d config-revert events at the reload, want 1", len(evs))
	}
	var ev map[string]any
	if err := json.Unmarshal(evs[0].payload, &ev); err != nil || ev["id"] != "c1" || ev["reverted"] != false || evs[0].qos != 1 ||
		!strings.Contains(fmt.Sprint(ev["note"]), "changed on the box since the push") || ev["deadline"] == nil {
		t.Errorf("config-revert event %s (%v)", evs[0].payload, err)
	}
}

// TestReloadOfTheReplacedFileEndsTheWait: putting back the file a push
// replaced (cp cfg.yaml.prev cfg.yaml) and reloading it undoes the push:
// the wait ends at that reload, logged, and a later config-confirm is
// refused saying why. The wait had gone on (status showed it, the confirm
// was answered ok for a push no longer in force). Before the reload the
// push still runs, and waits.
func TestReloadOfTheReplacedFileEndsTheWait(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"r1","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	old, err := os.ReadFile(config.PreviousPath(r.ctl.ConfigPath()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.ctl.ConfigPath(), old, 0o600); err != nil {
		t.Fatal(err)
	}
	if st := r.do("status", `{"id":"s1"}`); st.Data["config_pending"] == nil {
		t.Errorf("the file put back but not reloaded: the push still runs and should wait; status %v", st.Data)
	}
	const undone = "put back on the box and reloaded: the push is undone"
	r.d.FileReloaded()
	waitFor(t, 10*time.Second, "the wait to end with a log line", func() bool { return r.log.count(undone, "push=r1") == 1 })
	waitFor(t, 10*time.Second, "a config-revert event at the reload", func() bool { return len(r.events.named("config-revert")) == 1 })
	var ev map[string]any
	if err := json.Unmarshal(r.events.named("config-revert")[0].payload, &ev); err != nil || ev["id"] != "r1" || ev["reverted"] != true ||
		!strings.Contains(fmt.Sprint(ev["note"]), "put back on the box and reloaded") {
		t.Errorf("config-revert event %s (%v)", r.events.named("config-revert")[0].payload, err)
	}
	if st := r.do("status", `{"id":"s2"}`); st.Data["config_pending"] != nil {
		t.Errorf("status after the reload: config_pending %v", st.Data["config_pending"])
	}
	mustFail(t, r.do("config-confirm", `{"id":"k1","push":"r1"}`), CodeFailed, `push "r1" no longer waits`, "put back on the box and reloaded")
	mustFail(t, r.do("config-confirm", `{"id":"k2"}`), CodeFailed, `push "r1" no longer waits`)
	if rep := r.do("config", `{"id":"c2","config":{"mqtt":{"result_qos":0}}}`); !rep.OK {
		t.Errorf("a push after the undo: %+v", rep)
	}
}

// TestFailedReloadKeepsTheWait: a SIGHUP of a file edited on the box into
// one that does not load leaves the push in force, so its wait goes on,
// logged at the reload (a restart would fail on the file), and at the
// deadline the configuration before the push is restored, the broken edit
// kept as .prev. Nothing was logged at the reload, the wait ended at the
// next look, and the deadline left the push in force.
func TestFailedReloadKeepsTheWait(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"5s"}`); !rep.OK || len(brokers(r)) != 1 {
		t.Fatalf("push: %+v", rep)
	}
	broken := []byte("mqtt: {result_qos: [\n")
	if err := os.WriteFile(r.ctl.ConfigPath(), broken, 0o600); err != nil {
		t.Fatal(err)
	}
	r.d.FileNotReloaded(errors.New("config: did not parse"))
	waitFor(t, 10*time.Second, "the log line at the failed reload", func() bool {
		return r.log.count("still waits for config-confirm", "does not load, so a restart would fail", "configuration before the push is restored", "push=c1") == 1
	})
	if st := r.do("status", `{"id":"s1"}`); st.Data["config_pending"] == nil {
		t.Errorf("status after the failed reload: the wait ended, %v", st.Data)
	}
	waitFor(t, 30*time.Second, "revert", func() bool { return len(brokers(r)) == 0 })
	if got, err := os.ReadFile(config.PreviousPath(r.ctl.ConfigPath())); err != nil || string(got) != string(broken) {
		t.Errorf("the broken edit not kept as .prev: %q %v", got, err)
	}
	if onDisk, err := config.Load(r.ctl.ConfigPath()); err != nil || len(onDisk.MQTT.Brokers) != 0 {
		t.Errorf("file after the revert: %v %v", err, onDisk)
	}
	// A confirm after the revert is told so, not that no push waited.
	if rep := r.do("config-confirm", `{"id":"k1","push":"c1"}`); rep.OK || !strings.Contains(rep.Error, `push "c1" no longer waits`) || !strings.Contains(rep.Error, "ran out") || !strings.Contains(rep.Error, "it was reverted") {
		t.Errorf("config-confirm after the revert: %+v", rep)
	}
}

// TestUnsentReplySentAfterRestart: a reply stored but not handed to the
// front end when the process died (killed between the two) is sent by
// the next start, once; one handed over is not.
func TestUnsentReplySentAfterRestart(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("status", `{"id":"s1"}`); !rep.OK {
		t.Fatalf("status: %+v", rep)
	}
	// What the refit's job does at its end, stopped before the hand-over.
	if err := r.d.store.finish("refit", "f1", Reply{ID: "f1", OK: true, Data: map[string]any{"model_id": "m2"}}, r.clk.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	all := func(string) bool { return true }
	r.restart()
	got := r.d.TakeInterrupted(all)
	if len(got) != 1 || got[0].Name != "refit" || got[0].Reply.ID != "f1" || !got[0].Reply.OK || got[0].Reply.Data["model_id"] != "m2" {
		t.Fatalf("after a restart: %+v, want refit f1's stored reply only", got)
	}
	r.d.markSent(got[0].Name, got[0].Reply.ID)
	r.restart()
	if got := r.d.TakeInterrupted(all); len(got) != 0 {
		t.Errorf("a reply sent once is sent again: %+v", got)
	}
}

// TestEndedWaitSurvivesRestart: why a push's wait for config-confirm ended
// is kept on disk beside the request table, so that a config-confirm after
// a restart is told what became of the push (reverted at its deadline,
// confirmed), not that no push ever waited; a record file that cannot be
// read is a warning at start, and the confirm gets the plain refusal.
func TestEndedWaitSurvivesRestart(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"5s"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	waitFor(t, 30*time.Second, "revert", func() bool { return len(brokers(r)) == 0 })
	waitFor(t, 10*time.Second, "the config-revert event", func() bool { return len(r.events.named("config-revert")) == 1 })
	r.restart()
	mustFail(t, r.do("config-confirm", `{"id":"k1","push":"c1"}`), CodeFailed, `push "c1" no longer waits`, "ran out", "it was reverted")

	// Confirmed, then restarted: a second confirm is told it was confirmed.
	if rep := r.do("config", `{"id":"c2","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	if rep := r.do("config-confirm", `{"id":"k2"}`); !rep.OK {
		t.Fatalf("confirm: %+v", rep)
	}
	r.restart()
	mustFail(t, r.do("config-confirm", `{"id":"k3"}`), CodeFailed, `push "c2" no longer waits`, `it was confirmed (config-confirm "k2")`)

	// A record that does not parse: a warning naming it, never a failed start.
	rec := filepath.Join(r.ctl.dir, EndedFile)
	if err := os.WriteFile(rec, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.restart()
	if n := r.log.count("unreadable; ignored", EndedFile); n != 1 {
		t.Errorf("%d warnings for an unreadable record, want 1:\n%s", n, r.log.all())
	}
	mustFail(t, r.do("config-confirm", `{"id":"k4"}`), CodeFailed, "no configuration push waits for confirmation")
	// A new push waiting removes the record.
	if rep := r.do("config", `{"id":"c3","config":{"mqtt":{"result_qos":0}},"confirm":"1h"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	if _, err := os.Stat(rec); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record of an earlier push left while c3 waits: %v", err)
	}
}

// TestDeadlineReloadsAFilePutBack: the file a push replaced put back on the
// box (cp inspectd.yaml.prev inspectd.yaml) but never reloaded: at the
// deadline the file needs nothing written back, but the pushed
// configuration still runs; it is reloaded from the file, and the log and
// the config-revert event say so. The deadline said "nothing to revert" and
// left the push running.
func TestDeadlineReloadsAFilePutBack(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"5s","version":3}`); !rep.OK || len(brokers(r)) != 1 {
		t.Fatalf("push: %+v", rep)
	}
	old, err := os.ReadFile(config.PreviousPath(r.ctl.ConfigPath()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.ctl.ConfigPath(), old, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the config-revert event", func() bool { return len(r.events.named("config-revert")) == 1 })
	if len(brokers(r)) != 0 {
		t.Errorf("the pushed configuration still runs after the deadline: brokers %v", brokers(r))
	}
	var ev map[string]any
	if err := json.Unmarshal(r.events.named("config-revert")[0].payload, &ev); err != nil || ev["reverted"] != true || !strings.Contains(fmt.Sprint(ev["note"]), "nothing written back") {
		t.Errorf("config-revert event %s (%v)", r.events.named("config-revert")[0].payload, err)
	}
	if n := r.log.count("put back on the box", "not reloaded", "reloaded from that file", "push=c1"); n != 1 {
		t.Errorf("%d log lines for the reload at the deadline, want 1:\n%s", n, r.log.all())
	}
	if onDisk, err := config.Load(r.ctl.ConfigPath()); err != nil || len(onDisk.MQTT.Brokers) != 0 {
		t.Errorf("file after the deadline: %v %v", err, onDisk)
	}
	if st := r.do("status", `{"id":"s1"}`); st.Data["config_pending"] != nil || st.Data["config_version"] != int64(0) {
		t.Errorf("status after the deadline: pending %v version %v", st.Data["config_pending"], st.Data["config_version"])
	}
	// .prev is the reverted push, as after any revert: it was the file put
	// back, and a rollback answered applied with nothing changed.
	if prev, err := config.LoadPrevious(r.ctl.ConfigPath()); err != nil || len(prev.MQTT.Brokers) != 1 {
		t.Errorf(".prev after the deadline is not the reverted push: %v %v", err, prev)
	}
	if rep := r.do("rollback", `{"id":"rb1","target":"config","force":true}`); !rep.OK || fmt.Sprint(rep.Data["changed"]) != "[mqtt.brokers]" || len(brokers(r)) != 1 {
		t.Errorf("rollback after the deadline does not go forward to the push: %+v, brokers %v", rep, brokers(r))
	}
}

// refuseRecipe is a config.Rule as the daemon's recipe rule: it refuses
// the recipe name v9-bogus, which config.Validate lets through.
func refuseRecipe(c *config.Config) []*config.Problem {
	if c.Model.Recipe == "v9-bogus" {
		return []*config.Problem{{Field: "model.recipe", Msg: `"v9-bogus": unknown backbone v9`}}
	}
	return nil
}

// TestRollbackChecksThePreviousFileAsAPush: a .prev whose model.recipe a
// push would be refused for is refused by config rollback and by a start's
// revert, naming the file and the field, and nothing is applied or
// written. Both loaded .prev without the push's rules and applied it.
func TestRollbackChecksThePreviousFileAsAPush(t *testing.T) {
	r := newRig(t, unsigned)
	r.opts.ConfigRules = []config.Rule{refuseRecipe}
	r.restart()
	bad := r.ctl.Config().Clone()
	bad.Model.Recipe = "v9-bogus"
	prev := config.PreviousPath(r.ctl.ConfigPath())
	if err := config.Save(prev, bad); err != nil {
		t.Fatal(err)
	}
	mustFail(t, r.do("config", `{"id":"c0","config":{"model":{"recipe":"v9-bogus"}}}`), CodeInvalid, "unknown backbone v9")
	rep := r.do("rollback", `{"id":"r1","target":"config","force":true}`)
	mustFail(t, rep, CodeFailed, prev, "model.recipe", "unknown backbone v9")
	if f := field(rep); f != "config.model.recipe" {
		t.Errorf("rollback refused with field %q, want config.model.recipe", f)
	}
	if n := r.ctl.applies.Load(); n != 0 || r.ctl.Config().Model.Recipe == "v9-bogus" {
		t.Errorf("a refused .prev applied (%d applies)", n)
	}

	// A start's revert: the configuration before the push names a recipe
	// this daemon refuses (an older daemon's file).
	r2 := newRig(t, unsigned+"model: {recipe: v9-bogus}\n")
	if rep := r2.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"1h"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	if err := r2.d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	pushed, err := os.ReadFile(r2.ctl.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	id, err := RevertUnstartable(r2.ctl.ConfigPath(), r2.ctl.dir, nil, r2.clk.Now(), nil, refuseRecipe)
	if id != "" || err == nil || !strings.Contains(err.Error(), config.PreviousPath(r2.ctl.ConfigPath())) || !strings.Contains(err.Error(), "model.recipe") {
		t.Errorf("RevertUnstartable of a refused .prev: %q, %v", id, err)
	}
	if now, err := os.ReadFile(r2.ctl.ConfigPath()); err != nil || string(now) != string(pushed) {
		t.Errorf("the pushed file was replaced by a refused .prev (%v)", err)
	}
}

// TestFailedApplyKeepsTheWait: a file edited on the box that loads but
// whose reload failed to apply (a camera that does not open) is not in
// force: the push still runs, so its wait goes on, status says why, and at
// the deadline the configuration before the push comes back with the edit
// kept as .prev. The wait ended at the next look (status), as if the edit
// ran, and the deadline then left the push in force.
func TestFailedApplyKeepsTheWait(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"5s"}`); !rep.OK || len(brokers(r)) != 1 {
		t.Fatalf("push: %+v", rep)
	}
	edited := r.ctl.Config().Clone()
	edited.MQTT.ResultQoS = 2
	if err := config.Save(r.ctl.ConfigPath(), edited); err != nil {
		t.Fatal(err)
	}
	editBytes, err := os.ReadFile(r.ctl.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	r.d.FileNotReloaded(errors.New("reopen capture: open /dev/video2: no such device"))
	waitFor(t, 10*time.Second, "the log line at the failed reload", func() bool {
		return r.log.count("not reloaded; the push is still in force and still waits", "push=c1") == 1
	})
	st := r.do("status", `{"id":"s1"}`)
	p, _ := st.Data["config_pending"].(map[string]any)
	if p == nil || p["id"] != "c1" || !strings.Contains(fmt.Sprint(p["note"]), "could not be applied (reopen capture: open /dev/video2: no such device)") {
		t.Fatalf("status after a failed apply: config_pending %v", st.Data["config_pending"])
	}
	mustFail(t, r.do("config", `{"id":"c2","config":{"mqtt":{"result_qos":1}}}`), CodeBusy, `push "c1" waits`)
	waitFor(t, 30*time.Second, "revert", func() bool { return len(brokers(r)) == 0 })
	if got, err := os.ReadFile(config.PreviousPath(r.ctl.ConfigPath())); err != nil || string(got) != string(editBytes) {
		t.Errorf("the unapplied edit not kept as .prev: %v", err)
	}
	if n := r.log.count("could not be applied; reverting the push all the same", "push=c1"); n != 1 {
		t.Errorf("%d log lines for the revert of an unapplied edit, want 1", n)
	}
}

// TestRevertUnstartableBrokenEdit: a pushed file waiting for
// config-confirm, edited on the box into one that does not load, is
// reverted for the next start as the deadline reverts it: the
// configuration before the push put back, the broken edit kept as .prev,
// and a log line naming the file and the error. It was left as it was
// ("not the pushed file"), and the next start failed on it again.
func TestRevertUnstartableBrokenEdit(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"1h","version":2}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	if err := r.d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	broken := []byte("mqtt: {result_qos: [\n")
	if err := os.WriteFile(r.ctl.ConfigPath(), broken, 0o600); err != nil {
		t.Fatal(err)
	}
	log := &logSink{}
	id, err := RevertUnstartable(r.ctl.ConfigPath(), r.ctl.dir, nil, r.clk.Now(), slog.New(log))
	if err != nil || id != "c1" {
		t.Fatalf("RevertUnstartable of a broken edit: %q, %v", id, err)
	}
	if c, err := config.Load(r.ctl.ConfigPath()); err != nil || len(c.MQTT.Brokers) != 0 {
		t.Errorf("the file after the revert: %v, %v", c, err)
	}
	if got, err := os.ReadFile(config.PreviousPath(r.ctl.ConfigPath())); err != nil || string(got) != string(broken) {
		t.Errorf("the broken edit not kept as .prev: %q %v", got, err)
	}
	if n := log.count("edited on the box", "does not load", "kept as the previous file", "file="+r.ctl.ConfigPath(), "push=c1", "error="); n != 1 {
		t.Errorf("%d log lines for the revert of a broken edit, want 1:\n%s", n, log.all())
	}
	r.start()
	if p := r.d.store.pendingConfirm(); p != nil {
		t.Errorf("still pending after the revert: %+v", p)
	}
}

// TestEndedWaitCarriedWithStateDir: a push that changes state_dir carries
// the request table into the new folder before the configuration naming
// it is saved (a stop before the move must find it there); the record of
// the last ended wait was left behind, so a box stopped then started in
// the new folder told a late config-confirm only that no push waits. It
// goes along now, a stale record of an earlier stint in the folder does
// not stand for it, and a refused change takes it back, leaving the folder
// as it was.
func TestEndedWaitCarriedWithStateDir(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	if rep := r.do("config-confirm", `{"id":"k1"}`); !rep.OK {
		t.Fatalf("confirm: %+v", rep)
	}
	// The new folder held inspectd's state before: an old record there.
	moved := filepath.Join(t.TempDir(), "state2")
	if err := os.MkdirAll(moved, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := saveEnded(filepath.Join(moved, EndedFile), endedWait{ID: "old-push", At: r.clk.Now().Add(-48 * time.Hour), Why: "it was confirmed long ago"}); err != nil {
		t.Fatal(err)
	}
	// The test controller saves and applies without moving the table
	// (SetStateDir): as a box stopped right after the file was saved.
	if rep := r.do("config", `{"id":"c2","config":{"state_dir":"`+moved+`"}}`); !rep.OK {
		t.Fatalf("push of state_dir: %+v", rep)
	}
	r.opts.StateDir = moved
	r.restart()
	mustFail(t, r.do("config-confirm", `{"id":"k2"}`), CodeFailed, `push "c1" no longer waits`, `it was confirmed (config-confirm "k1")`)

	// A refused change: the folder keeps its own record, a fresh one gets none.
	r.opts.StateDir = r.ctl.dir
	r.restart()
	if err := saveEnded(filepath.Join(moved, EndedFile), endedWait{ID: "old-push", At: r.clk.Now().Add(-48 * time.Hour), Why: "it was confirmed long ago"}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{moved, filepath.Join(t.TempDir(), "fresh", "state")} {
		before, _ := os.ReadFile(filepath.Join(dir, EndedFile))
		undo, err := r.d.store.carryTo(dir, r.clk.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := loadEnded(filepath.Join(dir, EndedFile)); err != nil || got.ID != "c1" {
			t.Errorf("%s: record carried %+v (%v), want c1's", dir, got, err)
		}
		if err := undo(); err != nil {
			t.Fatal(err)
		}
		after, err := os.ReadFile(filepath.Join(dir, EndedFile))
		if before == nil && !errors.Is(err, os.ErrNotExist) || before != nil && string(after) != string(before) {
			t.Errorf("%s: record after the take-back %q (%v), want %q", dir, after, err, before)
		}
	}
	// Moved (SetStateDir) with no record of its own: the folder's stale
	// one does not stand for it.
	if rep := r.do("config", `{"id":"c3","config":{"mqtt":{"result_qos":0}},"confirm":"1h"}`); !rep.OK {
		t.Fatalf("push: %+v", rep) // a push waiting removes the record
	}
	if err := r.d.SetStateDir(moved); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(moved, EndedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a stale record left in the folder moved to: %v", err)
	}
}

// TestRevertUnstartableFollowsAMovedStateDir: a push waiting for
// config-confirm that moved state_dir, its file then edited on the box
// into one that does not load: the start looks for the push through the
// configuration before it, whose state_dir the table had left, and found
// nothing, so the broken file failed every start. The folder left now
// says where the table went; the revert puts the configuration before the
// push back and the table (the answered requests, the version) back into
// that configuration's state_dir, where the next start reads it.
func TestRevertUnstartableFollowsAMovedStateDir(t *testing.T) {
	r := newRig(t, unsigned)
	old := r.ctl.dir
	moved := filepath.Join(t.TempDir(), "state2")
	if rep := r.do("config", `{"id":"c1","config":{"state_dir":"`+moved+`"},"confirm":"1h","version":2}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	// The daemon's Apply moves the table; the test controller does not.
	if err := r.d.SetStateDir(moved); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(old, StateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the table is still in the folder left: %v", err)
	}
	broken := []byte("state_dir: [\n")
	if err := os.WriteFile(r.ctl.ConfigPath(), broken, 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := RevertUnstartable(r.ctl.ConfigPath(), old, nil, r.clk.Now(), slog.New(&logSink{}))
	if err != nil || id != "c1" {
		t.Fatalf("RevertUnstartable through the .prev's state_dir: %q, %v", id, err)
	}
	if c, err := config.Load(r.ctl.ConfigPath()); err != nil || c.StateDir != old {
		t.Errorf("the file after the revert: %v, %v", c, err)
	}
	for _, f := range []string{filepath.Join(moved, StateFile), filepath.Join(old, MovedFile)} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after the revert: %v", f, err)
		}
	}
	r.start() // on the state_dir of the configuration put back
	if p := r.d.store.pendingConfirm(); p != nil {
		t.Errorf("still pending after the revert: %+v", p)
	}
	if v := r.d.store.configVersion(); v.Current != 0 || v.Previous != 2 {
		t.Errorf("version after the revert %+v, want the one before the push", v)
	}
	if rep := r.do("config", `{"id":"c1","config":{"state_dir":"`+moved+`"},"confirm":"1h","version":2}`); rep.Data["duplicate"] != true {
		t.Errorf("the push's id is not known after the revert: %+v", rep)
	}
}

// TestRefusedPreviousEndsTheWait: the configuration a push replaced (its
// .prev) refused by the checks of a push was tried again at every start
// and every 30 s after the deadline, for ever; it is now said once, the
// wait ended with that reason (config-revert at the deadline, not
// reverted), and a late config-confirm is told why.
func TestRefusedPreviousEndsTheWait(t *testing.T) {
	// At the deadline.
	r := newRig(t, unsigned+"model: {recipe: v9-bogus}\n")
	r.opts.ConfigRules = []config.Rule{refuseRecipe}
	r.restart()
	if rep := r.do("config", `{"id":"c1","config":{"model":{"recipe":"plain"}},"confirm":"5s"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	waitFor(t, 30*time.Second, "config-revert", func() bool { return len(r.events.named("config-revert")) == 1 })
	var ev map[string]any
	if err := json.Unmarshal(r.events.named("config-revert")[0].payload, &ev); err != nil || ev["reverted"] != false || !strings.Contains(fmt.Sprint(ev["note"]), "model.recipe") {
		t.Errorf("config-revert event %s (%v)", r.events.named("config-revert")[0].payload, err)
	}
	if p := r.d.store.pendingConfirm(); p != nil {
		t.Errorf("still waiting after a refused revert: %+v", p)
	}
	if n := r.log.count("not reverted: the configuration before it is refused", "push=c1"); n != 1 {
		t.Errorf("%d log lines, want 1:\n%s", n, r.log.all())
	}
	mustFail(t, r.do("config-confirm", `{"id":"k1"}`), CodeFailed, `push "c1" no longer waits`, "refused")

	// At a start.
	r2 := newRig(t, unsigned+"model: {recipe: v9-bogus}\n")
	if rep := r2.do("config", `{"id":"c2","config":`+movedBroker+`,"confirm":"1h"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	if err := r2.d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	id, err := RevertUnstartable(r2.ctl.ConfigPath(), r2.ctl.dir, nil, r2.clk.Now(), nil, refuseRecipe)
	if id != "" || !errors.Is(err, ErrPreviousRefused) || !strings.Contains(err.Error(), "model.recipe") {
		t.Errorf("RevertUnstartable of a refused .prev: %q, %v", id, err)
	}
	if id, err := RevertUnstartable(r2.ctl.ConfigPath(), r2.ctl.dir, nil, r2.clk.Now(), nil, refuseRecipe); id != "" || err != nil {
		t.Errorf("the next start tried again: %q, %v", id, err)
	}
	r2.start()
	mustFail(t, r2.do("config-confirm", `{"id":"k2"}`), CodeFailed, `push "c2" no longer waits`, "did not start", "is refused")
}

// TestRevertUnstartableRecorded: a start's revert of a push it could not
// start on left no trace for the remote side: no config-revert event, at
// that start or the next, no ended-wait record (a late config-confirm was
// pointed at an event that never came), and a repeat of the push's id was
// answered without "reverted":true. It is recorded now as the deadline's
// revert is, and the next start publishes the event, once.
func TestRevertUnstartableRecorded(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"hp1","config":{"mqtt":{"result_qos":1}},"confirm":"2m","version":4}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	if err := r.d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("http.listen 127.0.0.1:29415: address already in use")
	id, err := RevertUnstartable(r.ctl.ConfigPath(), r.ctl.dir, cause, r.clk.Now(), slog.New(&logSink{}))
	if err != nil || id != "hp1" {
		t.Fatalf("RevertUnstartable: %q, %v", id, err)
	}
	if e, err := loadEnded(filepath.Join(r.ctl.dir, EndedFile)); err != nil || e.ID != "hp1" || !strings.Contains(e.Why, "address already in use") || !strings.Contains(e.Why, "reverted at a start") {
		t.Errorf("ended-wait record after the start's revert: %+v, %v", e, err)
	}
	r.clk.Add(time.Second)
	r.start()
	waitFor(t, 5*time.Second, "the config-revert event at the next start", func() bool { return len(r.events.named("config-revert")) == 1 })
	var ev map[string]any
	if err := json.Unmarshal(r.events.named("config-revert")[0].payload, &ev); err != nil || ev["id"] != "hp1" || ev["reverted"] != true ||
		!strings.Contains(fmt.Sprint(ev["note"]), "address already in use") || fmt.Sprint(ev["changed"]) != "[mqtt.result_qos]" || ev["version"] != float64(0) || ev["deadline"] == nil {
		t.Errorf("config-revert event: %s (%v)", r.events.named("config-revert")[0].payload, err)
	}
	rep := r.do("config", `{"id":"hp1","config":{"mqtt":{"result_qos":1}},"confirm":"2m","version":4}`)
	if rep.Data["duplicate"] != true || rep.Data["reverted"] != true || !strings.Contains(fmt.Sprint(rep.Data["note"]), "reverted at a start") {
		t.Errorf("repeat of the reverted push's id: %+v", rep)
	}
	mustFail(t, r.do("config-confirm", `{"id":"k1"}`), CodeFailed, `push "hp1" no longer waits`, "address already in use", "reverted at a start")
	// Published once: the next start has nothing to say.
	r.restart()
	time.Sleep(50 * time.Millisecond)
	if n := len(r.events.named("config-revert")); n != 1 {
		t.Errorf("%d config-revert events after another start, want 1", n)
	}
}

// TestRevertUnstartableLeavesARunningDaemonAlone: a second "inspectd run"
// on the configuration of a running daemon with a push waiting failed on
// the state folder's lock and then reverted the running daemon's push
// under it (its file, .prev, request table and ended-wait record), which
// went on calling the push pending, confirmed it, and ran on the reverted
// file at its next start. While another process holds the lock nothing is
// written, and the error says who holds it.
func TestRevertUnstartableLeavesARunningDaemonAlone(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"hp1","config":{"mqtt":{"result_qos":1}},"confirm":"2m"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	lock, err := statelock.Take(r.ctl.dir) // the running daemon's
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	snapshot := func() map[string]string {
		m := map[string]string{}
		for _, p := range []string{r.ctl.ConfigPath(), config.PreviousPath(r.ctl.ConfigPath()), filepath.Join(r.ctl.dir, EndedFile), filepath.Join(r.ctl.dir, StateFile)} {
			b, _ := os.ReadFile(p)
			m[p] = string(b)
		}
		return m
	}
	// The running daemon marks the push's reply sent in its request table
	// once the publish returns, after the reply reached us: its own write,
	// not the revert's, so the table is read once it has settled.
	settled := time.Now().Add(10 * time.Second)
	for b, _ := os.ReadFile(filepath.Join(r.ctl.dir, StateFile)); strings.Contains(string(b), `"unsent":true`); b, _ = os.ReadFile(filepath.Join(r.ctl.dir, StateFile)) {
		if time.Now().After(settled) {
			t.Fatalf("the push's reply is still unsent after 10 s:\n%s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := snapshot()
	cause := errors.New("state_dir in use by another inspectd")
	id, err := RevertUnstartable(r.ctl.ConfigPath(), r.ctl.dir, cause, r.clk.Now(), slog.New(&logSink{}))
	var inUse *statelock.InUseError
	if id != "" || !errors.As(err, &inUse) || !strings.Contains(err.Error(), "in use by another inspectd") {
		t.Fatalf("RevertUnstartable beside a running daemon: %q, %v", id, err)
	}
	if after := snapshot(); !maps.Equal(before, after) {
		t.Errorf("files changed under the running daemon:\nbefore %v\nafter  %v", before, after)
	}
	if rep := r.do("config-confirm", `{"id":"k1"}`); !rep.OK {
		t.Errorf("the running daemon's push no longer waits: %+v", rep)
	}
}

// TestRevertUnstartableRefusedRecorded: a start whose push's .prev is
// refused ends the wait without reverting; the next start publishes
// config-revert with "reverted":false, as the deadline does.
func TestRevertUnstartableRefusedRecorded(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("config", `{"id":"c1","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`); !rep.OK {
		t.Fatalf("push: %+v", rep)
	}
	if err := r.d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	refuse := func(c *config.Config) []*config.Problem {
		if c.MQTT.ResultQoS == 0 {
			return []*config.Problem{{Field: "mqtt.result_qos", Msg: "refused by this test"}}
		}
		return nil
	}
	if _, err := RevertUnstartable(r.ctl.ConfigPath(), r.ctl.dir, errors.New("start failed"), r.clk.Now(), slog.New(&logSink{}), refuse); !errors.Is(err, ErrPreviousRefused) {
		t.Fatalf("RevertUnstartable of a refused .prev: %v", err)
	}
	r.start()
	waitFor(t, 5*time.Second, "the config-revert event at the next start", func() bool { return len(r.events.named("config-revert")) == 1 })
	var ev map[string]any
	if err := json.Unmarshal(r.events.named("config-revert")[0].payload, &ev); err != nil || ev["id"] != "c1" || ev["reverted"] != false ||
		!strings.Contains(fmt.Sprint(ev["note"]), "refused") {
		t.Errorf("config-revert event: %s (%v)", r.events.named("config-revert")[0].payload, err)
	}
}

// TestStartSettlesAPendingPush: a box started on a pushed file changed on
// the box while it was down said the push still waits, and the wait ended
// only at the next command (about 10 s later, at the next status); a box
// started after the deadline said the push waits, with a revert_at in the
// past. The start now ends the wait at once for a file changed on the box
// (one that loads, or the file the push replaced put back), with the line
// and the config-revert event a reload gives, and says a revert is due now
// when the deadline passed while it was stopped.
func TestStartSettlesAPendingPush(t *testing.T) {
	const waits = "a configuration push waits for config-confirm; the previous configuration comes back then"
	t.Run("edited", func(t *testing.T) {
		r := newRig(t, unsigned)
		if rep := r.do("config", `{"id":"c1","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`); !rep.OK {
			t.Fatalf("push: %+v", rep)
		}
		if err := r.d.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		edited := r.ctl.Config().Clone()
		edited.MQTT.ResultQoS = 2
		if err := config.Save(r.ctl.ConfigPath(), edited); err != nil {
			t.Fatal(err)
		}
		r.ctl.cfg.Store(edited) // the start runs on the edited file
		r.start()
		waitFor(t, 2*time.Second, "the config-revert event at the start", func() bool { return len(r.events.named("config-revert")) == 1 })
		var ev map[string]any
		if err := json.Unmarshal(r.events.named("config-revert")[0].payload, &ev); err != nil || ev["id"] != "c1" || ev["reverted"] != false {
			t.Errorf("config-revert event %s (%v)", r.events.named("config-revert")[0].payload, err)
		}
		if n := r.log.count("changed on the box since the push; it no longer waits", "push=c1"); n != 1 {
			t.Errorf("%d lines ending the wait at the start, want 1:\n%s", n, r.log.all())
		}
		if n := r.log.count(waits); n != 0 {
			t.Errorf("the start said the push waits:\n%s", r.log.all())
		}
		if p := r.d.store.pendingConfirm(); p != nil {
			t.Errorf("still pending: %+v", p)
		}
	})
	t.Run("put back", func(t *testing.T) {
		r := newRig(t, unsigned)
		if rep := r.do("config", `{"id":"c1","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`); !rep.OK {
			t.Fatalf("push: %+v", rep)
		}
		if err := r.d.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		old, err := os.ReadFile(config.PreviousPath(r.ctl.ConfigPath()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(r.ctl.ConfigPath(), old, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(r.ctl.ConfigPath())
		if err != nil {
			t.Fatal(err)
		}
		r.ctl.cfg.Store(c)
		r.start()
		waitFor(t, 2*time.Second, "the config-revert event at the start", func() bool { return len(r.events.named("config-revert")) == 1 })
		var ev map[string]any
		if err := json.Unmarshal(r.events.named("config-revert")[0].payload, &ev); err != nil || ev["reverted"] != true || !strings.Contains(fmt.Sprint(ev["note"]), "daemon started on it") {
			t.Errorf("config-revert event %s (%v)", r.events.named("config-revert")[0].payload, err)
		}
		if n := r.log.count(waits); n != 0 {
			t.Errorf("the start said the push waits:\n%s", r.log.all())
		}
	})
	t.Run("past deadline", func(t *testing.T) {
		r := newRig(t, unsigned)
		if rep := r.do("config", `{"id":"c1","config":`+movedBroker+`,"confirm":"5s"}`); !rep.OK {
			t.Fatalf("push: %+v", rep)
		}
		if err := r.d.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		r.clk.Add(time.Minute)
		r.start()
		waitFor(t, 5*time.Second, "the revert at the start", func() bool { return len(r.events.named("config-revert")) == 1 })
		if n := r.log.count("ran out while inspectd was stopped", "the previous configuration comes back now", "push=c1", "revert_at="); n != 1 {
			t.Errorf("%d lines saying the revert is due at the start, want 1:\n%s", n, r.log.all())
		}
		if n := r.log.count(waits); n != 0 {
			t.Errorf("the start said the push waits, its deadline past:\n%s", r.log.all())
		}
		if len(brokers(r)) != 0 {
			t.Errorf("not reverted: brokers %v", brokers(r))
		}
	})
	t.Run("waits", func(t *testing.T) {
		r := newRig(t, unsigned)
		if rep := r.do("config", `{"id":"c1","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`); !rep.OK {
			t.Fatalf("push: %+v", rep)
		}
		r.restart()
		waitFor(t, 2*time.Second, "the line saying the push waits", func() bool { return r.log.count(waits, "push=c1") == 1 })
		if p := r.d.store.pendingConfirm(); p == nil || len(r.events.named("config-revert")) != 0 {
			t.Errorf("the pushed file unchanged: pending %+v, events %d", p, len(r.events.named("config-revert")))
		}
	})
}

// TestRevertEventSaysNothingOfTheStateDirSpelling: a push reverted at a
// start whose file and the file before it name the same state_dir spelled
// differently (the operator's file says "dir", the daemon in force, and so
// the push, kept "dir/" at a reload) reports only what the push changed.
// The config-revert event said "changed":["mqtt.result_qos","state_dir"],
// a change of state folder that never was.
func TestRevertEventSaysNothingOfTheStateDirSpelling(t *testing.T) {
	r := newRig(t, unsigned)
	inForce := r.ctl.Config().Clone()
	inForce.StateDir = r.ctl.dir + "/"
	r.ctl.cfg.Store(inForce)
	if rep := r.do("config", `{"id":"sp1","config":{"mqtt":{"result_qos":1}},"confirm":"2m"}`); !rep.OK || fmt.Sprint(rep.Data["changed"]) != "[mqtt.result_qos]" {
		t.Fatalf("push: %+v", rep)
	}
	if err := r.d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if id, err := RevertUnstartable(r.ctl.ConfigPath(), r.ctl.dir, errors.New("no camera"), r.clk.Now(), slog.New(&logSink{})); err != nil || id != "sp1" {
		t.Fatalf("RevertUnstartable: %q, %v", id, err)
	}
	r.clk.Add(time.Second)
	r.start()
	waitFor(t, 5*time.Second, "the config-revert event at the next start", func() bool { return len(r.events.named("config-revert")) == 1 })
	var ev map[string]any
	if err := json.Unmarshal(r.events.named("config-revert")[0].payload, &ev); err != nil || ev["reverted"] != true || fmt.Sprint(ev["changed"]) != "[mqtt.result_qos]" {
		t.Errorf("config-revert event: %s (%v), want changed [mqtt.result_qos]", r.events.named("config-revert")[0].payload, err)
	}
}
