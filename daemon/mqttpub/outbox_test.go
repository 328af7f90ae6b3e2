package mqttpub

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testOutbox opens an outbox for device "cam1" as the publisher does.
func testOutbox(t testing.TB, dir string, maxMsgs int, maxBytes int64) *outbox {
	t.Helper()
	tp := TopicsFor("inspectd", "cam1")
	p := &Publisher{topics: tp}
	return openOutbox(outboxOptions{dir: dir, log: discard(), maxMsgs: maxMsgs, maxBytes: maxBytes, classify: p.classify,
		superseded: func(topic string) bool { return topic == tp.Status || topic == tp.Info }})
}

var tp = TopicsFor("inspectd", "cam1")

func mustAdd(t *testing.T, o *outbox, topic string, qos byte, payload string) {
	t.Helper()
	p := &Publisher{topics: tp}
	if err := o.add(topic, qos, false, []byte(payload), p.classify(topic)); err != nil {
		t.Fatalf("add %s %q: %v", topic, payload, err)
	}
}

// handOver plays the sender and paho for one message: take, Put with the
// next packet id, handed. It returns nil when nothing may go.
func handOver(t *testing.T, o *outbox, id *uint16) *entry {
	t.Helper()
	e, _ := o.take()
	if e == nil {
		return nil
	}
	if e.sendQoS > 0 {
		*id++
		o.Put("o."+itoa(*id), e.packet(*id))
	}
	o.handed(e)
	return e
}

// handOverAll hands over everything that may go now.
func handOverAll(t *testing.T, o *outbox, id *uint16) []*entry {
	t.Helper()
	var got []*entry
	for e := handOver(t, o, id); e != nil; e = handOver(t, o, id) {
		got = append(got, e)
	}
	return got
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }

func payloads(es []*entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.payload))
	}
	return out
}

// TestOutboxPriorityOrderAndReload: alarms go before results before
// images, each class in publish order; only what belongs on disk is
// there, and a new process sees the same queue in the same order.
func TestOutboxPriorityOrderAndReload(t *testing.T) {
	dir := t.TempDir()
	o := testOutbox(t, dir, 100, 1<<20)
	mustAdd(t, o, tp.Result, 1, "r1")
	mustAdd(t, o, tp.Heatmap, 1, "h1")
	mustAdd(t, o, tp.Alarm, 1, "a1")
	mustAdd(t, o, tp.Result, 0, "r2-qos0")
	mustAdd(t, o, "inspectd/cam1/cmd/reply", 1, "c1")
	mustAdd(t, o, tp.Alarm, 1, "a2")
	if st := o.stats(); st.queued != 6 || st.onDisk != 4 {
		t.Fatalf("queued %d on disk %d, want 6 and 4 (images and QoS 0 stay in memory)", st.queued, st.onDisk)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.msg")); len(m) != 4 {
		t.Fatalf("files %v", m)
	}
	if e, _ := o.take(); e != nil {
		t.Fatal("handed out while not connected")
	}
	o.connUp(time.Now())
	var id uint16
	got := handOverAll(t, o, &id)
	if want := []string{"a1", "a2", "r1", "r2-qos0", "c1", "h1"}; !reflect.DeepEqual(payloads(got), want) {
		t.Fatalf("hand-over order %v, want %v", payloads(got), want)
	}

	// A new process (the first one killed before any acknowledgement)
	// replays the durable ones, in the same order.
	o2 := testOutbox(t, dir, 100, 1<<20)
	o2.connUp(time.Now())
	id = 0
	got = handOverAll(t, o2, &id)
	if want := []string{"a1", "a2", "r1", "c1"}; !reflect.DeepEqual(payloads(got), want) {
		t.Fatalf("after reload %v, want %v", payloads(got), want)
	}
	for i := uint16(1); i <= id; i++ {
		o2.Del("o." + itoa(i))
	}
	if st := o2.stats(); st.queued != 0 || st.onDisk != 0 {
		t.Fatalf("after acknowledgements %+v", st)
	}
	// The copies stay a moment (the broker may not have stored them yet),
	// then go.
	o2.sweep(time.Now(), false)
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 4 {
		t.Fatalf("acknowledged copies removed at once: %v", m)
	}
	o2.sweep(time.Now().Add(ackGrace), false)
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Fatalf("files left after every acknowledgement: %v", m)
	}
}

// TestOutboxWindowAndGate: at most maxInflight messages are with paho,
// and after a reconnect nothing new goes until paho's replay of the
// earlier ones is acknowledged.
func TestOutboxWindowAndGate(t *testing.T) {
	o := testOutbox(t, "", 1000, 1<<20)
	for range maxInflight + 5 {
		mustAdd(t, o, tp.Alarm, 1, "a")
	}
	o.connUp(time.Now())
	var id uint16
	n := 0
	for handOver(t, o, &id) != nil {
		n++
	}
	if n != maxInflight {
		t.Fatalf("%d handed at once, want %d", n, maxInflight)
	}
	o.Del("o.1")
	if handOver(t, o, &id) == nil || handOver(t, o, &id) != nil {
		t.Fatal("one acknowledgement must free exactly one place")
	}
	// paho replays its session after the connection is open: what the
	// sender handed over since is not in it (paho sent it already).
	if keys := o.All(); len(keys) != 0 {
		t.Fatalf("paho would send %d messages twice", len(keys))
	}
	// The connection drops and comes back: paho replays its 20.
	if _, ok := o.connEnded(time.Now()); !ok {
		t.Fatal("connEnded")
	}
	if keys := o.All(); len(keys) != maxInflight {
		t.Fatalf("paho replays %d messages after a reconnect, want %d", len(keys), maxInflight)
	}
	o.connUp(time.Now())
	for i := uint16(2); i <= 20; i++ {
		o.Del("o." + itoa(i))
		if handOver(t, o, &id) != nil {
			t.Fatalf("a new message overtook the replay after %d of 20 acknowledgements", i-1)
		}
	}
	o.Del("o.21")
	if handOver(t, o, &id) == nil {
		t.Fatal("nothing goes once the replay is acknowledged")
	}
}

// TestOutboxBounds: a full outbox drops the oldest images, then the
// oldest results; alarms are never dropped and are refused only when
// alarms alone fill it.
func TestOutboxBounds(t *testing.T) {
	o := testOutbox(t, t.TempDir(), 6, 1<<20)
	mustAdd(t, o, tp.Heatmap, 1, "h1")
	mustAdd(t, o, tp.Result, 1, "r1")
	mustAdd(t, o, tp.Heatmap, 0, "h2")
	mustAdd(t, o, tp.Result, 1, "r2")
	mustAdd(t, o, tp.Alarm, 1, "a1")
	mustAdd(t, o, tp.Result, 1, "r3")  // full now: 6
	mustAdd(t, o, tp.Heatmap, 1, "h3") // pushes out h1
	mustAdd(t, o, tp.Result, 1, "r4")  // pushes out h2
	mustAdd(t, o, tp.Alarm, 1, "a2")   // pushes out h3
	mustAdd(t, o, tp.Alarm, 1, "a3")   // pushes out r1
	if err := o.add(tp.Heatmap, 1, false, []byte("h4"), classImage); !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("image into an outbox without images: %v", err)
	}
	mustAdd(t, o, tp.Result, 1, "r5") // pushes out r2
	for _, a := range []string{"a4", "a5", "a6"} {
		mustAdd(t, o, tp.Alarm, 1, a) // r3, r4, r5 go
	}
	err := o.add(tp.Alarm, 1, false, []byte("a7"), classAlarm)
	if !errors.Is(err, ErrOutboxFull) || !strings.Contains(err.Error(), "alarms alone fill it") || !strings.Contains(err.Error(), tp.Alarm) {
		t.Fatalf("alarm into an outbox full of alarms: %v", err)
	}
	if err := o.add(tp.Result, 1, false, []byte("r6"), classResult); !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("result into an outbox full of alarms: %v", err)
	}
	st := o.stats()
	if want := (ClassCounts{Image: 3, Result: 5}); st.evicted != want {
		t.Fatalf("evicted %+v, want %+v", st.evicted, want)
	}
	if want := (ClassCounts{Alarm: 1, Result: 1, Image: 1}); st.refused != want {
		t.Fatalf("refused %+v, want %+v", st.refused, want)
	}
	o.connUp(time.Now())
	var id uint16
	got := handOverAll(t, o, &id)
	if want := []string{"a1", "a2", "a3", "a4", "a5", "a6"}; !reflect.DeepEqual(payloads(got), want) {
		t.Fatalf("queue %v, want %v", payloads(got), want)
	}
	if m, _ := filepath.Glob(filepath.Join(o.dir, "*.msg")); len(m) != 6 {
		t.Fatalf("evicted results left files behind: %v", m)
	}
	// A byte bound works the same way.
	ob := testOutbox(t, "", 100, 40)
	mustAdd(t, ob, tp.Result, 1, strings.Repeat("r", 10)) // cost 21+10
	if err := ob.add(tp.Heatmap, 1, false, make([]byte, 30), classImage); !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("image over the byte bound: %v", err)
	}
	mustAdd(t, ob, tp.Alarm, 1, "a") // cost 20: the result goes
	if st := ob.stats(); st.queued != 1 || st.evicted.Result != 1 {
		t.Fatalf("byte bound: %+v", st)
	}
}

// TestOutboxSessionStoreAndInbound: paho's Store contract; incoming
// messages never touch the disk.
func TestOutboxSessionStoreAndInbound(t *testing.T) {
	dir := t.TempDir()
	o := testOutbox(t, dir, 100, 1<<20)
	in := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	in.Qos, in.MessageID, in.TopicName, in.Payload = 1, 7, tp.Trigger, []byte(`{"id":"t1"}`)
	o.Put("i.7", in)
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Fatalf("an incoming trigger was written to disk: %v", m)
	}
	if o.Get("i.7") != in || !reflect.DeepEqual(o.All(), []string{"i.7"}) {
		t.Fatal("inbound packet not kept")
	}
	o.Del("i.7")
	if o.Get("i.7") != nil || len(o.All()) != 0 {
		t.Fatal("inbound packet not forgotten")
	}
	// A message paho publishes itself (Close's goodbye) is kept apart.
	bye := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	bye.Qos, bye.MessageID, bye.TopicName, bye.Payload, bye.Retain = 1, 9, tp.Status, []byte("offline"), true
	o.Put("o.9", bye)
	if got, ok := o.Get("o.9").(*packets.PublishPacket); !ok || string(got.Payload) != "offline" || !got.Retain || got.MessageID != 9 {
		t.Fatalf("Get(o.9) = %v", o.Get("o.9"))
	}
	if st := o.stats(); st.queued != 0 {
		t.Fatalf("a control message counted as queued: %+v", st)
	}
	o.Del("o.9")
	o.Del("o.9") // twice is harmless
	o.Reset()
}

// TestOutboxQoS2KeepsPacketID: a QoS 2 message handed to paho keeps its
// packet id on disk (new file durable before the old one goes); after a
// crash the id is reserved and the message resent with it.
func TestOutboxQoS2KeepsPacketID(t *testing.T) {
	dir := t.TempDir()
	o := testOutbox(t, dir, 100, 1<<20)
	mustAdd(t, o, tp.Result, 2, "q2")
	mustAdd(t, o, tp.Result, 2, "q2-later")
	o.connUp(time.Now())
	id := uint16(40)
	if e := handOver(t, o, &id); e == nil || e.id != 41 {
		t.Fatalf("handed %+v", e)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.msg"))
	names := []string{filepath.Base(files[0]), filepath.Base(files[1])}
	if want := []string{"00000000000000000001-o.41.msg", "00000000000000000002.msg"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}

	// The process dies; the next one reserves id 41 and replays it first.
	o2 := testOutbox(t, dir, 100, 1<<20)
	if keys := o2.All(); !reflect.DeepEqual(keys, []string{"o.41"}) {
		t.Fatalf("paho sees %v at start, want [o.41]", keys)
	}
	p, ok := o2.Get("o.41").(*packets.PublishPacket)
	if !ok || p.Qos != 2 || p.MessageID != 41 || string(p.Payload) != "q2" {
		t.Fatalf("Get(o.41) = %v", o2.Get("o.41"))
	}
	o2.connUp(time.Now())
	if e, _ := o2.take(); e != nil {
		t.Fatalf("%q overtook the replayed QoS 2 message", e.payload)
	}
	o2.Del("o.41")
	if e, _ := o2.take(); e == nil || string(e.payload) != "q2-later" {
		t.Fatalf("after PUBCOMP: %+v", e)
	}
}

// TestOutboxRebindFailureKeepsDurableCopy: when the copy that records a
// QoS 2 message's packet id cannot be written, the old copy stays.
func TestOutboxRebindFailureKeepsDurableCopy(t *testing.T) {
	dir := t.TempDir()
	o := testOutbox(t, dir, 100, 1<<20)
	mustAdd(t, o, tp.Result, 2, "q2")
	// Something in the way of the new name makes its rename fail.
	must(t, os.Mkdir(filepath.Join(dir, "00000000000000000001-o.1.msg"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "00000000000000000001-o.1.msg", "x"), nil, 0o600))
	o.connUp(time.Now())
	var id uint16
	handOver(t, o, &id)
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000001.msg")); err != nil {
		t.Fatalf("the durable copy was removed although its replacement failed: %v", err)
	}
	if st := o.stats(); st.storeErr == "" || st.onDisk != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOutboxUnreadableStaysAndHoldsID: a read error at start (here: a
// directory where a file should be) leaves the message in place for the
// next start instead of setting it aside for good, and its QoS 2 packet id
// stays reserved (paho reserves it from a placeholder and skips it in the
// replay); content that is not a packet is quarantined.
func TestOutboxUnreadableStaysAndHoldsID(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, "00000000000000000003-o.5.msg"), 0o700))
	must(t, os.Mkdir(filepath.Join(dir, "00000000000000000004.msg"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "00000000000000000006.msg"), []byte{0x30, 0x7f}, 0o600)) // truncated
	o := testOutbox(t, dir, 100, 1<<20)
	if keys := o.All(); !reflect.DeepEqual(keys, []string{"o.5"}) {
		t.Fatalf("All() = %v", keys)
	}
	if p, ok := o.Get("o.5").(*packets.PublishPacket); !ok || p.MessageID != 5 {
		t.Fatalf("no placeholder to reserve id 5: %v", o.Get("o.5"))
	}
	o.markReserved()
	if o.Get("o.5") != nil {
		t.Fatal("the placeholder would be sent in the replay")
	}
	st := o.stats()
	if st.queued != 0 || !strings.Contains(st.storeErr, "could not be read") {
		t.Fatalf("stats %+v", st)
	}
	for _, name := range []string{"00000000000000000003-o.5.msg", "00000000000000000004.msg", "00000000000000000006.corrupt"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// New messages number after the unreadable ones.
	mustAdd(t, o, tp.Alarm, 1, "a")
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000007.msg")); err != nil {
		t.Fatalf("new message file: %v", err)
	}
	o.connUp(time.Now())
	if e, _ := o.take(); e == nil || string(e.payload) != "a" {
		t.Fatal("an unreadable message must not hold up the queue")
	}
	// The disk recovers: the queued message is read and joins the queue.
	must(t, os.Remove(filepath.Join(dir, "00000000000000000004.msg")))
	f, err := os.Create(filepath.Join(dir, "00000000000000000004.msg"))
	must(t, err)
	late := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	late.Qos, late.TopicName, late.Payload = 1, tp.Alarm, []byte("late")
	must(t, late.Write(f))
	must(t, f.Close())
	o.retryUnread()
	if st := o.stats(); st.queued != 2 || !strings.Contains(st.storeErr, "could not be read") {
		t.Fatalf("after the retry %+v (the QoS 2 one is still held)", st)
	}
}

// TestOutboxLoadsOlderVersionsAndDropsJunk: files of the earlier outbox
// format load (QoS 1 queued again, incoming ones and superseded retained
// state removed), temp files of unfinished writes go, others stay.
func TestOutboxLoadsOlderVersionsAndDropsJunk(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, pkt packets.ControlPacket) {
		f, err := os.Create(filepath.Join(dir, name))
		must(t, err)
		must(t, pkt.Write(f))
		must(t, f.Close())
	}
	pub := func(id uint16, topic, payload string) *packets.PublishPacket {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.Qos, p.MessageID, p.TopicName, p.Payload = 1, id, topic, []byte(payload)
		return p
	}
	write("00000000000000000001-o.9.msg", pub(9, tp.Status, "offline"))
	write("00000000000000000002-o.2.msg", pub(2, tp.Alarm, "a-old"))
	write("00000000000000000003-o.3.msg", pub(3, tp.Info, "{}"))
	write("00000000000000000004-i.4.msg", pub(4, tp.Trigger, `{"id":"x"}`))
	write("00000000000000000005-o.7.msg", pub(7, tp.Result, "r-old"))
	must(t, os.WriteFile(filepath.Join(dir, "00000000000000000009-o.9.msg.tmp"), []byte("partial"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600))
	o := testOutbox(t, dir, 100, 1<<20)
	o.connUp(time.Now())
	var id uint16
	got := handOverAll(t, o, &id)
	if want := []string{"a-old", "r-old"}; !reflect.DeepEqual(payloads(got), want) {
		t.Fatalf("replayed %v, want %v", payloads(got), want)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	var names []string
	for _, f := range left {
		names = append(names, filepath.Base(f))
	}
	if want := []string{"00000000000000000002-o.2.msg", "00000000000000000005-o.7.msg", "notes.txt"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
}

// TestOutboxWriteFailure: when the disk refuses a write the message is
// still delivered from memory, the caller gets ErrNotDurable, and once
// the disk works again the message is written after all.
func TestOutboxWriteFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "box")
	o := testOutbox(t, dir, 100, 1<<20)
	must(t, os.RemoveAll(dir))
	must(t, os.WriteFile(dir, nil, 0o600)) // a file where the folder was: every write fails
	err := o.add(tp.Alarm, 1, false, []byte("kept"), classAlarm)
	if !errors.Is(err, ErrNotDurable) || !strings.Contains(err.Error(), tp.Alarm) {
		t.Fatalf("add on a broken disk: %v", err)
	}
	st := o.stats()
	if st.queued != 1 || st.notDurable != 1 || st.onDisk != 0 || st.storeErr == "" {
		t.Fatalf("stats %+v", st)
	}
	o.retryDisk() // still broken
	if st := o.stats(); st.notDurable != 1 {
		t.Fatalf("after a failed retry %+v", st)
	}
	must(t, os.Remove(dir))
	must(t, os.Mkdir(dir, 0o700))
	o.retryDisk()
	if st := o.stats(); st.notDurable != 0 || st.onDisk != 1 || st.storeErr != "" {
		t.Fatalf("after the disk recovered %+v", st)
	}
	o.connUp(time.Now())
	var id uint16
	if e := handOver(t, o, &id); e == nil || string(e.payload) != "kept" {
		t.Fatal("message not delivered")
	}
	o.Del("o.1")
	o.sweep(time.Now(), true)
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Fatalf("files after acknowledgement: %v", m)
	}
}

// TestOutboxProbeAndLearnedLimit: a message larger than anything the
// broker accepted goes alone; if the connection ends right after it, it
// is set aside (not replayed) and the limit drops below its size.
func TestOutboxProbeAndLearnedLimit(t *testing.T) {
	o := testOutbox(t, t.TempDir(), 100, 1<<30)
	big := strings.Repeat("x", 100<<10)
	mustAdd(t, o, tp.Result, 1, "r1")
	mustAdd(t, o, tp.Heatmap, 0, big)
	mustAdd(t, o, tp.Result, 1, "r2")
	now := time.Now()
	o.connUp(now)
	var id uint16
	handOver(t, o, &id) // r1
	handOver(t, o, &id) // r2
	if handOver(t, o, &id) != nil {
		t.Fatal("the large image went while other messages were in flight")
	}
	o.Del("o.1")
	o.Del("o.2")
	e := handOver(t, o, &id)
	if e == nil || e.sendQoS != 1 || o.probe != e {
		t.Fatalf("probe %+v", e)
	}
	mustAdd(t, o, tp.Alarm, 1, "a1")
	if handOver(t, o, &id) != nil {
		t.Fatal("an alarm shared the connection with the probe")
	}
	ev, _ := o.connEnded(now.Add(50 * time.Millisecond))
	if ev.tooLarge != e || ev.newLimit != 64<<10 {
		t.Fatalf("drop event %+v", ev)
	}
	if keys := o.All(); len(keys) != 0 {
		t.Fatalf("the set-aside image would be replayed: %v", keys)
	}
	o.connUp(now.Add(time.Second))
	if a := handOver(t, o, &id); a == nil || string(a.payload) != "a1" {
		t.Fatal("the alarm did not go after the reconnect")
	}
	if st := o.stats(); st.tooLarge.Image != 1 || st.limit != 64<<10 {
		t.Fatalf("stats %+v", st)
	}
	// A queued message over the learned limit is set aside at hand-over.
	o.Del("o." + itoa(id))
	mustAdd(t, o, tp.Result, 1, strings.Repeat("y", 70<<10))
	if e, aside := o.take(); e != nil || len(aside) != 1 {
		t.Fatalf("take = %v, aside %d", e, len(aside))
	}
	if m, _ := filepath.Glob(filepath.Join(o.dir, "*"+tooLargeExt)); len(m) != 1 {
		t.Fatalf("set-aside result not kept for the operator: %v", m)
	}
	// An acknowledged probe raises what goes without isolation.
	o2 := testOutbox(t, "", 100, 1<<30)
	mustAdd(t, o2, tp.Heatmap, 0, big)
	o2.connUp(now)
	id = 0
	handOver(t, o2, &id)
	o2.Del("o.1")
	if o2.maxGood < 100<<10 || o2.probe != nil {
		t.Fatalf("maxGood %d probe %v", o2.maxGood, o2.probe)
	}
}

// TestOutboxProbeAfterLearnedLimit: once a limit is learned (here carried
// from the publisher this one replaced), a message larger than what the
// broker took goes alone even under probeFloor, so that a drop over it is
// blamed on it; one no larger still pipelines. With no limit learned,
// messages under probeFloor pipeline as before.
func TestOutboxProbeAfterLearnedLimit(t *testing.T) {
	img := strings.Repeat("x", 5000)
	now := time.Now()
	var id uint16

	o := testOutbox(t, "", 100, 1<<30)
	o.maxGood = 1000
	mustAdd(t, o, tp.Result, 1, "r1")
	mustAdd(t, o, tp.Heatmap, 0, img)
	o.connUp(now)
	if got := handOverAll(t, o, &id); len(got) != 2 || o.probe != nil || got[1].sendQoS != 0 {
		t.Fatalf("no limit learned: the image under probeFloor did not pipeline (%d handed, probe %v)", len(got), o.probe)
	}

	o = testOutbox(t, "", 100, 1<<30)
	o.inherit(16384, 1000)
	mustAdd(t, o, tp.Result, 1, "r1")
	mustAdd(t, o, tp.Heatmap, 0, img)
	mustAdd(t, o, tp.Result, 0, strings.Repeat("r", 900))
	o.connUp(now)
	id = 0
	// Both results go (the second no larger than what the broker took,
	// at its own QoS 0); the image waits for r1's acknowledgement.
	if got := handOverAll(t, o, &id); len(got) != 2 || got[0].class != classResult || got[1].class != classResult || got[1].sendQoS != 0 {
		t.Fatalf("handed %d messages, probe %v", len(got), o.probe)
	}
	o.Del("o.1")
	e := handOver(t, o, &id)
	if e == nil || e.class != classImage || o.probe != e || e.sendQoS != 1 {
		t.Fatalf("the image larger than what the broker took did not go alone at QoS 1: %+v", e)
	}
	if handOver(t, o, &id) != nil {
		t.Fatal("a result shared the connection with the probe")
	}
	ev, _ := o.connEnded(now.Add(10 * time.Millisecond))
	if ev.tooLarge != e || ev.newLimit != learnLimit(e.size, 1000) || ev.newLimit != 4096 {
		t.Fatalf("drop event %+v: the drop was not blamed on the probe", ev)
	}
	o.connUp(now.Add(time.Second))
	mustAdd(t, o, tp.Result, 0, strings.Repeat("r", 800))
	if r := handOver(t, o, &id); r == nil || o.probe != nil || r.sendQoS != 0 {
		t.Fatalf("a result no larger than what the broker took did not pipeline: %+v", r)
	}
}

// TestOutboxSuspectDropsLowerTheFloor: connections that end within
// probeWindow of messages under probeFloor, larger than any the broker
// took, sent together, teach nothing (nothing to blame); two in a row
// (no failed attempt between: a broker that was away is no evidence) turn
// the floor off, so that such a message then goes alone and a drop over
// it teaches a limit. A QoS 1 message paho would replay together with
// others goes back to its queue to go alone. A drop long after such
// messages, or a failed attempt, starts the count again.
func TestOutboxSuspectDropsLowerTheFloor(t *testing.T) {
	now := time.Now()
	var id uint16
	o := testOutbox(t, "", 100, 1<<30)
	o.maxGood = 1000
	mustAdd(t, o, tp.Result, 1, strings.Repeat("r", 5000))
	mustAdd(t, o, tp.Heatmap, 0, strings.Repeat("h", 5000))
	o.connUp(now)
	if got := handOverAll(t, o, &id); len(got) != 2 || o.probe != nil {
		t.Fatalf("handed %d, probe %v: messages under probeFloor did not go together", len(got), o.probe)
	}
	drop := func(after time.Duration) dropEvent {
		t.Helper()
		ev, ok := o.connEnded(time.Now().Add(after))
		if !ok || ev.tooLarge != nil {
			t.Fatalf("drop event %+v, ok %v", ev, ok)
		}
		return ev
	}
	if ev := drop(10 * time.Millisecond); ev.noFloor || o.suspects != 1 {
		t.Fatalf("one drop: %+v, %d suspects", ev, o.suspects)
	}
	o.connectFailed() // the broker was away: a restart
	o.connUp(time.Now())
	// The result, unacknowledged, is replayed by paho: on trial again.
	if ev := drop(10 * time.Millisecond); ev.noFloor || o.suspects != 1 {
		t.Fatalf("a drop after a failed attempt: %+v, %d suspects", ev, o.suspects)
	}
	o.connUp(time.Now())
	if ev := drop(probeWindow + time.Second); ev.noFloor || o.suspects != 0 {
		t.Fatalf("a drop long after the replay: %+v, %d suspects", ev, o.suspects)
	}
	o.connUp(time.Now())
	drop(10 * time.Millisecond)
	o.connUp(time.Now())
	ev := drop(10 * time.Millisecond)
	if !ev.noFloor || ev.suspectBytes != packetSize(len(tp.Result), 1, 5000) || o.probeAbove() != 1000 {
		t.Fatalf("two drops in a row: %+v, probeAbove %d", ev, o.probeAbove())
	}
	if len(o.session) != 0 || o.pending[classResult].Len() != 1 {
		t.Fatalf("the result is still in paho's session (%d) rather than queued to go alone", len(o.session))
	}
	o.connUp(time.Now())
	r := handOver(t, o, &id)
	if r == nil || r.class != classResult || o.probe != r || handOver(t, o, &id) != nil {
		t.Fatalf("the result did not go alone: %+v, probe %v", r, o.probe)
	}
	ev, _ = o.connEnded(time.Now().Add(10 * time.Millisecond))
	if ev.tooLarge != r || ev.newLimit != learnLimit(r.size, 1000) || o.suspects != 0 {
		t.Fatalf("the drop over the result alone was not blamed on it: %+v", ev)
	}
}

func TestPacketSizes(t *testing.T) {
	for _, tc := range []struct{ topic, payload, qos int }{{10, 0, 1}, {21, 100, 1}, {21, 16000, 0}, {30, 2_000_000, 1}} {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.Qos, p.MessageID, p.TopicName, p.Payload = byte(tc.qos), 1, strings.Repeat("t", tc.topic), make([]byte, tc.payload)
		var b strings.Builder
		must(t, p.Write(&b))
		if got := packetSize(tc.topic, byte(tc.qos), tc.payload); got != b.Len() {
			t.Errorf("packetSize(%+v) = %d, paho writes %d", tc, got, b.Len())
		}
	}
	// Every limit around the varint's widths (130, 16387 and 2097156 came
	// out one to three bytes over: a learned limit of size−1 can be any).
	limits := []int{200, 16384, 65536, 131072, 2_097_160}
	for _, edge := range []int{128, 16384, 2_097_152} {
		for l := edge - 8; l <= edge+40; l++ {
			limits = append(limits, l)
		}
	}
	for _, limit := range limits {
		for qos := byte(0); qos <= 1; qos++ {
			pl := maxPayloadFor(24, qos, limit)
			if packetSize(24, qos, pl) > limit || packetSize(24, qos, pl+1) <= limit {
				t.Errorf("maxPayloadFor(24, %d, %d) = %d: packet %d, one more %d", qos, limit, pl, packetSize(24, qos, pl), packetSize(24, qos, pl+1))
			}
		}
	}
	// The Sparkplug edge node's DDATA at QoS 0 against a mosquitto with
	// max_packet_size 65536: 2 bytes more than a QoS 1 PUBLISH takes.
	ddata := "spBv1.0/Plant 1: Line 3/DDATA/cam-node/cam1"
	if got, want := PayloadLimit(ddata, 0, 65536), maxPayloadFor(len(ddata), 1, 65536)+2; got != want || packetSize(len(ddata), 0, got) != 65536 {
		t.Errorf("PayloadLimit(DDATA, 0, 65536) = %d, want %d (a packet of exactly 65536 bytes)", got, want)
	}
	// The smaller of the power of two and the one-digit decimal below the
	// dropped packet that is not below what the broker took, unless the
	// packet was just past the larger (by 1/65536 of it or less): 1,000,001
	// taught 524288 and 65537 taught 60000, masks shrunk for nothing. Else
	// the midpoint between the two. A broker at max_packet_size 2000 taught
	// 2048 from a 2113-byte packet, then 2002: a lost session each.
	for _, tc := range []struct{ size, good, want int }{
		{2113, 300, 2000}, {2003, 1990, 2000}, {2003, 2001, 2002}, {300000, 0, 200000}, {65537, 1000, 65536}, {65537, 0, 65536}, {65537, 61000, 65536},
		{65536, 0, 32768}, {70000, 0, 60000}, {70000, 62000, 65536}, {70001, 0, 70000}, {70029, 0, 65536}, {70030, 0, 65536}, {70000, 66000, 68000},
		{65538, 0, 65536}, {65539, 0, 60000}, {100095, 0, 65536}, {1000016, 0, 1000000}, {1000017, 0, 524288},
		{69999, 0, 60000}, {26532, 0, 16384}, {26532, 17000, 20000}, {1000001, 0, 1000000}, {1000001, 600000, 1000000}, {1048577, 0, 1048576},
		{1100000, 0, 1000000}, {20001, 0, 20000}, {20001, 16385, 20000}, {65537, 65536, 65536}, {2, 0, 1}, {1, 0, 1},
	} {
		if got := learnLimit(tc.size, tc.good); got != tc.want {
			t.Errorf("learnLimit(%d, %d) = %d, want %d", tc.size, tc.good, got, tc.want)
		}
	}
	for _, tc := range []struct{ n, want int }{{2112, 2000}, {69999, 60000}, {26532, 20000}, {9, 9}, {10, 10}, {1000000, 1000000}} {
		if got := roundDecimal(tc.n); got != tc.want {
			t.Errorf("roundDecimal(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestClashDetector(t *testing.T) {
	d := newClashDetector()
	now := time.Now()
	if d.ended(time.Second, false, now) || d.ended(time.Second, false, now) || d.ended(2*time.Second, true, now) {
		t.Fatal("an episode after two short connections and a size drop")
	}
	// A size drop (a packet limit learned) starts the count again.
	if d.ended(time.Second, false, now) || d.ended(time.Second, false, now) {
		t.Fatal("an episode after two short connections since a size drop")
	}
	if !d.ended(300*time.Millisecond, false, now) {
		t.Fatal("no episode after three short connections in a row")
	}
	if d.ended(time.Second, false, now) || d.describe("inspectd-cam1") == "" || !strings.Contains(d.describe("inspectd-cam1"), `"inspectd-cam1"`) {
		t.Fatalf("episode reported twice or not described: %q", d.describe("inspectd-cam1"))
	}
	if d.settled(10*time.Second) || !d.settled(31*time.Second) || d.describe("x") != "" {
		t.Fatal("episode does not end after a lasting connection")
	}
	// A long connection between short ones starts the count again.
	d.ended(time.Second, false, now)
	d.ended(time.Second, false, now)
	d.ended(time.Minute, false, now)
	if d.ended(time.Second, false, now) {
		t.Fatal("count not reset by a lasting connection")
	}
	// A failed attempt (the broker away: restarting) starts the count
	// again, and short connections within quiet of it do not count.
	d = newClashDetector()
	d.ended(time.Second, false, now)
	d.ended(time.Second, false, now)
	d.failed(now)
	for i := range 5 {
		if d.ended(time.Second, false, now.Add(time.Duration(i+1)*2*time.Second)) {
			t.Fatalf("an episode from short connection %d after the broker was away", i+1)
		}
	}
	// A clash that goes on past the window is reported.
	later := now.Add(d.quiet)
	if d.ended(time.Second, false, later) || d.ended(time.Second, false, later.Add(time.Second)) ||
		!d.ended(time.Second, false, later.Add(2*time.Second)) {
		t.Fatal("no episode from three short connections past the window after an outage")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkOutboxAlarm: the cost of making one alarm durable (write,
// fsync, rename, directory fsync), handing it over and forgetting it on
// PUBACK, as a ratio to the memory-only outbox measured in the same run.
func BenchmarkOutboxAlarm(b *testing.B) {
	payload := []byte(strings.Repeat("x", 300)) // about an alarm's size
	cycle := func(o *outbox, id uint16) {
		if err := o.add(tp.Alarm, 1, false, payload, classAlarm); err != nil {
			b.Fatal(err)
		}
		e, _ := o.take()
		o.Put("o."+itoa(id), e.packet(id))
		o.handed(e)
		o.Del("o." + itoa(id))
	}
	mem := testOutbox(b, "", 100, 1<<20)
	mem.connUp(time.Now())
	const base = 2000
	start := time.Now()
	for i := range base {
		cycle(mem, uint16(i%1000+1))
	}
	perMem := time.Since(start) / base
	disk := testOutbox(b, b.TempDir(), 100, 1<<20)
	disk.connUp(time.Now())
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		cycle(disk, uint16(i%1000+1))
	}
	b.StopTimer()
	if perMem > 0 {
		b.ReportMetric(float64(b.Elapsed()/time.Duration(b.N))/float64(perMem), "x_memory")
	}
}

// FuzzOutboxFile: whatever a stored file holds (a torn write, a disk
// error, another program's file), opening the outbox does not panic, and
// the file is replayed, set aside as .corrupt, or removed.
func FuzzOutboxFile(f *testing.F) {
	seed := func(pkt packets.ControlPacket) []byte {
		var b strings.Builder
		if err := pkt.Write(&b); err != nil {
			f.Fatal(err)
		}
		return []byte(b.String())
	}
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.Qos, pub.MessageID, pub.TopicName, pub.Payload = 2, 5, tp.Alarm, []byte(`{"seq":1}`)
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 5
	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID, sub.Topics, sub.Qoss = 3, []string{"t"}, []byte{1}
	for _, s := range [][]byte{seed(pub), seed(rel), seed(sub), seed(pub)[:7], {0x30, 0x7f}, {0x32, 0xff, 0xff, 0xff, 0x7f}, nil} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, bound bool) {
		dir := t.TempDir()
		name := "00000000000000000007.msg"
		if bound {
			name = "00000000000000000007-o.5.msg"
		}
		must(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
		o := testOutbox(t, dir, 100, 1<<20)
		o.connUp(time.Now())
		var id uint16 = 100
		handOverAll(t, o, &id)
		for _, k := range o.All() {
			_ = o.Get(k)
		}
		st := o.stats()
		left, _ := filepath.Glob(filepath.Join(dir, "*"))
		switch {
		case len(left) == 0: // removed: not a message to replay
		case len(left) == 1 && strings.HasSuffix(left[0], outboxBadExt):
		case len(left) == 1 && st.onDisk == 1:
		default:
			t.Fatalf("files %v, stats %+v", left, st)
		}
	})
}
