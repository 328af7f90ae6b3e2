package remote

import (
	"context"
	"time"
)

// restartTimeout bounds a camera restart: a camera that has not delivered
// a frame by then is reported, and keeps being retried by the source.
const restartTimeout = time.Minute

// cmdRestartCamera closes and reopens the frame source.
//
//	request: {"id": "c1"}
//	reply:   {"id": "c1", "ok": true, "took_ms": 812}
type cmdRestartCamera struct{}

func (cmdRestartCamera) Name() string { return "restart-camera" }

// restartCameraArgs is the request cmdRestartCamera takes.
type restartCameraArgs struct {
	ID string `json:"id"`
}

func (cmdRestartCamera) args() any { return new(restartCameraArgs) }

func (cmdRestartCamera) Prepare(env *Env, body []byte) (*Plan, error) {
	var a restartCameraArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	return &Plan{Run: func(ctx context.Context) (map[string]any, error) {
		ctx, cancel := context.WithTimeout(ctx, restartTimeout)
		defer cancel()
		start := env.Now()
		if err := env.Ctl.RestartCamera(ctx); err != nil {
			return nil, errorf(CodeFailed, "", "camera restart: %v", err)
		}
		return map[string]any{"took_ms": env.Now().Sub(start).Milliseconds()}, nil
	}}, nil
}
