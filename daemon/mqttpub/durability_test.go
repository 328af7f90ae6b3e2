package mqttpub_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// tinyDisk mounts a tmpfs of size bytes and returns its path, or "" when
// this process may not mount (not root, or no CAP_SYS_ADMIN).
func tinyDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		t.Logf("cannot mount a %d-byte tmpfs (%v): simulating the full disk with a file in the way", size, err)
		return ""
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestFullDisk: with the outbox on a full disk an alarm is not reported as
// safe. Publish returns ErrNotDurable (the alarm is still queued, in
// memory, and delivered while the process lives), State and Health say
// why, the retained status can say "degraded" (kept across reconnects; the
// Last Will stays "offline"), Close counts only what is on disk as kept,
// and the next start finds exactly that. The state directory is a 64 KiB
// tmpfs when the test may mount one.
func TestFullDisk(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Persistence: true})
	tp := mqttpub.TopicsFor(mqttpub.DefaultTopicPrefix, "cam1")
	sub := collect(t, b.URL, "scada", true, tp.Alarm)
	watch := collect(t, b.URL, "watch", true, tp.Status)
	b.Stop() // down while the disk fills: everything stays in the outbox
	disk := tinyDisk(t, 64<<10)
	simulated := disk == ""
	if simulated {
		disk = t.TempDir()
	}
	store := filepath.Join(disk, "mqtt-outbox")
	p, _ := newPublisher(t, b.URL, "cam1", func(o *mqttpub.Options) { o.StoreDir = store })
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	const n = 40
	// fill publishes n alarms from first on and counts how many were
	// reported durable and not.
	fill := func(first uint64) (durable, notDurable int) {
		for i := first; i < first+n; i++ {
			if simulated && durable == 16 && notDurable == 0 { // a file where the folder was: every write fails
				must(t, os.Rename(store, store+".full"))
				must(t, os.WriteFile(store, nil, 0o600))
			}
			err := p.PublishAlarm(sampleAlarm(i))
			switch {
			case err == nil:
				if notDurable > 0 {
					t.Fatalf("alarm %d reported durable after the disk filled", i)
				}
				durable++
			case errors.Is(err, mqttpub.ErrNotDurable):
				if !strings.Contains(err.Error(), tp.Alarm) {
					t.Fatalf("error does not name the topic: %v", err)
				}
				notDurable++
			default:
				t.Fatalf("alarm %d: %v", i, err)
			}
		}
		if simulated {
			must(t, os.Remove(store))
			must(t, os.Rename(store+".full", store))
		}
		if durable == 0 || notDurable == 0 {
			t.Fatalf("%d durable, %d not: the disk did not fill", durable, notDurable)
		}
		return durable, notDurable
	}
	durable, notDurable := fill(1)
	files, _ := filepath.Glob(filepath.Join(store, "*.msg"))
	st := p.State()
	if st.Queued != n || st.OnDisk != durable || st.NotDurable != notDurable || len(files) != durable || st.StoreError == "" {
		t.Fatalf("State %+v, %d files; want %d queued, %d on disk, %d in memory only", st, len(files), n, durable, notDurable)
	}
	if !simulated && !strings.Contains(st.StoreError, "no space left") {
		t.Fatalf("StoreError %q", st.StoreError)
	}
	if ok, detail := p.Health(); ok || !strings.Contains(detail, "outbox error") || !strings.Contains(detail, strconv.Itoa(notDurable)+" alarms/results held in memory only") {
		t.Fatalf("Health() = %v, %q", ok, detail)
	}
	// The daemon marks the retained status; it holds across the reconnect.
	if err := p.SetStatus("degraded: outbox cannot write"); err != nil {
		t.Fatal(err)
	}
	b.Restart()
	got := map[uint64]bool{}
	waitFor(t, 10*time.Second, "every alarm, from disk and from memory", func() bool {
		for _, m := range sub.drain() {
			var a mqttpub.Alarm
			must(t, json.Unmarshal(m.payload, &a))
			got[a.Seq] = true
		}
		return len(got) == n
	})
	waitFor(t, 5*time.Second, "degraded status", func() bool {
		m := watch.on(tp.Status)
		return len(m) > 0 && string(m[len(m)-1].payload) == "degraded: outbox cannot write"
	})
	waitFor(t, 5*time.Second, "empty outbox", func() bool { return p.State().Queued == 0 })

	// The disk fills again while the broker is away; Close: only what is
	// on disk is "kept for the next start", the rest is counted as lost.
	b.Stop()
	waitFor(t, 5*time.Second, "disconnect", func() bool { return !p.State().Connected })
	waitFor(t, 5*time.Second, "the acknowledged copies to go", func() bool {
		m, _ := filepath.Glob(filepath.Join(store, "*.msg"))
		return len(m) == 0
	})
	durable, notDurable = fill(n + 1)
	err := p.Close(ctxTimeout(t, 3*time.Second))
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(durable)+" messages not acknowledged by the broker, kept in "+store+" for the next connection to that folder (a reload's replacement, or the next start)") ||
		!strings.Contains(err.Error(), strconv.Itoa(notDurable)+" alarms/results are lost") {
		t.Fatalf("Close with %d on disk, %d in memory: %v", durable, notDurable, err)
	}
	next, _ := newPublisher(t, b.URL, "cam1", func(o *mqttpub.Options) { o.StoreDir = store })
	if st := next.State(); st.Queued != durable || st.OnDisk != durable {
		t.Fatalf("next start finds %+v, Close promised %d", st, durable)
	}
	t.Logf("%d alarms durable, %d held in memory only (simulated=%v)", durable, notDurable, simulated)
}

// TestOutboxFlood: while the broker is away, a flood past the outbox bound
// drops the oldest images, then the oldest results (counted); an image
// never pushes out a result, nothing pushes out an alarm, and alarms are
// refused only when alarms alone fill the outbox, loudly. Everything kept
// is delivered, in order.
func TestOutboxFlood(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{Persistence: true})
	tp := mqttpub.TopicsFor(mqttpub.DefaultTopicPrefix, "cam1")
	sub := collect(t, b.URL, "scada", true, "inspectd/cam1/+")
	b.Stop()
	p, lb := newPublisher(t, b.URL, "cam1", func(o *mqttpub.Options) { o.OutboxMaxMessages = 200 })
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	publish := func(n int, what string) (refused int) {
		for range n {
			seq++
			var err error
			switch what {
			case "alarm":
				err = p.PublishAlarm(sampleAlarm(seq))
			case "image":
				err = p.PublishHeatmap(make([]byte, 2000), 1)
			default:
				err = p.PublishResult(sampleResult(seq, ""), 1)
			}
			if errors.Is(err, mqttpub.ErrOutboxFull) {
				refused++
			} else if err != nil {
				t.Fatalf("%s %d: %v", what, seq, err)
			}
		}
		return refused
	}
	if publish(100, "image")+publish(100, "result") != 0 {
		t.Fatal("refused before the outbox was full")
	}
	if r := publish(100, "result"); r != 0 { // push out the 100 images
		t.Fatalf("%d results refused with images to drop", r)
	}
	if r := publish(50, "image"); r != 50 { // may not push out results
		t.Fatalf("%d of 50 images refused in an outbox full of results", r)
	}
	if r := publish(150, "alarm"); r != 0 { // push out the 150 oldest results
		t.Fatalf("%d alarms refused with results to drop", r)
	}
	if r := publish(100, "alarm"); r != 50 { // 50 push out the last results, then alarms alone fill it
		t.Fatalf("%d of 100 alarms refused, want 50", r)
	}
	st := p.State()
	if want := (mqttpub.ClassCounts{Image: 100, Result: 200}); st.Evicted != want || st.Queued != 200 {
		t.Fatalf("Evicted %+v, Queued %d; want %+v, 200", st.Evicted, st.Queued, want)
	}
	if want := (mqttpub.ClassCounts{Image: 50, Alarm: 50}); st.Refused != want {
		t.Fatalf("Refused %+v, want %+v", st.Refused, want)
	}
	if lb.Count("level=ERROR", "ALARM REFUSED") < 1 || lb.Count("ALARM REFUSED") > 2 {
		t.Fatalf("want a loud line for refused alarms, not one per alarm:\n%s", lb.String())
	}
	if lb.Count("mqtt outbox full: dropping") != 1 {
		t.Fatalf("want one line when the outbox starts dropping:\n%s", lb.String())
	}
	b.Restart()
	var alarms []uint64 // first deliveries (QoS 1 allows duplicates)
	seen := map[uint64]bool{}
	dups := 0
	defer func() { t.Logf("%d duplicates", dups) }()
	waitFor(t, 20*time.Second, "200 alarms", func() bool {
		for _, m := range sub.drain() {
			switch m.topic {
			case tp.Status, tp.Info:
				continue
			case tp.Alarm:
			default:
				t.Fatalf("%s delivered: everything but the alarms was dropped", m.topic)
			}
			var a mqttpub.Alarm
			must(t, json.Unmarshal(m.payload, &a))
			if seen[a.Seq] {
				dups++
				continue
			}
			if len(alarms) > 0 && a.Seq < alarms[len(alarms)-1] {
				t.Fatalf("alarm %d after %d", a.Seq, alarms[len(alarms)-1])
			}
			seen[a.Seq] = true
			alarms = append(alarms, a.Seq)
		}
		return len(alarms) == 200
	})
}

// TestNoPacketIDExhaustion: paho has 65,535 packet ids; 66,000 messages
// queued while the broker is away are all accepted and all acknowledged
// by the broker once it is back (paho never holds more than 20 of them).
func TestNoPacketIDExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("66,000 messages")
	}
	b := testbroker.Start(t, testbroker.Options{})
	b.Stop()
	p, _ := newPublisher(t, b.URL, "cam1", func(o *mqttpub.Options) { o.StoreDir, o.OutboxMaxMessages = "", 100000 })
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	const n = 66000
	topic := p.Topics().Result
	payload := []byte(`{"seq":1}`)
	for i := range n {
		if err := p.Publish(topic, payload, 1, false); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	b.Restart()
	waitFor(t, 90*time.Second, "every message acknowledged", func() bool { return p.State().Queued == 0 })
	if st := p.State(); st.Evicted != (mqttpub.ClassCounts{}) || st.Refused != (mqttpub.ClassCounts{}) {
		t.Fatalf("State %+v", st)
	}
}

// TestReplayNotOvertaken: alarms a killed run left on disk go out before
// the alarms the next run publishes as soon as it is connected (a large
// backlog, so that the replay takes a while).
func TestReplayNotOvertaken(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	topic := mqttpub.TopicsFor(mqttpub.DefaultTopicPrefix, "cam1").Alarm
	sub := collect(t, b.URL, "alarm-counter", false, topic)
	store := t.TempDir()
	first := startChild(t, envBroker+"=tcp://127.0.0.1:1", envStore+"="+store, envFirst+"=1", envCount+"=300", envPad+"=300")
	first.Expect(t, "QUEUED")
	first.Kill(t)
	second := startChild(t, envBroker+"="+b.URL, envStore+"="+store, envFirst+"=301", envCount+"=50", envConnect+"=1")
	second.Expect(t, "QUEUED")
	seen := map[uint64]bool{}
	var order []uint64
	waitFor(t, 30*time.Second, "350 alarms", func() bool {
		for _, m := range sub.drain() {
			var a mqttpub.Alarm
			must(t, json.Unmarshal(m.payload, &a))
			if !seen[a.Seq] {
				order = append(order, a.Seq)
			}
			seen[a.Seq] = true
		}
		return len(seen) == 350
	})
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			t.Fatalf("alarm %d arrived after %d: a new alarm overtook the stored backlog", order[i], order[i-1])
		}
	}
}

// TestQoS2PacketIDsNotReused: QoS 2 results the broker received but whose
// PUBREC never reached the publisher (held by a proxy), and a crash; at the
// next start one stored message cannot be read. No new message may take a
// packet id the broker still holds (mosquitto would log "Reused message ID"
// and drop the held message): every message arrives exactly once, the
// unreadable one at the start after.
func TestQoS2PacketIDsNotReused(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	topic := mqttpub.TopicsFor(mqttpub.DefaultTopicPrefix, "cam1").Result
	sub := collect(t, b.URL, "scada", false, topic)
	px := testbroker.NewProxy(t, b.URL)
	store := t.TempDir()
	env := []string{envStore + "=" + store, envQoS2 + "=1"}
	first := startChild(t, append(env, envBroker+"="+px.URL, envConnect+"=1", envGo+"=1", envFirst+"=1", envCount+"=5")...)
	first.Expect(t, "CONNECTED")
	px.StallToClient() // from now on the broker's PUBRECs are held
	if _, err := first.Stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	first.Expect(t, "QUEUED")
	waitFor(t, 5*time.Second, "five messages handed over with their packet ids on disk", func() bool {
		m, _ := filepath.Glob(filepath.Join(store, "*-o.*.msg"))
		return len(m) == 5
	})
	time.Sleep(200 * time.Millisecond) // let the proxy pass them on
	first.Kill(t)
	px.Cut()
	px.Resume()

	// The message with the highest packet id cannot be read now.
	held, _ := filepath.Glob(filepath.Join(store, "*-o.*.msg"))
	sort.Strings(held)
	last := held[len(held)-1]
	must(t, os.Rename(last, last+".away"))
	must(t, os.Mkdir(last, 0o700))
	second := startChild(t, append(env, envBroker+"="+b.URL, envConnect+"=1", envFirst+"=6", envCount+"=30")...)
	second.Expect(t, "QUEUED")
	waitFor(t, 10*time.Second, "34 results", func() bool { return len(sub.on(topic)) >= 34 })
	if strings.Contains(b.Log(), "Reused message ID") {
		t.Fatalf("a packet id held by the broker was reused:\n%s", b.Log())
	}
	second.Stdin.Close()
	<-second.Done
	must(t, os.Remove(last))
	must(t, os.Rename(last+".away", last))
	third := startChild(t, append(env, envBroker+"="+b.URL, envConnect+"=1", envFirst+"=100", envCount+"=0")...)
	third.Expect(t, "QUEUED")
	waitFor(t, 10*time.Second, "35 results", func() bool { return len(sub.on(topic)) >= 35 })
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(b.Log(), "Reused message ID") {
		t.Fatalf("a packet id held by the broker was reused:\n%s", b.Log())
	}
	count := map[uint64]int{}
	for _, m := range sub.on(topic) {
		var r mqttpub.Result
		must(t, json.Unmarshal(m.payload, &r))
		count[r.Seq]++
	}
	for i := uint64(1); i <= 35; i++ {
		if count[i] != 1 {
			t.Fatalf("result %d delivered %d times: %v", i, count[i], count)
		}
	}
}
