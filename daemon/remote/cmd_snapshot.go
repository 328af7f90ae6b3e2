package remote

import (
	"context"
	"time"
)

// snapshotTimeout bounds waiting for the daemon's latest frame.
const snapshotTimeout = 10 * time.Second

// cmdSnapshot publishes a JPEG of the latest inspected frame on
// <prefix>/<device_id>/snapshot (QoS 0, like heatmaps).
//
//	request: {"id": "p1"}
//	reply:   {"id": "p1", "ok": true, "bytes": 48213, "captured": "2026-...Z"}
type cmdSnapshot struct{}

func (cmdSnapshot) readOnly() {}

func (cmdSnapshot) Name() string { return "snapshot" }

// snapshotArgs is the request cmdSnapshot takes.
type snapshotArgs struct {
	ID string `json:"id"`
}

func (cmdSnapshot) args() any { return new(snapshotArgs) }

func (cmdSnapshot) Prepare(env *Env, body []byte) (*Plan, error) {
	var a snapshotArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	return &Plan{Run: func(ctx context.Context) (map[string]any, error) {
		ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
		defer cancel()
		jpeg, at, err := env.Ctl.Snapshot(ctx)
		if err != nil {
			return nil, errorf(CodeFailed, "", "no snapshot: %v", err)
		}
		if !env.emit("snapshot", jpeg, 0) {
			return nil, errorf(CodeFailed, "", "the snapshot could not be published (no front end took it; see the log)")
		}
		return map[string]any{"bytes": len(jpeg), "captured": at.UTC().Format(time.RFC3339Nano)}, nil
	}}, nil
}
