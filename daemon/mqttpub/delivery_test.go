package mqttpub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// TestBrokerPacketLimit is the case ../shared/cases/mqtt/mosquitto-small-packets.conf:
// a mosquitto with max_packet_size 65536 drops the connection, without a
// word, over every heatmap larger than that. 70 inspections (result at the
// default QoS 0, heatmap of 20-300 KB, an alarm every fifth) must not make
// a reconnect loop and must lose no result or alarm: heatmaps over
// max_payload are refused up front, the first larger than anything the
// broker accepted goes alone, and the drop over it teaches the publisher
// the limit (one log line each time, at most a few times).
func TestBrokerPacketLimit(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxPacketSize: 65536})
	sub := collect(t, b.URL, "scada", false, "inspectd/cam1/#")
	p, lb := newPublisher(t, b.URL, "cam1", nil)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if p.MaxPayload() != mqttpub.DefaultMaxPayload {
		t.Fatalf("MaxPayload() = %d before anything was learned", p.MaxPayload())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 70
	alarms, refused, sent := 0, 0, 0
	var tooLarge *mqttpub.PayloadTooLargeError
	for i := 1; i <= n; i++ {
		if err := p.PublishResult(sampleResult(uint64(i), ""), 0); err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		if i%5 == 0 {
			alarms++
			if err := p.PublishAlarm(sampleAlarm(uint64(i))); err != nil {
				t.Fatalf("alarm %d: %v", i, err)
			}
		}
		img := make([]byte, 20_000+rng.IntN(280_000))
		err := p.PublishHeatmap(img, 0)
		switch {
		case errors.As(err, &tooLarge):
			refused++
			if tooLarge.Topic != p.Topics().Heatmap || tooLarge.Size != len(img) || tooLarge.Limit != p.MaxPayload() ||
				!strings.Contains(err.Error(), fmt.Sprint(len(img))) || !strings.Contains(err.Error(), p.Topics().Heatmap) {
				t.Fatalf("error %v (%+v), MaxPayload %d", err, tooLarge, p.MaxPayload())
			}
		case err != nil:
			t.Fatalf("heatmap %d: %v", i, err)
		default:
			sent++
		}
		time.Sleep(20 * time.Millisecond) // a 50 fps line
	}
	waitFor(t, 15*time.Second, "all results and alarms", func() bool {
		return len(sub.on(p.Topics().Result)) >= n && len(sub.on(p.Topics().Alarm)) >= alarms
	})
	seen := map[uint64]bool{}
	for _, m := range sub.on(p.Topics().Result) {
		var r mqttpub.Result
		if err := json.Unmarshal(m.payload, &r); err != nil {
			t.Fatal(err)
		}
		seen[r.Seq] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct results of %d", len(seen), n)
	}
	st := p.State()
	learned := lb.Count("dropped the connection right after a large message")
	if st.Reconnects < 1 || st.Reconnects > 3 || uint64(learned) != st.Reconnects {
		t.Fatalf("%d reconnects, %d limit lines: want 1-3, one line each", st.Reconnects, learned)
	}
	// A QoS 1 PUBLISH on inspectd/cam1/heatmap has 29 bytes of header.
	// 65536, or 60000 from a drop at 65537-70000 bytes before the broker
	// took more than 60000 (the lower of the power of two and the round
	// number below a dropped packet is learned): never over the broker's.
	if l := st.BrokerPacketLimit; l != 65536 && l != 60000 || p.MaxPayload() != l-29 {
		t.Fatalf("learned packet limit %d, MaxPayload %d; the broker takes 65536-byte packets", l, p.MaxPayload())
	}
	for _, m := range sub.on(p.Topics().Heatmap) {
		if len(m.payload) > 65536 {
			t.Fatalf("a %d-byte heatmap got through a 65536-byte broker", len(m.payload))
		}
	}
	// Every heatmap accepted is delivered or, once over the learned limit,
	// set aside; none is lost otherwise or delivered twice.
	delivered := len(sub.on(p.Topics().Heatmap))
	if st.TooLarge.Image != uint64(refused+sent-delivered) || st.TooLarge.Result != 0 || st.TooLarge.Alarm != 0 || st.DroppedOffline != 0 {
		t.Fatalf("TooLarge %+v, DroppedOffline %d; %d refused at publish, %d sent, %d delivered", st.TooLarge, st.DroppedOffline, refused, sent, delivered)
	}
	// Later heatmaps over the learned limit are refused before they cost
	// a connection.
	err := p.PublishHeatmap(make([]byte, 70_000), 1)
	if !errors.As(err, &tooLarge) || !tooLarge.Learned || tooLarge.Limit != p.MaxPayload() {
		t.Fatalf("heatmap over the learned limit: %v", err)
	}
	if err := p.PublishHeatmap(make([]byte, 50_000), 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a heatmap under the learned limit", func() bool {
		for _, m := range sub.on(p.Topics().Heatmap) {
			if len(m.payload) == 50_000 {
				return true
			}
		}
		return false
	})
	if p.State().Reconnects != st.Reconnects {
		t.Fatal("a heatmap under the learned limit cost a reconnect")
	}
	t.Logf("%d heatmaps refused at publish, %d sent, %d delivered, %d reconnects, MaxPayload %d",
		refused, sent, len(sub.on(p.Topics().Heatmap)), st.Reconnects, p.MaxPayload())
}

// TestOversizeQoS1NotResent: a QoS 1 message the broker drops the
// connection over is set aside once, not replayed on every reconnect.
func TestOversizeQoS1NotResent(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxPacketSize: 65536})
	p, lb := newPublisher(t, b.URL, "cam1", nil)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 100_000)
	if err := p.Publish("inspectd/cam1/cmd/reply", big, 1, false); err != nil { // a durable class, not an image
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the drop over the message", func() bool { return p.State().TooLarge.Result == 1 })
	if err := p.PublishAlarm(sampleAlarm(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "empty outbox", func() bool { st := p.State(); return st.Connected && st.Queued == 0 })
	time.Sleep(1500 * time.Millisecond)
	if st := p.State(); st.Reconnects != 1 {
		t.Fatalf("%d reconnects: the oversize message was resent", st.Reconnects)
	}
	if lb.Count("set aside") != 1 {
		t.Fatalf("want one log line for the set-aside message:\n%s", lb.String())
	}
}

// TestClientIDClash is the case of a second client using inspectd's client
// id: the broker drops one whenever the other connects. The publisher says
// so once, naming the id, in the log and in State/Health.
func TestClientIDClash(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	p, lb := newPublisher(t, b.URL, "cam1", nil)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := p.Health(); !ok || p.State().ClientIDClash != "" {
		t.Fatal("unhealthy before the clash")
	}
	// The intruder reconnects quickly whenever it is kicked off, like a
	// second inspectd or mosquitto_sub -i inspectd-cam1.
	intruder := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("inspectd-cam1").
		SetAutoReconnect(true).SetMaxReconnectInterval(300 * time.Millisecond).SetConnectRetry(true).
		SetConnectRetryInterval(300 * time.Millisecond).SetConnectionLostHandler(nil))
	intruder.Connect()
	defer intruder.Disconnect(0)
	waitFor(t, 20*time.Second, "the clash to be recognised", func() bool { return p.State().ClientIDClash != "" })
	st := p.State()
	if !strings.Contains(st.ClientIDClash, `"inspectd-cam1"`) {
		t.Fatalf("ClientIDClash %q does not name the id", st.ClientIDClash)
	}
	if ok, detail := p.Health(); ok || !strings.Contains(detail, "inspectd-cam1") {
		t.Fatalf("Health() = %v, %q", ok, detail)
	}
	before := p.State().Reconnects
	waitFor(t, 15*time.Second, "more drops", func() bool { return p.State().Reconnects >= before+2 })
	if got := lb.Count("same client id", "client_id=inspectd-cam1"); got != 1 {
		t.Fatalf("%d clash lines, want one per episode:\n%s", got, lb.String())
	}
	if got := lb.Count("level=WARN", "connection lost"); got > 4 {
		t.Fatalf("%d lines for drops: after the clash line the drops are not logged one by one:\n%s", got, lb.String())
	}
}

// TestCloseFast: Close says goodbye in well under a second when the broker
// is there, and does not wait for a broker that stops answering or goes
// away (the goodbye then is the Last Will).
func TestCloseFast(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	start := func(url string) *mqttpub.Publisher {
		p, _ := newPublisher(t, url, "cam1", nil)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		if err := p.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "online", func() bool { return p.State().Queued == 0 })
		return p
	}
	status := mqttpub.TopicsFor(mqttpub.DefaultTopicPrefix, "cam1").Status

	p := start(b.URL)
	for i := range 20 {
		if err := p.PublishAlarm(sampleAlarm(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	if err := p.Close(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Fatalf("Close took %s with a healthy broker", d)
	}
	late := collect(t, b.URL, "late", false, status)
	waitFor(t, 5*time.Second, "retained offline", func() bool {
		m := late.on(status)
		return len(m) == 1 && string(m[0].payload) == "offline"
	})

	// A broker that stops answering (the connection stays open).
	px := testbroker.NewProxy(t, b.URL)
	p = start(px.URL)
	px.Stall()
	if err := p.PublishAlarm(sampleAlarm(99)); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	err := p.Close(ctxTimeout(t, 10*time.Second))
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Close took %s with a broker that does not answer", d)
	}
	if err == nil || !strings.Contains(err.Error(), "1 messages not acknowledged by the broker, kept in") {
		t.Fatalf("Close: %v", err)
	}

	// A broker that goes away while Close waits.
	px2 := testbroker.NewProxy(t, b.URL)
	p = start(px2.URL)
	px2.Stall()
	go func() { time.Sleep(100 * time.Millisecond); px2.Cut() }()
	t0 = time.Now()
	_ = p.Close(ctxTimeout(t, 10*time.Second))
	if d := time.Since(t0); d > 700*time.Millisecond {
		t.Fatalf("Close took %s after the broker went away", d)
	}
}
