package remote

import (
	"context"
	"strings"
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

// triggerArgs is the request cmdTrigger takes.
type triggerArgs struct {
	ID   string `json:"id"`
	Time string `json:"time"`
}

func (cmdTrigger) args() any { return new(triggerArgs) }

func (cmdTrigger) Prepare(env *Env, body []byte) (*Plan, error) {
	var a triggerArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	if strings.TrimSpace(a.ID) == "" {
		return nil, invalidf("id", "blank: a trigger id names the part its result answers") // as on the trigger topic
	}
	var sent time.Time
	if a.Time != "" {
		var err error
		if sent, err = time.Parse(time.RFC3339Nano, a.Time); err != nil {
			return nil, invalidf("time", "%q is not an RFC 3339 time such as \"2026-11-28T16:25:32.435Z\"", a.Time)
		}
	}
	return &Plan{Run: func(ctx context.Context) (map[string]any, error) {
		if err := env.Ctl.Trigger(ctx, a.ID, sent); err != nil {
			return nil, errorf(CodeFailed, "", "trigger not taken: %v", err)
		}
		return map[string]any{"queued": true}, nil
	}}, nil
}
