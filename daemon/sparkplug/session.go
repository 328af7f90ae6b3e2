package sparkplug

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// session is one MQTT connection: one CONNECT, one bdSeq, one NDEATH.
type session struct {
	client mqtt.Client
	bdSeq  uint64
	ready  bool       // subscribed: births may go out (guarded by Node.mu)
	lost   chan error // the connection dropped (paho's handler)
	end    chan string
	sent   sentLog // the packets the writer handed to paho (learnLimit)
	// lesson: the connection was lost right after a suspect packet
	// (learnFromLoss), not as another client with our id would end it.
	lesson bool
}

// sentLog remembers the packets a session handed to paho, each by its
// size and the bytes of the Mask it carries: those of the last lossWindow
// one by one, the largest before them as outlived (the connection outlived
// them: the broker took them). QoS 0 has no acknowledgement to learn a
// broker's packet limit from, as the JSON publisher does: a connection lost
// right after a packet larger than any outlived, carrying a Mask larger
// than any outlived, is the sign. Only a Mask makes a packet large, but a
// DBIRTH carries the current one again, a few KB larger than the DDATA
// that carried it first: a DBIRTH with a Mask larger than every packet
// outlived is a sign too, or a broker whose limit lies between the two
// dropped every birth for good (a rebirth after a mask went through). A
// broker restarted right after two births in a row reads as a limit
// between them, which costs no more than the Mask moved from the DBIRTH
// into a DDATA of its own (fitLocked).
type sentLog struct {
	mu     sync.Mutex
	good   outlived
	recent []sentPacket
}

// outlived is the largest packet, the largest Mask and the largest DBIRTH
// carrying a Mask that a connection outlived (or, as suspect's recent, was
// handed within lossWindow of a loss), in bytes.
type outlived struct{ size, mask, maskBirth int }

func (o *outlived) add(p sentPacket) {
	o.size, o.mask = max(o.size, p.size), max(o.mask, p.mask)
	if p.birth && p.mask > 0 {
		o.maskBirth = max(o.maskBirth, p.size)
	}
}

// merge raises o to what b outlived.
func (o *outlived) merge(b outlived) {
	o.size, o.mask, o.maskBirth = max(o.size, b.size), max(o.mask, b.mask), max(o.maskBirth, b.maskBirth)
}

// sentPacket is a packet handed to paho: its size and the bytes of its
// Mask (0: none); birth marks a DBIRTH.
type sentPacket struct {
	size, mask int
	birth      bool
	at         time.Time
}

// lossWindow is how soon after a packet a lost connection points at it:
// a broker drops a connection over a packet as it reads it (mosquitto's
// max_packet_size), and paho learns of it at once.
const lossWindow = 2 * time.Second

// add records a packet p handed at p.at.
func (l *sentLog) add(p sentPacket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fold(p.at.Add(-lossWindow))
	if len(l.recent) >= 256 {
		// Hundreds of packets within the window: the oldest counts as
		// taken, for memory's sake (it only raises what was outlived).
		l.good.add(l.recent[0])
		l.recent = slices.Delete(l.recent, 0, 1)
	}
	l.recent = append(l.recent, p)
}

// fold moves the packets handed before t into good.
func (l *sentLog) fold(t time.Time) {
	i := 0
	for ; i < len(l.recent) && l.recent[i].at.Before(t); i++ {
		l.good.add(l.recent[i])
	}
	l.recent = slices.Delete(l.recent, 0, i)
}

// all is what every packet handed comes to, as if outlived.
func (l *sentLog) all() outlived {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.good
	for _, p := range l.recent {
		o.add(p)
	}
	return o
}

// suspect is, for a loss at t, the packets handed within lossWindow
// before it (their largest size and Mask) and what the connection
// outlived before them.
func (l *sentLog) suspect(t time.Time) (recent, good outlived) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fold(t.Add(-lossWindow))
	for _, p := range l.recent {
		recent.add(p)
	}
	return recent, l.good
}

// run connects, serves the session until it ends, and connects again
// with the next bdSeq, until Close.
func (n *Node) run() {
	// failures paces the next CONNECT (failed ones and short sessions);
	// short counts short sessions in a row for the clash warning only,
	// and away is when a CONNECT last failed: a broker restarted again
	// and again ends sessions within seconds too, and two failed CONNECTs
	// while it was down and one short session after made the warning's
	// three, "another client may be using this client id" of a broker
	// restart. In a clash the broker is up and takes every CONNECT.
	failures, short := 0, 0
	var away time.Time
	for {
		select {
		case <-n.stop:
			return
		default:
		}
		n.pollCamera()
		bd, err := n.bd.next()
		if err != nil {
			n.log.Error("sparkplug bdSeq not saved; after a restart it may be used again", "bdSeq", bd, "err", err)
		}
		s := &session{bdSeq: bd, lost: make(chan error, 1), end: make(chan string, 1)}
		s.client = n.newClient(s)
		if err := n.connect(s); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			failures++
			short, away = 0, time.Now()
			wait := backoff(failures, n.o.MaxReconnectInterval)
			args := []any{"brokers", strings.Join(n.o.Brokers, ","), "client_id", n.o.ClientID,
				"attempt", failures, "bdSeq", bd, "error", err, "retry_in", wait}
			// The JSON connection's line gives this advice; the edge node's,
			// to the same broker, left the operator to guess.
			if h := mqttpub.ConnectHint(err); h != "" {
				args = append(args, "hint", h)
			}
			n.log.Warn("sparkplug connect failed", args...)
			n.mu.Lock()
			n.lastErr = err.Error()
			n.mu.Unlock()
			if !n.sleep(wait) {
				return
			}
			continue
		}
		began := time.Now()
		err = n.serve(s)
		switch {
		case errors.Is(err, ErrClosed):
			return
		case err == nil && s.lesson:
			// Lost over a packet the broker would not take: the limit is
			// being learned, and the next session goes without it. Counted
			// as short, these sessions warned of a client-id clash and
			// waited seconds, with the device offline to SCADA meanwhile.
		case err != nil || time.Since(began) < shortSession:
			// A session that ends within seconds of its CONNECT (another
			// client with the same id takes it over, a broker that refuses
			// our publishes) would otherwise reconnect at once, forever,
			// each time burning a bdSeq and sending a death and a birth.
			failures++
			wait := backoff(failures, n.o.MaxReconnectInterval)
			if err == nil && (away.IsZero() || time.Since(away) >= brokerAwayWindow) {
				short++
				if short == shortSessionsBeforeWarning {
					n.log.Warn("sparkplug sessions keep ending within seconds of connecting; another client may be using this client id, reconnecting with backoff",
						"client_id", n.o.ClientID, "sessions", short, "retry_in", wait)
				}
			}
			if !n.sleep(wait) {
				return
			}
		default:
			failures, short = 0, 0
		}
	}
}

// shortSession is how long a session must last for the next connection
// not to wait; shortSessionsBeforeWarning short sessions in a row are
// logged once as a probable client-id clash.
// Short sessions within brokerAwayWindow of a failed CONNECT are not
// counted: the broker was away, and one restarted again within the
// backoff shows no failed CONNECT of its own. A clash goes on for ever,
// so one that begins right after an outage is still warned of, later.
const (
	shortSession               = 5 * time.Second
	shortSessionsBeforeWarning = 3
	brokerAwayWindow           = 30 * time.Second
)

// connect sends the CONNECT with this session's NDEATH as the Will.
func (n *Node) connect(s *session) error {
	tok := s.client.Connect()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-n.stop:
		go func() { <-tok.Done(); s.client.Disconnect(0) }()
		return ErrClosed
	}
}

// serve subscribes, publishes the births (now, or once the primary host is
// online) and waits for the session to end: nil when it ended as sessions
// do (connection lost, primary host offline), ErrClosed on Close, another
// error when it could not be set up.
func (n *Node) serve(s *session) error {
	n.mu.Lock()
	if n.closed { // connected as Close came: nothing counts after it
		n.mu.Unlock()
		s.client.Disconnect(0)
		return ErrClosed
	}
	n.sess, n.born, n.hostUp, n.lastErr = s, false, false, ""
	n.stat.sessions++
	n.stat.bdSeq, n.stat.hasBdSeq = s.bdSeq, true
	n.node.set(nBdSeq, sppb.LongValue(int64(s.bdSeq)), nowMS())
	n.mu.Unlock()
	n.log.Info("sparkplug connected", "client_id", n.o.ClientID, "bdSeq", s.bdSeq)

	subs := []struct {
		topic string
		h     func(mqtt.Message)
	}{
		{n.topics.NCMD, func(m mqtt.Message) { n.onCommand(false, m) }},
		{n.topics.DCMD, func(m mqtt.Message) { n.onCommand(true, m) }},
	}
	if n.topics.STATE != "" {
		subs = append(subs, struct {
			topic string
			h     func(mqtt.Message)
		}{n.topics.STATE, func(m mqtt.Message) { n.onState(s, m.Payload()) }})
	}
	for _, sub := range subs {
		h := sub.h
		tok := s.client.Subscribe(sub.topic, 1, func(_ mqtt.Client, m mqtt.Message) { h(m) })
		if !tok.WaitTimeout(n.o.WriteTimeout) || tok.Error() != nil {
			err := tok.Error()
			if err == nil {
				err = fmt.Errorf("no SUBACK within %s", n.o.WriteTimeout)
			}
			n.log.Warn("sparkplug subscribe failed; connecting again", "topic", sub.topic, "error", err)
			n.leave(s, "subscribe failed")
			return fmt.Errorf("subscribe %s: %w", sub.topic, err)
		}
	}
	n.mu.Lock()
	s.ready = true
	if n.o.PrimaryHostID == "" {
		n.birthLocked("connected")
	} else if n.hostUp {
		n.birthLocked("connected, primary host online")
	} else {
		n.log.Info("sparkplug waiting for the primary host to be online", "state_topic", n.topics.STATE)
	}
	n.mu.Unlock()

	select {
	case err := <-s.lost:
		n.mu.Lock()
		n.sess, n.born = nil, false
		n.lastErr = err.Error()
		n.mu.Unlock()
		// paho's error (EOF, a reset) is the same whether the broker
		// dropped the connection, and publishes the Will, or went away
		// itself, and publishes nothing: the line says both.
		n.log.Warn("sparkplug connection lost; the broker publishes the NDEATH (the Will) if it is still up", "bdSeq", s.bdSeq, "error", err)
		s.lesson = n.learnFromLoss(s, time.Now())
		return nil
	case reason := <-s.end:
		n.leave(s, reason)
		n.outlive(s)
		return nil
	case <-n.stop:
		n.leave(s, "closing")
		n.outlive(s)
		return ErrClosed
	}
}

// outlive records that the connection of s outlived every packet it was
// handed (it ended on purpose, after them).
func (n *Node) outlive(s *session) {
	o := s.sent.all()
	n.learn.Lock()
	n.outlived.merge(o)
	n.learn.Unlock()
}

// leave ends the session on purpose: NDEATH (QoS 1, acknowledged before
// going on), then DISCONNECT, so hosts learn of it at once rather than
// after the keepalive
// (tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath).
// The NDEATH follows at most the message being handed to paho: the data
// messages still queued for the session are dropped, counted
// (Stats.DroppedLeaving) and logged, not sent first, or a long queue
// behind a slow link (up to maxQueuedBytes) held back the death a primary
// host waits for, showing it data of a node that had decided to leave. No
// data of the session follows its death; the values dropped go out with
// the next session's births.
func (n *Node) leave(s *session, reason string) {
	n.mu.Lock()
	if n.sess == s {
		n.sess, n.born = nil, false
	}
	n.mu.Unlock()
	// Nothing more is queued for s: sess is no longer s.
	if dropped := n.wire.leave(s); dropped > 0 {
		n.mu.Lock()
		n.stat.droppedLeaving += uint64(dropped)
		n.mu.Unlock()
		n.log.Warn("sparkplug leaving: queued data dropped so that the NDEATH goes at once; the next births carry the latest values",
			"reason", reason, "bdSeq", s.bdSeq, "dropped", dropped)
	}
	tok := s.client.Publish(n.topics.NDEATH, 1, false, n.deathPayload(s.bdSeq))
	if !tok.WaitTimeout(n.o.WriteTimeout) || tok.Error() != nil {
		n.log.Warn("sparkplug NDEATH not acknowledged before disconnecting", "bdSeq", s.bdSeq, "error", tok.Error())
	}
	s.client.Disconnect(250)
	n.log.Info("sparkplug session ended", "reason", reason, "bdSeq", s.bdSeq)
}

// deathPayload is the NDEATH: a timestamp and only the bdSeq metric, no
// seq (tck-id-topics-ndeath-payload, tck-id-topics-ndeath-seq).
func (n *Node) deathPayload(bdSeq uint64) []byte {
	now := nowMS()
	p := sppb.Payload{Timestamp: now, Metrics: []sppb.Metric{{Name: "bdSeq", Timestamp: now, DataType: sppb.TypeInt64,
		Value: sppb.LongValue(int64(bdSeq))}}}
	b, err := p.Marshal()
	if err != nil { // a constant payload: cannot happen
		panic("sparkplug NDEATH: " + err.Error())
	}
	return b
}

func (n *Node) newClient(s *session) mqtt.Client {
	co := mqtt.NewClientOptions()
	for _, b := range n.o.Brokers {
		co.AddBroker(b)
	}
	if n.o.TLS != nil {
		co.SetTLSConfig(n.o.TLS)
	}
	pingTimeout := min(10*time.Second, n.o.KeepAlive)
	co.SetClientID(n.o.ClientID).
		SetUsername(n.o.Username).
		SetPassword(n.o.Password).
		SetProtocolVersion(4).
		// Sparkplug 3.0 requires clean sessions; paho's own reconnect would
		// resend the first CONNECT's Will, whose bdSeq must change.
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true). // commands in the order the host sent them
		SetKeepAlive(n.o.KeepAlive).
		SetPingTimeout(pingTimeout).
		SetConnectTimeout(n.o.ConnectTimeout).
		SetWriteTimeout(n.o.WriteTimeout).
		SetDialer(&net.Dialer{Timeout: n.o.ConnectTimeout}).
		SetBinaryWill(n.topics.NDEATH, n.deathPayload(s.bdSeq), 1, false).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case s.lost <- err:
			default:
			}
		}).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			n.log.Debug("sparkplug message on a topic without handler", "topic", m.Topic())
		})
	return mqtt.NewClient(co)
}

// hostAwayLocked reports whether births must wait for the primary host:
// one is configured and its STATE, as this session received it, does not
// say online (Sparkplug 3.0: no birth before the primary host is online).
func (n *Node) hostAwayLocked() bool { return n.o.PrimaryHostID != "" && !n.hostUp }

// birthLocked publishes NBIRTH (seq 0) and DBIRTH with every metric, if
// the session is subscribed and, with a primary host, that host is online.
func (n *Node) birthLocked(reason string) {
	s := n.sess
	if s == nil || !s.ready || n.hostAwayLocked() || n.closed {
		return
	}
	now := nowMS()
	n.born = false
	n.seq = 0
	n.maskFollows = false
	n.scratch = n.node.birth(n.scratch[:0], now)
	nb, err := n.encodeLocked(n.topics.NBIRTH, now, 0)
	if err != nil {
		return
	}
	n.scratch = n.dev.birth(n.scratch[:0], now)
	devMetrics := len(n.scratch)
	db, err := n.encodeLocked(n.topics.DBIRTH, now, 1)
	if err != nil {
		return
	}
	ms := []wireMsg{nb, db}
	if n.maskFollows { // fitLocked left the Mask out of the DBIRTH
		n.scratch = n.dev.changes(n.scratch[:0])
		dd, err := n.encodeLocked(n.topics.DDATA, now, 2)
		if err != nil {
			return
		}
		ms = append(ms, dd)
	}
	if err := n.queueLocked(ms...); err != nil {
		return
	}
	n.born = true
	n.stat.births++
	n.stalled = false // the queue took a whole birth: the next stall is another
	n.log.Info("sparkplug birth", "reason", reason, "bdSeq", s.bdSeq, "node_metrics", numNode, "device_metrics", devMetrics,
		"mask_in_ddata", len(ms) > 2)
}

// flushLocked publishes the metrics of c changed since the last message
// as NDATA or DDATA; ErrOffline without a Sparkplug session (the values go
// out with the next birth).
func (n *Node) flushLocked(c *catalog, topic string) error {
	if !n.born {
		return ErrOffline
	}
	n.scratch = c.changes(n.scratch[:0])
	if len(n.scratch) == 0 {
		return nil
	}
	return n.sendLocked(topic, nowMS())
}

// sendLocked encodes n.scratch as the payload of the session's next
// message, with the next seq, and queues it for the writer (wire.go),
// which publishes it at QoS 0 outside the lock. Taken under the lock, seq
// and queue order agree. A full queue (a stalled connection) refuses it
// with ErrOffline and ends the births: the values go out with the next
// birth, which the stats ticker retries, once the queue has room.
func (n *Node) sendLocked(topic string, now uint64) error {
	m, err := n.encodeLocked(topic, now, n.seq)
	if err != nil {
		return err
	}
	if err := n.queueLocked(m); err != nil {
		n.stat.queueFull++
		return err
	}
	return nil
}

// encodeLocked encodes n.scratch as the payload of a message on topic
// with seq, for queueLocked.
func (n *Node) encodeLocked(topic string, now uint64, seq uint8) (wireMsg, error) {
	p := sppb.Payload{Timestamp: now, Metrics: n.scratch, Seq: uint64(seq), HasSeq: true}
	n.fitLocked(topic, &p)
	b, err := p.AppendMarshal(n.buf[:0])
	n.buf = b[:0]
	if err != nil {
		if msg := err.Error(); msg != n.lastEncE {
			n.log.Warn("sparkplug message not encoded", "topic", topic, "error", err)
			n.lastEncE = msg
		}
		return wireMsg{}, err
	}
	mask := 0
	if mk := &n.dev.m[dMask]; topic == n.topics.DDATA || topic == n.topics.DBIRTH {
		for _, m := range p.Metrics {
			if m.HasAlias && m.Alias == mk.alias && !m.IsNull {
				mask = len(m.Value.Bytes)
			}
		}
	}
	// paho keeps the slice until its writer has sent it.
	return wireMsg{s: n.sess, topic: topic, payload: bytes.Clone(b), mask: mask, birth: topic == n.topics.DBIRTH,
		data: topic == n.topics.DDATA || topic == n.topics.NDATA}, nil
}

// queueLocked queues ms, all or none (a birth's NBIRTH and DBIRTH: an
// NBIRTH queued without its DBIRTH left the device without a birth until
// the next), advancing seq past them. A full queue refuses them with
// ErrOffline and ends the births (see sendLocked).
func (n *Node) queueLocked(ms ...wireMsg) error {
	if !n.wire.push(ms...) {
		n.born = false
		if !n.stalled {
			n.log.Warn("sparkplug connection stalled: the send queue is full; data is held back and the births go again once it drains",
				"topic", ms[0].topic, "max_messages", maxQueued, "max_bytes", maxQueuedBytes, "write_timeout", n.o.WriteTimeout)
			n.stalled = true
		}
		return ErrOffline
	}
	n.seq += uint8(len(ms)) // uint8: 255 wraps to 0
	return nil
}

// fitLocked keeps a DDATA or DBIRTH within the payload limit: a Mask that
// would take it over goes as null, stamped with its inspection's time, so
// that a host learns that this inspection's mask is not coming rather than
// keeping the previous part's on the tag, and stays null until the next
// mask (a later birth does not carry it either). The other metrics, the
// score and verdict among them, go out. Counted (MasksTooLarge) and logged
// once per limit, as the JSON publisher logs a limit it learns.
//
// A DBIRTH whose other metrics leave no room for a Mask that fits a DDATA
// of its own (the pipeline sizes masks to MaxMask, a DDATA's room), or
// larger than the broker took since births were lost over it
// (learnBirthLocked), carries it as null and sets maskFollows: birthLocked
// sends it in a DDATA right after. Nulled for good, it told a host after every reconnect and rebirth
// that a mask it had received was not coming, and counted it as too large.
func (n *Node) fitLocked(topic string, p *sppb.Payload) {
	mk := &n.dev.m[dMask]
	if mk.null || mk.omitted || topic != n.topics.DDATA && topic != n.topics.DBIRTH {
		return
	}
	i := slices.IndexFunc(p.Metrics, func(m sppb.Metric) bool { return m.HasAlias && m.Alias == mk.alias })
	if i < 0 {
		return
	}
	limit, src := n.payloadLimit(topic)
	size := p.Size()
	split := topic == n.topics.DBIRTH && n.birthTooLarge(size)
	if size <= limit && !split {
		return
	}
	m := &p.Metrics[i]
	maskBytes := len(m.Value.Bytes)
	if topic == n.topics.DBIRTH {
		alone := sppb.Payload{Timestamp: p.Timestamp, Seq: 2, HasSeq: true, Metrics: []sppb.Metric{{Alias: m.Alias, HasAlias: true,
			Timestamp: m.Timestamp, Value: m.Value, MetaData: m.MetaData}}}
		if ddLimit, _ := n.payloadLimit(n.topics.DDATA); alone.Size() <= ddLimit {
			m.IsNull, m.Value, m.MetaData = true, sppb.Value{}, nil
			mk.dirty = true // DDATA's changes take it
			n.maskFollows = true
			return
		}
		if size <= limit { // too large for a DDATA of its own: the DBIRTH carries it
			return
		}
	}
	m.IsNull, m.Value, m.MetaData = true, sppb.Value{}, nil
	mk.val, mk.null = sppb.Value{}, true
	n.tooLarge++
	if n.tooLargeLogged != limit {
		n.log.Warn("sparkplug Mask sent as null: with it the message would exceed the payload limit; the inspection's other metrics go out",
			"topic", topic, "mask_bytes", maskBytes, "payload_bytes", size, "limit", limit, "limit_from", src,
			"hint", "set mqtt.max_payload to what the broker takes, or a smaller mqtt.image_max_side")
		n.tooLargeLogged = limit
	}
}

// payloadLimit is the largest payload published on topic now and where
// it comes from: MaxPayload, or less for a packet limit learned from the
// broker, by another connection (Options.PacketLimit) or by this node's
// own (learnFromLoss).
func (n *Node) payloadLimit(topic string) (limit int, from string) {
	limit, from = n.o.MaxPayload, "mqtt.max_payload"
	packet, by := int(n.packetLimit.Load()), "learned from the broker, which dropped this connection right after larger messages"
	if n.o.PacketLimit != nil {
		if l := n.o.PacketLimit(); l > 0 && (packet == 0 || l < packet) {
			packet, by = l, "learned from the broker, which dropped the JSON connection over a larger message"
		}
	}
	if packet > 0 {
		if pl := mqttpub.PayloadLimit(topic, 0, packet); pl < limit {
			return pl, by
		}
	}
	return limit, from
}

// learnFromLoss learns the broker's packet limit from the node's own
// connection: lost within lossWindow of a packet larger than every packet
// the node's connections outlived, carrying a Mask larger than every Mask
// they outlived (sentLog), in two sessions in a row. Without it a broker
// that limits packets (mosquitto's max_packet_size) below mqtt.max_payload
// dropped the connection over a large Mask, and then over every DBIRTH
// that carried it: a death and a birth per session, no device data, until
// a smaller mask came. Learned, larger Masks go as null (fitLocked) and
// the pipeline shrinks masks to fit (MaxMask). Kept for the node's life
// (and a reload's replacement to the same brokers), logged once. A loss
// right after a packet no larger than the limit learned is a suspect all
// the same (the limit learned was too high) and lowers it by the same
// rule. It reports whether the loss was a suspect that counts: the first
// of two, or the second when it lowered the limit; each pair lowers it,
// so a broker that ends sessions for another reason is not spared the
// client-id clash warning and its backoff for long.
func (n *Node) learnFromLoss(s *session, at time.Time) (lesson bool) {
	recent, good := s.sent.suspect(at)
	n.learn.Lock()
	defer n.learn.Unlock()
	n.outlived.merge(good)
	good = n.outlived
	if recent.size <= good.size || recent.mask <= good.mask {
		n.suspect = 0
		return n.learnBirthLocked(recent, good)
	}
	n.birthSuspects = 0
	prev := n.suspect
	n.suspect = recent.size
	if prev == 0 {
		return true
	}
	size := min(recent.size, prev)
	limit := mqttpub.LearnPacketLimit(size, good.size)
	if old := n.packetLimit.Load(); old != 0 && int(old) <= limit {
		return false
	}
	n.packetLimit.Store(int64(limit))
	n.suspect = 0
	n.log.Warn("sparkplug connection lost twice right after a message with a larger Mask than any taken before: the broker's packet limit is taken as lower; larger Masks are shrunk, or go as null, for this run",
		"packet_bytes", size, "outlived_bytes", good.size, "packet_limit", limit,
		"hint", "set mqtt.max_payload to what the broker takes (mosquitto max_packet_size, message_size_limit)")
	return true
}

// learnBirthLocked learns, from a loss that taught no packet limit, that
// births must send the Mask apart: lost within lossWindow of a DBIRTH
// carrying a Mask, larger than every packet the node's connections
// outlived, in two sessions in a row. The Mask itself went through in a
// DDATA, so it is no suspect for learnFromLoss, but a broker whose limit
// lies between that DDATA and the DBIRTH (a few KB more) dropped every
// birth: a node asked for a rebirth then lost every session for good, no
// data reaching SCADA and a client-id clash warned of. From then on a
// DBIRTH larger than every packet outlived carries the Mask as null and a
// DDATA of the Mask alone follows (fitLocked). Unlike a packet limit it
// cuts no mask: a broker restarted right after two births in a row, which
// it cannot tell from a limit, costs nothing but that extra DDATA. It
// reports whether the loss counts as such a lesson, as learnFromLoss.
// Called with n.learn held.
func (n *Node) learnBirthLocked(recent, good outlived) (lesson bool) {
	if recent.maskBirth <= good.size {
		n.birthSuspects = 0
		return false
	}
	n.birthSuspects++
	if n.birthSuspects < 2 {
		return true
	}
	n.birthSuspects = 0
	if !n.splitBirths {
		n.splitBirths = true
		n.log.Warn("sparkplug connection lost twice right after a DBIRTH carrying the Mask, larger than any message the broker took: births now send the Mask in a DDATA of its own right after the DBIRTH, for this run",
			"dbirth_bytes", recent.maskBirth, "outlived_bytes", good.size,
			"hint", "set mqtt.max_payload to what the broker takes (mosquitto max_packet_size, message_size_limit)")
	}
	return true
}

// birthTooLarge says whether a DBIRTH of size bytes carrying a Mask must
// send the Mask apart (learnBirthLocked).
func (n *Node) birthTooLarge(size int) bool {
	n.learn.Lock()
	defer n.learn.Unlock()
	return n.splitBirths && size > n.outlived.size
}

// hostState is the last STATE accepted from the primary host.
type hostState struct {
	known  bool
	online bool
	ts     uint64
}

// accept says whether STATE st is news: a later timestamp, or the same
// one repeated (the retained message after a reconnect) or going offline
// (a host's death carries its birth's timestamp). An online STATE with the
// timestamp of an offline one is a stale birth and is ignored, as is
// anything older (tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp).
func (h *hostState) accept(st hostStatus) bool {
	ok := !h.known || st.Timestamp > h.ts || st.Timestamp == h.ts && (st.Online == h.online || !st.Online)
	if ok {
		h.known, h.online, h.ts = true, st.Online, st.Timestamp
	}
	return ok
}

// hostStatus is the JSON payload of spBv1.0/STATE/<host_id>
// (tck-id-host-topic-phid-birth-payload): {"online": true|false,
// "timestamp": <ms since the epoch>}.
type hostStatus struct {
	Online    bool
	Timestamp uint64
}

// maxStatePayload bounds what parseState reads: a STATE is tiny.
const maxStatePayload = 1024

// parseState decodes a STATE payload; both keys are required, others are
// ignored (a later specification may add some).
func parseState(b []byte) (hostStatus, error) {
	if len(b) > maxStatePayload {
		return hostStatus{}, fmt.Errorf("payload is %d bytes, more than %d", len(b), maxStatePayload)
	}
	var raw struct {
		Online    *bool   `json:"online"`
		Timestamp *uint64 `json:"timestamp"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		const want = `expected a JSON object {"online": true|false, "timestamp": <ms since the epoch>}`
		var te *json.UnmarshalTypeError
		switch t := bytes.TrimSpace(b); {
		case errors.As(err, &te) && te.Field == "":
			// Valid JSON, but not an object: true, "ONLINE", 5, [1].
			return hostStatus{}, fmt.Errorf("%s: got a JSON %s", want, te.Value)
		case errors.As(err, &te):
			// encoding/json's own words name Go's types ("Go struct
			// field .online of type bool"): a SCADA engineer reads JSON's.
			what := `a boolean`
			if te.Field == "timestamp" {
				what = `a whole number of ms since the epoch, 0 or more`
			}
			return hostStatus{}, fmt.Errorf("%s: %q is %s, expected %s", want, te.Field, te.Value, what)
		case bytes.Equal(t, []byte("ONLINE")) || bytes.Equal(t, []byte("OFFLINE")):
			// Sparkplug B 2.2 hosts publish this text on STATE/<host_id>.
			return hostStatus{}, fmt.Errorf("%s: got %s, the text form of Sparkplug B 2.2; inspectd follows Sparkplug 3.0 (a host of 3.0 publishes the JSON object, retained)", want, t)
		case len(t) == 0:
			return hostStatus{}, fmt.Errorf("%s: the payload is empty", want)
		}
		return hostStatus{}, fmt.Errorf("%s: %s", want, strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return hostStatus{}, errors.New("extra data after the JSON object")
	}
	if raw.Online == nil || raw.Timestamp == nil {
		return hostStatus{}, errors.New(`expected both "online" (a boolean) and "timestamp" (ms since the epoch)`)
	}
	return hostStatus{Online: *raw.Online, Timestamp: *raw.Timestamp}, nil
}

// onState handles the primary host's STATE.
func (n *Node) onState(s *session, payload []byte) {
	st, err := parseState(payload)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sess != s {
		return
	}
	if err != nil {
		n.log.Warn("sparkplug STATE refused", "topic", n.topics.STATE, "error", err)
		return
	}
	if !n.host.accept(st) {
		n.log.Info("sparkplug STATE older than the last one ignored", "online", st.Online, "timestamp", st.Timestamp)
		return
	}
	was := n.hostUp
	n.hostUp = st.Online
	if was != st.Online {
		n.log.Info("sparkplug primary host state", "host", n.o.PrimaryHostID, "online", st.Online)
	}
	switch {
	case st.Online && !n.born:
		n.birthLocked("primary host online")
	case !st.Online && n.born:
		// tck-id-operational-behavior-edge-node-termination-host-offline:
		// NDEATH, DISCONNECT and a new session that waits for the host.
		n.born = false
		select {
		case s.end <- "primary host offline":
		default:
		}
	}
}

// backoff is 1 s doubled per consecutive failure, capped at max.
func backoff(failures int, max time.Duration) time.Duration {
	d := time.Second
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// sleep waits d; false when Close was called meanwhile.
func (n *Node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.stop:
		return false
	}
}
