package remote

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// Client is the part of an MQTT connection the JSON front end uses;
// *mqttpub.Publisher satisfies it.
type Client interface {
	// Subscribe routes messages matching filter to h, on every connect.
	Subscribe(filter string, qos byte, h mqttpub.Handler) error
	// Publish sends payload; QoS 1 messages are queued durably while the
	// broker is away.
	Publish(topic string, payload []byte, qos byte, retained bool) error
}

// MQTTOptions configure the JSON front end.
type MQTTOptions struct {
	// Prefix is mqtt.topic_prefix; DeviceID the resolved device id.
	Prefix, DeviceID string
	// Groups are mqtt.groups.
	Groups []string
	// Enabled says remote control is on (config.Remote.Enabled). The
	// command topics are subscribed either way, so that a command sent
	// while it is off is answered unauthorized, saying how to turn it on;
	// only the log line that says commands are taken depends on it.
	Enabled bool
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// MQTT is the JSON-over-MQTT front end. It subscribes (QoS 1) to
//
//	<prefix>/<device_id>/cmd/+
//	<prefix>/fleet/cmd/+
//	<prefix>/group/<group>/cmd/+   for each of mqtt.groups
//
// and hands every message that is neither retained nor empty (see
// RetainGuard) to the Submitter as a Request whose
// Name is the topic's last level; each reply is published on
// <prefix>/<device_id>/reply/<name> at QoS 1. Events (refit progress,
// snapshots) go to <prefix>/<device_id>/<event>.
//
// Nor does it hand over the copy of a retained command that the broker
// queued for the persistent session while the box was away: it arrives
// as an ordinary message, before or after the retained one. Messages the
// broker kept for the session (mqttpub.Message.Backlog) are therefore held
// for retainedCopyWindow, in order with those that come after them, so
// that their retained twin can arrive first (RetainGuard.CopyOfSkipped).
type MQTT struct {
	s     Submitter
	log   *slog.Logger
	guard *RetainGuard

	// held are the requests waiting out retainedCopyWindow, in arrival
	// order; a flush is due while it is not empty.
	hmu  sync.Mutex
	held []heldRequest

	mu     sync.Mutex
	c      Client
	prefix string
	base   string // <prefix>/<device_id>/
	groups []string
	on     bool // MQTTOptions.Enabled of the last Start or Attach
}

// NewMQTT builds the front end; Start subscribes.
func NewMQTT(c Client, s Submitter, o MQTTOptions) (*MQTT, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	log := o.Logger.With("component", "remote-mqtt")
	m := &MQTT{c: c, s: s, log: log, guard: NewRetainGuard(log)}
	m.set(c, o)
	return m, nil
}

func (o *MQTTOptions) check() error {
	if o.Prefix == "" || o.DeviceID == "" {
		return errors.New("remote mqtt: a topic prefix and a device id are required")
	}
	if o.DeviceID == "fleet" || o.DeviceID == "group" {
		return fmt.Errorf("remote mqtt: device id %q is reserved for the fleet and group command topics", o.DeviceID)
	}
	return nil
}

// set takes a connection and its topics.
func (m *MQTT) set(c Client, o MQTTOptions) {
	m.mu.Lock()
	m.c, m.prefix, m.base, m.groups = c, o.Prefix, o.Prefix+"/"+o.DeviceID+"/", append([]string(nil), o.Groups...)
	m.on = o.Enabled
	m.mu.Unlock()
}

// RetainedSkipped counts the retained commands not executed (for a metric).
func (m *MQTT) RetainedSkipped() uint64 { return m.guard.Skipped() }

// Filters are the topic filters the front end subscribes to.
func (m *MQTT) Filters() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := []string{m.base + "cmd/+", m.prefix + "/fleet/cmd/+"}
	for _, g := range m.groups {
		f = append(f, m.prefix+"/group/"+g+"/cmd/+")
	}
	return f
}

// client is the connection replies and events go to now, and the topic
// base (<prefix>/<device_id>/) they go under.
func (m *MQTT) client() (Client, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c, m.base
}

// Attach moves the front end onto a new connection, for when a
// configuration change replaced the MQTT client (mqtt.*, device_id): it
// subscribes there with o's topics (call it before the new connection's
// Start), and replies and events go there from now on, those of requests
// that came on the old connection included. The old connection's
// subscriptions end when it is closed. o.Logger is not used. After a
// device_id change, call the Dispatcher's SetDeviceID too.
func (m *MQTT) Attach(c Client, o MQTTOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	m.mu.Lock()
	was := m.on
	m.mu.Unlock()
	m.set(c, o)
	if d, ok := m.s.(*Dispatcher); ok {
		d.noteConnection() // a config-confirm from now on came over c
	}
	for _, f := range m.Filters() {
		if err := c.Subscribe(f, 1, m.handle); err != nil {
			return fmt.Errorf("remote mqtt: %w", err)
		}
	}
	if was && !o.Enabled {
		m.logSwitchedOff()
		return nil
	}
	m.logSubscribed()
	return nil
}

// SetEnabled follows a configuration change that turns remote control on
// or off without replacing the connection (remote.* alone: the command
// topics are subscribed either way). The dispatcher reads the
// configuration in force, so the change takes effect at once; it is
// logged once, as a start or a new connection would, so that the log
// does not say commands are off while they are taken, or the reverse.
func (m *MQTT) SetEnabled(on bool) {
	m.mu.Lock()
	was := m.on
	m.on = on
	m.mu.Unlock()
	switch {
	case on && !was:
		m.logSubscribed()
	case !on && was:
		m.logSwitchedOff()
	}
}

// logSwitchedOff says remote control went off: at Info, as its start was.
func (m *MQTT) logSwitchedOff() {
	m.log.Info("remote commands off: the command topics stay subscribed only to answer unauthorized (no remote.trust_keys, remote.allow_unsigned false)",
		"topics", strings.Join(m.Filters(), " "))
}

// Start subscribes to the command topics (call it before the connection's
// Start, so that requests the broker kept for this session are routed) and
// registers the front end for events when s is a *Dispatcher. Call
// AnswerInterrupted once the connection is started.
func (m *MQTT) Start() error {
	for _, f := range m.Filters() {
		if err := m.c.Subscribe(f, 1, m.handle); err != nil {
			return fmt.Errorf("remote mqtt: %w", err)
		}
	}
	m.logSubscribed()
	if d, ok := m.s.(*Dispatcher); ok {
		d.AddEvents(m)
	}
	return nil
}

// logSubscribed logs the subscription to the command topics: at Info, as
// taking commands, only when remote control is on; a trial user read
// "remote commands subscribed" on a box with remote control off as
// remote control being on.
func (m *MQTT) logSubscribed() {
	m.mu.Lock()
	on := m.on
	m.mu.Unlock()
	topics := strings.Join(m.Filters(), " ")
	if on {
		m.log.Info("remote commands subscribed", "topics", topics)
		return
	}
	m.log.Debug("command topics subscribed only to answer unauthorized: remote commands are off (no remote.trust_keys, remote.allow_unsigned false)", "topics", topics)
}

// AnswerInterrupted publishes the replies of the requests a previous
// process was interrupted in (once the connection is started: they are
// queued until the broker is reached).
func (m *MQTT) AnswerInterrupted() {
	if d, ok := m.s.(*Dispatcher); ok {
		for _, in := range d.TakeInterrupted(isMQTTOrigin) {
			m.reply(in.Name, in.Reply)
			d.markSent(in.Name, in.Reply.ID)
		}
	}
}

// Stop unregisters the front end's events (the subscriptions end with the
// connection) and hands over the requests still held (see MQTT) at once:
// no retained twin comes on a connection that ends, and they are answered
// as what waits in the dispatcher is, not left to a timer that fires after
// the stop.
func (m *MQTT) Stop() {
	m.flushHeld()
	if d, ok := m.s.(*Dispatcher); ok {
		d.RemoveEvents(m)
	}
}

func isMQTTOrigin(o string) bool {
	return o == "device" || o == "fleet" || strings.HasPrefix(o, "group/")
}

// origin tells a command topic's scope and command name; ok is false for a
// topic that is not one of the front end's.
func (m *MQTT) origin(topic string) (origin, name string, ok bool) {
	m.mu.Lock()
	prefix, base := m.prefix, m.base
	m.mu.Unlock()
	rest, found := strings.CutPrefix(topic, base+"cmd/")
	if found {
		return "device", rest, rest != "" && !strings.Contains(rest, "/")
	}
	rest, found = strings.CutPrefix(topic, prefix+"/")
	if !found {
		return "", "", false
	}
	if name, found = strings.CutPrefix(rest, "fleet/cmd/"); found {
		return "fleet", name, name != "" && !strings.Contains(name, "/")
	}
	if g, found := strings.CutPrefix(rest, "group/"); found {
		group, name, found := strings.Cut(g, "/cmd/")
		if found && name != "" && !strings.Contains(name, "/") {
			return "group/" + group, name, true
		}
	}
	return "", "", false
}

// handle runs on the MQTT client's goroutine: it only filters and enqueues.
func (m *MQTT) handle(msg mqttpub.Message) {
	if m.guard.Skip(msg) {
		return
	}
	origin, name, ok := m.origin(msg.Topic)
	if !ok {
		m.log.Warn("remote: message on an unexpected topic ignored", "topic", msg.Topic)
		return
	}
	if msg.Duplicate {
		m.log.Debug("remote: redelivered message (DUP); deduplicated by its id", "topic", msg.Topic)
	}
	// Acknowledged to the broker once the dispatcher has recorded the
	// request (or answered it): a crash before that gets it redelivered.
	release := msg.Hold()
	h := heldRequest{topic: msg.Topic, arrived: m.guard.now(), req: Request{Name: name, Body: msg.Payload, Origin: origin, Backlog: msg.Backlog, Release: release}}
	m.hmu.Lock()
	defer m.hmu.Unlock()
	if !msg.Backlog && len(m.held) == 0 {
		m.submit(h) // the dispatcher copies the body (or refuses it unread)
		return
	}
	if len(m.held) >= maxHeldWait {
		// A flood: what waits goes now, in order, and this one with it
		// (the dispatcher's queue bounds what follows).
		m.flushHeldLocked()
		m.submit(h)
		return
	}
	h.req.Body = bytes.Clone(msg.Payload) // the client may reuse it once handle returns
	if len(m.held) >= maxHeld {
		// Acknowledged now, as the dispatcher does beyond maxHeld: the
		// broker sends only so many unacknowledged messages, and the
		// retained twin waited for must not be kept out.
		release()
	}
	m.held = append(m.held, h)
	if len(m.held) == 1 {
		time.AfterFunc(retainedCopyWindow, m.flushHeld)
	}
}

// heldRequest is a request waiting out retainedCopyWindow.
type heldRequest struct {
	topic   string
	arrived time.Time
	req     Request
}

// flushHeld hands over the held requests, in order, but for copies of
// retained commands skipped meanwhile.
func (m *MQTT) flushHeld() {
	m.hmu.Lock()
	defer m.hmu.Unlock()
	m.flushHeldLocked()
}

// flushHeldLocked is flushHeld with hmu held.
func (m *MQTT) flushHeldLocked() {
	for _, h := range m.held {
		m.submit(h)
	}
	m.held = nil
}

// maxHeldWait bounds the requests held at once (each a copy of its body):
// the dispatcher's queue (DefaultQueue) would refuse more than that as
// busy anyway.
const maxHeldWait = DefaultQueue

// submit hands a request to the Submitter, unless it is the copy of a
// retained command (RetainGuard.CopyOfSkipped): that one is treated as
// the retained one was, not run and not answered, and acknowledged.
func (m *MQTT) submit(h heldRequest) {
	if m.guard.CopyOfSkipped(h.topic, h.req.Body, h.arrived) {
		h.req.Release()
		return
	}
	name := h.req.Name
	m.s.Submit(h.req, func(r Reply) { m.reply(name, r) })
}

// reply publishes a reply at QoS 1.
func (m *MQTT) reply(name string, r Reply) {
	b, err := r.MarshalJSON()
	if err != nil {
		m.log.Error("remote: reply not encoded", "command", name, "id", r.ID, "error", err)
		return
	}
	c, base := m.client()
	err = c.Publish(base+"reply/"+name, b, 1, false)
	if errors.Is(err, mqttpub.ErrPayloadTooLarge) {
		// Every request gets a reply: one that says why the answer is
		// not there (a config-get or snapshot over mqtt.max_payload).
		short := errorReply(r.ID, errorf(CodeTooLarge, "", "the reply of %d bytes is over mqtt.max_payload; raise it, or ask for less", len(b)), nil)
		if sb, serr := short.MarshalJSON(); serr == nil && c.Publish(base+"reply/"+name, sb, 1, false) == nil {
			m.log.Warn("remote: reply over mqtt.max_payload; answered with its size instead", "command", name, "id", r.ID, "bytes", len(b))
			return
		}
	}
	if err != nil {
		m.log.Warn("remote: reply not published", "command", name, "id", r.ID, "error", err)
	}
}

// Emit implements Events: it publishes on <prefix>/<device_id>/<name>.
func (m *MQTT) Emit(name string, payload []byte, qos byte) error {
	c, base := m.client()
	return c.Publish(base+name, payload, qos, false)
}
