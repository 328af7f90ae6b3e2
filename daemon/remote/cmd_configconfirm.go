package remote

import (
	"context"
	"time"
)

// cmdConfigConfirm keeps a configuration pushed with "confirm": it answers
// on the box's new connection, which proves the push left the box
// reachable, and ends the wait after which the previous configuration
// would come back.
//
//	request: {"id": "k1"}
//	reply:   {"id": "k1", "ok": true, "confirmed": "c9", "version": 8}
type cmdConfigConfirm struct{}

func (cmdConfigConfirm) Name() string { return "config-confirm" }

func (cmdConfigConfirm) Prepare(env *Env, body []byte) (*Plan, error) {
	var a struct {
		ID string `json:"id"`
	}
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	return &Plan{Run: func(context.Context) (map[string]any, error) {
		p := env.d.store.pendingConfirm()
		if p == nil {
			return nil, errorf(CodeFailed, "", "no configuration push waits for confirmation (none was pushed with \"confirm\", it was confirmed already, or its time ran out and it was reverted: see the config-revert event)")
		}
		if err := env.d.store.setPending(nil, env.Now(), env.Ctl.Config().Remote.DedupWindow.Std()); err != nil {
			return nil, errorf(CodeFailed, "", "not confirmed: the request table could not be written, so a restart would still revert the push: %v", err)
		}
		env.Log.Info("remote: configuration push confirmed", "push", p.ID, "left", p.Deadline.Sub(env.Now()).Round(time.Second))
		return map[string]any{"confirmed": p.ID, "version": env.d.store.configVersion().Current}, nil
	}}, nil
}
