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
// the Sparkplug DDATA, with this id as the trigger id. An id answered
// before (within capture.trigger.dedup_window) is not inspected again:
// the reply names the earlier answer, which is sent again on the JSON
// result topic only (Sparkplug's Inspection/* stay the latest part's).
//
//	request: {"id": "part-0042"}   (optionally "time": RFC 3339, when it was sent)
//	reply:   {"id": "part-0042", "ok": true, "queued": true}
//	         {"id": "part-0042", "ok": true, "queued": false,
//	          "answered_before": {"seq": 118, "verdict": "ok", "answered_at": "..."}}
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
		prev, err := env.Ctl.Trigger(ctx, a.ID, sent)
		if err != nil {
			return nil, errorf(CodeFailed, "", "trigger not taken: %v", err)
		}
		return TriggerTaken(prev), nil
	}}, nil
}

// TriggerTaken is the reply's data for a trigger that was taken: queued,
// or (prev not nil) answered before and not inspected again.
func TriggerTaken(prev *AnsweredTrigger) map[string]any {
	if prev != nil {
		return map[string]any{"queued": false, "answered_before": prev}
	}
	return map[string]any{"queued": true}
}
