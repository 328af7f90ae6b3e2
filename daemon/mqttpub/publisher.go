// Package mqttpub publishes inspectd's results, alarms, masks and heatmaps
// over MQTT 3.1.1 (github.com/eclipse/paho.mqtt.golang) and receives
// trigger requests.
//
// Topics live under <prefix>/<device_id>/: status (retained online/offline,
// offline being the Last Will), info (retained JSON), result, alarm, mask,
// heatmap, and trigger (subscribed).
//
// Delivery: the client keeps a persistent session (clean session off) and
// every QoS 1/2 message goes through a durable outbox in Options.StoreDir
// before Publish returns; it leaves the outbox only when the broker
// acknowledges it. Messages published while the broker is unreachable,
// or left unacknowledged when the process was killed, are sent when the
// connection comes back, in the order they were published (duplicates
// are possible, as QoS 1 allows). Connection attempts back off
// exponentially from 1 s to Options.MaxReconnectInterval with one log line
// per failed attempt, and never stop until Close.
package mqttpub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Status payloads on the status topic.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// Errors returned by the publish methods.
var (
	// ErrNotStarted: Start has not been called yet.
	ErrNotStarted = errors.New("mqtt publisher not started")
	// ErrClosed: Close has been called.
	ErrClosed = errors.New("mqtt publisher closed")
	// ErrNotConnected: a QoS 0 message while the broker is unreachable; it
	// is dropped (QoS 0 promises nothing), the caller may count it.
	ErrNotConnected = errors.New("mqtt not connected: QoS 0 message dropped")
)

// Message is one message received on a subscribed topic.
type Message struct {
	Topic   string
	Payload []byte
	// Retained is set when the broker delivered a retained message (on
	// subscribe): commands and triggers must not execute those.
	Retained bool
	// Duplicate is the MQTT DUP flag: a QoS 1/2 redelivery.
	Duplicate bool
}

// Handler receives messages on subscribed topics. It runs on a paho
// goroutine and must not block for long; m.Payload is only valid during
// the call.
type Handler func(m Message)

// Topics are the full topic names of one device.
type Topics struct {
	Status, Info, Result, Alarm, Mask, Heatmap, Trigger string
}

// TopicsFor returns the topic names under prefix/deviceID.
func TopicsFor(prefix, deviceID string) Topics {
	base := prefix + "/" + deviceID + "/"
	return Topics{
		Status: base + "status", Info: base + "info", Result: base + "result", Alarm: base + "alarm",
		Mask: base + "mask", Heatmap: base + "heatmap", Trigger: base + "trigger",
	}
}

// State is a snapshot of the connection for health checks and metrics.
type State struct {
	// Connected is true while a connection to a broker is up.
	Connected bool
	// Broker is the URL of the current (or last) connection.
	Broker string
	// LastError is the most recent connection failure or loss, "" if none.
	LastError   string
	LastErrorAt time.Time
	// Failures counts failed attempts since the last successful connect.
	Failures int
	// Reconnects counts successful connections after the first one.
	Reconnects uint64
	// Queued is the number of QoS 1/2 messages not yet acknowledged by the
	// broker (in the outbox).
	Queued int
	// StoreError is the last outbox I/O error ("" if none): messages are
	// then held in memory only.
	StoreError string
}

// Publisher is one MQTT connection for one device. Create it with New,
// register subscriptions, then Start it; all methods are safe for
// concurrent use.
type Publisher struct {
	opts   Options
	log    *slog.Logger
	topics Topics
	client mqtt.Client
	box    *outbox

	mu      sync.Mutex
	info    []byte
	subs    map[string]subscription
	started bool
	closed  bool
	closing chan struct{}

	stMu        sync.Mutex
	connects    uint64
	failures    int
	reconnect   bool // the current attempt is a reconnect (paho paces those itself)
	broker      string
	lastErr     string
	lastErrAt   time.Time
	connectedAt time.Time
}

type subscription struct {
	qos     byte
	handler mqtt.MessageHandler
}

// New validates opts, loads the outbox left by a previous run and prepares
// the client. It does not connect: register subscriptions first (so that
// messages the broker kept for this session are routed), then call Start.
func New(opts Options) (*Publisher, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Publisher{
		opts:    opts,
		log:     opts.Logger.With("component", "mqtt"),
		topics:  TopicsFor(opts.TopicPrefix, opts.DeviceID),
		subs:    map[string]subscription{},
		closing: make(chan struct{}),
	}
	// status and info are retained state that Start publishes afresh; an
	// old copy replayed after the new one would overwrite it.
	superseded := func(pub *packets.PublishPacket) bool {
		return pub.TopicName == p.topics.Status || pub.TopicName == p.topics.Info
	}
	p.box, err = openOutbox(opts.StoreDir, p.log, superseded)
	if err != nil {
		return nil, err
	}

	co := mqtt.NewClientOptions()
	for _, b := range opts.Brokers {
		co.AddBroker(b)
	}
	if opts.TLS != (TLSOptions{}) || usesTLS(opts.Brokers) {
		cfg, err := opts.TLS.tlsConfig()
		if err != nil {
			return nil, err
		}
		co.SetTLSConfig(cfg)
	}
	pingTimeout := 10 * time.Second
	if opts.KeepAlive < pingTimeout {
		pingTimeout = opts.KeepAlive
	}
	co.SetClientID(opts.ClientID).
		SetUsername(opts.Username).
		SetPassword(opts.Password).
		SetProtocolVersion(4). // explicit: no silent fallback to 3.1 doubling each failed attempt
		SetCleanSession(false).
		SetResumeSubs(false). // subscriptions are re-sent on every connect instead
		// Handlers only enqueue, so they may run in order on paho's own
		// goroutine: triggers are then taken in the order they arrived.
		SetOrderMatters(true).
		SetKeepAlive(opts.KeepAlive).
		SetPingTimeout(pingTimeout).
		SetConnectTimeout(opts.ConnectTimeout).
		SetWriteTimeout(opts.WriteTimeout).
		SetDialer(&net.Dialer{Timeout: opts.ConnectTimeout}).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(opts.MaxReconnectInterval).
		// ConnectRetry lets Publish queue before the first connect and
		// reserves the packet ids of replayed messages; the backoff between
		// initial attempts is applied in onNotify, hence the tiny interval.
		SetConnectRetry(true).
		SetConnectRetryInterval(10*time.Millisecond).
		SetBinaryWill(p.topics.Status, []byte(StatusOffline), 1, true).
		SetStore(p.box).
		SetOnConnectHandler(p.onConnect).
		SetConnectionLostHandler(nil).
		SetConnectionNotificationHandler(p.onNotify).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			p.log.Debug("mqtt message on a topic without handler", "topic", m.Topic())
		})
	p.client = mqtt.NewClient(co)
	return p, nil
}

func usesTLS(brokers []string) bool {
	for _, b := range brokers {
		for _, s := range []string{"ssl://", "tls://", "mqtts://", "mqtt+ssl://", "tcps://", "wss://"} {
			if strings.HasPrefix(b, s) {
				return true
			}
		}
	}
	return false
}

// Topics returns this publisher's topic names.
func (p *Publisher) Topics() Topics { return p.topics }

// Start begins connecting in the background and returns at once; the
// connection is retried until Close. Messages published before the first
// connect are queued (QoS 1/2) or dropped with ErrNotConnected (QoS 0).
func (p *Publisher) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case p.started:
		return errors.New("mqtt publisher already started")
	}
	p.started = true
	p.log.Info("mqtt connecting", "brokers", strings.Join(p.opts.Brokers, ","), "client_id", p.opts.ClientID,
		"status_topic", p.topics.Status, "queued", p.box.depth(), "store", p.opts.StoreDir)
	p.client.Connect() // with ConnectRetry the token only completes once connected or closed
	return nil
}

// WaitConnected blocks until the publisher is connected or ctx ends; the
// error then carries the last connection failure.
func (p *Publisher) WaitConnected(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !p.client.IsConnectionOpen() {
		select {
		case <-ctx.Done():
			st := p.State()
			if st.LastError != "" {
				return fmt.Errorf("mqtt not connected: %w (last error: %s)", ctx.Err(), st.LastError)
			}
			return fmt.Errorf("mqtt not connected: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// onNotify tracks connection attempts: one log line per failure, the
// backoff before the next initial attempt, and the state for health.
func (p *Publisher) onNotify(_ mqtt.Client, n mqtt.ConnectionNotification) {
	switch n := n.(type) {
	case mqtt.ConnectionNotificationConnecting:
		p.stMu.Lock()
		p.reconnect = n.IsReconnect
		p.stMu.Unlock()
	case mqtt.ConnectionNotificationBroker:
		p.stMu.Lock()
		p.broker = n.Broker.String()
		p.stMu.Unlock()
	case mqtt.ConnectionNotificationBrokerFailed:
		if len(p.opts.Brokers) > 1 {
			p.log.Debug("mqtt broker unreachable, trying the next", "broker", n.Broker.String(), "error", n.Reason)
		}
	case mqtt.ConnectionNotificationFailed:
		// paho reports attempts one at a time from one goroutine, so the
		// count can be read here and bumped after logging: State never
		// shows a failure whose log line is not written yet.
		p.stMu.Lock()
		failures, reconnect := p.failures+1, p.reconnect
		p.stMu.Unlock()
		wait := backoff(failures, p.opts.MaxReconnectInterval)
		args := []any{"brokers", strings.Join(p.opts.Brokers, ","), "client_id", p.opts.ClientID,
			"attempt", failures, "error", n.Reason, "retry_in", wait, "queued", p.box.depth()}
		if h := hint(n.Reason); h != "" {
			args = append(args, "hint", h)
		}
		p.log.Warn("mqtt connect failed", args...)
		p.stMu.Lock()
		p.failures = failures
		p.lastErr, p.lastErrAt = n.Reason.Error(), time.Now()
		p.stMu.Unlock()
		if !reconnect {
			// paho retries initial connects at a fixed interval; pace them here.
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-p.closing:
				t.Stop()
			}
		}
	case mqtt.ConnectionNotificationLost:
		reason := "connection closed"
		if n.Reason != nil {
			reason = n.Reason.Error()
		}
		p.stMu.Lock()
		p.lastErr, p.lastErrAt = reason, time.Now()
		up := time.Since(p.connectedAt).Round(time.Millisecond)
		p.stMu.Unlock()
		p.log.Warn("mqtt connection lost, reconnecting", "error", reason, "connected_for", up, "queued", p.box.depth())
	}
}

// hint turns the usual causes of a refused connection into advice.
func hint(err error) string {
	s := err.Error()
	switch {
	case errors.Is(err, packets.ErrorRefusedNotAuthorised), errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return "the broker refused the credentials: check the MQTT username and password"
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return "the broker rejected the client id"
	case strings.Contains(s, "certificate signed by unknown authority"):
		return "the broker certificate is not signed by the configured CA: check the TLS CA file"
	case strings.Contains(s, "certificate is valid for"), strings.Contains(s, "doesn't contain any IP SANs"):
		return "the broker certificate does not match the broker address: check the TLS server name"
	case strings.Contains(s, "connection refused"):
		return "nothing listens on the broker address (broker down or wrong port)"
	}
	return ""
}

// backoff is 1 s doubled per consecutive failure, capped at max.
func backoff(failures int, max time.Duration) time.Duration {
	d := firstRetryInterval
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// onConnect runs (on its own goroutine) after every successful connect:
// announce online, re-publish info, and (re)subscribe.
func (p *Publisher) onConnect(c mqtt.Client) {
	p.stMu.Lock()
	p.connects++
	n, failures, broker := p.connects, p.failures, p.broker
	p.failures, p.connectedAt = 0, time.Now()
	p.stMu.Unlock()
	if n == 1 {
		p.log.Info("mqtt connected", "broker", broker, "client_id", p.opts.ClientID, "failed_attempts", failures, "queued", p.box.depth())
	} else {
		p.log.Info("mqtt reconnected", "broker", broker, "reconnects", n-1, "failed_attempts", failures, "queued", p.box.depth())
	}
	c.Publish(p.topics.Status, 1, true, []byte(StatusOnline))
	p.mu.Lock()
	info := p.info
	subs := make(map[string]subscription, len(p.subs))
	for f, s := range p.subs {
		subs[f] = s
	}
	p.mu.Unlock()
	if info != nil {
		c.Publish(p.topics.Info, 1, true, info)
	}
	for filter, s := range subs {
		tok := c.Subscribe(filter, s.qos, s.handler)
		if !tok.WaitTimeout(p.opts.WriteTimeout) {
			p.log.Warn("mqtt subscribe not acknowledged in time; retried on the next connect", "topic", filter)
			continue
		}
		if err := tok.Error(); err != nil {
			p.log.Warn("mqtt subscribe failed; retried on the next connect", "topic", filter, "error", err)
		}
	}
}

// PublishResult publishes r as JSON on the result topic at qos (0 or 1
// from the configuration).
func (p *Publisher) PublishResult(r *Result, qos byte) error {
	return p.publishJSON(p.topics.Result, qos, false, r)
}

// PublishAlarm publishes a as JSON on the alarm topic at QoS 1.
func (p *Publisher) PublishAlarm(a *Alarm) error {
	return p.publishJSON(p.topics.Alarm, 1, false, a)
}

// PublishMask publishes a PNG-encoded binary mask on the mask topic. The
// bytes are copied; the caller may reuse its buffer.
func (p *Publisher) PublishMask(png []byte, qos byte) error {
	return p.Publish(p.topics.Mask, png, qos, false)
}

// PublishHeatmap publishes a JPEG heatmap overlay on the heatmap topic.
// The bytes are copied; the caller may reuse its buffer.
func (p *Publisher) PublishHeatmap(jpeg []byte, qos byte) error {
	return p.Publish(p.topics.Heatmap, jpeg, qos, false)
}

// SetInfo replaces the retained info document and publishes it now if
// connected; it is re-published on every reconnect.
func (p *Publisher) SetInfo(info *Info) error {
	data, err := marshal(p.topics.Info, info)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.info = data
	p.mu.Unlock()
	// Stored before the check: if the connection comes up in between,
	// onConnect reads the new document.
	if !p.client.IsConnectionOpen() {
		return nil
	}
	return p.publish(p.topics.Info, 1, true, data)
}

// Publish sends payload on an arbitrary topic (for command answers). The
// bytes are copied. QoS 1/2 messages are queued durably and sent when
// possible; QoS 0 messages fail with ErrNotConnected while offline.
func (p *Publisher) Publish(topic string, payload []byte, qos byte, retained bool) error {
	return p.publish(topic, qos, retained, append([]byte(nil), payload...))
}

func (p *Publisher) publishJSON(topic string, qos byte, retained bool, v any) error {
	data, err := marshal(topic, v)
	if err != nil {
		return err
	}
	return p.publish(topic, qos, retained, data)
}

// publish hands payload (owned by the callee from here on) to paho.
func (p *Publisher) publish(topic string, qos byte, retained bool, payload []byte) error {
	if qos > 2 {
		return fmt.Errorf("mqtt publish %s: QoS %d; expected 0, 1 or 2", topic, qos)
	}
	if topic == "" || strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("mqtt publish %q: topic must be non-empty and without wildcards", topic)
	}
	p.mu.Lock()
	started, closed := p.started, p.closed
	p.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("mqtt publish %s: %w", topic, ErrClosed)
	case !started:
		return fmt.Errorf("mqtt publish %s: %w", topic, ErrNotStarted)
	case qos == 0 && !p.client.IsConnectionOpen():
		return fmt.Errorf("mqtt publish %s: %w", topic, ErrNotConnected)
	}
	tok := p.client.Publish(topic, qos, retained, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("mqtt publish %s: %w", topic, err)
		}
	default: // in flight; the outbox holds it until the broker acknowledges
	}
	return nil
}

// Subscribe routes messages matching filter to h and subscribes on every
// connect. Call it before Start for topics whose messages the broker may
// have kept for this session while the daemon was down.
func (p *Publisher) Subscribe(filter string, qos byte, h Handler) error {
	if filter == "" || h == nil || qos > 2 {
		return fmt.Errorf("mqtt subscribe %q: need a non-empty filter, a handler and QoS 0..2", filter)
	}
	mh := func(_ mqtt.Client, m mqtt.Message) {
		h(Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained(), Duplicate: m.Duplicate()})
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("mqtt subscribe %s: %w", filter, ErrClosed)
	}
	p.subs[filter] = subscription{qos: qos, handler: mh}
	p.mu.Unlock()
	p.client.AddRoute(filter, mh)
	if !p.client.IsConnectionOpen() {
		return nil // onConnect subscribes
	}
	tok := p.client.Subscribe(filter, qos, mh)
	if !tok.WaitTimeout(p.opts.WriteTimeout) {
		return fmt.Errorf("mqtt subscribe %s: no SUBACK within %s (retried on the next connect)", filter, p.opts.WriteTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("mqtt subscribe %s: %w", filter, err)
	}
	return nil
}

// OnTrigger subscribes h to the trigger topic at QoS 1; decode payloads
// with ParseTrigger.
func (p *Publisher) OnTrigger(h Handler) error {
	return p.Subscribe(p.topics.Trigger, 1, h)
}

// State returns a snapshot of the connection state.
func (p *Publisher) State() State {
	p.stMu.Lock()
	defer p.stMu.Unlock()
	st := State{
		Connected:   p.client.IsConnectionOpen(),
		Broker:      p.broker,
		LastError:   p.lastErr,
		LastErrorAt: p.lastErrAt,
		Failures:    p.failures,
		Queued:      p.box.depth(),
		StoreError:  p.box.lastError(),
	}
	if p.connects > 1 {
		st.Reconnects = p.connects - 1
	}
	return st
}

// Health reports whether messages can reach the broker now; detail says
// why not (the last connection error and how many messages wait). It
// satisfies the health-checker interface of the HTTP API.
func (p *Publisher) Health() (bool, string) {
	st := p.State()
	if st.Connected {
		d := "connected to " + st.Broker
		if st.Queued > 0 {
			d += fmt.Sprintf(", %d messages awaiting acknowledgement", st.Queued)
		}
		if st.StoreError != "" {
			d += "; outbox error: " + st.StoreError
		}
		return true, d
	}
	p.mu.Lock()
	started, closed := p.started, p.closed
	p.mu.Unlock()
	switch {
	case closed:
		return false, "closed"
	case !started:
		return false, "not started"
	}
	d := "not connected"
	if st.LastError != "" {
		d += fmt.Sprintf(": %s (%d failed attempts, last %s ago)", st.LastError, st.Failures,
			time.Since(st.LastErrorAt).Round(time.Second))
	} else {
		d += ": connecting to " + strings.Join(p.opts.Brokers, ",")
	}
	if st.Queued > 0 {
		d += fmt.Sprintf("; %d messages queued", st.Queued)
	}
	return false, d
}

// Close publishes offline (retained), waits until the queued messages are
// acknowledged or ctx ends, and disconnects. Messages still unacknowledged
// stay in the outbox for the next start; the error says how many.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	started := p.started
	close(p.closing)
	p.mu.Unlock()
	if !started {
		return nil
	}
	if p.client.IsConnectionOpen() {
		tok := p.client.Publish(p.topics.Status, 1, true, []byte(StatusOffline))
		select {
		case <-tok.Done():
		case <-ctx.Done():
		}
		t := time.NewTicker(10 * time.Millisecond)
		for p.box.depth() > 0 && p.client.IsConnectionOpen() && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
		t.Stop()
	}
	quiesce := 250 * time.Millisecond
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < quiesce {
		quiesce = max(time.Until(dl), time.Millisecond)
	}
	p.client.Disconnect(uint(quiesce.Milliseconds()))
	n := p.box.depth()
	if n == 0 {
		p.log.Info("mqtt closed")
		return nil
	}
	if p.opts.StoreDir == "" {
		return fmt.Errorf("mqtt close: %d messages not acknowledged by the broker are lost (no StoreDir)", n)
	}
	return fmt.Errorf("mqtt close: %d messages not acknowledged by the broker, kept in %s for the next start", n, p.opts.StoreDir)
}
