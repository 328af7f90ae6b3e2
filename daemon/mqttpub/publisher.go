// Package mqttpub publishes inspectd's results, alarms, masks and heatmaps
// over MQTT 3.1.1 (github.com/eclipse/paho.mqtt.golang) and receives
// trigger requests.
//
// Topics live under <prefix>/<device_id>/: status (retained online/offline
// or what SetStatus says, offline being the Last Will), info (retained
// JSON), result, alarm, mask, heatmap, and trigger (subscribed).
//
// Delivery: the client keeps a persistent session (clean session off) and
// every message goes through the outbox (outbox.go) before Publish returns:
// alarms and results at QoS 1/2 on disk in Options.StoreDir, images and
// QoS 0 messages in memory. One sender goroutine hands them to the broker
// in order (alarms before results before images, publish order within
// each), at most 20 unacknowledged at a time; a QoS 1/2 message leaves the
// outbox only when the broker acknowledges it. Messages published while the
// broker is unreachable, or left unacknowledged when the process was
// killed, are sent when the connection comes back (duplicates are
// possible, as QoS 1 allows). The outbox is bounded
// (Options.OutboxMaxMessages, OutboxMaxBytes): the oldest images, then the
// oldest results make room, and an alarm is refused only when alarms alone
// fill it. Payloads over Options.MaxPayload are refused; a broker that
// drops the connection over a large message teaches the publisher a lower
// limit (MaxPayload), which its replacement on the same brokers keeps
// (Options.Carry). Connection attempts back off exponentially from 1 s
// to Options.MaxReconnectInterval with one log line per failed attempt, and
// never stop until Close.
package mqttpub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Status payloads on the status topic.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// MaxStatusLen bounds a SetStatus payload.
const MaxStatusLen = 1024

// Errors returned by the publish methods. Test them with errors.Is; each
// returned error also names the topic.
var (
	// ErrNotStarted: Start has not been called yet.
	ErrNotStarted = errors.New("mqtt publisher not started")
	// ErrClosed: Close has been called.
	ErrClosed = errors.New("mqtt publisher closed")
	// ErrNotConnected: a QoS 0 message while the broker is unreachable; it
	// is dropped (QoS 0 promises nothing), the caller may count it.
	ErrNotConnected = errors.New("mqtt not connected: QoS 0 message dropped")
	// ErrPayloadTooLarge: the payload exceeds MaxPayload (Options.MaxPayload,
	// or a lower limit learned from the broker); the message is not sent.
	// errors.As with *PayloadTooLargeError gives the size and the limit, so
	// the caller can downsize an image and try again.
	ErrPayloadTooLarge = errors.New("mqtt payload too large")
	// ErrOutboxFull: the outbox is at its bound and holds nothing of lower
	// priority to drop; the message is not queued. For an alarm this means
	// alarms alone fill the outbox (and an error line is logged).
	ErrOutboxFull = errors.New("mqtt outbox full")
	// ErrNotDurable: the message is queued and will be delivered while the
	// process lives, but the outbox could not write it to disk (full or
	// read-only disk): it is lost if the daemon stops before the broker has
	// it. State().NotDurable counts such messages, State().StoreError says why.
	ErrNotDurable = errors.New("mqtt message not durable")
)

// PayloadTooLargeError is the error behind ErrPayloadTooLarge.
type PayloadTooLargeError struct {
	Topic string
	// Size is the payload size, Limit the largest payload accepted on
	// Topic now, in bytes.
	Size, Limit int
	// Learned is set when Limit comes from the broker dropping the
	// connection over a larger message rather than from Options.MaxPayload.
	Learned bool
}

func (e *PayloadTooLargeError) Error() string {
	src := "mqtt.max_payload"
	if e.Learned {
		src = "learned from the broker, which dropped the connection over a larger message"
	}
	return fmt.Sprintf("mqtt publish %s: payload of %d bytes exceeds the limit of %d bytes (%s)", e.Topic, e.Size, e.Limit, src)
}

// Is makes errors.Is(err, ErrPayloadTooLarge) true.
func (e *PayloadTooLargeError) Is(target error) bool { return target == ErrPayloadTooLarge }

// Message is one message received on a subscribed topic.
type Message struct {
	Topic   string
	Payload []byte
	// Retained is set when the broker delivered a retained message (on
	// subscribe): commands and triggers must not execute those.
	Retained bool
	// Duplicate is the MQTT DUP flag: a QoS 1/2 redelivery.
	Duplicate bool
	// Backlog is set for a message that arrived on this connection before
	// the broker acknowledged the subscription it matches: one the broker
	// held for this (persistent) session while the client was away, sent
	// right after CONNACK. A request that needs an answer now (a trigger)
	// is that old; one that may be applied late (a configuration push) is
	// not harmed by it. A message published in the moment between CONNACK
	// and SUBACK is flagged too, and so is one handled within BacklogSettle
	// of the SUBACK: paho hands a message read before the SUBACK to its
	// router goroutine, which may call the handler only after the SUBACK
	// was processed on another goroutine.
	Backlog bool
	// ack is the message's acknowledgement to the broker (Hold).
	ack *ackState
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

// ClassCounts counts messages by delivery class: alarms, results (and
// anything published on other topics), images (mask, heatmap).
type ClassCounts struct {
	Alarm, Result, Image uint64
}

// State is a snapshot of the connection and the outbox for health checks
// and metrics. Counters only grow while the publisher lives.
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
	// Queued is the number of messages not yet acknowledged by the broker
	// (QoS 1/2) or not yet written to it (QoS 0); QueuedBytes their size.
	Queued      int
	QueuedBytes int64
	// OnDisk is how many queued messages are on disk and survive a
	// restart; NotDurable how many alarms and results are held in memory
	// only because the outbox could not write them (see ErrNotDurable).
	OnDisk, NotDurable int
	// StoreError is the last outbox I/O error, "" while the outbox works.
	StoreError string
	// Evicted counts queued messages dropped to make room (oldest images,
	// then oldest results); Refused counts publishes refused with
	// ErrOutboxFull; TooLarge counts messages refused with
	// ErrPayloadTooLarge or set aside after the broker dropped the
	// connection over them.
	Evicted, Refused, TooLarge ClassCounts
	// DroppedOffline counts QoS 0 messages accepted during a short
	// connection drop and dropped when the reconnect failed.
	DroppedOffline uint64
	// MaxPayload is the largest image payload accepted now (see MaxPayload).
	MaxPayload int
	// BrokerPacketLimit is the packet size limit learned from the broker,
	// in bytes, by this publisher or the one it replaced (Options.Carry);
	// 0: none learned.
	BrokerPacketLimit int
	// ClientIDClash describes a likely client-id clash (another client
	// connecting with the same id), "" when there is none.
	ClientIDClash string
	// Stalled is how long the broker has acknowledged nothing while
	// messages awaited its acknowledgement on the connection that is up,
	// once that is 5 s or more (0 otherwise); StalledWaiting is how many
	// await it. Health reports a stalled connection as unhealthy.
	Stalled        time.Duration
	StalledWaiting int
	// Status is the payload of the retained status topic while connected.
	Status string
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
	// carried is the packet limit, in bytes, taken over from the
	// publisher this one replaced (Options.Carry), 0 if none: Start says
	// so once.
	carried int

	stopSender chan struct{}
	senderDone chan struct{}
	// onConn counts the connect handlers running (subscribing, then
	// recording the session's filters): Close waits for them, so that
	// the next publisher on the state folder reads a record that is
	// complete (on a loaded box one wrote it after Close returned).
	onConn sync.WaitGroup
	// holds are the received messages held and not yet released (its
	// own lock).
	holds holdSet

	// subMu serializes changes to the broker's subscriptions: Subscribe
	// against forgetStale's UNSUBSCRIBEs on connect.
	subMu sync.Mutex

	mu      sync.Mutex
	info    []byte
	status  string
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
	clash       clashDetector
}

type subscription struct {
	qos     byte
	handler mqtt.MessageHandler
	// ackedAt is when (Unix ns) the broker acknowledged the subscription
	// on the current connection, 0 before: until then, and for
	// BacklogSettle after, matching messages are Backlog.
	ackedAt *atomic.Int64
}

// BacklogSettle is how long after a SUBACK messages still count as
// Backlog: the time paho's router may take to call the handler of a
// message it read before the SUBACK (a trigger the broker held was once
// answered as fresh under the race detector on a loaded 2-core machine).
// A trigger sent that soon after the daemon subscribed is answered with a
// stale-trigger error, which the PLC sees, never with another part's
// verdict.
const BacklogSettle = 300 * time.Millisecond

// backlog says whether a message handled now is the session's backlog,
// given when its subscription was acknowledged (ackedAt).
func backlog(ackedAt *atomic.Int64) bool {
	at := ackedAt.Load()
	return at == 0 || time.Since(time.Unix(0, at)) < BacklogSettle
}

// New validates opts, loads the outbox left by a previous run and prepares
// the client. It does not connect: register subscriptions first (so that
// messages the broker kept for this session are routed), then call Start.
// An outbox folder that cannot be written does not make New fail: the
// publisher runs with messages in memory, State().StoreError says why and
// publishes of alarms and results return ErrNotDurable.
func New(opts Options) (*Publisher, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Publisher{
		opts:       opts,
		log:        opts.Logger.With("component", "mqtt"),
		topics:     TopicsFor(opts.TopicPrefix, opts.DeviceID),
		subs:       map[string]subscription{},
		status:     StatusOnline,
		closing:    make(chan struct{}),
		stopSender: make(chan struct{}),
		senderDone: make(chan struct{}),
		clash:      newClashDetector(),
	}
	p.box = openOutbox(outboxOptions{
		dir: opts.StoreDir, log: p.log, maxMsgs: opts.OutboxMaxMessages, maxBytes: opts.OutboxMaxBytes,
		classify: p.classify,
		// status and info are retained state that every connect publishes
		// afresh; an old copy replayed after the new one would overwrite it.
		superseded: func(topic string) bool { return topic == p.topics.Status || topic == p.topics.Info },
	})
	if c := opts.Carry; c != nil && slices.Equal(c.brokers, opts.Brokers) {
		p.box.inherit(c.packetLimit, c.maxGood)
		p.carried = c.packetLimit
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
		// Acknowledged when the handler returns, unless it holds the
		// message (Message.Hold) until what it handed it to made it
		// durable.
		SetAutoAckDisabled(true).
		SetKeepAlive(opts.KeepAlive).
		SetPingTimeout(pingTimeout).
		SetConnectTimeout(opts.ConnectTimeout).
		SetWriteTimeout(opts.WriteTimeout).
		SetDialer(&net.Dialer{Timeout: opts.ConnectTimeout}).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(opts.MaxReconnectInterval).
		// ConnectRetry reserves the packet ids of the QoS 2 messages an
		// earlier run handed over (the broker may hold them until PUBREL);
		// the backoff between initial attempts is applied in onNotify,
		// hence the tiny interval.
		SetConnectRetry(true).
		SetConnectRetryInterval(10*time.Millisecond).
		SetBinaryWill(p.topics.Status, []byte(StatusOffline), 1, true).
		SetStore(p.box).
		SetOnConnectHandler(p.onConnect).
		SetConnectionLostHandler(nil).
		SetConnectionNotificationHandler(p.onNotify).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			// A subscription the persistent session kept from before
			// (another prefix, a removed trigger). Acknowledged all the
			// same: with auto-acknowledgement off, unacknowledged ones
			// would fill the broker's in-flight window and stall every
			// later message.
			p.log.Debug("mqtt message on a topic without handler", "topic", m.Topic())
			m.Ack()
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

// classify maps a topic to its delivery class.
func (p *Publisher) classify(topic string) class {
	switch topic {
	case p.topics.Alarm:
		return classAlarm
	case p.topics.Mask, p.topics.Heatmap:
		return classImage
	}
	return classResult
}

// Topics returns this publisher's topic names.
func (p *Publisher) Topics() Topics { return p.topics }

// Start begins connecting in the background and returns at once; the
// connection is retried until Close. Messages published before the first
// connect are queued (QoS 1/2) or refused with ErrNotConnected (QoS 0).
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
	st := p.box.stats()
	p.log.Info("mqtt connecting", "brokers", strings.Join(p.opts.Brokers, ","), "client_id", p.opts.ClientID,
		"status_topic", p.topics.Status, "queued", st.queued, "store", p.opts.StoreDir)
	if p.carried > 0 {
		p.log.Info("mqtt broker packet limit carried over from the connection this one replaces (same brokers): larger messages are refused from the start",
			"packet_limit", p.carried, "max_payload", p.MaxPayload())
	}
	go p.runSender()
	p.client.Connect() // with ConnectRetry the token only completes once connected or closed
	return nil
}

// WaitConnected blocks until the publisher is connected and has announced
// it (onConnect: status online, messages taken, QoS 0 among them) or ctx
// ends; the error then carries the last connection failure. paho's open
// connection alone came a moment before: a QoS 0 message published then
// was refused with ErrNotConnected (a test failed so under -race).
func (p *Publisher) WaitConnected(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !p.client.IsConnectionOpen() || !p.box.isUp() {
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
// backoff before the next initial attempt, the end of a connection (size
// rejections, client-id clashes), and the state for health.
func (p *Publisher) onNotify(_ mqtt.Client, n mqtt.ConnectionNotification) {
	switch n := n.(type) {
	case mqtt.ConnectionNotificationConnecting:
		// paho calls this synchronously before each attempt, so it runs
		// after paho reserved the stored packet ids at start and, for a
		// reconnect, before the session is replayed.
		p.box.markReserved()
		p.stMu.Lock()
		p.reconnect = n.IsReconnect
		p.stMu.Unlock()
		if n.IsReconnect {
			p.connectionEnded(time.Now())
		}
	case mqtt.ConnectionNotificationBroker:
		p.stMu.Lock()
		p.broker = n.Broker.String()
		p.stMu.Unlock()
	case mqtt.ConnectionNotificationBrokerFailed:
		// A broker that is away (restarting) is no client-id clash: the
		// short connections around it are not counted (clashDetector).
		p.stMu.Lock()
		p.clash.failed(time.Now())
		p.stMu.Unlock()
		if len(p.opts.Brokers) > 1 {
			p.log.Debug("mqtt broker unreachable, trying the next", "broker", n.Broker.String(), "error", n.Reason)
		}
	case mqtt.ConnectionNotificationFailed:
		p.box.connectFailed()
		// paho reports attempts one at a time from one goroutine, so the
		// count can be read here and bumped after logging: State never
		// shows a failure whose log line is not written yet.
		p.stMu.Lock()
		failures, reconnect := p.failures+1, p.reconnect
		p.stMu.Unlock()
		wait := backoff(failures, p.opts.MaxReconnectInterval)
		args := []any{"brokers", strings.Join(p.opts.Brokers, ","), "client_id", p.opts.ClientID,
			"attempt", failures, "error", n.Reason, "retry_in", wait, "queued", p.box.stats().queued}
		if h := ConnectHint(n.Reason); h != "" {
			args = append(args, "hint", h)
		}
		p.log.Warn("mqtt connect failed", args...)
		p.stMu.Lock()
		p.failures = failures
		p.lastErr, p.lastErrAt = n.Reason.Error(), time.Now()
		p.clash.failed(p.lastErrAt)
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
		up := p.box.connLost(time.Now()).Round(time.Millisecond)
		p.mu.Lock()
		for _, sub := range p.subs { // what comes before the next SUBACK is the session's backlog
			sub.ackedAt.Store(0)
		}
		p.mu.Unlock()
		p.stMu.Lock()
		p.lastErr, p.lastErrAt = reason, time.Now()
		level := slog.LevelWarn
		if p.clash.active { // reported once for the episode
			level = slog.LevelDebug
		}
		p.stMu.Unlock()
		p.log.Log(context.Background(), level, "mqtt connection lost, reconnecting", "error", reason, "connected_for", up, "queued", p.box.stats().queued)
	}
}

// connectionEnded handles the end of a connection before paho reconnects:
// a message the broker dropped the connection over is set aside and the
// limit lowered (one log line), and short connections feed the client-id
// clash detector.
func (p *Publisher) connectionEnded(now time.Time) {
	ev, ok := p.box.connEnded(now)
	if !ok {
		return
	}
	if m := ev.tooLarge; m != nil {
		p.log.Warn("mqtt broker dropped the connection right after a large message: it probably limits packets to less than that; "+
			"the message is set aside (not resent) and larger messages are refused from now on; set mqtt.max_payload to the broker's limit",
			"topic", m.topic, "class", m.class, "bytes", m.size, "assumed_packet_limit", ev.newLimit, "max_payload", p.MaxPayload())
	}
	if ev.noFloor {
		p.log.Warn("mqtt broker dropped the connection twice in a row right after messages larger than any it had acknowledged, sent together with others: "+
			"it may limit packets to less than 16 KiB; such messages now go one at a time, so that a drop over one teaches the limit",
			"bytes", ev.suspectBytes, "max_payload", p.MaxPayload(),
			"hint", "set mqtt.max_payload to what the broker takes (mosquitto max_packet_size, message_size_limit)")
	}
	p.stMu.Lock()
	started := p.clash.ended(ev.connectedFor, ev.tooLarge != nil, now)
	drops := p.clash.drops
	p.stMu.Unlock()
	if started {
		p.log.Warn("mqtt connection dropped within seconds of being accepted, again and again: another client probably uses the same client id "+
			"(the broker drops one whenever the other connects); give each device its own mqtt.client_id / device_id",
			"client_id", p.opts.ClientID, "drops", drops, "connected_for", ev.connectedFor.Round(time.Millisecond))
	}
}

// checkClashSettled ends a client-id clash episode once a connection has
// lasted long enough, with one log line.
func (p *Publisher) checkClashSettled() {
	if !p.client.IsConnectionOpen() {
		return
	}
	p.stMu.Lock()
	settled := p.clash.settled(time.Since(p.connectedAt))
	p.stMu.Unlock()
	if settled {
		p.log.Info("mqtt connection stable again: the client-id clash is over", "client_id", p.opts.ClientID)
	}
}

// ConnectHint turns the usual causes of a refused or failed MQTT connection
// (paho's connect error) into advice for the person reading the log; "" when
// the cause is not one it knows. Both the JSON publisher and the Sparkplug edge
// node use it, so that their log lines give the same advice.
func ConnectHint(err error) string {
	s := err.Error()
	switch {
	case errors.Is(err, packets.ErrorRefusedNotAuthorised), errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return "the broker refused the credentials: check the MQTT username and password"
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return "the broker rejected the client id"
	case strings.Contains(s, "remote error: tls: certificate required"):
		return "the broker asks for a client certificate and got none: set mqtt.tls.cert and mqtt.tls.key to one signed by a CA the broker trusts"
	case strings.Contains(s, "remote error: tls: unknown certificate authority"):
		// The broker's alert about our certificate, not x509's "signed by
		// unknown authority" about the broker's below.
		return "the broker does not trust the client certificate: mqtt.tls.cert is not signed by a CA the broker trusts (its cafile); use one that is, with its mqtt.tls.key"
	case strings.Contains(s, "certificate signed by unknown authority"):
		// Said so as to hold both with mqtt.tls.ca set and without (the
		// system's CAs): the hint cannot tell which.
		return "the broker's certificate is not signed by a CA this box trusts: set mqtt.tls.ca to the CA that signed it (or check the one set)"
	case strings.Contains(s, "certificate is valid for"), strings.Contains(s, "doesn't contain any IP SANs"):
		return "the broker certificate does not match the broker address: check the TLS server name"
	case strings.Contains(s, "no such host"), strings.Contains(s, "server misbehaving"), strings.Contains(s, "Temporary failure in name resolution"):
		return "the broker's host name does not resolve: check the name in mqtt.brokers and the box's DNS (/etc/resolv.conf), or use its IP address"
	case strings.Contains(s, "connection refused"):
		return "nothing listens on the broker address (broker down or wrong port)"
	case strings.Contains(s, "connection reset by peer"):
		// What mosquitto does to tcp:// on its TLS port and to ssl:// on a
		// plain one alike (paho's error cannot tell them apart), and at
		// times to a client certificate it refuses.
		return "the broker address closed the connection at once: check the scheme in mqtt.brokers against the port (ssl:// for a TLS listener, tcp:// for a plain one); on a TLS listener, the broker may also refuse the client certificate (mqtt.tls.cert and mqtt.tls.key)"
	case strings.Contains(s, "non-CONNACK"):
		return "what answers on the broker address does not speak MQTT (another service's port, or TLS expected: ssl:// with mqtt.tls)"
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
// announce the status, re-publish info, (re)subscribe, and let the sender go.
func (p *Publisher) onConnect(c mqtt.Client) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.onConn.Add(1) // under mu, before Close can wait
	p.mu.Unlock()
	defer p.onConn.Done()
	now := time.Now()
	p.stMu.Lock()
	p.connects++
	n, failures, broker := p.connects, p.failures, p.broker
	p.failures, p.connectedAt = 0, now
	level := slog.LevelInfo
	if p.clash.active { // reported once for the episode
		level = slog.LevelDebug
	}
	p.stMu.Unlock()
	p.mu.Lock()
	info, status := p.info, p.status
	subs := make(map[string]subscription, len(p.subs))
	for f, s := range p.subs {
		subs[f] = s
	}
	p.mu.Unlock()
	// Queued before the sender may go: the status comes first.
	p.box.setControl(p.topics.Status, []byte(status))
	if info != nil {
		p.box.setControl(p.topics.Info, info)
	}
	p.box.connUp(now)
	queued := p.box.stats().queued
	if n == 1 {
		p.log.Info("mqtt connected", "broker", broker, "client_id", p.opts.ClientID, "failed_attempts", failures, "queued", queued)
	} else {
		p.log.Log(context.Background(), level, "mqtt reconnected", "broker", broker, "reconnects", n-1, "failed_attempts", failures, "queued", queued)
	}
	for filter, s := range subs {
		tok := c.Subscribe(filter, s.qos, s.handler)
		if !tok.WaitTimeout(p.opts.WriteTimeout) {
			p.log.Warn("mqtt subscribe not acknowledged in time; retried on the next connect", "topic", filter)
			continue
		}
		if err := tok.Error(); err != nil {
			p.log.Warn("mqtt subscribe failed; retried on the next connect", "topic", filter, "error", err)
			continue
		}
		s.ackedAt.Store(time.Now().UnixNano())
	}
	p.forgetStale(c, broker)
}

// PublishResult publishes r as JSON on the result topic at qos. Answers
// to triggers should go at QoS 1 (PublishResult(r, 1)): they are then on
// disk before this returns and delivered across broker outages and
// restarts; free-running results may use the configured QoS.
func (p *Publisher) PublishResult(r *Result, qos byte) error {
	return p.publishJSON(p.topics.Result, qos, false, r)
}

// PublishAlarm publishes a as JSON on the alarm topic at QoS 1.
func (p *Publisher) PublishAlarm(a *Alarm) error {
	return p.publishJSON(p.topics.Alarm, 1, false, a)
}

// PublishMask publishes a PNG-encoded binary mask on the mask topic. The
// bytes are copied; the caller may reuse its buffer. Images are held in
// memory only, go out after alarms and results, one at a time, and are the
// first dropped when the outbox is full; a payload over MaxPayload() is
// refused with ErrPayloadTooLarge.
func (p *Publisher) PublishMask(png []byte, qos byte) error {
	return p.Publish(p.topics.Mask, png, qos, false)
}

// PublishHeatmap publishes a JPEG heatmap overlay on the heatmap topic,
// like PublishMask.
func (p *Publisher) PublishHeatmap(jpeg []byte, qos byte) error {
	return p.Publish(p.topics.Heatmap, jpeg, qos, false)
}

// MaxPayload returns the largest mask or heatmap payload, in bytes, that
// is accepted now: Options.MaxPayload, or less once the broker has dropped
// the connection over a large message (this publisher's connection or,
// through Options.Carry, the one it replaced). Downsize images to fit it.
func (p *Publisher) MaxPayload() int {
	return p.maxPayload(p.topics.Heatmap)
}

// maxPayload is the payload limit on topic.
func (p *Publisher) maxPayload(topic string) int {
	limit := p.opts.MaxPayload
	if l := p.box.packetLimit(); l > 0 {
		limit = min(limit, maxPayloadFor(len(topic), 1, l))
	}
	return limit
}

// PacketLimit returns the packet size limit, in bytes, learned from the
// broker when it dropped the connection over a large message, here or
// before a reload (Options.Carry); 0: none learned. Another
// connection to the same broker, the Sparkplug edge node's, applies it too
// (PayloadLimit): it has no acknowledged QoS 1 images to learn it from, and
// the broker would drop it over a message that large just the same.
func (p *Publisher) PacketLimit() int {
	return p.box.packetLimit()
}

// Carry is what a publisher learned of its brokers, for the publisher
// that replaces it (Options.Carry) when a reload rebuilds the connection:
// the packet size limit the broker taught by dropping the connection over
// a larger message, and the largest packet it acknowledged (what a later
// drop is judged by). Learning the limit again would cost another lost
// connection: a dropped session, queued messages sent again, a reconnect.
type Carry struct {
	brokers     []string // learned from these, in this order
	packetLimit int      // bytes; 0: none learned
	maxGood     int      // largest packet acknowledged, bytes
}

// Carry returns what a publisher replacing this one should go on from
// (Options.Carry). It may be called before or after Close.
func (p *Publisher) Carry() *Carry {
	limit, good := p.box.learned()
	return &Carry{brokers: slices.Clone(p.opts.Brokers), packetLimit: limit, maxGood: good}
}

// SetInfo replaces the retained info document and publishes it now if
// connected; it is re-published on every reconnect.
func (p *Publisher) SetInfo(info *Info) error {
	data, err := marshal(p.topics.Info, info)
	if err != nil {
		return err
	}
	p.setRetained(p.topics.Info, data, func() { p.info = data })
	return nil
}

// SetStatus replaces the retained status payload ("online" until called;
// for example "degraded: outbox cannot write" while something is wrong,
// "online" again once it is not). It is published now if connected and on
// every reconnect. The Last Will stays "offline", and Close publishes
// "offline", whatever the status.
func (p *Publisher) SetStatus(payload string) error {
	if payload == "" || len(payload) > MaxStatusLen || !utf8.ValidString(payload) {
		return fmt.Errorf("mqtt status %q: expected 1 to %d bytes of UTF-8", quoteShort([]byte(payload)), MaxStatusLen)
	}
	p.setRetained(p.topics.Status, []byte(payload), func() { p.status = payload })
	return nil
}

// setRetained records a retained control message and queues it when
// connected (onConnect queues it otherwise).
func (p *Publisher) setRetained(topic string, data []byte, set func()) {
	p.mu.Lock()
	set()
	started, closed := p.started, p.closed
	p.mu.Unlock()
	// Recorded before the check: if the connection comes up in between,
	// onConnect queues the new value (and the sender sends it once).
	if started && !closed && p.client.IsConnectionOpen() {
		p.box.setControl(topic, data)
	}
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

// publish queues payload (owned by the callee from here on).
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
	}
	c := p.classify(topic)
	if limit := p.maxPayload(topic); len(payload) > limit {
		p.box.noteTooLarge(c)
		return &PayloadTooLargeError{Topic: topic, Size: len(payload), Limit: limit, Learned: limit < p.opts.MaxPayload}
	}
	if qos == 0 && !p.box.acceptQoS0() {
		return fmt.Errorf("mqtt publish %s: %w", topic, ErrNotConnected)
	}
	return p.box.add(topic, qos, retained, payload, c)
}

// Subscribe routes messages matching filter to h and subscribes on every
// connect. Call it before Start for topics whose messages the broker may
// have kept for this session while the daemon was down.
func (p *Publisher) Subscribe(filter string, qos byte, h Handler) error {
	if filter == "" || h == nil || qos > 2 {
		return fmt.Errorf("mqtt subscribe %q: need a non-empty filter, a handler and QoS 0..2", filter)
	}
	p.subMu.Lock()
	defer p.subMu.Unlock()
	ackedAt := new(atomic.Int64)
	mh := func(_ mqtt.Client, m mqtt.Message) {
		st := &ackState{ack: m.Ack, holds: &p.holds} // paho's Ack runs once
		h(Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained(), Duplicate: m.Duplicate(), Backlog: backlog(ackedAt), ack: st})
		if !st.held {
			m.Ack()
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("mqtt subscribe %s: %w", filter, ErrClosed)
	}
	p.subs[filter] = subscription{qos: qos, handler: mh, ackedAt: ackedAt}
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
	ackedAt.Store(time.Now().UnixNano())
	return nil
}

// OnTrigger subscribes h to the trigger topic at QoS 1; decode payloads
// with ParseTrigger.
func (p *Publisher) OnTrigger(h Handler) error {
	return p.Subscribe(p.topics.Trigger, 1, h)
}

// State returns a snapshot of the connection and the outbox.
func (p *Publisher) State() State {
	bs := p.box.stats()
	p.mu.Lock()
	status := p.status
	p.mu.Unlock()
	p.stMu.Lock()
	defer p.stMu.Unlock()
	st := State{
		Connected:         p.client.IsConnectionOpen(),
		Broker:            p.broker,
		LastError:         p.lastErr,
		LastErrorAt:       p.lastErrAt,
		Failures:          p.failures,
		Queued:            bs.queued,
		QueuedBytes:       bs.bytes,
		OnDisk:            bs.onDisk,
		NotDurable:        bs.notDurable,
		StoreError:        bs.storeErr,
		Evicted:           bs.evicted,
		Refused:           bs.refused,
		TooLarge:          bs.tooLarge,
		DroppedOffline:    bs.droppedOffline,
		MaxPayload:        p.maxPayload(p.topics.Heatmap),
		BrokerPacketLimit: bs.limit,
		ClientIDClash:     p.clash.describe(p.opts.ClientID),
		Status:            status,
	}
	st.Stalled, st.StalledWaiting = p.box.stalled(time.Now())
	if p.connects > 1 {
		st.Reconnects = p.connects - 1
	}
	return st
}

// Health reports whether messages reach the broker now and are safe on
// the way; detail says why not: not connected (the last connection error
// and how many messages wait), a stalled connection (State.Stalled), a
// likely client-id clash, or an outbox that cannot write (alarms held in
// memory only). It satisfies the
// health-checker interface of the HTTP API.
func (p *Publisher) Health() (bool, string) {
	st := p.State()
	p.mu.Lock()
	started, closed := p.started, p.closed
	p.mu.Unlock()
	var problems []string
	if !st.Connected {
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
		problems = append(problems, d)
	}
	if st.Connected && st.Stalled > 0 {
		problems = append(problems, fmt.Sprintf("connected to %s, but stalled: the broker has acknowledged nothing for %s while %d messages await it",
			st.Broker, st.Stalled.Round(time.Second), st.StalledWaiting))
	}
	if st.ClientIDClash != "" {
		problems = append(problems, st.ClientIDClash)
	}
	if st.StoreError != "" {
		d := fmt.Sprintf("outbox error: %s", st.StoreError)
		if st.NotDurable > 0 {
			d += fmt.Sprintf(" (%d alarms/results held in memory only)", st.NotDurable)
		}
		problems = append(problems, d)
	}
	if len(problems) > 0 {
		return false, strings.Join(problems, "; ")
	}
	d := "connected to " + st.Broker
	if st.Queued > 0 {
		d += fmt.Sprintf(", %d messages awaiting acknowledgement", st.Queued)
	}
	return true, d
}

// Goodbye bounds for Close: how long the queue may drain first (and how
// long without any acknowledgement before that stops), and how long the
// offline status may take to be acknowledged.
const (
	closeFlushMax   = 2 * time.Second
	closeStalled    = 300 * time.Millisecond
	closeGoodbyeMax = time.Second
	closeQuiesce    = 250 * time.Millisecond
)

// Close says goodbye: it lets the sender hand over what is queued while
// the broker keeps acknowledging (at most 2 s, or half of ctx's time),
// publishes "offline" (retained), waits for its acknowledgement (at most
// 1 s), and disconnects (DISCONNECT, so the broker discards the Last Will).
// Each wait also ends as soon as the connection is lost or ctx ends: Close
// never waits for a broker that is going away. Messages still queued stay
// in the outbox for the next start; the error counts those on disk, and
// those lost because they were held in memory only.
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
	connected := p.client.IsConnectionOpen
	flushBy := time.Now().Add(closeFlushMax)
	if dl, ok := ctx.Deadline(); ok {
		flushBy = minTime(flushBy, time.Now().Add(time.Until(dl)/2))
	}
	acks, progressAt := p.box.acknowledged(), time.Now()
	waitUntil(ctx, flushBy, func() bool {
		if a := p.box.acknowledged(); a != acks {
			acks, progressAt = a, time.Now()
		}
		return p.box.idle() || !connected() || time.Since(progressAt) > closeStalled
	})

	close(p.stopSender)
	select { // the sender may be inside paho's Publish; the goodbye does not depend on it
	case <-p.senderDone:
	case <-time.After(100 * time.Millisecond):
	}
	// Held messages are acknowledged on this connection, which is closed
	// for good: their handlers' owners answer or run them (a stop answers
	// them "stopping"; a reload onto another broker or client id runs
	// them), and the session would otherwise deliver them again to
	// whoever connects with this client id next.
	p.holds.ackAll(ctx)
	if connected() {
		tok := p.client.Publish(p.topics.Status, 1, true, []byte(StatusOffline))
		waitUntil(ctx, time.Now().Add(closeGoodbyeMax), func() bool {
			select {
			case <-tok.Done():
				return true
			default:
				return !connected()
			}
		})
	}
	quiesce := closeQuiesce
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < quiesce {
		quiesce = max(time.Until(dl), time.Millisecond)
	}
	p.client.Disconnect(uint(quiesce.Milliseconds()))
	handlers := make(chan struct{})
	go func() { p.onConn.Wait(); close(handlers) }()
	select { // a connect handler still subscribing ends with the connection
	case <-handlers:
	case <-ctx.Done():
	}
	p.box.sweep(time.Now(), true) // a clean stop: the broker has what it acknowledged
	return p.closeReport(p.box.stats())
}

// closeReport says what Close leaves behind: only what is on disk is
// "kept" for the next connection to the folder (a reload's replacement or
// the next start).
func (p *Publisher) closeReport(st outboxStats) error {
	if st.queued == 0 {
		p.log.Info("mqtt closed")
		return nil
	}
	if p.opts.StoreDir == "" {
		return fmt.Errorf("mqtt close: %d messages not acknowledged by the broker are lost (no StoreDir)", st.queued)
	}
	var parts []string
	if st.onDisk > 0 {
		parts = append(parts, fmt.Sprintf("%d messages not acknowledged by the broker, kept in %s for the next connection to that folder (a reload's replacement, or the next start)", st.onDisk, p.opts.StoreDir))
	}
	if st.notDurable > 0 {
		parts = append(parts, fmt.Sprintf("%d alarms/results are lost: the outbox could not write them (%s)", st.notDurable, st.storeErr))
	}
	if rest := st.queued - st.onDisk - st.notDurable; rest > 0 {
		parts = append(parts, fmt.Sprintf("%d images or QoS 0 messages not sent are dropped", rest))
	}
	return fmt.Errorf("mqtt close: %s", strings.Join(parts, "; "))
}

// waitUntil polls done every 10 ms until it is true, deadline passes or
// ctx ends.
func waitUntil(ctx context.Context, deadline time.Time, done func() bool) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !done() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
