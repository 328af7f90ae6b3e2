package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/statelock"
)

// A configuration push can move the connection that carries remote control
// itself: another broker, credentials, TLS files, client id, topic prefix.
// Pushed with a mistake, it leaves a box nobody can reach to undo it but
// someone on site. So such a push is applied only with "confirm" (the
// previous configuration comes back by itself unless config-confirm
// arrives in time, as a router's "commit confirmed") or with "force".

// Bounds of a push's confirm window.
const (
	minConfirm = 5 * time.Second
	maxConfirm = 24 * time.Hour
)

// revertRetry is how long the dispatcher waits before trying a revert
// again when the configuration could not be restored (a refit running, a
// capture that would not reopen).
const revertRetry = 30 * time.Second

// connectionKeys are the settings (config.Diff names, or prefixes of them)
// through which remote commands reach this box: changed by mistake, the
// box no longer hears its operator.
var connectionKeys = []string{
	"mqtt.brokers", "mqtt.embedded_listen", "mqtt.client_id", "mqtt.username", "mqtt.password",
	"mqtt.tls.", "mqtt.topic_prefix", "mqtt.profile", "remote.allow_unsigned",
	"device_id", // the command topics, and the default client id
	// Signed commands (rollback, config-confirm included) whose timestamp
	// is further from this box's clock are refused: pushed down to a
	// second on a box whose clock drifts, every later command would be.
	"remote.max_skew",
}

// sparkplugKeys carry remote control when the Sparkplug B edge node runs
// (before or after the change): its group and edge node id are the NCMD
// topic's levels, its client id is its session (one shared with another
// box makes the broker drop one of the two, over and over), and a primary
// host id no host answers to holds back the births a host application
// needs before it sends commands.
var sparkplugKeys = []string{"sparkplug."}

// connectionChange returns the first setting changed from running to next
// (changed, config.Diff's names) that carries remote control, "" if none.
func connectionChange(running, next *config.Config, changed []string) string {
	keys := connectionKeys
	if running.MQTT.UsesSparkplug() || next.MQTT.UsesSparkplug() {
		keys = append(slices.Clone(keys), sparkplugKeys...)
	}
	for _, c := range changed {
		for _, k := range keys {
			if c == k || (strings.HasSuffix(k, ".") && strings.HasPrefix(c, k)) {
				return c
			}
		}
	}
	return ""
}

// connectionRefusal is the refusal of a change to the connection that
// carries remote control without confirm or force; verb is what the
// request does ("push", "roll back").
func connectionRefusal(verb string) string {
	return "changes the connection that carries remote control: with a mistake in it, this box could not be reached to undo it. " +
		"Send the " + verb + " with \"confirm\":\"5m\" (then send config-confirm once the box answers on its new connection; without it the previous configuration comes back 5 minutes after it took effect), or with \"force\":true"
}

// pendingConfirm is a configuration push applied with "confirm" that waits
// for config-confirm; at Deadline the dispatcher restores the configuration
// it replaced. It is persisted in the request table, so a restart (the
// push's own effect, a power cut) does not forget it.
type pendingConfirm struct {
	// ID and Origin are the push's request id and topic, Command its
	// command ("config", or "rollback" on probation; "" is "config").
	ID      string `json:"id"`
	Origin  string `json:"origin"`
	Command string `json:"command,omitempty"`
	// Deadline is when the previous configuration comes back: the confirm
	// window counted from AppliedAt (before it, from the push's start).
	Deadline time.Time `json:"deadline"`
	// AppliedAt is when the push took effect, ConnectedAt when the MQTT
	// front end moved to the connection it made (zero: it made none). A
	// config-confirm counts only when it arrived after ConnectedAt, or
	// after AppliedAt for a push that kept the connection: one before came
	// over the old connection.
	AppliedAt   time.Time `json:"applied_at,omitzero"`
	ConnectedAt time.Time `json:"connected_at,omitzero"`
	// Before is the SHA-256 of the configuration file the push replaced,
	// After that of the file it wrote ("" until it is applied). The revert
	// restores the .prev file only while it is Before and the file in force
	// is After: a file edited on the box since is left as it is.
	Before string `json:"before_sha256"`
	After  string `json:"after_sha256,omitempty"`
}

// confirmableSince is when a config-confirm starts to count.
func (p *pendingConfirm) confirmableSince() time.Time {
	if !p.ConnectedAt.IsZero() {
		return p.ConnectedAt
	}
	return p.AppliedAt
}

// describe is the pending push in a reply or a status.
func (p *pendingConfirm) describe() map[string]any {
	return map[string]any{"id": p.ID, "revert_at": p.Deadline.UTC().Format(time.RFC3339)}
}

// parseConfirm reads a push's "confirm": a duration string ("5m") within
// minConfirm..maxConfirm; absent or null is 0.
func parseConfirm(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, typef("confirm", "expected a duration such as \"5m\", got %s", truncate(string(raw), 20))
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalidf("confirm", "%q is not a duration such as \"5m\" or \"90s\"", truncate(s, 20))
	}
	if d < minConfirm || d > maxConfirm {
		return 0, invalidf("confirm", "%s is out of range %s..%s", d, minConfirm, maxConfirm)
	}
	return d, nil
}

// fileSHA256 is the hex SHA-256 of a file's bytes.
func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// fileState is what the configuration files say of a pending push.
type fileState int

const (
	fileRevertible fileState = iota // the file is the push's, .prev the one it replaced
	fileBefore                      // the file is the one the push replaced (never saved, or restored on the box)
	fileEdited                      // the file changed since the push (edited on the box)
	filePrevOther                   // .prev is not the file the push replaced
)

// files compares the configuration file at path and its .prev with the
// checksums the push recorded; an error when the file cannot be read.
func (p *pendingConfirm) files(path string) (fileState, error) {
	cur, err := fileSHA256(path)
	switch {
	case err != nil:
		return 0, err
	case cur == p.Before:
		return fileBefore, nil
	case p.After != "" && cur != p.After:
		return fileEdited, nil
	}
	if prev, err := fileSHA256(config.PreviousPath(path)); err != nil || prev != p.Before {
		return filePrevOther, nil
	}
	return fileRevertible, nil
}

// refuseWhilePending is a busy error while a push waits for config-confirm:
// another change to the configuration file would make its revert restore
// the wrong file.
func (e *Env) refuseWhilePending(what string) error {
	p := e.d.settlePending(false)
	if p == nil {
		return nil
	}
	return errorf(CodeBusy, "", "configuration push %q waits for config-confirm until %s (the previous configuration comes back then); %s now would change what that restores: send config-confirm first, or rollback with target config to revert the push now",
		p.ID, p.Deadline.UTC().Format(time.RFC3339), what)
}

// revertRetryState is the state of a revert that could not run, for the
// push of id.
type revertRetryState struct {
	id    string
	at    time.Time
	fails int
}

// unappliedFile is a configuration file a SIGHUP did not apply: its
// SHA-256 when it was looked at, and the reload's error.
type unappliedFile struct {
	sum string
	err string
}

// editUnapplied returns why the configuration file at path, as it is now,
// could not be applied at the last SIGHUP ("" when it was not refused so):
// such an edit is not in force, so the push still runs and still waits.
func (d *Dispatcher) editUnapplied(path string) string {
	if d.unapplied.sum == "" {
		return ""
	}
	if cur, err := fileSHA256(path); err != nil || cur != d.unapplied.sum {
		return ""
	}
	return d.unapplied.err
}

// waitNote says, for status, why push p waits although the configuration
// file was edited on the box since ("" when it was not): the edit does not
// load, or it loads but could not be applied.
func (d *Dispatcher) waitNote(p *pendingConfirm) string {
	path := d.ctl.ConfigPath()
	if st, err := p.files(path); err != nil || st != fileEdited {
		return ""
	}
	if lerr := d.fileLoads(path); lerr != nil {
		return fmt.Sprintf("the configuration file %s was edited on the box but does not load (%v); the push is still in force and still waits", path, lerr)
	}
	if why := d.editUnapplied(path); why != "" {
		return fmt.Sprintf("the configuration file %s was edited on the box but could not be applied (%s); the push is still in force and still waits", path, why)
	}
	return ""
}

// loadError returns why the configuration file at path does not load
// with rules, nil when it does.
func loadError(path string, rules []config.Rule) error {
	_, err := config.Load(path, rules...)
	return err
}

// fileLoads returns why the configuration file at path does not load
// (with the daemon's rules), nil when it does.
func (d *Dispatcher) fileLoads(path string) error { return loadError(path, d.rules) }

// settlePending ends the wait of a pending push whose configuration file
// was changed on the box since (edited, then reloaded with SIGHUP): the
// revert would leave it as it is anyway, and pushes need not wait for the
// deadline. reloaded says the file was applied just now (FileReloaded): a
// file put back to the one the push replaced then undoes the push, which
// ends the wait too; before a reload the push is still in force and waits.
// An edited file that does not load cannot take over from the push (a
// restart would fail on it): the wait goes on. It returns the push still
// waiting, nil if none.
func (d *Dispatcher) settlePending(reloaded bool) *pendingConfirm { return d.settle(reloaded, false) }

// settle is settlePending; atStart says the file was just applied by the
// daemon's start, which is a reload of it (the log and the note say so).
func (d *Dispatcher) settle(reloaded, atStart bool) *pendingConfirm {
	p := d.store.pendingConfirm()
	if p == nil || p.After == "" {
		return p
	}
	path := d.ctl.ConfigPath()
	st, err := p.files(path)
	var msg, why string
	undone := false
	switch {
	case err != nil:
		return p
	case st == fileBefore && atStart:
		msg = "remote: the configuration file the push replaced was put back on the box and the daemon started on it: the push is undone; it no longer waits for config-confirm"
		why = "the configuration file it replaced was put back on the box and the daemon started on it, which undid the push"
		undone = true
	case st == fileBefore && reloaded:
		msg = "remote: the configuration file the push replaced was put back on the box and reloaded: the push is undone; it no longer waits for config-confirm"
		why = "the configuration file it replaced was put back on the box and reloaded, which undid the push"
		undone = true
	case st == fileEdited:
		if d.fileLoads(path) != nil || d.editUnapplied(path) != "" {
			// Not in force (it does not load, or its reload failed): the
			// push still runs, and waits.
			return p
		}
		msg = "remote: the configuration file changed on the box since the push; it no longer waits for config-confirm and is not reverted"
		why = "the configuration file was changed on the box since the push; it is not reverted"
	default:
		return p
	}
	now := d.now()
	if err := d.store.putPending(nil, now, d.ctl.Config().Remote.DedupWindow.Std()); err != nil {
		d.log.Error("remote: unconfirmed push not cleared from the request table", "push", p.ID, "error", err)
	}
	d.setEnded(endedWait{ID: p.ID, At: now, Why: why})
	d.log.Warn(msg, "push", p.ID, "file", path)
	// Published now, as the deadline publishes its outcome: the deadline
	// will not come, and whoever waits for config-revert learns here what
	// became of the push.
	ev := map[string]any{"id": p.ID, "deadline": p.Deadline.UTC().Format(time.RFC3339), "reverted": undone, "note": why}
	if b, err := json.Marshal(ev); err == nil {
		env := &Env{Ctl: d.ctl, Log: d.log.With("push", p.ID), Now: d.now, Name: "config-revert", ID: p.ID, Origin: p.Origin, d: d}
		env.emit("config-revert", b, 1)
	}
	return nil
}

// startPending looks, once the daemon runs, at a push found waiting in the
// request table: a file changed on the box while it was down (the start
// ran on it) ends the wait at once, with its log line and config-revert
// event, rather than at the next command; otherwise the log says when the
// revert is due, or that it is due now, when the deadline passed while
// the box was down (the loop then reverts at once).
func (d *Dispatcher) startPending() {
	p := d.settle(true, true)
	if p == nil {
		return
	}
	at := p.Deadline.UTC().Format(time.RFC3339)
	if !d.now().Before(p.Deadline) {
		d.log.Warn("remote: the time for config-confirm of a configuration push ran out while inspectd was stopped; the previous configuration comes back now", "push", p.ID, "revert_at", at)
		return
	}
	d.log.Warn("remote: a configuration push waits for config-confirm; the previous configuration comes back then unless it arrives", "push", p.ID, "revert_at", at)
}

// reloadFailed logs, at a SIGHUP whose file was not applied (err), what
// becomes of a push waiting for config-confirm: it is still the
// configuration in force, so the wait goes on; a file that does not load
// is named, as a restart would fail on it, and so is what the deadline
// does then.
func (d *Dispatcher) reloadFailed(err error) {
	p := d.settlePending(false)
	if p == nil || p.After == "" {
		return
	}
	path := d.ctl.ConfigPath()
	log := d.log.With("push", p.ID, "revert_at", p.Deadline.UTC().Format(time.RFC3339), "file", path)
	lerr := d.fileLoads(path)
	if lerr == nil {
		at := ""
		if st, ferr := p.files(path); ferr == nil && st == fileEdited && p.prevIsBefore(path) {
			at = "; at the deadline the configuration before the push is restored, and the file edited on the box kept as " + config.PreviousPath(path)
		}
		log.Warn("remote: configuration file not reloaded; the push is still in force and still waits for config-confirm"+at, "error", err)
		return
	}
	at := "at the deadline the configuration before the push is restored, and the file edited on the box kept as " + config.PreviousPath(path)
	if st, ferr := p.files(path); ferr == nil && st == fileEdited && !p.prevIsBefore(path) {
		at = "the configuration before the push cannot be restored at the deadline: " + config.PreviousPath(path) + " is not the file the push replaced"
	}
	log.Warn("remote: configuration file not reloaded; the push is still in force and still waits for config-confirm, but the file on disk does not load, so a restart would fail on it; "+at, "error", lerr)
}

// prevIsBefore says whether the .prev of path is the file the push
// replaced.
func (p *pendingConfirm) prevIsBefore(path string) bool {
	prev, err := fileSHA256(config.PreviousPath(path))
	return err == nil && prev == p.Before
}

// revertDue returns when the pending push must be reverted (the zero time
// when none is pending), no earlier than the next retry.
func (d *Dispatcher) revertDue() time.Time {
	p := d.store.pendingConfirm()
	if p == nil {
		return time.Time{}
	}
	if d.retry.id == p.ID && d.retry.at.After(p.Deadline) {
		return d.retry.at
	}
	return p.Deadline
}

// revertFailed schedules another try of the revert of push p, logging the
// first failure and every tenth after it.
func (d *Dispatcher) revertFailed(log *slog.Logger, p *pendingConfirm, now time.Time, msg string, args ...any) {
	if d.retry.id != p.ID {
		d.retry = revertRetryState{id: p.ID}
	}
	d.retry.fails++
	d.retry.at = now.Add(revertRetry)
	if d.ctx.Err() != nil {
		return // stopping: the next start tries again
	}
	if d.retry.fails%10 == 1 {
		log.Error(msg, append(args, "attempt", d.retry.fails, "retry_in", revertRetry)...)
	}
}

// revertUnconfirmed restores the configuration an unconfirmed push
// replaced, on the command goroutine. It publishes the outcome as the
// "config-revert" event and logs it; a revert that cannot run now is tried
// again after revertRetry.
func (d *Dispatcher) revertUnconfirmed() {
	p := d.store.pendingConfirm()
	if p == nil {
		return
	}
	now := d.now()
	window := d.ctl.Config().Remote.DedupWindow.Std()
	log := d.log.With("push", p.ID, "origin", p.Origin, "deadline", p.Deadline)
	env := &Env{Ctl: d.ctl, Log: log, Now: d.now, Name: "config-revert", ID: p.ID, Origin: p.Origin, d: d}
	event := map[string]any{"id": p.ID, "deadline": p.Deadline.UTC().Format(time.RFC3339)}
	done := func(reverted bool, note string) {
		// Cleared in memory even when the table cannot be written: the
		// revert is done (a restart finds the file changed and leaves it).
		if err := d.store.putPending(nil, now, window); err != nil {
			log.Error("remote: unconfirmed push not cleared from the request table", "error", err)
		}
		event["reverted"], event["note"] = reverted, note
		// A config-confirm naming it after this is told what became of it,
		// not that no push was ever waiting.
		why := "its time for config-confirm ran out (" + p.Deadline.UTC().Format(time.RFC3339) + ") and it was reverted"
		if !reverted {
			why = "its time for config-confirm ran out (" + p.Deadline.UTC().Format(time.RFC3339) + "), and it was not reverted: " + note
		}
		d.setEnded(endedWait{ID: p.ID, At: now, Why: why})
		if b, err := json.Marshal(event); err == nil {
			env.emit("config-revert", b, 1)
		}
	}
	path := d.ctl.ConfigPath()
	st, err := p.files(path)
	if err != nil {
		d.revertFailed(log, p, now, "remote: unconfirmed push not reverted: the configuration file cannot be read; trying again", "file", path, "error", err)
		return
	}
	switch st {
	case fileBefore:
		if d.reloadPutBack(env, log, p, path, now, window, event, done) {
			return
		}
		log.Info("remote: unconfirmed push: the configuration file is the one it replaced and is in force (the push never took effect, or the file was put back on the box and reloaded); nothing to revert")
		done(false, "the configuration file is the one the push replaced, and it is in force (the push never took effect, or the file was put back on the box and reloaded)")
		return
	case fileEdited:
		lerr := d.fileLoads(path)
		if why := d.editUnapplied(path); lerr == nil && why != "" && p.prevIsBefore(path) {
			// Edited on the box into a file that loads but could not be
			// applied (a camera that does not open): the push is still
			// what runs; as for a file that does not load, the revert
			// restores what the push replaced, keeping the edit as .prev.
			log.Warn("remote: the configuration file was edited on the box since the push but could not be applied; reverting the push all the same, the edited file is kept as the previous file", "file", path, "kept_as", config.PreviousPath(path), "error", why)
			break
		}
		if lerr != nil && p.prevIsBefore(path) {
			// Edited on the box into a file that does not load: the push
			// is still what runs, and a restart would fail; the revert
			// restores what the push replaced, keeping the edit as .prev.
			log.Warn("remote: the configuration file was edited on the box since the push but does not load; reverting the push all the same, the edited file is kept as the previous file", "file", path, "kept_as", config.PreviousPath(path), "error", lerr)
			break
		}
		if lerr != nil {
			log.Error("remote: unconfirmed push not reverted: the configuration file was edited on the box and does not load (a restart would fail on it), and the previous file is not the configuration the push replaced; it stays in force", "file", path, "error", lerr)
			done(false, "the configuration file was edited on the box and does not load, and the previous file is not the one the push replaced; the push stays in force")
			return
		}
		log.Warn("remote: unconfirmed push not reverted: the configuration file changed since the push (edited on the box?); it stays in force", "file", path)
		done(false, "the configuration file changed since the push; it stays in force")
		return
	case filePrevOther:
		log.Error("remote: unconfirmed push not reverted: the previous file is not the configuration the push replaced", "file", config.PreviousPath(path))
		done(false, "the previous configuration file is not the one the push replaced")
		return
	}
	if _, perr := config.LoadPrevious(path, d.rules...); len(config.Problems(perr)) > 0 {
		// The file the push replaced (its checksum says so) is refused by
		// the checks of a push: no retry changes that, so the wait ends
		// here, said once, rather than a revert tried every revertRetry.
		why := previousRefused(path, perr).Error()
		log.Error("remote: unconfirmed push not reverted: the configuration before it is refused, as a push of it would be; the push stays in force and no longer waits for config-confirm: fix the previous file or push a configuration", "file", config.PreviousPath(path), "error", why)
		done(false, why+"; the push stays in force")
		return
	}
	plan, err := prepareConfigRollback(env, rollbackArgs{})
	var data map[string]any
	if err == nil {
		data, err = plan.Run(d.ctx)
	}
	if err != nil {
		d.revertFailed(log, p, now, "remote: unconfirmed push not reverted yet; trying again", "error", err)
		return
	}
	log.Warn("remote: configuration push not confirmed in time; the previous configuration is in force again", "changed", fmt.Sprint(data["changed"]), "restarted", fmt.Sprint(data["restarted"]))
	if err := d.store.markReverted(p, fmt.Sprintf("not confirmed in time: reverted at %s; send the push again with a new id", now.UTC().Format(time.RFC3339)), now, window); err != nil {
		log.Error("remote: the reverted push's stored reply not amended", "error", err)
	}
	for _, k := range []string{"changed", "restarted", "version"} {
		event[k] = data[k]
	}
	done(true, "not confirmed in time; the previous configuration is in force again")
}

// reloadPutBack is the deadline of push p when the configuration file at
// path is again the one the push replaced (put back on the box, as in
// cp inspectd.yaml.prev inspectd.yaml) but was never reloaded, so that the
// running configuration is still the pushed one: nothing is written back
// from .prev, the running configuration is reloaded from that file (a
// failed reload is tried again, as a failed revert is), and the outcome is
// published by done as a revert. It returns false, having done nothing,
// when the file is in force already (the push never took effect, or the
// file was reloaded) or does not load.
func (d *Dispatcher) reloadPutBack(env *Env, log *slog.Logger, p *pendingConfirm, path string, now time.Time, window time.Duration, event map[string]any, done func(bool, string)) bool {
	file, err := config.Load(path, d.rules...)
	if err != nil {
		log.Error("remote: unconfirmed push: the configuration file is the one it replaced but does not load; it is left as it is", "file", path, "error", err)
		return false
	}
	running := d.ctl.Config()
	changed := config.Diff(running, file)
	if len(changed) == 0 {
		return false
	}
	takeBack, err := carryTable(env, running, file)
	var applied Applied // its notes are in the daemon's log
	if err == nil {
		if applied, err = d.ctl.ApplyConfig(d.ctx, file); err != nil {
			takeBack()
		}
	}
	restarted := applied.Restarted
	if err != nil {
		d.revertFailed(log, p, now, "remote: unconfirmed push: the configuration file was put back on the box to the one it replaced but not reloaded, and reloading it failed; the pushed configuration still runs; trying again", "file", path, "error", err)
		return true
	}
	// After a revert .prev is the reverted push, for a rollback to go
	// forward to; here it was the file put back (the copy's source, and
	// what the reload kept): the push, which ran until now, is written.
	if err := config.Save(config.PreviousPath(path), running); err != nil {
		log.Error("remote: the reverted push not kept as the previous file; a rollback does not go forward to it", "file", config.PreviousPath(path), "error", err)
	}
	v := d.store.configVersion()
	if err := d.store.setConfigVersion(configVersion{Current: v.Previous, Previous: v.Current}, now, window); err != nil {
		log.Error("remote: configuration version not recorded", "error", err)
	}
	log.Warn("remote: configuration push not confirmed in time; the configuration file had been put back on the box to the one the push replaced but not reloaded, so nothing is written back from the previous file: the running configuration, still the pushed one, is reloaded from that file",
		"file", path, "changed", strings.Join(changed, ","), "restarted", strings.Join(restarted, ","))
	if err := d.store.markReverted(p, fmt.Sprintf("not confirmed in time: reverted at %s (the file had been put back on the box; reloaded); send the push again with a new id", now.UTC().Format(time.RFC3339)), now, window); err != nil {
		log.Error("remote: the reverted push's stored reply not amended", "error", err)
	}
	event["changed"], event["restarted"], event["version"] = nonNil(changed), nonNil(restarted), v.Previous
	done(true, "not confirmed in time; the configuration file had been put back on the box to the one the push replaced but not reloaded: nothing written back, the running configuration reloaded from that file")
	return true
}

// confirmTimer returns a channel that fires when the pending push is due,
// nil (never) when none is pending, and the timer to stop.
func (d *Dispatcher) confirmTimer() (<-chan time.Time, *time.Timer) {
	due := d.revertDue()
	if due.IsZero() {
		return nil, nil
	}
	t := time.NewTimer(max(due.Sub(d.now()), 0))
	return t.C, t
}

// carryTable copies the request table into the state_dir of next before
// the configuration naming it is saved: a stop before the daemon moves the
// table there (SetStateDir) would otherwise start on an empty one, which
// knows neither the requests answered nor a push waiting for confirmation.
// Call the returned function when the change is refused: it takes the copy
// back (store.carryTo), so that a refused folder, another inspectd's
// included, is left as it was. The folder in force spelled otherwise (a
// symlink to it) is no change: its copy was refused by the daemon's own
// lock.
func carryTable(env *Env, running, next *config.Config) (func(), error) {
	if config.SamePath(next.StateDir, running.StateDir) {
		return func() {}, nil
	}
	undo, err := env.d.store.carryTo(next.StateDir, env.Now(), running.Remote.DedupWindow.Std())
	if err != nil {
		return nil, errorf(CodeFailed, "config.state_dir", "not applied: the new state_dir cannot hold the request table: %v", err)
	}
	return func() {
		if err := undo(); err != nil {
			env.Log.Error("remote: the request table copied into a refused state_dir not taken back", "state_dir", next.StateDir, "error", err)
		}
	}, nil
}

// runPending is the Run of a push with a confirm window: the pending
// revert is recorded before the configuration is applied (a crash in
// between still reverts), and cleared when applying fails.
func runPending(ctx context.Context, env *Env, confirm time.Duration, apply func(context.Context) (map[string]any, error)) (map[string]any, error) {
	path := env.Ctl.ConfigPath()
	window := env.Ctl.Config().Remote.DedupWindow.Std()
	before, err := fileSHA256(path)
	if err != nil {
		return nil, errorf(CodeFailed, "", "not applied: the configuration file cannot be read to keep it for the revert: %v", err)
	}
	start := env.Now()
	p := &pendingConfirm{ID: env.ID, Origin: env.Origin, Command: env.Name, Deadline: start.Add(confirm), Before: before}
	if err := env.d.store.setPending(p, start, window); err != nil {
		return nil, errorf(CodeFailed, "", "not applied: the revert could not be recorded: %v", err)
	}
	env.d.setEnded(endedWait{}) // a config-confirm is about this push now
	out, err := apply(ctx)
	if err != nil || out["applied"] != true {
		if cerr := env.d.store.setPending(nil, env.Now(), window); cerr != nil {
			env.Log.Error("remote: pending revert not cleared after a push that was not applied", "error", cerr)
		}
		return out, err
	}
	// The window counts from now: a slow apply (a model reloaded) must not
	// use it up.
	q := *p
	q.AppliedAt = env.Now()
	q.Deadline = q.AppliedAt.Add(confirm)
	if c := env.d.connectedAt(); c.After(start) {
		q.ConnectedAt = c
	}
	if q.After, err = fileSHA256(path); err != nil {
		env.Log.Error("remote: the pushed configuration file cannot be read back; the revert will restore the previous file whatever is in force then", "error", err)
	}
	if err := env.d.store.putPending(&q, env.Now(), window); err != nil {
		env.Log.Error("remote: pushed configuration's checksum not recorded", "error", err)
	}
	at := q.Deadline.UTC().Format(time.RFC3339)
	out["revert_at"] = at
	// After what applying noted (a model fitted in place of a missing file).
	if q.ConnectedAt.IsZero() {
		addNotes(out, fmt.Sprintf("send config-confirm before %s, or the previous configuration comes back", at))
	} else {
		addNotes(out, fmt.Sprintf("send config-confirm once this box answers on its new connection, before %s, or the previous configuration comes back", at))
	}
	env.Log.Warn("remote: configuration applied on probation: the previous one comes back unless config-confirm arrives in time", "push", q.ID, "revert_at", at)
	return out, nil
}

// ErrPreviousRefused is in RevertUnstartable's error when the configuration
// a push replaced (its .prev) is refused by the checks of a push: nothing
// is reverted, and the push's wait has ended, so that the next start does
// not try again; the caller reports it once.
var ErrPreviousRefused = errors.New("nothing is reverted and the push no longer waits for config-confirm: fix the configuration file by hand")

// RevertUnstartable is for a daemon whose start failed on the
// configuration file at configPath (cause: why), with the request table in
// stateDir (that configuration's state_dir): when that file is a push
// still waiting for config-confirm, the configuration the push replaced
// (its .prev) is saved back, as a config rollback does, and the wait ends,
// so that the next start runs on the configuration before the push. The
// revert is recorded as the deadline's is: the push's stored reply marked
// reverted, why its wait ended (EndedFile), and its config-revert event,
// kept in the request table for the next start to publish (this one has no
// connection). rules are the checks a push goes through beside
// config.Validate (Options.ConfigRules): a .prev they refuse is not put
// back (an error names the file and the field). It returns the push's id,
// or "" when no such push waits (the failure is not a push's). A
// configuration file edited on the box since the push into one that does
// not load (with rules) is handled as the deadline's revert handles it: the
// configuration the push replaced is put back and the broken edit kept as
// the .prev file, logged on log (nil: slog.Default()) naming the file and
// its error; an edit that loads is the operator's, and is left as it is.
func RevertUnstartable(configPath, stateDir string, cause error, now time.Time, log *slog.Logger, rules ...config.Rule) (string, error) {
	if configPath == "" || stateDir == "" {
		return "", nil
	}
	// No request table and no moved-table note: no push to revert, and
	// no lock taken, whose file would stay in a folder the start refused
	// (an append-only state_dir keeps it for good).
	if absent(filepath.Join(stateDir, StateFile)) && absent(filepath.Join(stateDir, MovedFile)) {
		return "", nil
	}
	// Only with the state folder's lock: a start that failed because
	// another inspectd runs there (a second "inspectd run"), or whose
	// broken file is the running daemon's to deal with, must not rewrite
	// that daemon's configuration, request table and push under it (it
	// went on reporting the push pending and confirmed it, and its next
	// start ran on the reverted file).
	lock, err := statelock.Take(stateDir)
	if err != nil {
		return "", err
	}
	defer lock.Release()
	st, _, err := openStore(stateDir, now)
	var corrupt *CorruptTableError
	switch {
	case errors.As(err, &corrupt):
		return "", nil
	case err != nil:
		return "", err
	}
	p := st.pendingConfirm()
	if p == nil {
		// The push moved state_dir: its table is where the folder of the
		// configuration before it says (MovedFile).
		moved := followMoved(stateDir, now)
		if moved == "" {
			return "", nil
		}
		ml, err := statelock.Take(moved)
		if err != nil {
			return "", err
		}
		defer ml.Release()
		if st, _, err = openStore(moved, now); err != nil {
			return "", err
		}
		if p = st.pendingConfirm(); p == nil {
			return "", nil
		}
	}
	if log == nil {
		log = slog.Default()
	}
	deadline := p.Deadline.UTC().Format(time.RFC3339)
	// why is the start's failure as the event's note and a late
	// config-confirm tell it.
	why := "its configuration did not start"
	if cause != nil {
		why += " (" + cause.Error() + ")"
	}
	var pushed *config.Config // the pushed configuration, when its file loads
	switch fs, err := p.files(configPath); {
	case err != nil:
		return "", fmt.Errorf("revert push %q: %w", p.ID, err)
	case fs == fileEdited:
		lerr := loadError(configPath, rules)
		if lerr == nil {
			return "", nil // the operator's edit, which loads: not the push's failure
		}
		if !p.prevIsBefore(configPath) {
			return "", fmt.Errorf("revert push %q: the configuration file %s was edited on the box and does not load (%v), and %s is not the configuration the push replaced", p.ID, configPath, lerr, config.PreviousPath(configPath))
		}
		log.Warn("remote: the configuration file was edited on the box since a push waiting for config-confirm and does not load; reverting the push for the next start, the edited file is kept as the previous file",
			"push", p.ID, "file", configPath, "kept_as", config.PreviousPath(configPath), "error", lerr)
		why = fmt.Sprintf("its configuration file was edited on the box into one that does not load (%v), kept as %s", lerr, config.PreviousPath(configPath))
	case fs == fileBefore:
		return "", nil // not the pushed file
	case fs == filePrevOther:
		return "", fmt.Errorf("revert push %q: %s is not the configuration it replaced", p.ID, config.PreviousPath(configPath))
	default:
		pushed, _ = config.Load(configPath, rules...)
	}
	// ended records the end of the wait as the deadline does: why, for a
	// late config-confirm (beside the table, which the move below
	// carries), and the config-revert event, in the table for the next
	// start to publish.
	ended := func(event map[string]any, endedWhy string) {
		if serr := saveEnded(endedPath(st.path), endedWait{ID: p.ID, At: now, Why: endedWhy}); serr != nil {
			log.Warn("remote: why the push's wait ended is not recorded; a late config-confirm is only told that none waits", "push", p.ID, "error", serr)
		}
		event["id"], event["deadline"] = p.ID, deadline
		if b, err := json.Marshal(event); err == nil {
			st.unpublished = b // written with the table below
		}
	}
	before, err := config.LoadPrevious(configPath, rules...)
	if len(config.Problems(err)) > 0 {
		// Refused by the checks of a push: every start would try again
		// and be refused again. The wait ends, with the reason for a late
		// config-confirm, and the caller reports it once.
		rerr := fmt.Errorf("revert push %q: the previous configuration %s is refused, as a push of it would be: %w; %w", p.ID, config.PreviousPath(configPath), err, ErrPreviousRefused)
		refused := fmt.Sprintf("%s and the configuration before it, %s, is refused, as a push of it would be (%v); nothing was reverted", why, config.PreviousPath(configPath), err)
		ended(map[string]any{"reverted": false, "note": refused + "; the push stays in force"}, refused)
		if perr := st.putPending(nil, now, 0); perr != nil {
			return "", fmt.Errorf("%w; and the wait could not be ended (the next start tries again): %w", rerr, perr)
		}
		return "", rerr
	}
	if err != nil {
		return "", fmt.Errorf("revert push %q: the previous configuration %s cannot be read: %w", p.ID, config.PreviousPath(configPath), err)
	}
	if err := config.SaveKeepPrevious(configPath, before); err != nil {
		return "", fmt.Errorf("revert push %q: %w", p.ID, err)
	}
	v := st.configVersion()
	st.version = configVersion{Current: v.Previous, Previous: v.Current}
	at := now.UTC().Format(time.RFC3339)
	event := map[string]any{"reverted": true, "version": v.Previous,
		"note": why + "; the configuration before it was put back at a start (" + at + ") and runs from the next start"}
	if pushed != nil {
		event["changed"] = nonNil(config.Diff(pushed, before))
	}
	ended(event, why+", and it was reverted at a start ("+at+")")
	if err := st.putPending(nil, now, 0); err != nil {
		return p.ID, fmt.Errorf("push %q reverted, but the request table is not written: %w", p.ID, err)
	}
	// Marked as the deadline marks it, so that a repeat of the push's id
	// says it was reverted.
	if err := st.markReverted(p, fmt.Sprintf("%s: reverted at a start at %s; send the push again with a new id", why, at), now, 0); err != nil {
		log.Warn("remote: the reverted push's stored reply not amended", "push", p.ID, "error", err)
	}
	// The next start runs on the configuration before the push: a push
	// that moved state_dir leaves its table (and why its wait ended)
	// where that one will look.
	if err := st.move(before.StateDir, now, 0); err != nil {
		return p.ID, fmt.Errorf("push %q reverted, but the request table is not moved back to state_dir %s: %w", p.ID, before.StateDir, err)
	}
	return p.ID, nil
}

// publishUnpublished publishes the config-revert event a failed start's
// revert left in the request table (RevertUnstartable), once this start
// runs: whoever waits for the push's outcome learns it as from a
// deadline. Kept when no front end takes it, for the next start.
func (d *Dispatcher) publishUnpublished() {
	ev := d.store.unpublishedEvent()
	if ev == nil {
		return
	}
	var head struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(ev, &head)
	env := &Env{Ctl: d.ctl, Log: d.log.With("push", head.ID), Now: d.now, Name: "config-revert", ID: head.ID, d: d}
	if !env.emit("config-revert", ev, 1) {
		d.log.Warn("remote: the config-revert event of a push reverted at a start that failed is not published; tried again at the next start", "push", head.ID)
		return
	}
	d.log.Info("remote: config-revert published for a push reverted at a start that failed", "push", head.ID)
	if err := d.store.setUnpublished(nil, d.now(), d.ctl.Config().Remote.DedupWindow.Std()); err != nil {
		d.log.Error("remote: published config-revert not cleared from the request table; the next start publishes it again", "push", head.ID, "error", err)
	}
}

// absent says whether nothing is at path: not a file that cannot be looked
// at (that one may be there).
func absent(path string) bool {
	_, err := os.Lstat(path)
	return errors.Is(err, fs.ErrNotExist)
}
