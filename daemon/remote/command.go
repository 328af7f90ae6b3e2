package remote

import (
	"context"
	"log/slog"
	"slices"
	"time"
)

// Command is one remote command. Each lives in its own file (cmd_*.go) and
// is listed in commands(); the JSON and Sparkplug front ends reach all of
// them through the Dispatcher.
type Command interface {
	// Name is the command as topics spell it: cmd/<name>, reply/<name>.
	Name() string
	// Prepare parses the request body strictly and checks that the command
	// can run now (bounds, busy, memory) without changing anything. A
	// refusal (an *Error naming the field) is answered without the request
	// being recorded, so that it can be fixed and sent again with the same
	// id. The returned Plan does the work.
	Prepare(env *Env, body []byte) (*Plan, error)
	// args returns a new request struct of the command, the one Prepare
	// decodes its body into: a request refused before Prepare, for its
	// id, still has the fields the command does not take named
	// ({"idd": "s2"} is an id misspelt, not only an id missing).
	args() any
}

// replayChecker is a Command whose stored reply may no longer fit a
// repeat of its id; checkReplay refuses the repeat instead of replaying.
type replayChecker interface {
	checkReplay(env *Env, stored Reply) error
}

// readOnly marks a Command that changes nothing on the box (it reads or
// publishes what is there). Such a command is answered even when its
// request cannot be recorded in state_dir: the record only stops a
// redelivered copy from running twice, and a copy of a read-only request
// run again does no harm.
type readOnly interface{ readOnly() }

// Plan is a prepared command.
type Plan struct {
	// Background runs Run on a goroutine of its own, as the one background
	// job (a refit), while other commands keep flowing; its outcome is
	// the request's one reply.
	Background bool
	// Run does the command and returns the reply's data. An error is
	// answered with its message (an *Error gives its code and field) and
	// the data returned with it.
	Run func(ctx context.Context) (map[string]any, error)
}

// commands lists every command; new ones are added here.
func commands() []Command {
	return []Command{
		cmdConfig{},
		cmdConfigGet{},
		cmdConfigConfirm{},
		cmdRefit{},
		cmdRefitCancel{},
		cmdThreshold{},
		cmdRollback{},
		cmdSnapshot{},
		cmdRestartCamera{},
		cmdStatus{},
		cmdTrigger{},
		cmdTrustKeys{},
	}
}

// Names lists the command names, sorted (for front ends that announce
// them, such as a Sparkplug NBIRTH).
func Names() []string {
	var out []string
	for _, c := range commands() {
		out = append(out, c.Name())
	}
	slices.Sort(out)
	return out
}

// Env is what a command gets besides its body.
type Env struct {
	// Ctl is the daemon.
	Ctl Controller
	// Log is the dispatcher's logger with the request's name and id.
	Log *slog.Logger
	// Now is the clock.
	Now func() time.Time
	// Name, ID and Origin identify the request.
	Name, ID, Origin string
	// Signer names the trust key that signed the request; "" when unsigned
	// (or signed but not checked, with no trust keys configured).
	Signer string
	// Envelope is the request's envelope, nil when it came unsigned.
	Envelope *Envelope
	// Arrived is when the front end handed the request over (before it
	// waited in the queue); Backlog, whether the broker had kept it for
	// the session while the box was not connected (Request.Backlog).
	Arrived time.Time
	Backlog bool

	d *Dispatcher
}

// Events receives what commands publish besides their replies: refit
// progress ("refit", JSON) and snapshots ("snapshot", JPEG). The MQTT front
// end publishes them on <prefix>/<device_id>/<name>.
type Events interface {
	Emit(name string, payload []byte, qos byte) error
}

// emit hands an event to every front end; it reports whether one took it.
// A front end that cannot publish an event is logged once until it
// publishes that event again: a refit reports progress every second, and
// a broker outage would otherwise log a line per report.
func (e *Env) emit(name string, payload []byte, qos byte) bool {
	e.d.mu.Lock()
	sinks := slices.Clone(e.d.sinks)
	e.d.mu.Unlock()
	ok := false
	for _, s := range sinks {
		err := s.Emit(name, payload, qos)
		key := eventSink{s, name}
		e.d.mu.Lock()
		was := e.d.eventFailing[key]
		if err != nil {
			if e.d.eventFailing == nil {
				e.d.eventFailing = map[eventSink]bool{}
			}
			e.d.eventFailing[key] = true
		} else {
			delete(e.d.eventFailing, key)
		}
		e.d.mu.Unlock()
		switch {
		case err != nil && !was:
			e.Log.Warn("remote event not published (logged again only after one is published)", "event", name, "error", err)
		case err != nil:
			e.Log.Debug("remote event not published", "event", name, "error", err)
		case was:
			e.Log.Info("remote event published again", "event", name)
		}
		if err == nil {
			ok = true
		}
	}
	return ok
}

// eventSink is one front end's events of one name.
type eventSink struct {
	sink Events
	name string
}

// running returns the background job in progress, nil if none.
func (e *Env) running() *job { return e.d.runningJob() }

// refuseWhileRefit is a busy error when a refit runs; why says what the
// command would disturb.
func (e *Env) refuseWhileRefit(why string) error {
	j := e.running()
	if j == nil {
		return nil
	}
	p := j.snapshot()
	return errorf(CodeBusy, "", "a refit is running (id %q, %s); %s: wait for its reply or send refit-cancel", j.id, p.describe(), why)
}
