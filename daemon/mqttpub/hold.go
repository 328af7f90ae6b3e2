package mqttpub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// ackState is a received message's acknowledgement: sent when its handler
// returns, unless the handler held it.
type ackState struct {
	ack   func() // paho's Message.Ack: once; blocks until the writer takes it
	held  bool   // written and read on the handler's goroutine only
	holds *holdSet
	once  sync.Once
}

// release acknowledges a held message once, without waiting on the
// connection: a stalled socket must not stall whoever made the message
// durable (the remote dispatcher, under its lock).
func (st *ackState) release() {
	st.once.Do(func() {
		st.holds.remove(st)
		st.holds.sending.Add(1)
		go func() {
			defer st.holds.sending.Add(-1)
			st.ack()
		}()
	})
}

// holdSet is the set of messages held and not yet released, so that
// Close can acknowledge them on the connection it closes.
type holdSet struct {
	mu sync.Mutex
	m  map[*ackState]struct{}
	// sending counts released acknowledgements paho has not taken yet:
	// Close waits for them, or a command answered just before a stop
	// ("stopping; not executed") would be delivered again and run after
	// the restart.
	sending atomic.Int32
}

func (h *holdSet) add(st *ackState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = make(map[*ackState]struct{})
	}
	h.m[st] = struct{}{}
}

func (h *holdSet) remove(st *ackState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, st)
}

// ackAllMax bounds how long Close waits for paho to take the
// acknowledgements of held messages.
const ackAllMax = time.Second

// ackAll acknowledges every message still held and waits until paho has
// taken those and the released ones' acknowledgements, ctx is done or
// ackAllMax has passed; later releases of them do nothing.
func (h *holdSet) ackAll(ctx context.Context) {
	h.mu.Lock()
	held := h.m
	h.m = nil
	h.mu.Unlock()
	for st := range held {
		st.once.Do(func() {
			h.sending.Add(1)
			go func() {
				defer h.sending.Add(-1)
				st.ack()
			}()
		})
	}
	// A stalled socket must not hold the stop up: at most ackAllMax.
	for by := time.Now().Add(ackAllMax); h.sending.Load() > 0 && ctx.Err() == nil && time.Now().Before(by); {
		time.Sleep(time.Millisecond)
	}
}

// Hold keeps the broker from being acknowledged (QoS 1 and 2) when the
// handler returns; the returned release acknowledges it (once; safe from
// any goroutine; it does not wait for the network). A handler that only
// enqueues a message holds it until the queue's consumer has made it
// durable: acknowledged before that, a crash in between loses it, since
// the broker then never sends it again. Close acknowledges what is still
// held (a stop or a move to another broker is not a crash). It must be
// called from the handler itself; every hold must be released.
func (m Message) Hold() (release func()) {
	if m.ack == nil {
		return func() {}
	}
	m.ack.held = true
	m.ack.holds.add(m.ack)
	return m.ack.release
}
