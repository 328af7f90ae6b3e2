package remote

import (
	"context"
	"fmt"
	"time"
)

// cancelTimeout bounds waiting for a refit to stop; it stops within a
// frame's backbone pass or an inversion batch.
const cancelTimeout = time.Minute

// cmdRefitCancel stops the refit in progress; the model in force stays.
// The refit's own reply says it was cancelled; this one comes once it has
// stopped.
//
//	request: {"id": "x1"}
//	reply:   {"id": "x1", "ok": true, "cancelled": "<refit id>", "model_id": "<model in force>"}
type cmdRefitCancel struct{}

func (cmdRefitCancel) Name() string { return "refit-cancel" }

// refitCancelArgs is the request cmdRefitCancel takes.
type refitCancelArgs struct {
	ID string `json:"id"`
}

func (cmdRefitCancel) args() any { return new(refitCancelArgs) }

func (cmdRefitCancel) Prepare(env *Env, body []byte) (*Plan, error) {
	var a refitCancelArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	if env.running() == nil {
		return nil, errorf(CodeFailed, "", "no refit is running")
	}
	return &Plan{Run: func(ctx context.Context) (map[string]any, error) {
		ctx, cancel := context.WithTimeout(ctx, cancelTimeout)
		defer cancel()
		id, err := env.d.cancelJob(ctx, fmt.Sprintf("refit-cancel %q", env.ID))
		if err != nil {
			return nil, errorf(CodeFailed, "", "%v", err)
		}
		return map[string]any{"cancelled": id, "model_id": env.Ctl.ModelInfo().ID}, nil
	}}, nil
}
