package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// sinkSwitch is the pipeline's Sink in the daemon: it forwards to the
// current MQTT publisher, which a configuration change may replace.
// Publishing waits while the publisher is being replaced, so that no alarm
// finds a closed connection.
type sinkSwitch struct {
	mu  sync.RWMutex
	pub *mqttpub.Publisher
	// onTriggerResult sees every result that answers a trigger, for the
	// trigger intake's memory of answered ids.
	onTriggerResult func(*mqttpub.Result)
}

func (s *sinkSwitch) set(p *mqttpub.Publisher) {
	s.mu.Lock()
	s.pub = p
	s.mu.Unlock()
}

// do runs f with the current publisher, or returns ErrNotStarted.
func (s *sinkSwitch) do(f func(*mqttpub.Publisher) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.pub == nil {
		return mqttpub.ErrNotStarted
	}
	return f(s.pub)
}

// PublishResult implements Sink.
func (s *sinkSwitch) PublishResult(r *mqttpub.Result, qos byte) error {
	err := s.do(func(p *mqttpub.Publisher) error { return p.PublishResult(r, qos) })
	if r.TriggerID != "" && s.onTriggerResult != nil {
		s.onTriggerResult(r)
	}
	return err
}

// republish sends a stored answer again, at QoS 1.
func (s *sinkSwitch) republish(r *mqttpub.Result) error {
	return s.do(func(p *mqttpub.Publisher) error { return p.PublishResult(r, 1) })
}

// PublishAlarm implements Sink.
func (s *sinkSwitch) PublishAlarm(a *mqttpub.Alarm) error {
	return s.do(func(p *mqttpub.Publisher) error { return p.PublishAlarm(a) })
}

// PublishMask implements Sink.
func (s *sinkSwitch) PublishMask(png []byte, qos byte) error {
	return s.do(func(p *mqttpub.Publisher) error { return p.PublishMask(png, qos) })
}

// PublishHeatmap implements Sink.
func (s *sinkSwitch) PublishHeatmap(jpeg []byte, qos byte) error {
	return s.do(func(p *mqttpub.Publisher) error { return p.PublishHeatmap(jpeg, qos) })
}

// MaxPayload is the largest payload the broker takes (0: no limit known).
func (s *sinkSwitch) MaxPayload() int {
	n := 0
	_ = s.do(func(p *mqttpub.Publisher) error {
		if m, ok := any(p).(interface{ MaxPayload() int }); ok {
			n = m.MaxPayload()
		}
		return nil
	})
	return n
}

// Health reports the MQTT connection's health (httpapi.Checker).
func (s *sinkSwitch) Health() (bool, string) {
	ok, detail := false, "not started"
	_ = s.do(func(p *mqttpub.Publisher) error {
		ok, detail = p.Health()
		return nil
	})
	return ok, detail
}

func (s *sinkSwitch) state() mqttpub.State {
	var st mqttpub.State
	_ = s.do(func(p *mqttpub.Publisher) error {
		st = p.State()
		return nil
	})
	return st
}

func (s *sinkSwitch) setInfo(info *mqttpub.Info) error {
	return s.do(func(p *mqttpub.Publisher) error { return p.SetInfo(info) })
}

// setStatus replaces the retained status ("online", "degraded: ...").
func (s *sinkSwitch) setStatus(status string) error {
	return s.do(func(p *mqttpub.Publisher) error {
		if st, ok := any(p).(interface{ SetStatus(string) error }); ok {
			return st.SetStatus(status)
		}
		return p.Publish(p.Topics().Status, []byte(status), 1, true)
	})
}

// replace swaps the publisher for the one f makes from the old one (which
// f closes); publishing waits meanwhile. On error no publisher is set.
func (s *sinkSwitch) replace(f func(old *mqttpub.Publisher) (*mqttpub.Publisher, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := f(s.pub)
	s.pub = p
	return err
}

// close says offline and disconnects, waiting a little for queued
// messages to be acknowledged (the rest stay in the outbox).
func (s *sinkSwitch) close(log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.pub.Close(ctx); err != nil {
		log.Warn("MQTT close", "err", err)
	}
	s.pub = nil
}
