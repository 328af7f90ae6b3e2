package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// box is one daemon's remote control on a real broker: a dispatcher over a
// test controller, a real mqttpub.Publisher and the JSON front end, plus a
// trigger subscription guarded like the pipeline's should be.
type box struct {
	*rig
	pub      *mqttpub.Publisher
	front    *MQTT
	triggers atomic.Int64
}

func startBox(t *testing.T, b *testbroker.Broker, device, yamlCfg string, groups ...string) *box {
	t.Helper()
	x := &box{rig: newRigFor(t, device, yamlCfg)}
	x.connect(t, b, groups)
	return x
}

// connect builds the publisher and the front end (subscriptions before
// Start, as the daemon must) and waits for the connection.
func (x *box) connect(t *testing.T, b *testbroker.Broker, groups []string) {
	t.Helper()
	log := slog.New(x.log)
	pub, err := mqttpub.New(mqttpub.Options{Brokers: []string{b.URL}, DeviceID: x.opts.DeviceID, StoreDir: x.ctl.dir + "/mqtt",
		MaxReconnectInterval: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	front, err := NewMQTT(pub, x.d, MQTTOptions{Prefix: "inspectd", DeviceID: x.opts.DeviceID, Groups: groups, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := front.Start(); err != nil {
		t.Fatal(err)
	}
	guard := NewRetainGuard(log)
	if err := pub.OnTrigger(func(m mqttpub.Message) {
		if !guard.Skip(m) {
			x.triggers.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	front.AnswerInterrupted()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	x.pub, x.front = pub, front
	t.Cleanup(func() { x.disconnect() })
}

// ready waits until the box answers on its command topic: its
// subscriptions are made right after the connection opens, and a command
// published before then is dropped by the broker (the first time; later
// the persistent session keeps them).
func (x *box) ready(t *testing.T, op *operator) {
	t.Helper()
	topic := "inspectd/" + x.opts.DeviceID + "/reply/ready"
	n := op.count(topic)
	deadline := time.Now().Add(20 * time.Second)
	for op.count(topic) == n {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer commands", x.opts.DeviceID)
		}
		op.publish(t, "inspectd/"+x.opts.DeviceID+"/cmd/ready", []byte(`{"id":"ready"}`), false)
		time.Sleep(100 * time.Millisecond)
	}
}

func (x *box) disconnect() {
	if x.pub != nil {
		x.front.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		x.pub.Close(ctx)
		cancel()
		x.pub = nil
	}
}

// operator is the plant side: a plain paho client that publishes commands
// and records replies and events.
type operator struct {
	c    mqtt.Client
	mu   sync.Mutex
	msgs []mqttpub.Message
}

func newOperator(t *testing.T, b *testbroker.Broker) *operator {
	t.Helper()
	o := &operator{}
	o.c = testbroker.Connect(t, mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("operator-"+t.Name()).SetAutoReconnect(true).SetConnectRetry(true),
		testbroker.Sub{Topic: "inspectd/+/reply/#", QoS: 1, Handler: o.record},
		testbroker.Sub{Topic: "inspectd/+/snapshot", Handler: o.record},
		testbroker.Sub{Topic: "inspectd/+/refit", Handler: o.record})
	return o
}

func (o *operator) record(_ mqtt.Client, m mqtt.Message) {
	o.mu.Lock()
	o.msgs = append(o.msgs, mqttpub.Message{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), Retained: m.Retained()})
	o.mu.Unlock()
}

func (o *operator) publish(t *testing.T, topic string, payload []byte, retained bool) {
	t.Helper()
	if tok := o.c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// replies returns the replies on topic, decoded.
func (o *operator) replies(topic string) []map[string]any {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []map[string]any
	for _, m := range o.msgs {
		if m.Topic == topic {
			var r map[string]any
			json.Unmarshal(m.Payload, &r)
			out = append(out, r)
		}
	}
	return out
}

func (o *operator) count(topic string) int { return len(o.replies(topic)) }

// await waits until topic has n messages and returns the last.
func (o *operator) await(t *testing.T, topic string, n int) map[string]any {
	t.Helper()
	if !testbroker.WaitFor(context.Background(), 60*time.Second, func() bool { return o.count(topic) >= n }) {
		t.Fatalf("%d messages on %s, want %d", o.count(topic), topic, n)
	}
	rs := o.replies(topic)
	return rs[n-1]
}

func TestMQTTRetainedCommandsNeverRun(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Persistence: true})
	op := newOperator(t, b)
	// Left retained by mistake before the box starts.
	op.publish(t, "inspectd/box1/cmd/config", []byte(`{"id":"c1","config":{"mqtt":{"result_qos":1}}}`), true)
	op.publish(t, "inspectd/box1/cmd/refit", []byte(`{"id":"f1","count":20}`), true)
	op.publish(t, "inspectd/box1/trigger", []byte(`{"id":"part-1"}`), true)

	x := startBox(t, b, "box1", unsigned)
	x.ready(t, op)
	warned := func() int { return x.log.count("retained message not executed") }
	if !testbroker.WaitFor(context.Background(), 10*time.Second, func() bool { return warned() == 3 }) {
		t.Fatalf("%d retained warnings, want one per topic:\n%s", warned(), x.log.all())
	}
	if n := x.log.count("retained message not executed", "mosquitto_pub -r -n -t 'inspectd/box1/cmd/refit'"); n != 1 {
		t.Errorf("the refit warning does not say how to clear it:\n%s", x.log.all())
	}
	if !testbroker.WaitFor(context.Background(), 10*time.Second, func() bool { return x.front.RetainedSkipped() == 2 }) {
		t.Fatalf("%d retained commands skipped, want 2", x.front.RetainedSkipped())
	}
	// Reconnect: the broker hands them over again; still not run, no new
	// warning.
	b.Stop()
	b.Restart()
	if !testbroker.WaitFor(context.Background(), 20*time.Second, func() bool { return x.front.RetainedSkipped() == 4 }) {
		t.Fatalf("after a reconnect %d retained commands skipped, want 4", x.front.RetainedSkipped())
	}
	if warned() != 3 {
		t.Errorf("%d warnings after a reconnect; one per topic is enough", warned())
	}
	// And a restart of the daemon: a new process warns once more.
	x.disconnect()
	x.restart()
	x.connect(t, b, nil)
	if !testbroker.WaitFor(context.Background(), 10*time.Second, func() bool { return x.front.RetainedSkipped() == 2 && warned() == 6 }) {
		t.Fatalf("after a restart %d retained commands skipped, %d warnings", x.front.RetainedSkipped(), warned())
	}
	if x.ctl.applies.Load() != 0 || x.ctl.frames.Load() != 0 || x.triggers.Load() != 0 {
		t.Fatalf("retained messages ran: %d applies, %d frames, %d triggers", x.ctl.applies.Load(), x.ctl.frames.Load(), x.triggers.Load())
	}
	if op.count("inspectd/box1/reply/config")+op.count("inspectd/box1/reply/refit") != 0 {
		t.Error("retained commands were answered")
	}
	// Clearing them is silent, and afterwards a normal command runs.
	before := len(strings.Split(x.log.all(), "\n"))
	for _, topic := range []string{"inspectd/box1/cmd/config", "inspectd/box1/cmd/refit", "inspectd/box1/trigger"} {
		op.publish(t, topic, nil, true)
	}
	op.publish(t, "inspectd/box1/cmd/status", []byte(`{"id":"s1"}`), false)
	if r := op.await(t, "inspectd/box1/reply/status", 1); r["ok"] != true || r["id"] != "s1" {
		t.Errorf("status after clearing: %v", r)
	}
	for _, line := range strings.Split(x.log.all(), "\n")[before:] {
		if strings.Contains(line, "WARN") {
			t.Errorf("clearing retained commands logged %q", line)
		}
	}
	if op.count("inspectd/box1/reply/config") != 0 || x.triggers.Load() != 0 {
		t.Error("a clearing publish was treated as a request")
	}
}

// TestMQTTRetainedCommandQueuedCopyNotRun: a command published retained
// at QoS 1 while the box is away reaches it twice when it comes back: as
// the copy its persistent session queued (retain flag cleared, MQTT 3.1.1)
// and as the retained message its new subscription is handed. The
// retained one was refused with a warning and the copy ran ("thresholds
// set" image=99 0.4 s after the warning, in a trial). Neither may run,
// with one warning for the two; a command sent while the box was away,
// not retained, still runs. Both as the daemon starts (its commands wait
// until it runs) and at a reconnect of a running box.
func TestMQTTRetainedCommandQueuedCopyNotRun(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b)
	x := startBox(t, b, "box1", unsigned)
	x.ctl.setModel(t)
	x.ready(t, op)
	// A plain client with a persistent session, away at the same time as
	// the box, shows the order mosquitto delivers the two copies in.
	var obsMu sync.Mutex
	var order []string
	obsOpts := mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("observer-" + t.Name()).SetCleanSession(false).SetOrderMatters(true)
	obs := testbroker.Connect(t, obsOpts, testbroker.Sub{Topic: "inspectd/box1/cmd/threshold", QoS: 1, Handler: func(_ mqtt.Client, m mqtt.Message) {
		if len(m.Payload()) == 0 {
			return // the clearing publish of the round before
		}
		obsMu.Lock()
		order = append(order, fmt.Sprintf("%s retained=%v", m.Payload(), m.Retained()))
		obsMu.Unlock()
	}})
	const topic = "inspectd/box1/cmd/threshold"
	for round, mode := range []string{"daemon start", "reconnect"} {
		obs.Disconnect(100)
		x.disconnect()
		obsMu.Lock()
		order = nil
		obsMu.Unlock()
		ret := fmt.Sprintf(`{"id":"ret%d","image":99}`, round)
		op.publish(t, topic, []byte(ret), true)
		away := fmt.Sprintf(`{"id":"away%d"}`, round)
		op.publish(t, "inspectd/box1/cmd/status", []byte(away), false)
		warned := x.log.count("retained message not executed", topic)
		if mode == "daemon start" {
			// As the daemon does: a new dispatcher, connected before the
			// pipeline runs; commands wait for Started.
			if err := x.d.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			d, err := New(x.opts)
			if err != nil {
				t.Fatal(err)
			}
			x.d = d
			d.AddEvents(&x.events)
			t.Cleanup(func() { d.Close(context.Background()) })
			x.connect(t, b, nil)
			time.Sleep(400 * time.Millisecond)
			d.Started()
		} else {
			x.connect(t, b, nil)
		}
		if tok := obs.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("observer reconnect: %v", tok.Error())
		}
		if r := op.await(t, "inspectd/box1/reply/status", 1+round); r["id"] != fmt.Sprintf("away%d", round) || r["ok"] != true {
			t.Errorf("%s: the command sent while away: %v", mode, r)
		}
		if !testbroker.WaitFor(context.Background(), 10*time.Second, func() bool {
			obsMu.Lock()
			defer obsMu.Unlock()
			return len(order) >= 2
		}) {
			t.Fatalf("%s: the observer got %q, want the queued copy and the retained message", mode, order)
		}
		obsMu.Lock()
		t.Logf("%s: mosquitto delivered %q", mode, order)
		obsMu.Unlock()
		x.ready(t, op)
		if n := x.ctl.thresholds.Load(); n != 0 {
			t.Errorf("%s: the retained threshold command ran %d times", mode, n)
		}
		for _, r := range op.replies("inspectd/box1/reply/threshold") {
			t.Errorf("%s: the retained command was answered: %v", mode, r)
		}
		if n := x.log.count("retained message not executed", topic) - warned; n != 1 {
			t.Errorf("%s: %d warnings for the retained command and its copy, want 1:\n%s", mode, n, x.log.all())
		}
		if n := x.log.count("ret" + strconv.Itoa(round)); n != 0 {
			t.Errorf("%s: the copy was logged as a request %d times:\n%s", mode, n, x.log.all())
		}
		op.publish(t, topic, nil, true) // cleared for the next round
	}
}

// TestMQTTCopyOfRetainedCommandEitherOrder: the copy of a retained
// command is not run whether it comes after the retained message or
// before it (mosquitto's order: it is held, as every message the broker
// kept for the session, for retainedCopyWindow); held messages keep their
// order with those that come after them, and run when they are not copies.
func TestMQTTCopyOfRetainedCommandEitherOrder(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	c := &fakeClient{}
	front := startFront(t, r, c)
	h := c.subs["plant/a/box1/cmd/+"]
	const topic = "plant/a/box1/cmd/threshold"
	send := func(payload string, retained, backlog bool) {
		h(mqttpub.Message{Topic: topic, Payload: []byte(payload), Retained: retained, Backlog: backlog})
	}
	status := func(id string, backlog bool) {
		h(mqttpub.Message{Topic: "plant/a/box1/cmd/status", Payload: []byte(`{"id":"` + id + `"}`), Backlog: backlog})
	}
	// The retained message first, then its copy.
	send(`{"id":"ret-a","image":99}`, true, true)
	send(`{"id":"ret-a","image":99}`, false, false)
	// The copy first (held), a command sent while away, one sent live
	// right after the connection, then the retained message.
	send(`{"id":"ret-b","image":98}`, false, true)
	status("s1", true)
	status("s2", false)
	send(`{"id":"ret-b","image":98}`, true, true)
	// Other bytes are another command: it runs.
	send(`{"id":"ret-c","image":97}`, true, true)
	send(`{"id":"ret-c", "image":97}`, false, true)
	if !testbroker.WaitFor(context.Background(), 10*time.Second, func() bool {
		return c.published("plant/a/box1/reply/status") == 2 && c.published("plant/a/box1/reply/threshold") == 1
	}) {
		t.Fatalf("%d status and %d threshold replies, want 2 and 1", c.published("plant/a/box1/reply/status"), c.published("plant/a/box1/reply/threshold"))
	}
	time.Sleep(2 * time.Second) // nothing else comes (twice retainedCopyWindow)
	c.mu.Lock()
	var order []string
	for _, p := range c.pubs {
		var rep map[string]any
		json.Unmarshal(p.Payload, &rep)
		order = append(order, fmt.Sprint(rep["id"]))
	}
	c.mu.Unlock()
	if strings.Join(order, " ") != "s1 s2 ret-c" {
		t.Errorf("replies to %v, want s1 s2 ret-c: the copies of ret-a and ret-b ran, or the held ones lost their order", order)
	}
	if n := r.ctl.thresholds.Load(); n != 1 {
		t.Errorf("%d thresholds set, want 1 (ret-c)", n)
	}
	if n := r.log.count("retained message not executed"); n != 1 {
		t.Errorf("%d warnings, want one for the topic:\n%s", n, r.log.all())
	}
	if n := r.log.count("ret-a") + r.log.count("ret-b"); n != 0 {
		t.Errorf("copies logged %d times:\n%s", n, r.log.all())
	}
	// A stop hands over what is held at once, not a second later.
	status("s3", true)
	front.Stop()
	// Within the second a request is held for, with room for a loaded box.
	if !testbroker.WaitFor(context.Background(), 900*time.Millisecond, func() bool { return c.published("plant/a/box1/reply/status") == 3 }) {
		t.Error("a request held at the stop was not handed over at once")
	}
}

func TestMQTTDuplicateIDRunsOnce(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b)
	x := startBox(t, b, "box1", unsigned)
	x.ready(t, op)
	push := []byte(`{"id":"c1","config":{"mqtt":{"result_qos":1}}}`)
	op.publish(t, "inspectd/box1/cmd/config", push, false)
	first := op.await(t, "inspectd/box1/reply/config", 1)
	// A QoS 1 redelivery looks like this: the same message again.
	op.publish(t, "inspectd/box1/cmd/config", push, false)
	second := op.await(t, "inspectd/box1/reply/config", 2)
	if first["ok"] != true || first["applied"] != true || second["duplicate"] != true || x.ctl.applies.Load() != 1 {
		t.Errorf("replies %v, %v; %d applies", first, second, x.ctl.applies.Load())
	}
	// Across a restart of the daemon too.
	x.disconnect()
	x.restart()
	x.connect(t, b, nil)
	x.ready(t, op)
	op.publish(t, "inspectd/box1/cmd/config", push, false)
	if third := op.await(t, "inspectd/box1/reply/config", 3); third["duplicate"] != true || x.ctl.applies.Load() != 1 {
		t.Errorf("after a restart: %v, %d applies", third, x.ctl.applies.Load())
	}
	// Events go to their topics.
	op.publish(t, "inspectd/box1/cmd/snapshot", []byte(`{"id":"p1"}`), false)
	if r := op.await(t, "inspectd/box1/reply/snapshot", 1); r["ok"] != true {
		t.Errorf("snapshot: %v", r)
	}
	jpeg := op.await(t, "inspectd/box1/snapshot", 1)
	_ = jpeg // a JPEG does not decode as JSON; its arrival is the point
}

func TestMQTTRefusals(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b)
	ops, mallory := newSigner("ops", 1), newSigner("ops", 9)
	x := startBox(t, b, "box1", "remote: {trust_keys: {ops: "+ops.pub()+"}, max_payload: 2KiB}\n")
	x.ready(t, op)
	now := x.clk.Now()
	body := `{"id":"c1","config":{"mqtt":{"result_qos":1}}}`
	signed := ops.sign(t, "config", "device/box1", body, now)
	topic, reply := "inspectd/box1/cmd/config", "inspectd/box1/reply/config"
	for i, tc := range []struct {
		name    string
		payload []byte
		code    string
		part    string
	}{
		{"oversize", []byte(`{"id":"big","pad":"` + strings.Repeat("x", 3000) + `"}`), CodeTooLarge, "3021 bytes, over remote.max_payload (2KiB)"},
		{"non-JSON", []byte("result_qos=1"), CodeInvalid, "malformed JSON at line 1"},
		{"unsigned", []byte(body), CodeUnauthorized, "unsigned: this box runs only commands signed by one of its trust keys (ops)"},
		{"wrongly signed", mallory.sign(t, "config", "device/box1", body, now), CodeUnauthorized, `does not verify with trust key "ops"`},
		{"stale", ops.sign(t, "config", "device/box1", `{"id":"c2"}`, now.Add(-10*time.Minute)), CodeUnauthorized, "stale: signed at"},
		{"signed", signed, "", ""},
		{"replayed", ops.sign(t, "config", "device/box1", body, now), "", ""}, // same id: the stored reply
		// The id spelt twice, in two cases: answered to the exact "id".
		{"id twice", ops.sign(t, "config", "device/box1", `{"id":"c5","ID":"c6","config":{"mqtt":{"result_qos":0}}}`, now), CodeInvalid, `duplicate key (also given as "id"`},
	} {
		op.publish(t, topic, tc.payload, false)
		r := op.await(t, reply, i+1)
		if tc.code == "" {
			if r["ok"] != true {
				t.Errorf("%s: %v", tc.name, r)
			}
			continue
		}
		if r["ok"] != false || r["code"] != tc.code || !strings.Contains(r["error"].(string), tc.part) {
			t.Errorf("%s: reply %v, want code %s with %q", tc.name, r, tc.code, tc.part)
		}
	}
	if r := op.replies(reply)[6]; r["duplicate"] != true {
		t.Errorf("the second signing of an answered id: %v", r)
	}
	if r := op.replies(reply)[7]; r["id"] != "c5" || r["field"] != "ID" {
		t.Errorf("a body with id and ID: %v, want the refusal answered to c5", r)
	}
	if x.ctl.applies.Load() != 1 {
		t.Errorf("%d applies; only the signed push should have run", x.ctl.applies.Load())
	}
	if n := x.log.count("remote command refused"); n < 5 {
		t.Errorf("%d refusal log lines, want one per refusal", n)
	}
}

func TestMQTTFleetAndGroups(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b)
	ops := newSigner("ops", 1)
	keys := "remote: {trust_keys: {ops: " + ops.pub() + "}}\n"
	boxes := []*box{
		startBox(t, b, "box1", keys, "line3"),
		startBox(t, b, "box2", keys),
		startBox(t, b, "box3", keys, "line3", "hall-b"),
	}
	for _, x := range boxes {
		x.ready(t, op)
	}
	now := boxes[0].clk.Now()
	op.publish(t, "inspectd/fleet/cmd/config", ops.sign(t, "config", "fleet", `{"id":"v7","config":{"mqtt":{"result_qos":1}},"version":7}`, now), false)
	for _, x := range boxes {
		r := op.await(t, "inspectd/"+x.opts.DeviceID+"/reply/config", 1)
		if r["ok"] != true || r["version"] != 7.0 || x.ctl.Config().MQTT.ResultQoS != 1 {
			t.Errorf("%s: %v", x.opts.DeviceID, r)
		}
	}
	op.publish(t, "inspectd/group/line3/cmd/config", ops.sign(t, "config", "group/line3", `{"id":"v8","config":{"mqtt":{"result_qos":0}},"version":8}`, now), false)
	op.await(t, "inspectd/box1/reply/config", 2)
	op.await(t, "inspectd/box3/reply/config", 2)
	time.Sleep(300 * time.Millisecond)
	if n := op.count("inspectd/box2/reply/config"); n != 1 || boxes[1].ctl.Config().MQTT.ResultQoS != 1 {
		t.Errorf("box2 is not in line3 but got %d replies, result_qos %d", n, boxes[1].ctl.Config().MQTT.ResultQoS)
	}
	if boxes[0].ctl.Config().MQTT.ResultQoS != 0 || boxes[2].ctl.Config().MQTT.ResultQoS != 0 {
		t.Error("the group push did not reach line3")
	}
	// Signed for one group, replayed on the fleet topic: refused everywhere.
	op.publish(t, "inspectd/fleet/cmd/config", ops.sign(t, "config", "group/line3", `{"id":"v9","config":{},"version":9}`, now), false)
	for i, x := range boxes {
		want := 3
		if i == 1 {
			want = 2
		}
		r := op.await(t, "inspectd/"+x.opts.DeviceID+"/reply/config", want)
		if r["code"] != CodeUnauthorized || !strings.Contains(r["error"].(string), `the envelope's target names "group/line3" while it came on the fleet topic`) {
			t.Errorf("%s: %v", x.opts.DeviceID, r)
		}
	}
	for _, x := range boxes {
		if n := x.ctl.applies.Load(); (x.opts.DeviceID == "box2" && n != 1) || (x.opts.DeviceID != "box2" && n != 2) {
			t.Errorf("%s applied %d times", x.opts.DeviceID, n)
		}
	}
}

// fakeClient records subscriptions and publishes, for front-end unit tests;
// with max > 0 it refuses larger payloads as the publisher does.
type fakeClient struct {
	mu   sync.Mutex
	subs map[string]mqttpub.Handler
	pubs []mqttpub.Message
	max  int
}

func (f *fakeClient) Subscribe(filter string, qos byte, h mqttpub.Handler) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[string]mqttpub.Handler{}
	}
	f.subs[filter] = h
	return nil
}

func (f *fakeClient) Publish(topic string, payload []byte, qos byte, retained bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.max > 0 && len(payload) > f.max {
		return fmt.Errorf("mqtt %s: payload of %d bytes: %w", topic, len(payload), mqttpub.ErrPayloadTooLarge)
	}
	f.pubs = append(f.pubs, mqttpub.Message{Topic: topic, Payload: payload, Retained: retained})
	return nil
}

// A reply over mqtt.max_payload is answered with one that says so: every
// request gets a reply (a config-get after max_payload was lowered got
// none, only a log line).
func TestMQTTReplyOverMaxPayload(t *testing.T) {
	r := newRig(t, unsigned)
	c := &fakeClient{max: 300}
	startFront(t, r, c)
	c.subs["plant/a/box1/cmd/+"](mqttpub.Message{Topic: "plant/a/box1/cmd/config-get", Payload: []byte(`{"id":"g1"}`)})
	if !testbroker.WaitFor(context.Background(), 10*time.Second, func() bool { return c.published("plant/a/box1/reply/config-get") == 1 }) {
		t.Fatal("no reply to a config-get whose answer is over the limit")
	}
	c.mu.Lock()
	reply := string(c.pubs[len(c.pubs)-1].Payload)
	c.mu.Unlock()
	if !strings.Contains(reply, `"code":"too_large"`) || !strings.Contains(reply, `"id":"g1"`) || !strings.Contains(reply, "over mqtt.max_payload") {
		t.Errorf("reply %s", reply)
	}
}

func (f *fakeClient) published(topic string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.pubs {
		if p.Topic == topic {
			n++
		}
	}
	return n
}

// "remote commands subscribed" is logged only when remote control is on
// (a trial user read it on a box with remote control off); the command
// topics are subscribed either way, to answer commands unauthorized.
func TestMQTTSubscribedLoggedOnlyWhenOn(t *testing.T) {
	r := newRig(t, unsigned)
	const line = "INFO remote commands subscribed"
	off, on := &fakeClient{}, &fakeClient{}
	front, err := NewMQTT(off, r.d, MQTTOptions{Prefix: "plant/a", DeviceID: "box1", Logger: slog.New(r.log)})
	if err != nil {
		t.Fatal(err)
	}
	if err := front.Start(); err != nil {
		t.Fatal(err)
	}
	if n := r.log.count(line); n != 0 || len(off.subs) != 2 {
		t.Errorf("remote control off: %d lines saying commands are subscribed, %d subscriptions (want 0 and 2):\n%s", n, len(off.subs), r.log.all())
	}
	if err := front.Attach(on, MQTTOptions{Prefix: "plant/a", DeviceID: "box1", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if n := r.log.count(line, "plant/a/box1/cmd/+"); n != 1 || len(on.subs) != 2 {
		t.Errorf("remote control on: %d lines saying commands are subscribed, %d subscriptions (want 1 and 2):\n%s", n, len(on.subs), r.log.all())
	}
}

func TestMQTTAttachMovesRepliesAndSubscriptions(t *testing.T) {
	r := newRig(t, unsigned)
	old, next := &fakeClient{}, &fakeClient{}
	front, err := NewMQTT(old, r.d, MQTTOptions{Prefix: "plant/a", DeviceID: "box1", Logger: slog.New(r.log)})
	if err != nil {
		t.Fatal(err)
	}
	if err := front.Start(); err != nil {
		t.Fatal(err)
	}
	if len(old.subs) != 2 || old.subs["plant/a/box1/cmd/+"] == nil || old.subs["plant/a/fleet/cmd/+"] == nil {
		t.Fatalf("subscriptions %v", old.subs)
	}
	gate := r.ctl.holdFrames()
	old.subs["plant/a/fleet/cmd/+"](mqttpub.Message{Topic: "plant/a/fleet/cmd/snapshot", Payload: []byte(`{"id":"p1"}`)})
	// The connection is replaced while the request runs.
	if err := front.Attach(next, MQTTOptions{Prefix: "plant/a", DeviceID: "box1", Groups: []string{"line3"}}); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if !testbroker.WaitFor(context.Background(), 10*time.Second, func() bool { return next.published("plant/a/box1/reply/snapshot") == 1 }) {
		t.Fatal("the reply did not go to the new connection")
	}
	if old.published("plant/a/box1/reply/snapshot") != 0 || next.published("plant/a/box1/snapshot") != 1 {
		t.Error("reply or event went to the old connection")
	}
	if next.subs["plant/a/group/line3/cmd/+"] == nil || len(next.subs) != 3 {
		t.Errorf("new subscriptions %v", next.subs)
	}
	// Topics that are not commands are ignored; so is an empty message.
	next.subs["plant/a/box1/cmd/+"](mqttpub.Message{Topic: "plant/a/box1/cmd/a/b", Payload: []byte(`{"id":"x"}`)})
	next.subs["plant/a/box1/cmd/+"](mqttpub.Message{Topic: "plant/a/box1/cmd/status", Payload: nil})
	time.Sleep(100 * time.Millisecond)
	if n := len(next.pubs); n != 2 {
		t.Errorf("%d publishes; the ignored messages were answered", n)
	}
	if _, err := NewMQTT(old, r.d, MQTTOptions{Prefix: "plant", DeviceID: "fleet"}); err == nil {
		t.Error("device id fleet accepted")
	}
	// A device id change: new topics, and envelopes for the new id.
	r.d.SetDeviceID("box9")
	third := &fakeClient{}
	if err := front.Attach(third, MQTTOptions{Prefix: "plant/b", DeviceID: "box9"}); err != nil {
		t.Fatal(err)
	}
	third.subs["plant/b/box9/cmd/+"](mqttpub.Message{Topic: "plant/b/box9/cmd/status", Payload: []byte(`{"id":"s1"}`)})
	if !testbroker.WaitFor(context.Background(), 10*time.Second, func() bool { return third.published("plant/b/box9/reply/status") == 1 }) {
		t.Fatal("no reply on the new device's topic")
	}
}

// TestMQTTHeldFloodGoesOnInOrder: the hold of commands the broker kept
// copies each body; past maxHeldWait of them (more than the dispatcher's
// queue takes) what waits is handed over at once, in order, rather than
// held without bound for the whole second, and the payload handed in is
// not kept (the client may reuse it).
func TestMQTTHeldFloodGoesOnInOrder(t *testing.T) {
	r := newRig(t, unsigned)
	r.opts.Queue = 4 * maxHeldWait // the burst is not refused busy
	r.restart()
	c := &fakeClient{}
	front := startFront(t, r, c)
	h := c.subs["plant/a/box1/cmd/+"]
	buf := make([]byte, 0, 64)
	for i := range maxHeldWait + 1 {
		buf = fmt.Appendf(buf[:0], `{"id":"s%d"}`, i)
		h(mqttpub.Message{Topic: "plant/a/box1/cmd/status", Payload: buf, Backlog: true})
	}
	clear(buf[:cap(buf)]) // a reused buffer must not change what was held
	front.hmu.Lock()
	held := len(front.held)
	front.hmu.Unlock()
	if held != 0 {
		t.Fatalf("%d requests still held after %d, want them handed over", held, maxHeldWait+1)
	}
	if !testbroker.WaitFor(context.Background(), 10*time.Second, func() bool {
		return c.published("plant/a/box1/reply/status") == maxHeldWait+1
	}) {
		t.Fatalf("%d status replies, want %d:\n%s", c.published("plant/a/box1/reply/status"), maxHeldWait+1, r.log.all())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.pubs {
		var rep map[string]any
		json.Unmarshal(p.Payload, &rep)
		if want := fmt.Sprintf("s%d", i); rep["id"] != want {
			t.Fatalf("reply %d is %v, want %s (order kept)", i, rep["id"], want)
		}
	}
}

// startFront starts a command front end for box1 under plant/a on the
// fake client c, handing requests to r's dispatcher.
func startFront(t *testing.T, r *rig, c *fakeClient) *MQTT {
	t.Helper()
	front, err := NewMQTT(c, r.d, MQTTOptions{Prefix: "plant/a", DeviceID: "box1", Logger: slog.New(r.log)})
	if err != nil {
		t.Fatal(err)
	}
	if err := front.Start(); err != nil {
		t.Fatal(err)
	}
	return front
}
