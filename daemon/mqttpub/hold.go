package mqttpub

import (
	"context"
	"sync"
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
		go st.ack()
	})
}

// holdSet is the set of messages held and not yet released, so that
// Close can acknowledge them on the connection it closes.
type holdSet struct {
	mu sync.Mutex
	m  map[*ackState]struct{}
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

// ackAll acknowledges every message still held and waits until paho has
// taken the acknowledgements or ctx is done; later releases of them do
// nothing.
func (h *holdSet) ackAll(ctx context.Context) {
	h.mu.Lock()
	held := h.m
	h.m = nil
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for st := range held {
			st.once.Do(st.ack)
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
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
