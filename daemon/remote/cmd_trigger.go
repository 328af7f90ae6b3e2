package remote

import (
	"context"
	"time"
)

// cmdTrigger asks for the inspection of the next fresh frame, as a message
// on the trigger topic does (the Sparkplug front end's Command/Trigger
// writes come here): the request id is the trigger id. The reply says
// whether the trigger was taken; its inspection (or the error saying why
// there is none) is published as every trigger's is, on result and in
// the Sparkplug DDATA, with this id as the trigger id.
//
//	request: {"id": "part-0042"}   (optionally "time": RFC 3339, when it was sent)
//	reply:   {"id": "part-0042", "ok": true, "queued": true}
type cmdTrigger struct{}

func (cmdTrigger) Name() string { return "trigger" }

func (cmdTrigger) Prepare(env *Env, body []byte) (*Plan, error) {
	var a struct {
		ID   string    `json:"id"`
		Time time.Time `json:"time"`
	}
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	return &Plan{Run: func(ctx context.Context) (map[string]any, error) {
		if err := env.Ctl.Trigger(ctx, a.ID, a.Time); err != nil {
			return nil, errorf(CodeFailed, "", "trigger not taken: %v", err)
		}
		return map[string]any{"queued": true}, nil
	}}, nil
}
