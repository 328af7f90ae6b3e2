package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// maxRememberedTriggers bounds the memory of answered trigger ids; past it
// the oldest are forgotten even within the window.
const maxRememberedTriggers = 10000

// errStaleTrigger answers a trigger older than capture.trigger.max_age.
var errStaleTrigger = errors.New("stale trigger")

// triggerIntake is the front door for trigger requests from MQTT. It never
// blocks the MQTT client: it parses, refuses what must not run, and queues.
//
//   - A trigger delivered with the retain flag, a retained message handed
//     over as the subscription starts, is never executed (a broker would
//     replay it at every start and reconnect); one warning per topic says
//     how to clear it. One published retained while inspectd is subscribed
//     comes live, the flag cleared (MQTT 3.1.1), and runs like any other.
//   - A request whose id was answered within the dedup window is answered
//     again with the stored result (a QoS 1 redelivery must not inspect a
//     second part); one still waiting is not queued twice.
//   - A request older than max_age on arrival is answered as stale: by its
//     send time when it carries one, else when the broker held it for this
//     session while inspectd was not connected (it arrives before the
//     subscription is acknowledged).
//   - A request the queue cannot take is answered at once with an error
//     result ("trigger queue full"): every request gets exactly one answer.
type triggerIntake struct {
	log     *slog.Logger
	metrics *httpapi.Metrics

	mu     sync.Mutex
	window time.Duration
	maxAge time.Duration
	warned map[string]bool
	// warnedAhead: the last dated trigger was ahead of the clock, and
	// that was warned about.
	warnedAhead bool
	pending     map[string]time.Time
	answers     map[string]answeredTrigger
	answerAt    []idTime // answers in the order they were stored, for expiry
}

type answeredTrigger struct {
	at  time.Time
	res mqttpub.Result
}

type idTime struct {
	id string
	at time.Time
}

func newTriggerIntake(log *slog.Logger, m *httpapi.Metrics) *triggerIntake {
	return &triggerIntake{log: log, metrics: m, warned: map[string]bool{}, pending: map[string]time.Time{},
		answers: map[string]answeredTrigger{}}
}

// configure sets the dedup window and the maximum age (0: off).
func (t *triggerIntake) configure(window, maxAge time.Duration) {
	t.mu.Lock()
	t.window, t.maxAge = window, maxAge
	t.mu.Unlock()
}

// handle takes one MQTT message on the trigger topic. enqueue queues an id
// for inspection; fail answers an id with an error result; republish sends
// a stored result again. The answers are sent from another goroutine: a
// publisher being replaced must not stall the MQTT client's delivery.
func (t *triggerIntake) handle(m mqttpub.Message, enqueue func(id string) error, fail func(id string, err error),
	republish func(*mqttpub.Result) error) {
	if m.Retained {
		if len(m.Payload) == 0 {
			return // the clearing publish itself
		}
		t.count("retained")
		t.mu.Lock()
		first := !t.warned[m.Topic]
		t.warned[m.Topic] = true
		t.mu.Unlock()
		if first {
			t.log.Warn("retained trigger ignored: a retained trigger would run again at every start and reconnect; clear it with an empty retained publish",
				"topic", m.Topic, "clear_with", fmt.Sprintf("mosquitto_pub -r -n -t '%s'", m.Topic))
		}
		return
	}
	if len(m.Payload) == 0 {
		return // the publish that clears a retained trigger (brokers deliver it to live subscribers unflagged)
	}
	req, err := mqttpub.ParseTrigger(m.Topic, m.Payload)
	if err != nil {
		t.count("invalid")
		if id := mqttpub.TriggerID(m.Payload); id != "" {
			go fail(id, err) // the sender is told why; its answer's log line says it
			return
		}
		t.log.Warn("trigger refused", "err", err)
		return
	}
	_, _ = t.accept(req, m.Backlog, enqueue, fail, republish)
}

// accept takes one parsed trigger request (backlog: held by the broker
// while inspectd was away) and returns why it was not queued (nil when it
// was, or when it was answered from the dedup memory), and, when it was
// answered before, that answer (sent again through republish instead of
// inspecting a second part). Every request not queued is also answered
// through fail.
func (t *triggerIntake) accept(req mqttpub.Trigger, backlog bool, enqueue func(id string) error, fail func(id string, err error),
	republish func(*mqttpub.Result) error) (*answeredTrigger, error) {
	now := time.Now()
	t.mu.Lock()
	t.expireLocked(now)
	if a, ok := t.answers[req.ID]; ok {
		t.mu.Unlock()
		t.count("duplicate")
		r := a.res
		go func() {
			// Said after the attempt: over Sparkplug alone nothing is sent
			// again (the command's reply says answered_before).
			msg, err := "trigger id answered before: not inspected again, its stored result sent again", republish(&r)
			if errors.Is(err, errNotRepublished) {
				msg, err = "trigger id answered before: not inspected again; nothing sent again (mqtt.profile sparkplug: the command's reply says answered_before)", nil
			}
			args := []any{"id", req.ID, "seq", a.res.Seq, "answered", a.at.Format(time.RFC3339Nano)}
			if err != nil {
				args = append(args, "err", err)
			}
			t.log.Info(msg, args...)
		}()
		return &a, nil
	}
	if _, ok := t.pending[req.ID]; ok {
		t.mu.Unlock()
		t.count("duplicate")
		t.log.Info("trigger id already waiting: not queued twice", "id", req.ID)
		return nil, nil
	}
	maxAge := t.maxAge
	t.pending[req.ID] = now
	t.mu.Unlock()
	var stale error
	switch {
	case maxAge <= 0:
	case !req.Time.IsZero():
		ahead := req.Time.Sub(now)
		t.mu.Lock()
		first := ahead > maxAge && !t.warnedAhead
		t.warnedAhead = ahead > maxAge // re-armed once the clocks agree again
		t.mu.Unlock()
		if first {
			// Served (the part is there), but no age can be judged while
			// the clocks disagree: said once per disagreement.
			t.log.Warn("trigger dated ahead of this box's clock: stale triggers cannot be told while the clocks disagree; check NTP on the sender and on this box",
				"id", req.ID, "time", req.Time.UTC().Format(time.RFC3339Nano), "ahead", ahead.Round(time.Millisecond))
		}
		if age := now.Sub(req.Time); age > maxAge {
			stale = fmt.Errorf("%w: sent at %s, %s ago (capture.trigger.max_age %s)", errStaleTrigger,
				req.Time.UTC().Format(time.RFC3339Nano), age.Round(time.Millisecond), maxAge)
		}
	case backlog:
		// Held by the broker while inspectd was not connected: the part it
		// asked about is long gone, and nothing says how long.
		stale = fmt.Errorf("%w: it arrived as inspectd (re)subscribed, with what the broker held while inspectd was not connected, and could not be told from that (triggers arriving within %s of the subscription count so; send \"time\" with triggers to have each judged by its age)", errStaleTrigger, mqttpub.BacklogSettle)
	}
	if stale != nil {
		t.count("stale")
		go fail(req.ID, stale)
		return nil, stale
	}
	if err := enqueue(req.ID); err != nil {
		var te *capture.TriggerError
		if errors.As(err, &te) {
			err = te.Err
		}
		t.count(triggerOutcome(err))
		go fail(req.ID, err)
		return nil, err
	}
	t.count("accepted")
	return nil, nil
}

func (t *triggerIntake) count(outcome string) {
	if t.metrics != nil {
		t.metrics.Trigger(outcome)
	}
}

// answered records the result that answered a trigger id.
func (t *triggerIntake) answered(r *mqttpub.Result) {
	now := time.Now()
	res := *r
	res.LatencyMS = maps.Clone(r.LatencyMS)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pending, r.TriggerID)
	if t.window <= 0 || (r.Verdict == VerdictError && r.File == "") {
		// No part was inspected: a retry with the same id may run. An
		// error answer that names a folder's file (skipped, or not
		// inspected) took that file, a part: the same id again must not
		// take the next one.
		return
	}
	t.answers[r.TriggerID] = answeredTrigger{at: now, res: res}
	t.answerAt = append(t.answerAt, idTime{id: r.TriggerID, at: now})
	t.expireLocked(now)
}

// expireLocked forgets answers older than the window, and the oldest ones
// past maxRememberedTriggers; and pending ids that have waited for far
// longer than any answer takes (their answer was lost with a restart of
// the pipeline that never published it).
func (t *triggerIntake) expireLocked(now time.Time) {
	n := 0
	for n < len(t.answerAt) {
		e := t.answerAt[n]
		if now.Sub(e.at) <= t.window && len(t.answerAt)-n <= maxRememberedTriggers {
			break
		}
		if a, ok := t.answers[e.id]; ok && a.at.Equal(e.at) {
			delete(t.answers, e.id)
		}
		n++
	}
	if n > 0 {
		t.answerAt = append(t.answerAt[:0], t.answerAt[n:]...)
	}
	for id, at := range t.pending {
		if now.Sub(at) > time.Hour {
			delete(t.pending, id)
		}
	}
}
