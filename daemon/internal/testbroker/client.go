package testbroker

import (
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Sub is one subscription a test client makes on every connect.
type Sub struct {
	Topic   string
	QoS     byte
	Handler mqtt.MessageHandler
}

// Connect connects a paho client built from o that subscribes to subs on
// every connect and reconnect, and returns once the first connect's
// subscriptions are acknowledged by the broker. paho runs the on-connect
// handler on a goroutine of its own, so a test that subscribed there and
// published right after Connect raced its own subscription: on a loaded
// machine the request went out first and its answer was never seen. o's
// own on-connect handler is replaced. The client is disconnected when the
// test ends. Fails the test when the connect or a subscription fails or
// takes longer than 20 s.
func Connect(t testing.TB, o *mqtt.ClientOptions, subs ...Sub) mqtt.Client {
	t.Helper()
	first := make(chan error, 1)
	report := func(err error) {
		select { // only the first connect is awaited
		case first <- err:
		default:
		}
	}
	o.SetOnConnectHandler(func(c mqtt.Client) {
		for _, s := range subs {
			tok := c.Subscribe(s.Topic, s.QoS, s.Handler)
			if !tok.WaitTimeout(20 * time.Second) {
				report(fmt.Errorf("test client subscribe %s: no acknowledgement in 20 s", s.Topic))
				return
			}
			if err := tok.Error(); err != nil {
				report(fmt.Errorf("test client subscribe %s: %w", s.Topic, err))
				return
			}
		}
		report(nil)
	})
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("test client connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	select {
	case err := <-first:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("test client: subscriptions not acknowledged in 30 s")
	}
	return c
}
