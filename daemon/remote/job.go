package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// job is the one background command (a refit) in progress.
type job struct {
	name, id, origin string
	started          time.Time
	cancel           context.CancelFunc
	done             chan struct{}

	// Guarded by the dispatcher's mu.
	waiters      []func(Reply)
	cancelReason string

	pmu      sync.Mutex
	progress Progress
}

// Progress is a background job's state, published on
// <prefix>/<device_id>/refit and shown by status.
type Progress struct {
	// ID is the request id of the refit.
	ID string `json:"id"`
	// Phase is collecting, fitting, validating, installing, then done,
	// failed or cancelled.
	Phase string `json:"phase"`
	// Frames counts the frames (or folder images) taken so far, of Total.
	Frames int `json:"frames"`
	Total  int `json:"total"`
	// Percent of the whole job, and the estimated seconds left.
	Percent  float64 `json:"percent"`
	ETA      float64 `json:"eta_s"`
	Elapsed  float64 `json:"elapsed_s"`
	Source   string  `json:"source,omitempty"`
	Error    string  `json:"error,omitempty"`
	Finished bool    `json:"-"`
}

func (p Progress) describe() string {
	switch {
	case p.Phase == "":
		return "starting"
	case p.Total == 0:
		// A folder refit before its folder is listed: its frames are not
		// counted yet ("starting, 0 of 0 frames, 0%").
		return p.Phase
	}
	return fmt.Sprintf("%s, %d of %d frames, %.0f%%", p.Phase, p.Frames, p.Total, p.Percent)
}

func (j *job) snapshot() Progress {
	j.pmu.Lock()
	defer j.pmu.Unlock()
	return j.progress
}

func (j *job) setProgress(p Progress) {
	j.pmu.Lock()
	j.progress = p
	j.pmu.Unlock()
}

func (d *Dispatcher) runningJob() *job {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.job
}

// startJob runs a background plan; its outcome is the request's reply.
func (d *Dispatcher) startJob(env *Env, plan *Plan, done func(Reply), start time.Time) {
	ctx, cancel := context.WithCancel(d.ctx)
	j := &job{name: env.Name, id: env.ID, origin: env.Origin, started: start, cancel: cancel,
		done: make(chan struct{}), waiters: []func(Reply){done}}
	j.progress = Progress{ID: env.ID, Phase: "starting"}
	d.mu.Lock()
	d.job = j
	d.mu.Unlock()
	env.Log.Info("remote command started in the background")
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer cancel()
		data, err := plan.Run(ctx)
		if err != nil && ctx.Err() != nil {
			err = d.cancelled(j, err)
		}
		// Stored before the job is cleared: a repeat arriving in between
		// finds the stored reply.
		r := d.finish(env, data, err, start)
		d.mu.Lock()
		waiters := j.waiters
		d.job = nil
		d.mu.Unlock()
		deliver(r, waiters)
		d.markSent(env.Name, env.ID)
		close(j.done)
	}()
}

// cancelled is the error of job j stopped by cancelJob as its reply says
// it, "cancelled (<reason>): <err>", made once: the refit's last progress
// message says it too, and must say it in the same words. An error already
// so worded, or of a job nobody cancelled, is returned as it is.
func (d *Dispatcher) cancelled(j *job, err error) error {
	d.mu.Lock()
	reason := j.cancelReason
	d.mu.Unlock()
	var e *Error
	if reason == "" || errors.As(err, &e) && e.Code == CodeCancelled {
		return err
	}
	return &Error{Code: CodeCancelled, Msg: "cancelled (" + reason + "): " + err.Error()}
}

// attach makes a repeated request wait for the running job with its name
// and id; false when no such job runs.
func (d *Dispatcher) attach(name, id string, done func(Reply)) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.job == nil || d.job.name != name || d.job.id != id {
		return false
	}
	d.job.waiters = append(d.job.waiters, done)
	return true
}

// cancelJob stops the running job for reason and waits until it ended or
// ctx is done; it returns the job's request id, "" if none ran.
func (d *Dispatcher) cancelJob(ctx context.Context, reason string) (string, error) {
	d.mu.Lock()
	j := d.job
	if j != nil && j.cancelReason == "" {
		j.cancelReason = reason
	}
	d.mu.Unlock()
	if j == nil {
		return "", nil
	}
	j.cancel()
	select {
	case <-j.done:
		return j.id, nil
	case <-ctx.Done():
		return j.id, fmt.Errorf("refit %q was told to stop but has not yet: %w", j.id, ctx.Err())
	}
}
