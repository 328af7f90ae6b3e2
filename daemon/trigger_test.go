package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// triggerLine is a trigger-mode daemon on a real mosquitto, with a PLC
// client that sends triggers and collects the results.
type triggerLine struct {
	*runningDaemon
	b   *testbroker.Broker
	plc mqtt.Client

	mu      sync.Mutex
	results []mqttpub.Result
}

// triggerYAML is baseYAML in trigger mode on broker url, plus extra
// capture.trigger settings.
func triggerYAML(url, triggerExtra string) func(r *runningDaemon) string {
	return func(r *runningDaemon) string { return r.triggerMode(r.baseYAML("cell1"), url, triggerExtra) }
}

// triggerMode is the configuration y (baseYAML, its capture line perhaps
// replaced) in trigger mode on broker url, plus extra capture.trigger
// settings.
func (r *runningDaemon) triggerMode(y, url, triggerExtra string) string {
	y = strings.Replace(y, "mqtt: {embedded_listen: 127.0.0.1:"+strconv.Itoa(r.port)+"}",
		"mqtt: {brokers: ["+url+"], max_reconnect_interval: 1s}", 1)
	return strings.Replace(y, "capture: {", "capture: {trigger: {mode: external"+triggerExtra+"}, ", 1)
}

func newTriggerLine(t *testing.T, b *testbroker.Broker, triggerExtra string) *triggerLine {
	t.Helper()
	l := startTriggerLine(t, b, triggerYAML(b.URL, triggerExtra))
	l.probe()
	return l
}

// startTriggerLine connects the PLC client to b and starts the daemon on
// the configuration yaml writes, without probing it (a probe would take a
// folder source's file).
func startTriggerLine(t *testing.T, b *testbroker.Broker, yaml func(r *runningDaemon) string) *triggerLine {
	t.Helper()
	l := &triggerLine{b: b}
	l.plc = testbroker.Connect(t, mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("plc-"+strconv.Itoa(testbroker.FreePort(t))).
		SetAutoReconnect(true).SetOrderMatters(true),
		testbroker.Sub{Topic: "inspectd/cell1/result", QoS: 1, Handler: func(_ mqtt.Client, m mqtt.Message) {
			var r mqttpub.Result
			if err := json.Unmarshal(m.Payload(), &r); err != nil {
				t.Errorf("result %s: %v", m.Payload(), err)
				return
			}
			l.mu.Lock()
			l.results = append(l.results, r)
			l.mu.Unlock()
		}})
	l.runningDaemon = startDaemon(t, yaml)
	l.daemon()
	return l
}

// probe sends triggers until one is answered (the daemon subscribes once
// connected) and forgets their answers.
func (l *triggerLine) probe() {
	l.t.Helper()
	sent := 0
	l.waitFor("the daemon's subscription", func() bool {
		for i := 1; i <= sent; i++ {
			if len(l.answers("probe-"+strconv.Itoa(i))) > 0 {
				return true
			}
		}
		sent++
		l.plc.Publish("inspectd/cell1/trigger", 1, false, `{"id":"probe-`+strconv.Itoa(sent)+`"}`)
		time.Sleep(500 * time.Millisecond)
		return false
	})
	time.Sleep(time.Second) // probes sent before the subscription are lost; later ones answered by now
	l.mu.Lock()
	l.results = nil
	l.mu.Unlock()
}

func (l *triggerLine) trigger(payload string) {
	l.t.Helper()
	if tok := l.plc.Publish("inspectd/cell1/trigger", 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		l.t.Fatalf("publish trigger: %v", tok.Error())
	}
}

// answers returns the results received for id.
func (l *triggerLine) answers(id string) []mqttpub.Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []mqttpub.Result
	for _, r := range l.results {
		if r.TriggerID == id {
			out = append(out, r)
		}
	}
	return out
}

func (l *triggerLine) waitAnswer(id string) mqttpub.Result {
	l.t.Helper()
	l.waitFor("the answer to "+id, func() bool { return len(l.answers(id)) > 0 })
	return l.answers(id)[0]
}

// TestRetainedTriggerNotExecuted: a retained trigger (the field case) is
// not executed at start, at a broker reconnect, or at a second start; one
// warning per start says how to clear it.
func TestRetainedTriggerNotExecuted(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{Persistence: true})
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("old-plc"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub.Publish("inspectd/cell1/trigger", 1, true, `{"id":"t1"}`).Wait()
	pub.Disconnect(100)

	l := newTriggerLine(t, b, "")
	l.trigger(`{"id":"t2"}`)
	if r := l.waitAnswer("t2"); r.Verdict == VerdictError {
		t.Fatalf("t2 answered with an error: %+v", r)
	}
	// A reconnect replays retained messages to the new subscription.
	b.SaveNow()
	b.Kill()
	time.Sleep(300 * time.Millisecond)
	b.Restart()
	l.waitFor("the reconnect", func() bool { return strings.Contains(l.logs.String(), "mqtt reconnected") }, &l.logs)
	l.probe()
	l.trigger(`{"id":"t3"}`)
	l.waitAnswer("t3")
	if n := len(l.answers("t1")); n != 0 {
		t.Errorf("retained trigger t1 executed %d times", n)
	}
	if n := strings.Count(l.logs.String(), "retained trigger ignored"); n != 1 {
		t.Errorf("%d warnings about the retained trigger, want one per topic:\n%s", n, l.logs.String())
	}
	if !strings.Contains(l.logs.String(), "mosquitto_pub -r -n -t") {
		t.Errorf("the warning does not say how to clear the retained trigger")
	}
	// A second daemon start on the same broker: still not executed.
	l.cancel()
	<-l.done
	l.done <- nil
	l2 := newTriggerLine(t, b, "")
	l2.trigger(`{"id":"t4"}`)
	l2.waitAnswer("t4")
	if n := len(l2.answers("t1")); n != 0 {
		t.Errorf("retained trigger t1 executed %d times after a restart", n)
	}
}

// TestTriggerBurstAllAnswered: 50 triggers sent at once into a queue of 8
// are each answered exactly once, by an inspection or by an error result
// that says the queue was full; their inspections come in arrival order.
func TestTriggerBurstAllAnswered(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{})
	l := newTriggerLine(t, b, ", queue: 8, max_age: 0s") // none expires, however slow the machine
	const n = 50
	for i := 0; i < n; i++ {
		l.plc.Publish("inspectd/cell1/trigger", 1, false, fmt.Sprintf(`{"id":"p%02d"}`, i))
	}
	burst := func() []mqttpub.Result {
		l.mu.Lock()
		defer l.mu.Unlock()
		var out []mqttpub.Result
		for _, r := range l.results {
			if !strings.HasPrefix(r.TriggerID, "probe-") {
				out = append(out, r)
			}
		}
		return out
	}
	l.waitFor("50 answers", func() bool { return len(burst()) >= n })
	time.Sleep(500 * time.Millisecond) // no extra answers trickle in
	results := burst()
	if len(results) != n {
		t.Errorf("%d answers for %d triggers", len(results), n)
	}
	seen := map[string]int{}
	full, ok := 0, 0
	var served []mqttpub.Result
	for _, r := range results {
		seen[r.TriggerID]++
		switch {
		case r.Verdict == VerdictError && strings.Contains(r.Error, "queue full"):
			full++
			if !r.Anomalous {
				t.Errorf("error answer %s not marked anomalous", r.TriggerID)
			}
		case r.Verdict == VerdictError:
			t.Errorf("trigger %s: unexpected error %q", r.TriggerID, r.Error)
		default:
			ok++
			served = append(served, r)
		}
	}
	for i := 0; i < n; i++ {
		if id := fmt.Sprintf("p%02d", i); seen[id] != 1 {
			t.Errorf("trigger %s answered %d times", id, seen[id])
		}
	}
	if full == 0 || ok < 8 {
		t.Errorf("%d inspected, %d refused as queue full; want both", ok, full)
	}
	// Served triggers got frames in the order they were sent.
	sort.Slice(served, func(i, j int) bool { return served[i].TriggerID < served[j].TriggerID })
	for i := 1; i < len(served); i++ {
		if !served[i].FrameTime.After(served[i-1].FrameTime) {
			t.Errorf("trigger %s got a frame from %v, not after %s's %v", served[i].TriggerID, served[i].FrameTime,
				served[i-1].TriggerID, served[i-1].FrameTime)
		}
	}
	t.Logf("%d inspected, %d answered queue full", ok, full)
}

// TestTriggerDuplicateAndStale: a repeated trigger id is answered again
// with the stored result and not inspected twice; a request carrying a
// send time older than max_age is answered as stale; in free-run a trigger
// gets an error answer instead of none.
func TestTriggerDuplicateAndStale(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{})
	l := newTriggerLine(t, b, ", max_age: 2s")
	l.trigger(`{"id":"dup"}`)
	first := l.waitAnswer("dup")
	l.trigger(`{"id":"dup"}`)
	l.waitFor("the repeated answer", func() bool { return len(l.answers("dup")) >= 2 })
	second := l.answers("dup")[1]
	if second.Seq != first.Seq || second.Score != first.Score || !second.FrameTime.Equal(first.FrameTime) {
		t.Errorf("repeated id answered with %+v, want the stored %+v", second, first)
	}
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(l.lines.String(), "trigger=dup\n"); n != 1 {
		t.Errorf("the id was inspected %d times, want once", n)
	}

	old := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	l.trigger(`{"id":"late","time":"` + old + `"}`)
	r := l.waitAnswer("late")
	if r.Verdict != VerdictError || !strings.Contains(r.Error, "stale trigger") || !r.Anomalous {
		t.Errorf("a trigger sent a minute ago answered %+v, want a stale-trigger error", r)
	}
	l.trigger(`{"id":"fresh","time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`)
	if r := l.waitAnswer("fresh"); r.Verdict == VerdictError {
		t.Errorf("a fresh trigger with its send time answered %+v", r)
	}
	// Dated ahead of the box's clock (a PLC with a wrong clock): served,
	// and the clocks' disagreement said once, not per trigger.
	for _, id := range []string{"ahead1", "ahead2"} {
		l.trigger(`{"id":"` + id + `","time":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano) + `"}`)
		if r := l.waitAnswer(id); r.Verdict == VerdictError {
			t.Errorf("a trigger dated an hour ahead answered %+v", r)
		}
	}
	if n := strings.Count(l.logs.String(), "trigger dated ahead of this box's clock"); n != 1 {
		t.Errorf("%d warnings for two triggers dated ahead, want 1", n)
	}
	// Keys spelt exactly: {"ID":"p6"} once caused an inspection. It is
	// refused, and answered to nobody (it holds no "id"); a request with
	// "id" and "ID" is refused and answered to its "id".
	l.trigger(`{"ID":"p6"}`)
	l.trigger(`{"id":"p7","ID":"p8"}`)
	if r := l.waitAnswer("p7"); r.Verdict != VerdictError || !strings.Contains(r.Error, `field "ID" appears twice (also as "id")`) {
		t.Errorf("a trigger with id and ID answered %+v, want an error naming ID", r)
	}
	l.trigger(`{"id":"after-keys"}`)
	l.waitAnswer("after-keys")
	if n := len(l.answers("p6")) + len(l.answers("p8")); n != 0 || strings.Contains(l.lines.String(), "trigger=p6") {
		t.Errorf("mis-cased trigger ids answered %d times or inspected:\n%s", n, l.lines.String())
	}
	if !strings.Contains(l.logs.String(), `did you mean \"id\"?`) {
		t.Errorf("the refusal of {\"ID\":\"p6\"} does not say what was meant:\n%s", l.logs.String())
	}
}

// TestTriggerAnsweredBeforePipeline: a trigger refused before the first
// pipeline exists (a held one arrives right after the connection, which
// comes first) is answered when the pipeline starts, not dropped (CI once
// waited for the answer to a held trigger in vain); a trigger queued then
// is refused as "starting", not as free-run.
func TestTriggerAnsweredBeforePipeline(t *testing.T) {
	d := &Daemon{}
	if err := d.enqueueTrigger("early"); !errors.Is(err, errStarting) {
		t.Errorf("a trigger before the pipeline: %v, want errStarting", err)
	}
	d.answerTrigger("held", errors.New("stale trigger: held"))
	var got []mqttpub.Result
	p, err := NewPipeline(PipelineOptions{Source: &frames{}, Detector: syntheticDetector(t),
		Sink: &memSink{onResult: func(r *mqttpub.Result) { got = append(got, *r) }}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	d.pipe.Store(p)
	d.answerEarly(p)
	if len(got) != 1 || got[0].TriggerID != "held" || got[0].Verdict != VerdictError || !got[0].Anomalous || !strings.Contains(got[0].Error, "held") {
		t.Fatalf("answers published when the pipeline started: %+v, want the held trigger's error", got)
	}
	d.answerTrigger("later", errors.New("queue full"))
	if len(got) != 2 || got[1].TriggerID != "later" || len(d.early) != 0 {
		t.Errorf("a refusal once the pipeline runs: %d answers (%+v), %d held back", len(got), got, len(d.early))
	}
}

// TestTriggerHeldByBrokerIsStale: a trigger the broker held for the
// daemon's persistent session while the daemon was down is answered as
// stale when it comes back, not with a frame of whatever part is there
// now; a fresh trigger afterwards is inspected; results carry a boot id
// that differs between the two starts.
func TestTriggerHeldByBrokerIsStale(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{})
	l := newTriggerLine(t, b, "")
	l.trigger(`{"id":"before"}`)
	first := l.waitAnswer("before")
	l.cancel()
	<-l.done
	l.done <- nil
	// The daemon is gone; its session (clean session off) keeps the
	// subscription, so the broker holds this one for it.
	l.trigger(`{"id":"held"}`)
	l2 := newTriggerLine(t, b, "")
	// l's context ended with its daemon: wait on l2's (l's PLC client
	// still collects the answers).
	l2.waitFor("the answer to held", func() bool { return len(l.answers("held")) > 0 })
	held := l.answers("held")[0]
	if held.Verdict != VerdictError || !strings.Contains(held.Error, "stale trigger") ||
		!strings.Contains(held.Error, "what the broker held while inspectd was not connected") {
		t.Errorf("the held trigger was answered %+v, want a stale-trigger error", held)
	}
	l2.trigger(`{"id":"after"}`)
	after := l2.waitAnswer("after")
	if after.Verdict == VerdictError {
		t.Errorf("a fresh trigger after the restart: %+v", after)
	}
	if first.BootID == "" || after.BootID == "" || first.BootID == after.BootID {
		t.Errorf("boot ids %q and %q across a restart", first.BootID, after.BootID)
	}
}

// TestRepeatedTriggerLogSaysWhatWasSent: the line logged for a trigger id
// answered before says whether its stored result went out again: over
// mqtt.profile sparkplug nothing is (it said "sent again" there too).
func TestRepeatedTriggerLogSaysWhatWasSent(t *testing.T) {
	for _, tc := range []struct {
		republishErr error
		want         string
	}{{nil, "its stored result sent again"}, {errNotRepublished, "nothing sent again (mqtt.profile sparkplug"}} {
		var logs syncBuffer
		in := newTriggerIntake(slog.New(slog.NewTextHandler(&logs, nil)), nil)
		in.configure(time.Minute, 0)
		in.answered(&mqttpub.Result{Header: mqttpub.Header{Seq: 3, TriggerID: "p1"}, Verdict: "ok"})
		done := make(chan struct{})
		prev, err := in.accept(mqttpub.Trigger{ID: "p1"}, false, func(string) error { t.Error("a repeated id queued"); return nil },
			func(string, error) {}, func(*mqttpub.Result) error { defer close(done); return tc.republishErr })
		if err != nil || prev == nil || prev.res.Seq != 3 {
			t.Fatalf("repeated id: %+v, %v", prev, err)
		}
		<-done
		testbroker.WaitFor(context.Background(), 5*time.Second, func() bool { return strings.Contains(logs.String(), tc.want) }, &logs)
		if !strings.Contains(logs.String(), tc.want) {
			t.Errorf("republish error %v: log %q lacks %q", tc.republishErr, logs.String(), tc.want)
		}
	}
}
