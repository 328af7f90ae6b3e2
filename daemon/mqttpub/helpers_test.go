package mqttpub_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testproc"
)

func newLogger(t *testing.T) (*slog.Logger, *testproc.LogBuffer) {
	lb := &testproc.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("publisher log:\n%s", lb.String())
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// message is one delivery seen by a collector.
type message struct {
	topic    string
	payload  []byte
	retained bool
}

// collector is a plain paho client that records everything delivered to
// it, standing in for the PLC/SCADA side.
type collector struct {
	client mqtt.Client
	mu     sync.Mutex
	msgs   []message
}

// collect connects a subscriber to url and subscribes filter. With
// persistent=true it keeps its session (clean session off) under clientID
// and reconnects on its own, so that the broker queues messages for it
// while it is cut off.
func collect(t *testing.T, url, clientID string, persistent bool, filter string) *collector {
	t.Helper()
	c := &collector{}
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetCleanSession(!persistent).SetProtocolVersion(4).
		SetAutoReconnect(true).SetMaxReconnectInterval(300 * time.Millisecond).
		SetConnectTimeout(2 * time.Second).SetOrderMatters(true). // record in wire order
		SetConnectionLostHandler(nil).
		// Everything lands here, including messages the broker queued for
		// this session and delivers before any Subscribe call.
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			c.mu.Lock()
			c.msgs = append(c.msgs, message{m.Topic(), append([]byte(nil), m.Payload()...), m.Retained()})
			c.mu.Unlock()
		})
	c.client = mqtt.NewClient(o)
	if tok := c.client.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("collector %s: connect %s: %v", clientID, url, tok.Error())
	}
	if tok := c.client.Subscribe(filter, 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("collector %s: subscribe %s: %v", clientID, filter, tok.Error())
	}
	t.Cleanup(func() { c.client.Disconnect(0) })
	return c
}

func (c *collector) on(topic string) []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []message
	for _, m := range c.msgs {
		if m.topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// drain returns and forgets everything received so far.
func (c *collector) drain() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.msgs
	c.msgs = nil
	return out
}

// waitFor waits up to timeout for cond, failing the test with what.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !testbroker.WaitFor(context.Background(), timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
