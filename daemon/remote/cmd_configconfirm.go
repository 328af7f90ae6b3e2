package remote

import (
	"context"
	"fmt"
	"time"
)

// cmdConfigConfirm keeps a configuration pushed with "confirm", ending the
// wait after which the previous configuration would come back. Only a
// confirm that arrived after the push took effect counts: one sent right
// behind the push reaches the box over the old connection and would prove
// nothing about the new one; one after the deadline is too late. push,
// when given, must name the push waiting.
//
//	request: {"id": "k1"}  or  {"id": "k1", "push": "c9"}
//	reply:   {"id": "k1", "ok": true, "confirmed": "c9", "version": 8}
type cmdConfigConfirm struct{}

// checkReplay refuses a repeated id whose stored reply confirmed another
// push than the one waiting: replaying it would answer ok and confirm
// nothing.
func (cmdConfigConfirm) checkReplay(env *Env, stored Reply) error {
	p := env.d.store.pendingConfirm()
	if p == nil || stored.Data["confirmed"] == p.ID {
		return nil
	}
	return invalidf("id", "%q answered an earlier config-confirm (of push %v); push %q waits: confirm it with a new id", truncate(env.ID, 40), stored.Data["confirmed"], p.ID)
}

func (cmdConfigConfirm) Name() string { return "config-confirm" }

// configConfirmArgs is the request cmdConfigConfirm takes.
type configConfirmArgs struct {
	ID   string `json:"id"`
	Push string `json:"push"`
}

func (cmdConfigConfirm) args() any { return new(configConfirmArgs) }

func (cmdConfigConfirm) Prepare(env *Env, body []byte) (*Plan, error) {
	var a configConfirmArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	p := env.d.store.pendingConfirm()
	switch e := env.d.ended; {
	case p == nil && e.ID != "" && (a.Push == "" || a.Push == e.ID):
		return nil, errorf(CodeFailed, "", "push %q no longer waits for confirmation: its wait ended at %s because %s", truncate(e.ID, 40), e.At.UTC().Format(time.RFC3339), e.Why)
	case p == nil:
		return nil, errorf(CodeFailed, "", "no configuration push waits for confirmation (none was pushed with \"confirm\", it was confirmed already, or its time ran out and it was reverted: see the config-revert event)")
	case a.Push != "" && a.Push != p.ID:
		return nil, invalidf("push", "%q does not wait for confirmation; push %q does (until %s)", truncate(a.Push, 40), p.ID, p.Deadline.UTC().Format(time.RFC3339))
	case env.Backlog:
		return nil, errorf(CodeFailed, "", "this confirm waited on the broker for this box's session (it was sent while the box was not connected there), so it says nothing about the box answering now; send a new one (id %q can be used again), until %s",
			truncate(a.ID, 40), p.Deadline.UTC().Format(time.RFC3339))
	case env.Arrived.Before(p.confirmableSince()):
		return nil, errorf(CodeFailed, "", "this confirm reached the box at %s, before push %q took effect at %s: it came over the old connection and proves nothing about the new one; send it again (signed: with a new nonce) once the box answers, until %s",
			env.Arrived.UTC().Format(time.RFC3339Nano), p.ID, p.confirmableSince().UTC().Format(time.RFC3339Nano), p.Deadline.UTC().Format(time.RFC3339))
	case env.Arrived.After(p.Deadline):
		return nil, errorf(CodeFailed, "", "too late: push %q had to be confirmed by %s; it is being reverted (see the config-revert event)", p.ID, p.Deadline.UTC().Format(time.RFC3339))
	}
	return &Plan{Run: func(context.Context) (map[string]any, error) {
		if err := env.d.store.setPending(nil, env.Now(), env.Ctl.Config().Remote.DedupWindow.Std()); err != nil {
			return nil, errorf(CodeFailed, "", "not confirmed: the request table could not be written, so a restart would still revert the push: %v", err)
		}
		// A confirm sent again later (after a restart too) is told that
		// this push was confirmed, not that none waited.
		env.d.setEnded(endedWait{ID: p.ID, At: env.Now(), Why: fmt.Sprintf("it was confirmed (config-confirm %q)", truncate(a.ID, 40))})
		env.Log.Info("remote: configuration push confirmed", "push", p.ID, "left", p.Deadline.Sub(env.Now()).Round(time.Second))
		return map[string]any{"confirmed": p.ID, "version": env.d.store.configVersion().Current}, nil
	}}, nil
}
