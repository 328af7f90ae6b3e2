package sparkplug

import (
	"fmt"
	"sync"
	"time"

	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// The bounds of the send queue. A connection that stalls holds the writer
// in paho's Publish for up to WriteTimeout (paho's writer waits on the
// socket as long): at 50 inspections a second with a mask each, that is
// hundreds of messages. Past the bounds the node stops sending until its
// next birth (Node.sendLocked), which tells a host every current value
// again; a queue without a bound would hold masks in memory for as long as
// the connection hangs.
const (
	maxQueued      = 1024
	maxQueuedBytes = 16 << 20
)

// wireMsg is one encoded message on its way to the broker.
type wireMsg struct {
	s       *session
	topic   string
	payload []byte // owned by the queue, then by paho
	mask    int    // the bytes of the Mask it carries, 0: none (sentLog)
	birth   bool   // a DBIRTH (sentLog)
	data    bool   // a DDATA or NDATA (counted when dropped on leaving)
}

// wire is the edge node's way out: messages are queued under the node's
// lock (taken before wire's own, never after), as their seq is taken, and
// one goroutine (Node.write) hands them to paho in that order. The network
// wait is that goroutine's alone: a stalled connection no longer holds the
// node's lock, and with it the pipeline's results, the stats ticker,
// command replies and Health, for paho's write timeout. Queue order is seq
// order, so NBIRTH still goes before DBIRTH, DBIRTH before DDATA, and seq
// runs 0..255 on the wire.
type wire struct {
	mu     sync.Mutex
	cond   sync.Cond // L is &mu (Node.New)
	q      []wireMsg
	bytes  int
	busy   *session  // the session of the message being handed to paho
	busyAt time.Time // when that hand-over began
	closed bool
}

// stallHealth is how long a hand-over may wait on the connection, messages
// waiting, before Health and Stats say the node is not online: a broker
// or network that stopped taking data read online until the queue filled
// (16 MiB: minutes on a slow line, never on a quiet one). An idle
// connection, nothing to send, is no stall. What paho has written into
// the socket's buffers (some MB) does not wait here: a stall with less
// than that to send is found by the MQTT keepalive (the connection is
// lost within 1.5 keepalives).
const stallHealth = 5 * time.Second

// stalled reports how long the message being handed to paho has waited,
// when that is stallHealth or more (0 otherwise), and how many messages
// wait with it.
func (w *wire) stalled(now time.Time) (time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy == nil {
		return 0, 0
	}
	if d := now.Sub(w.busyAt); d >= stallHealth {
		return d, len(w.q) + 1
	}
	return 0, 0
}

// push queues ms, all or none; false when they would take the queue past
// its bounds (messages of any size are taken into an empty queue: the
// first after a stall, a birth of a large mask, must not be refused for
// their size). After close it drops them.
func (w *wire) push(ms ...wireMsg) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return true
	}
	size := 0
	for _, m := range ms {
		size += len(m.payload)
	}
	if len(w.q) > 0 && (len(w.q)+len(ms) > maxQueued || w.bytes+size > maxQueuedBytes) {
		return false
	}
	w.q = append(w.q, ms...)
	w.bytes += size
	w.cond.Broadcast()
	return true
}

// pop waits for the next message and marks its session busy until done;
// false once the queue is closed and empty.
func (w *wire) pop() (wireMsg, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.q) == 0 && !w.closed {
		w.cond.Wait()
	}
	if len(w.q) == 0 {
		return wireMsg{}, false
	}
	m := w.q[0]
	w.q[0] = wireMsg{}
	w.q = w.q[1:]
	w.bytes -= len(m.payload)
	w.busy, w.busyAt = m.s, time.Now()
	return m, true
}

// done ends the hand-over of the message pop returned.
func (w *wire) done() {
	w.mu.Lock()
	w.busy = nil
	w.cond.Broadcast()
	w.mu.Unlock()
}

// dropSession removes the queued messages of s and returns how many.
func (w *wire) dropSession(s *session) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	kept := w.q[:0]
	for _, m := range w.q {
		if m.s == s {
			w.bytes -= len(m.payload)
			continue
		}
		kept = append(kept, m)
	}
	dropped := len(w.q) - len(kept)
	clear(w.q[len(kept):])
	w.q = kept
	w.cond.Broadcast()
	return dropped
}

// leave removes the messages still queued for s and waits until the one
// being handed to paho, if it is s's, is done (bounded by WriteTimeout), so
// that what comes next on s's connection, its NDEATH, goes at once and no
// data of s follows it on the wire. It returns how many data messages
// (DDATA, NDATA) it removed; births removed with them are not data a host
// misses (the next session's births carry every value).
func (w *wire) leave(s *session) (data int) {
	data = w.drop(s)
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.busy == s {
		w.cond.Wait()
	}
	return data
}

// drop removes what is queued for s, as leave does, without waiting for
// the message being handed (Close, which must not wait on the broker).
func (w *wire) drop(s *session) (data int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	kept := w.q[:0]
	for _, m := range w.q {
		if m.s == s {
			w.bytes -= len(m.payload)
			if m.data {
				data++
			}
			continue
		}
		kept = append(kept, m)
	}
	clear(w.q[len(kept):])
	w.q = kept
	w.cond.Broadcast()
	return data
}

// close lets the writer end once the queue is empty.
func (w *wire) close() {
	w.mu.Lock()
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
}

// write hands the queued messages to paho in order until the queue is
// closed (run has returned) and empty. A message paho did not write
// (a write timeout on a stalled connection, a connection gone) leaves a
// gap in seq: the session's queued messages are dropped and, while the
// session lasts, the births go again at the next stats tick, so a host
// never sees data that does not follow what it has.
func (n *Node) write() {
	lastErr := ""
	for {
		m, ok := n.wire.pop()
		if !ok {
			return
		}
		// Recorded before the hand-over: paho may report the connection
		// lost over this packet before its token completes.
		m.s.sent.add(sentPacket{size: mqttpub.PacketSize(m.topic, 0, len(m.payload)), mask: m.mask, birth: m.birth, at: time.Now()})
		if err := n.hand(m); err != nil {
			// Under the node's lock, as messages are queued: a birth queued
			// after born is false is not dropped with the rest.
			n.mu.Lock()
			current := n.sess == m.s
			if current {
				n.born = false
			}
			dropped := n.wire.dropSession(m.s)
			n.mu.Unlock()
			if msg := err.Error(); msg != lastErr {
				n.log.Warn("sparkplug publish failed", "topic", m.topic, "error", err, "dropped_after", dropped,
					"births_again", current)
				lastErr = msg
			}
		} else {
			lastErr = ""
		}
		n.wire.done()
	}
}

// hand publishes one message at QoS 0, not retained
// (tck-id-topics-ndata-mqtt and the like), and waits until paho has
// written it.
func (n *Node) hand(m wireMsg) error {
	tok := m.s.client.Publish(m.topic, 0, false, m.payload)
	if !tok.WaitTimeout(n.o.WriteTimeout) {
		return fmt.Errorf("sparkplug publish %s: not written within %s", m.topic, n.o.WriteTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("sparkplug publish %s: %w", m.topic, err)
	}
	return nil
}
