package mqttpub_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testproc"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

func newPublisher(t *testing.T, url, device string, mut func(*mqttpub.Options)) (*mqttpub.Publisher, *testproc.LogBuffer) {
	t.Helper()
	log, lb := newLogger(t)
	o := mqttpub.Options{
		Brokers:              []string{url},
		DeviceID:             device,
		StoreDir:             t.TempDir(),
		MaxReconnectInterval: time.Second,
		Logger:               log,
	}
	if mut != nil {
		mut(&o)
	}
	p, err := mqttpub.New(o)
	if err != nil {
		t.Fatalf("mqttpub.New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close(ctxTimeout(t, 2*time.Second)) })
	return p, lb
}

func sampleResult(seq uint64, trigger string) *mqttpub.Result {
	return &mqttpub.Result{
		Header: mqttpub.Header{
			Seq:             seq,
			FrameTime:       time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC),
			TriggerID:       trigger,
			Score:           17.25,
			Threshold:       12.5,
			NormalizedScore: 1.38,
			ModelID:         "padim-mnv1-d100-20250304",
		},
		Anomalous: true,
		LatencyMS: map[string]float64{"capture": 1.5, "preprocess": 0.75, "backbone": 31.25, "padim": 8, "publish": 0.5},
	}
}

func sampleAlarm(seq uint64) *mqttpub.Alarm {
	return &mqttpub.Alarm{
		Header: mqttpub.Header{Seq: seq, FrameTime: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
			Score: 17.25, Threshold: 12.5, NormalizedScore: 1.38, ModelID: "m1"},
		ImageWidth: 224, ImageHeight: 224,
		Regions: []mqttpub.Region{{X: 10, Y: 20, W: 30, H: 12, Area: 280}, {X: 100, Y: 5, W: 3, H: 3, Area: 7}},
	}
}

// TestPublishFieldsArrive: every payload arrives on its topic with every
// field intact, status and info are retained, and Close leaves a retained
// "offline".
func TestPublishFieldsArrive(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	sub := collect(t, b.URL, "scada", false, "inspectd/cam1/#")
	p, _ := newPublisher(t, b.URL, "cam1", nil)
	tp := p.Topics()
	if tp.Result != "inspectd/cam1/result" || tp.Trigger != "inspectd/cam1/trigger" || tp.Status != "inspectd/cam1/status" {
		t.Fatalf("unexpected topics %+v", tp)
	}
	info := &mqttpub.Info{Version: "1.2.3", DeviceID: "cam1", ModelID: "m1", Backbone: "mobilenet_v1", D: 100,
		Thresholds: mqttpub.Thresholds{Image: 12.5, Pixel: 9}, Camera: "/dev/video0",
		StartedAt: time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC)}
	if err := p.SetInfo(info); err != nil { // before Start: published on connect
		t.Fatal(err)
	}
	if err := p.PublishAlarm(sampleAlarm(1)); err == nil {
		t.Fatal("publish before Start succeeded")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	res := sampleResult(7, "plc-42")
	free := sampleResult(8, "")
	free.Anomalous = false
	mask := []byte("\x89PNG\r\n\x1a\nmask-bytes")
	heat := []byte{0xff, 0xd8, 0xff, 0xe0, 1, 2, 3}
	for _, err := range []error{
		p.PublishResult(res, 1), p.PublishResult(free, 0), p.PublishAlarm(sampleAlarm(7)),
		p.PublishMask(mask, 1), p.PublishHeatmap(heat, 1),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	mask[0] = 0 // the publisher copied it

	waitFor(t, 5*time.Second, "all messages", func() bool {
		return len(sub.on(tp.Result)) == 2 && len(sub.on(tp.Alarm)) == 1 && len(sub.on(tp.Mask)) == 1 &&
			len(sub.on(tp.Heatmap)) == 1 && len(sub.on(tp.Info)) == 1 && len(sub.on(tp.Status)) >= 1
	})
	var got []mqttpub.Result
	for _, m := range sub.on(tp.Result) {
		var r mqttpub.Result
		if err := json.Unmarshal(m.payload, &r); err != nil {
			t.Fatalf("result payload %s: %v", m.payload, err)
		}
		got = append(got, r)
	}
	if got[0].Seq != 7 {
		got[0], got[1] = got[1], got[0]
	}
	if !reflect.DeepEqual(got[0], *res) || !reflect.DeepEqual(got[1], *free) {
		t.Fatalf("results differ:\n got %+v\nwant %+v\n got %+v\nwant %+v", got[0], *res, got[1], *free)
	}
	if s := string(sub.on(tp.Result)[0].payload) + string(sub.on(tp.Result)[1].payload); !strings.Contains(s, `"trigger_id":"plc-42"`) ||
		!strings.Contains(s, `"latency_ms":{"backbone":31.25`) || !strings.Contains(s, `"frame_time":"2025-03-04T05:06:07.123456789Z"`) {
		t.Fatalf("result JSON lacks expected field spelling: %s", s)
	}
	var alarm mqttpub.Alarm
	if err := json.Unmarshal(sub.on(tp.Alarm)[0].payload, &alarm); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(alarm, *sampleAlarm(7)) {
		t.Fatalf("alarm differs: got %+v want %+v", alarm, *sampleAlarm(7))
	}
	if !strings.Contains(string(sub.on(tp.Alarm)[0].payload), `"regions":[{"x":10,"y":20,"w":30,"h":12,"area_px":280}`) {
		t.Fatalf("alarm JSON: %s", sub.on(tp.Alarm)[0].payload)
	}
	if got := sub.on(tp.Mask)[0].payload; string(got) != "\x89PNG\r\n\x1a\nmask-bytes" {
		t.Fatalf("mask payload %q", got)
	}
	if got := sub.on(tp.Heatmap)[0].payload; !reflect.DeepEqual(got, heat) {
		t.Fatalf("heatmap payload %v", got)
	}
	var gotInfo mqttpub.Info
	if err := json.Unmarshal(sub.on(tp.Info)[0].payload, &gotInfo); err != nil || !reflect.DeepEqual(gotInfo, *info) {
		t.Fatalf("info: %v %+v", err, gotInfo)
	}
	if ok, detail := p.Health(); !ok || !strings.Contains(detail, "connected to "+b.URL) {
		t.Fatalf("Health() = %v, %q", ok, detail)
	}
	waitFor(t, 5*time.Second, "empty outbox", func() bool { return p.State().Queued == 0 })

	// A subscriber arriving later gets the retained state.
	late := collect(t, b.URL, "late", false, "inspectd/cam1/+")
	waitFor(t, 5*time.Second, "retained status and info", func() bool {
		return len(late.on(tp.Status)) == 1 && len(late.on(tp.Info)) == 1
	})
	if m := late.on(tp.Status)[0]; string(m.payload) != "online" || !m.retained {
		t.Fatalf("retained status %q retained=%v", m.payload, m.retained)
	}
	if len(late.on(tp.Result)) != 0 {
		t.Fatal("results must not be retained")
	}

	if err := p.Close(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.PublishAlarm(sampleAlarm(9)); err == nil {
		t.Fatal("publish after Close succeeded")
	}
	after := collect(t, b.URL, "after", false, tp.Status)
	waitFor(t, 5*time.Second, "retained offline", func() bool {
		m := after.on(tp.Status)
		return len(m) == 1 && string(m[0].payload) == "offline" && m[0].retained
	})
}

// TestBrokerKilledMidRun: the broker is SIGKILLed and restarted while
// alarms are published at a steady rate; every alarm reaches a subscriber
// that keeps a persistent session.
func TestBrokerKilledMidRun(t *testing.T) {
	const n = 120
	b := testbroker.Start(t, testbroker.Options{Persistence: true})
	p, lb := newPublisher(t, b.URL, "cam1", nil)
	var mu sync.Mutex
	seen := map[uint64]int{}
	sub := collect(t, b.URL, "alarm-counter", true, p.Topics().Alarm)
	// Make the broker remember the counter's session and subscription, so
	// that alarms arriving after the restart, before the counter is back,
	// are queued for it.
	b.SaveNow()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range sub.drain() {
			var a mqttpub.Alarm
			if err := json.Unmarshal(m.payload, &a); err != nil {
				t.Errorf("alarm payload %q: %v", m.payload, err)
				continue
			}
			seen[a.Seq]++
		}
		return len(seen)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}

	errs := make(chan error, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := uint64(1); i <= n; i++ {
			<-tick.C
			if err := p.PublishAlarm(sampleAlarm(i)); err != nil {
				errs <- fmt.Errorf("alarm %d: %w", i, err)
			}
		}
	}()
	waitFor(t, 10*time.Second, "first alarms", func() bool { return count() >= 25 })
	b.Kill()
	waitFor(t, 5*time.Second, "publisher to notice the broker is gone", func() bool { return !p.State().Connected })
	time.Sleep(600 * time.Millisecond) // alarms keep coming while the broker is down
	queuedWhileDown := p.State().Queued
	b.Restart()
	<-done
	close(errs)
	for err := range errs {
		t.Errorf("publish during outage: %v", err)
	}
	waitFor(t, 20*time.Second, fmt.Sprintf("all %d alarms", n), func() bool { return count() == n })
	waitFor(t, 5*time.Second, "empty outbox", func() bool { return p.State().Queued == 0 })
	st := p.State()
	if st.Reconnects < 1 {
		t.Fatalf("State().Reconnects = %d after a broker restart", st.Reconnects)
	}
	if queuedWhileDown == 0 {
		t.Fatal("no alarm was queued while the broker was down; the test did not exercise the outage")
	}
	if lb.Count("mqtt connection lost") < 1 || lb.Count("mqtt reconnected") < 1 {
		t.Fatalf("expected connection lost / reconnected log lines")
	}
	t.Logf("%d alarms, %d queued during the outage, %d duplicates allowed by QoS 1", n, queuedWhileDown, dupes(seen))
}

func dupes(seen map[uint64]int) int {
	d := 0
	for _, c := range seen {
		d += c - 1
	}
	return d
}

// TestWrongPassword: refused credentials give one clear log line per
// attempt, with backoff, a health detail naming the cause, and no crash;
// messages published meanwhile are queued.
func TestWrongPassword(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Users: map[string]string{"inspectd": "right"}})
	p, lb := newPublisher(t, b.URL, "cam1", func(o *mqttpub.Options) {
		o.Username, o.Password = "inspectd", "wrong"
		o.MaxReconnectInterval = 4 * time.Second
	})
	start := time.Now()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishAlarm(sampleAlarm(1)); err != nil {
		t.Fatalf("QoS 1 publish while refused must queue, got %v", err)
	}
	if err := p.PublishResult(sampleResult(1, ""), 0); err == nil {
		t.Fatal("QoS 0 publish while not connected must report the drop")
	}
	waitFor(t, 5*time.Second, "two failed attempts", func() bool { return p.State().Failures >= 2 })
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("second attempt after %s: no backoff", el)
	}
	time.Sleep(1500 * time.Millisecond)
	st := p.State()
	// attempts at 0 s, 1 s, 3 s: at most 3 within ~2.5 s, and a log line for each.
	if st.Failures > 3 {
		t.Fatalf("%d attempts in %s: backoff not applied", st.Failures, time.Since(start))
	}
	if st.Connected || !strings.Contains(st.LastError, "not Authorized") && !strings.Contains(st.LastError, "bad user name or password") {
		t.Fatalf("State() = %+v", st)
	}
	// One line per attempt (a further attempt may have started since State).
	if got := lb.Count("mqtt connect failed", "hint=\"the broker refused the credentials"); got < st.Failures || got > st.Failures+1 {
		t.Fatalf("%d log lines for %d failed attempts:\n%s", got, st.Failures, lb.String())
	}
	if st.Queued != 1 {
		t.Fatalf("Queued = %d, want 1", st.Queued)
	}
	ok, detail := p.Health()
	if ok || !strings.Contains(detail, st.LastError) || !strings.Contains(detail, "1 messages queued") {
		t.Fatalf("Health() = %v, %q", ok, detail)
	}
	closeStart := time.Now()
	if err := p.Close(ctxTimeout(t, 3*time.Second)); err == nil || !strings.Contains(err.Error(), "1 messages not acknowledged") {
		t.Fatalf("Close while refused: %v", err)
	}
	if d := time.Since(closeStart); d > 2*time.Second {
		t.Fatalf("Close took %s while in backoff", d)
	}

	// The right password connects.
	good, _ := newPublisher(t, b.URL, "cam2", func(o *mqttpub.Options) { o.Username, o.Password = "inspectd", "right" })
	if err := good.Start(); err != nil {
		t.Fatal(err)
	}
	if err := good.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// TestTrigger: trigger requests reach the handler, including one sent
// while the daemon was down (kept by the broker for the persistent session
// and routed because OnTrigger is registered before Start).
func TestTrigger(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	plc := collect(t, b.URL, "plc", false, "none/#")
	got := make(chan mqttpub.Trigger, 4)
	bad := make(chan error, 4)
	handler := func(m mqttpub.Message) {
		tr, err := mqttpub.ParseTrigger(m.Topic, m.Payload)
		if err != nil {
			bad <- err
			return
		}
		got <- tr
	}
	start := func() *mqttpub.Publisher {
		p, _ := newPublisher(t, b.URL, "cam1", nil)
		if err := p.OnTrigger(handler); err != nil {
			t.Fatal(err)
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		if err := p.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := start()
	topic := p.Topics().Trigger
	// The subscription is made by onConnect; wait until a trigger gets through.
	waitFor(t, 5*time.Second, "first trigger", func() bool {
		plc.client.Publish(topic, 1, false, `{"id":"t-1"}`).Wait()
		select {
		case tr := <-got:
			return tr.ID == "t-1"
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	plc.client.Publish(topic, 1, false, `{"id": 5}`).Wait()
	select {
	case err := <-bad:
		if !strings.Contains(err.Error(), topic) {
			t.Fatalf("error does not name the topic: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bad trigger not reported")
	}
	if err := p.Close(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	for len(got) > 0 {
		<-got
	}
	// Daemon down: the broker keeps the request for the session.
	plc.client.Publish(topic, 1, false, `{"id":"while-down"}`).Wait()
	start()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case tr := <-got:
			if tr.ID == "while-down" {
				return
			}
			// a late duplicate of an earlier "t-1" probe
		case <-deadline:
			t.Fatal("trigger sent while the daemon was down was not delivered")
		}
	}
}
