package mqttpub_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// TestHeldMessageRedelivered: a QoS 1 message whose handler holds it is
// not acknowledged to the broker until released, so a client that dies
// before the release (the connection cut, no Close) gets it again from its
// persistent session; a released one, or one still held at a clean Close
// (a stop, a move to another broker), is not sent again. Acknowledged
// when the handler returned, a command that a crash caught between the
// handler's enqueue and its record was lost without a reply.
func TestHeldMessageRedelivered(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	sender := collect(t, b.URL, "sender", false, "nothing/#")
	const topic = "inspectd/hold1/cmd/x"
	type mode int
	const (
		noHold mode = iota
		holdRelease
		holdClose // held at a clean Close
		holdCrash // held when the connection dies without a Close
	)
	run := func(m mode, send string) []string {
		t.Helper()
		url, px := b.URL, (*testbroker.Proxy)(nil)
		if m == holdCrash {
			px = testbroker.NewProxy(t, b.URL)
			url = px.URL
		}
		p, _ := newPublisher(t, url, "hold1", nil)
		var mu sync.Mutex
		var got []string
		must(t, p.Subscribe(topic, 1, func(msg mqttpub.Message) {
			mu.Lock()
			got = append(got, string(msg.Payload))
			mu.Unlock()
			if m != noHold {
				r := msg.Hold()
				if m == holdRelease {
					go r()
				}
			}
		}))
		must(t, p.Start())
		waitFor(t, 5*time.Second, "connected", func() bool { return p.State().Connected })
		if send != "" {
			time.Sleep(200 * time.Millisecond) // the subscription is in place
			if tok := sender.client.Publish(topic, 1, false, send); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
		waitFor(t, 5*time.Second, "a message", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 || send == "" })
		time.Sleep(300 * time.Millisecond) // an acknowledgement reaches the broker, a redelivery arrives
		if px != nil {
			px.Close() // the process dies: nothing more reaches the broker
		}
		_ = p.Close(ctxTimeout(t, 2*time.Second))
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	run(noHold, "") // the persistent session exists
	if got := run(holdCrash, "held"); len(got) != 1 || got[0] != "held" {
		t.Fatalf("first client got %q", got)
	}
	if got := run(holdClose, ""); len(got) != 1 || got[0] != "held" {
		t.Fatalf("after a crash before the release the broker sent %q, want the held message again", got)
	}
	if got := run(noHold, ""); len(got) != 0 {
		t.Fatalf("a message held at a clean Close was sent again: %q", got)
	}
	if got := run(holdRelease, "released"); len(got) != 1 || got[0] != "released" {
		t.Fatalf("got %q", got)
	}
	if got := run(noHold, ""); len(got) != 0 {
		t.Errorf("a released message was sent again: %q", got)
	}
}

// TestUnroutedMessageAcknowledged: a message the broker still sends on a
// subscription this session made before (a changed topic prefix, a
// removed trigger) and that no handler takes is acknowledged all the same.
// Left unacknowledged, as paho leaves them once auto-acknowledgement is
// off, 20 of them filled mosquitto's in-flight window and every later
// command waited behind it for ever.
func TestUnroutedMessageAcknowledged(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	sender := collect(t, b.URL, "sender", false, "nothing/#")
	const stale, live = "inspectd/hold2/old/x", "inspectd/hold2/cmd/x"
	old, _ := newPublisher(t, b.URL, "hold2", nil)
	must(t, old.Subscribe("inspectd/hold2/old/#", 1, func(mqttpub.Message) {}))
	must(t, old.Start())
	waitFor(t, 5*time.Second, "connected", func() bool { return old.State().Connected })
	time.Sleep(200 * time.Millisecond) // the subscription is in place
	must(t, old.Close(ctxTimeout(t, 2*time.Second)))

	p, _ := newPublisher(t, b.URL, "hold2", nil)
	got := make(chan string, 64) // late probes must not block the client's delivery
	must(t, p.Subscribe(live, 1, func(m mqttpub.Message) { got <- string(m.Payload) }))
	must(t, p.Start())
	waitFor(t, 5*time.Second, "connected", func() bool { return p.State().Connected })
	// Connected comes before the SUBACK (on a loaded box, well before):
	// publish until a probe arrives.
	waitFor(t, 10*time.Second, "the live filter", func() bool {
		if tok := sender.client.Publish(live, 1, false, "probe"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		select {
		case <-got:
			return true
		case <-time.After(300 * time.Millisecond):
			return false
		}
	})
	for k := range 30 {
		if tok := sender.client.Publish(stale, 1, false, fmt.Sprint(k)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	if tok := sender.client.Publish(live, 1, false, "live"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	for m := ""; m != "live"; { // a late probe may come first
		select {
		case m = <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("a command behind 30 unrouted messages never arrived: they were not acknowledged")
		}
	}
}
