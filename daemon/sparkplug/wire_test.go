package sparkplug

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testproc"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// TestStalledConnectionHoldsNoCaller: a connection that stops taking data
// (a network that drops packets, a broker that hangs) holds the edge
// node's writer, not the ones who publish: the pipeline's results and
// masks are queued and come back at once, and once the queue is full they
// are refused as offline (values kept for the next birth), never with
// paho's write timeout after waiting for it, the node's lock held all the
// while (the stats ticker, command replies and Health waited with them).
// When the connection flows again the queued messages, then new births,
// reach the host in seq order (the test host checks every message).
func TestStalledConnectionHoldsNoCaller(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	px := testbroker.NewProxy(t, b.URL)
	h := newHost(t, b.URL, testGroup) // straight to the broker
	n, lb, _ := startNode(t, px.URL, func(o *Options) {
		o.MaxPayload = 1 << 20
		o.StatsInterval = 50 * time.Millisecond // retries the births
		// Longer than the stall lasts, however slow the machine: the
		// session outlives it. The old node failed a call with it.
		o.WriteTimeout = time.Minute
	})
	t.Cleanup(px.Resume) // before the node's Close (cleanups run last first)
	h.wait(0, "DBIRTH", nil)
	px.Stall()

	// Far more than the socket buffers between the node and the proxy and
	// the node's queue hold: a call of the old node blocked in paho's
	// Publish until its write timeout and then failed with it.
	png := bytes.Repeat([]byte{0x89}, 512<<10)
	offline := false
	for seq := uint64(1); seq <= 400 && !offline; seq++ {
		errR := n.PublishResult(result(seq, 40), 0)
		errM := n.PublishMask(seq, png, 0)
		for _, err := range []error{errR, errM} {
			switch {
			case errors.Is(err, ErrOffline):
				offline = true
			case err != nil:
				t.Fatalf("inspection %d into a stalled connection: %v; the caller waited for the network", seq, err)
			}
		}
	}
	if !offline {
		t.Fatal("200 MiB published into a stalled connection and never refused as offline")
	}
	if lb.Count("sparkplug connection stalled") == 0 {
		t.Error("no log line says the connection stalled")
	}
	// What /metrics shows of the stall: messages held in the queue, and
	// data refused for want of room in it.
	if st := n.Stats(); st.DroppedQueueFull == 0 || st.Queued == 0 || st.QueuedBytes < len(png) {
		t.Errorf("Stats() during the stall = %+v; want the queue holding the masks and a data message refused", st)
	}

	px.Resume()
	// The births come again (or a new session's, if the stall cost the
	// connection); the values held back go out with them, the latest
	// inspection in a DBIRTH or a DDATA.
	if !testbroker.WaitFor(context.Background(), 30*time.Second, func() bool {
		return n.PublishResult(result(1001, 3), 0) == nil
	}) {
		t.Fatal("the edge node did not come back after the connection flowed again")
	}
	if !testbroker.WaitFor(context.Background(), 30*time.Second, func() bool {
		for _, m := range h.since(0) {
			if s, ok := m.metric(h, "Inspection/Seq"); ok && s.Value.Uint == 1001 && !s.IsNull {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("inspection 1001 did not reach the host after the stall; got %s", verbs(h.since(0)))
	}
}

// TestMaskOverTheLimitSentAsNull: a DDATA whose Mask would exceed the
// payload limit (mqtt.max_payload, or a packet limit the JSON connection
// learned from the same broker) goes with the Mask null, stamped with its
// inspection's time. The mosquitto here drops a connection over a packet
// of more than 64 KiB, as ../shared/cases/mqtt/mosquitto-small-packets.conf
// does: a 100 KB mask cost the edge node its session, a death and a birth,
// on every anomalous part. The result's DDATA (score, verdict) is not
// touched; each mask left out is counted, the limit logged once.
func TestMaskOverTheLimitSentAsNull(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Options)
		limit int
		from  string
	}{
		{"mqtt.max_payload", func(o *Options) { o.MaxPayload = 60_000 }, 60_000, "limit_from=mqtt.max_payload"},
		{"learned by the JSON connection", func(o *Options) { o.PacketLimit = func() int { return 65536 } },
			mqttpub.PayloadLimit(TopicsFor(testGroup, testNode, testDevice, "").DDATA, 0, 65536), "learned from the broker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testbroker.Start(t, testbroker.Options{MaxPacketSize: 65536})
			h := newHost(t, b.URL, testGroup)
			var camera atomic.Value
			camera.Store("no frame yet")
			n, lb, _ := startNode(t, b.URL, func(o *Options) {
				o.Camera = func() (bool, string) { return false, camera.Load().(string) }
				tc.edit(o)
			})
			h.wait(0, "DBIRTH", nil)
			if got := n.MaxMask(); got != tc.limit-maskOverhead {
				t.Errorf("MaxMask() = %d, want the payload limit %d less %d", got, tc.limit, maskOverhead)
			}
			hasMask := func(m spMsg) bool { _, ok := m.metric(h, "Mask"); return ok }
			big := bytes.Repeat([]byte{1}, 100_000)
			for seq := uint64(1); seq <= 2; seq++ {
				mark := h.mark()
				r := result(seq, 40+float64(seq))
				r.FrameTime = time.Now().Add(-time.Second)
				if err := n.PublishResult(r, 0); err != nil {
					t.Fatal(err)
				}
				if err := n.PublishMask(seq, big, 0); err != nil {
					t.Fatalf("a mask over the limit: %v; the DDATA went, with the Mask null", err)
				}
				dd := h.wait(mark, "DDATA", nil)
				if s := mustMetric(t, h, dd, "Inspection/Score"); s.Value.Float64 != 40+float64(seq) {
					t.Errorf("Inspection/Score %v, want %v", s.Value.Float64, 40+float64(seq))
				}
				mk := mustMetric(t, h, h.wait(mark, "DDATA", hasMask), "Mask")
				if !mk.IsNull || len(mk.Value.Bytes) != 0 || mk.Timestamp != uint64(r.FrameTime.UnixMilli()) {
					t.Errorf("Mask of inspection %d: null %v, %d bytes, stamped %d; want null at %d", seq, mk.IsNull,
						len(mk.Value.Bytes), mk.Timestamp, r.FrameTime.UnixMilli())
				}
			}
			if got := n.MasksTooLarge(); got != 2 {
				t.Errorf("MasksTooLarge() = %d, want 2", got)
			}
			if got := lb.Count("sparkplug Mask sent as null", tc.from, fmt.Sprintf("limit=%d", tc.limit)); got != 1 {
				t.Errorf("%d log lines naming the limit for two masks over it, want 1", got)
			}

			// A mask of MaxMask bytes fits, whatever else was pending: here
			// the longest Camera/Error, polled between two stats ticks.
			mark := h.mark()
			_ = n.PublishResult(result(3, 42), 0)
			camera.Store(strings.Repeat("e", maxText))
			n.pollCamera()
			fit := bytes.Repeat([]byte{2}, n.MaxMask())
			if err := n.PublishMask(3, fit, 0); err != nil {
				t.Fatal(err)
			}
			if mk := mustMetric(t, h, h.wait(mark, "DDATA", hasMask), "Mask"); mk.IsNull || !bytes.Equal(mk.Value.Bytes, fit) {
				t.Errorf("a mask of MaxMask() = %d bytes: null %v, %d bytes", len(fit), mk.IsNull, len(mk.Value.Bytes))
			}

			// A birth with that mask would be over the limit: a host's
			// rebirth gets the Mask null, not a DBIRTH the broker drops
			// (a death and a birth, again and again), and the mask, which
			// fits a DDATA, in one right after it, with its inspection's
			// time. Left null, it told the host after every birth that a
			// mask it had received was not coming, and counted it as too
			// large.
			mark = h.mark()
			h.command(n.Topics().NCMD, cmd(write("Node Control/Rebirth", sppb.TypeBoolean, sppb.BoolValue(true))))
			db := h.wait(mark, "DBIRTH", nil)
			dbMask := mustMetric(t, h, db, "Mask")
			if !dbMask.IsNull {
				t.Errorf("DBIRTH Mask of %d bytes over the limit", len(dbMask.Value.Bytes))
			}
			dd := h.wait(mark, "DDATA", hasMask)
			if mk := mustMetric(t, h, dd, "Mask"); mk.IsNull || !bytes.Equal(mk.Value.Bytes, fit) || mk.Timestamp != dbMask.Timestamp ||
				dd.p.Seq != db.p.Seq+1 || len(dd.p.Metrics) != 1 {
				t.Errorf("after the DBIRTH (seq %d), a DDATA (seq %d, %d metrics) with the Mask null %v, %d bytes, stamped %d; want it alone right after, the %d bytes stamped %d",
					db.p.Seq, dd.p.Seq, len(dd.p.Metrics), mk.IsNull, len(mk.Value.Bytes), mk.Timestamp, len(fit), dbMask.Timestamp)
			}
			if got := n.MasksTooLarge(); got != 2 {
				t.Errorf("MasksTooLarge() = %d after the birth, want 2 (the mask went, in a DDATA)", got)
			}

			births, deaths := 0, 0
			for _, m := range h.since(0) {
				switch m.verb {
				case "NBIRTH":
					births++
				case "NDEATH":
					deaths++
				}
			}
			if births != 2 || deaths != 0 {
				t.Errorf("%d NBIRTHs and %d NDEATHs: the broker dropped the edge node's connection", births, deaths)
			}
		})
	}
}

// TestNodeLearnsThePacketLimitFromItsOwnConnection: with mqtt.profile
// sparkplug no JSON connection sends images, so nothing learned the
// broker's packet limit for the edge node, and a broker that limits
// packets below mqtt.max_payload dropped the connection over a large Mask
// and then over every DBIRTH that carried it: a death and a birth per
// session, no device data, for good. Lost twice right after its largest
// packet, the node takes the limit as learned (once, logged) and the next
// DBIRTH carries the Mask as null; the session then holds, a large mask
// going as null.
func TestNodeLearnsThePacketLimitFromItsOwnConnection(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{MaxPacketSize: 65536})
	h := newHost(t, b.URL, testGroup)
	n, lb, _ := startNode(t, b.URL, nil) // MaxPayload at its default (256 KiB), no PacketLimit
	h.wait(0, "DBIRTH", nil)
	big := bytes.Repeat([]byte{1}, 100_000)
	if err := n.PublishResult(result(1, 41), 0); err != nil {
		t.Fatal(err)
	}
	_ = n.PublishMask(1, big, 0) // queued; the broker drops the connection over it
	nullBirth := func() bool {   // after a death: the first DBIRTH's Mask is null, no mask yet
		dead := false
		for _, m := range h.since(0) {
			dead = dead || m.verb == "NDEATH"
			if mk, ok := m.metric(h, "Mask"); ok && dead && m.verb == "DBIRTH" && mk.IsNull {
				return true
			}
		}
		return false
	}
	if !testbroker.WaitFor(context.Background(), 60*time.Second, nullBirth) {
		var verbs []string
		for _, m := range h.since(0) {
			verbs = append(verbs, m.verb)
		}
		t.Fatalf("no DBIRTH with the Mask null within 60 s; the host saw %v\n%s", verbs, lb)
	}
	if got, want := n.MaxMask(), mqttpub.PayloadLimit(n.Topics().DDATA, 0, 65536)-maskOverhead; got != want {
		t.Errorf("MaxMask() = %d after learning, want %d (the broker's 65536-byte packets)", got, want)
	}
	if got, want := n.MaxPayload(), mqttpub.PayloadLimit(n.Topics().DDATA, 0, 65536); got != want {
		t.Errorf("MaxPayload() = %d after learning, want %d (inspectd_mqtt_max_payload_bytes reads it)", got, want)
	}
	if got := lb.Count("packet limit is taken as lower", "packet_limit=65536"); got != 1 {
		t.Errorf("%d log lines of the learned limit, want 1\n%s", got, lb)
	}

	mark := h.mark()
	if err := n.PublishResult(result(2, 42), 0); err != nil {
		t.Fatal(err)
	}
	if err := n.PublishMask(2, big, 0); err != nil {
		t.Fatal(err)
	}
	if err := n.PublishResult(result(3, 43), 0); err != nil {
		t.Fatal(err)
	}
	h.wait(mark, "DDATA", func(m spMsg) bool {
		s, ok := m.metric(h, "Inspection/Score")
		return ok && s.Value.Float64 == 43
	})
	for _, m := range h.since(mark) {
		if m.verb == "NBIRTH" || m.verb == "NDEATH" {
			t.Errorf("%s once the limit was learned: the broker dropped the connection again", m.verb)
		}
		if mk, ok := m.metric(h, "Mask"); ok && !mk.IsNull {
			t.Errorf("a Mask of %d bytes sent over the learned limit", len(mk.Value.Bytes))
		}
	}
}

// clashWarning is the start of the edge node's client-id clash warning.
const clashWarning = "sparkplug sessions keep ending within seconds of connecting"

// nodeAtBrokerLimit starts a mosquitto that drops any packet over limit
// bytes, a host watching it and an edge node born there; publish sends an
// inspection's result and then a mask of maskBytes.
func nodeAtBrokerLimit(t *testing.T, limit int) (h *testHost, n *Node, lb *testproc.LogBuffer, publish func(maskBytes int)) {
	t.Helper()
	b := testbroker.Start(t, testbroker.Options{MaxPacketSize: limit})
	h = newHost(t, b.URL, testGroup)
	n, lb, _ = startNode(t, b.URL, nil)
	h.wait(0, "DBIRTH", nil)
	seq := uint64(0)
	publish = func(maskBytes int) {
		seq++
		_ = n.PublishResult(result(seq, 40), 0)
		_ = n.PublishMask(seq, bytes.Repeat([]byte{1}, maskBytes), 0)
	}
	return h, n, lb, publish
}

// TestNodeLearnsARoundDecimalLimit is the trial's broker: mosquitto with
// max_packet_size 2000, masks of about 2.1 KB, then of 1.9 to 2 KB. From
// the power of two alone the node learned 2048 (a 2113-byte DDATA), lost
// its session again at a 2003-byte one, learned 2002, still over: four or
// five lost sessions, an NDEATH and stale tags each, and a client-id clash
// warning with seconds of backoff between them. A broker's limit is as
// often a round decimal number: one lesson (two lost sessions) teaches
// 2000, and no mask costs a session after it.
func TestNodeLearnsARoundDecimalLimit(t *testing.T) {
	h, n, lb, publish := nodeAtBrokerLimit(t, 2000)
	deaths := func() int {
		d := 0
		for _, m := range h.since(0) {
			if m.verb == "NDEATH" {
				d++
			}
		}
		return d
	}
	publish(2030) // a DDATA of about 2120 bytes
	// The lesson: the DDATA, then the DBIRTH carrying the mask again, cost
	// a session each; the next DBIRTH has the Mask null.
	learned := func() bool {
		d := 0
		for _, m := range h.since(0) {
			if m.verb == "NDEATH" {
				d++
			}
			if mk, ok := m.metric(h, "Mask"); ok && d >= 2 && m.verb == "DBIRTH" && mk.IsNull {
				return true
			}
		}
		return false
	}
	if !testbroker.WaitFor(context.Background(), 30*time.Second, learned) {
		t.Fatalf("no DBIRTH with the Mask null after two NDEATHs within 30 s; the host saw %s", verbs(h.since(0)))
	}
	if got := n.packetLimit.Load(); got == 0 || got > 2000 {
		t.Fatalf("learned packet limit %d from a broker at 2000: the next mask over 2000 costs a session", got)
	}
	if got := deaths(); got != 2 {
		t.Errorf("%d NDEATHs for the first lesson, want 2", got)
	}
	mark := h.mark()
	// Masks whose DDATA comes to 1.9 to 2.05 KB: those over the learned
	// limit go as null, the others whole; none costs a session.
	for size := 1850; size <= 2000; size += 10 {
		m := h.mark()
		publish(size)
		h.wait(m, "DDATA", func(msg spMsg) bool {
			mk, ok := msg.metric(h, "Mask")
			return ok && (mk.IsNull || len(mk.Value.Bytes) == size)
		})
	}
	for _, m := range h.since(mark) {
		if m.verb == "NDEATH" || m.verb == "NBIRTH" {
			t.Errorf("%s after the first lesson: the broker dropped the connection again", m.verb)
		}
	}
	if got := lb.Count(clashWarning); got != 0 {
		t.Errorf("a client-id clash warned of while the packet limit was learned:\n%s", lb)
	}
	if got := lb.Count("packet limit is taken as lower", "packet_limit=2000"); got != 1 {
		t.Errorf("%d log lines of a learned limit of 2000, want 1\n%s", got, lb)
	}
}

// TestPacketLimitLessonsAreNoClientIDClash: sessions lost right after a
// packet the broker would not take end within seconds of their CONNECT,
// as a client-id clash ends them; counted as such, two lessons in a row
// (a 4.1 KB mask, then 2.9 KB ones, at a broker of 2000) warned of
// another client using the node's id, the wrong cause, and waited seconds
// before each CONNECT with the device offline to SCADA. The second lesson
// comes from a packet under the limit the first taught: that one was too
// high.
func TestPacketLimitLessonsAreNoClientIDClash(t *testing.T) {
	h, n, lb, publish := nodeAtBrokerLimit(t, 2000)
	publish(4100)
	if !testbroker.WaitFor(context.Background(), 30*time.Second, func() bool { return n.packetLimit.Load() != 0 }) {
		t.Fatalf("no packet limit learned within 30 s; the host saw %s", verbs(h.since(0)))
	}
	first := n.packetLimit.Load()
	if first <= 3000 {
		t.Fatalf("learned %d from a 4.1 KB mask; the test needs a limit over the 2.9 KB masks", first)
	}
	if !testbroker.WaitFor(context.Background(), 30*time.Second, func() bool {
		if n.packetLimit.Load() <= 2000 {
			return true
		}
		publish(2900) // under the limit learned: sent, and lost
		time.Sleep(200 * time.Millisecond)
		return false
	}) {
		t.Fatalf("limit %d learned from 2.9 KB masks, want 2000 at most; the host saw %s", n.packetLimit.Load(), verbs(h.since(0)))
	}
	if got := lb.Count(clashWarning); got != 0 {
		t.Errorf("a client-id clash warned of while the packet limit was learned:\n%s", lb)
	}
	if got := lb.Count("packet limit is taken as lower"); got != 2 {
		t.Errorf("%d lessons logged, want 2 (%d, then 2000)\n%s", got, first, lb)
	}
}

// TestRebirthOverTheBrokerLimitSendsTheMaskApart is a trial's broker:
// mosquitto with max_packet_size 3000, masks of about 2.5 KB that go
// through in a DDATA, and a rebirth asked later. The DBIRTH carrying the
// mask again (about 4 KB) was dropped, and every birth of every session
// after it: the Mask had been outlived, so no limit was learned, and the
// node lost its session for good (a client-id clash warned of, no data to
// SCADA). Two such losses now make births send the Mask in a DDATA of
// its own right after the DBIRTH, whole, with no packet limit learned.
func TestRebirthOverTheBrokerLimitSendsTheMaskApart(t *testing.T) {
	h, n, lb, publish := nodeAtBrokerLimit(t, 3000)
	const size = 2500
	whole := func(m spMsg) bool {
		mk, ok := m.metric(h, "Mask")
		return ok && !mk.IsNull && len(mk.Value.Bytes) == size
	}
	mark := h.mark()
	publish(size)
	h.wait(mark, "DDATA", whole)
	time.Sleep(lossWindow + 500*time.Millisecond) // the mask is outlived
	mark = h.mark()
	h.command(n.Topics().NCMD, cmd(write("Node Control/Rebirth", sppb.TypeBoolean, sppb.BoolValue(true))))
	apart := func() bool {
		msgs := h.since(mark)
		for i, db := range msgs {
			if mk, ok := db.metric(h, "Mask"); db.verb != "DBIRTH" || !ok || !mk.IsNull {
				continue
			}
			for _, dd := range msgs[i+1:] {
				if dd.verb == "DDATA" {
					return whole(dd) && dd.p.Seq == db.p.Seq+1
				}
			}
		}
		return false
	}
	if !testbroker.WaitFor(context.Background(), 30*time.Second, apart) {
		t.Fatalf("no DBIRTH with the Mask null and the whole Mask in the DDATA after it within 30 s; the host saw %s", verbs(h.since(mark)))
	}
	deaths := 0
	for _, m := range h.since(mark) {
		if m.verb == "NDEATH" {
			deaths++
		}
	}
	if deaths != 2 {
		t.Errorf("%d NDEATHs before the births sent the Mask apart, want 2", deaths)
	}
	after := h.mark()
	publish(size)
	h.wait(after, "DDATA", whole)
	time.Sleep(lossWindow)
	for _, m := range h.since(after) {
		if m.verb == "NDEATH" || m.verb == "NBIRTH" {
			t.Errorf("%s once births sent the Mask apart: the broker dropped the connection again", m.verb)
		}
	}
	if got := n.packetLimit.Load(); got != 0 {
		t.Errorf("packet limit %d learned from births: masks of %d bytes, which the broker takes, would be cut", got, size)
	}
	if got := lb.Count(clashWarning); got != 0 {
		t.Errorf("a client-id clash warned of while births were lost over their size:\n%s", lb)
	}
	if got := lb.Count("births now send the Mask in a DDATA"); got != 1 {
		t.Errorf("%d log lines of births sending the Mask apart, want 1\n%s", got, lb)
	}
}

// TestSentLogSuspect: the packets within lossWindow of a loss are the
// suspects; those before, what the connection outlived.
func TestSentLogSuspect(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var l sentLog
	l.add(sentPacket{size: 5000, mask: 4000, at: t0})
	l.add(sentPacket{size: 300, at: t0.Add(3 * time.Second)})
	l.add(sentPacket{size: 9000, mask: 7000, at: t0.Add(4 * time.Second)})
	l.add(sentPacket{size: 8500, mask: 7000, birth: true, at: t0.Add(4 * time.Second)})
	l.add(sentPacket{size: 9500, birth: true, at: t0.Add(4 * time.Second)}) // a DBIRTH without a Mask
	recent, good := l.suspect(t0.Add(4*time.Second + 100*time.Millisecond))
	if recent != (outlived{9500, 7000, 8500}) || good != (outlived{5000, 4000, 0}) {
		t.Errorf("suspect = %+v over %+v; want {9500 7000 8500} over {5000 4000 0}", recent, good)
	}
	recent, good = l.suspect(t0.Add(7 * time.Second))
	if recent != (outlived{}) || good != (outlived{9500, 7000, 8500}) {
		t.Errorf("3 s after the last packet: %+v over %+v; want none over {9500 7000 8500}", recent, good)
	}
	if all := l.all(); all != (outlived{9500, 7000, 8500}) {
		t.Errorf("all = %+v", all)
	}
}

// TestBrokerRestartsAfterBirthsTeachNoLimit: a DBIRTH carries the current
// Mask again, a few KB more than the DDATA that first carried it, and is
// the largest message of a new session: a broker restarted right after two
// births in a row (maintenance, a flapping service) looked like a packet
// limit, and masks were cut or nulled for the rest of the run on a broker
// that takes them whole. A Mask the connection outlived is no suspect; the
// births, which cannot tell such restarts from a limit between the DDATA
// and the DBIRTH, send it in a DDATA of its own after the DBIRTH, whole.
func TestBrokerRestartsAfterBirthsTeachNoLimit(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	p := testbroker.NewProxy(t, b.URL)
	h := newHost(t, b.URL, testGroup)
	n, lb, _ := startNode(t, p.URL, nil)
	h.wait(0, "DBIRTH", nil)
	big := bytes.Repeat([]byte{1}, 100_000)
	mark := h.mark()
	if err := n.PublishResult(result(1, 41), 0); err != nil {
		t.Fatal(err)
	}
	if err := n.PublishMask(1, big, 0); err != nil {
		t.Fatal(err)
	}
	h.wait(mark, "DDATA", func(m spMsg) bool { mk, ok := m.metric(h, "Mask"); return ok && len(mk.Value.Bytes) == len(big) })
	time.Sleep(lossWindow + 500*time.Millisecond) // the mask is outlived
	for range 3 {
		mark := h.mark()
		p.Cut()
		h.wait(mark, "DBIRTH", nil) // carrying the mask again
		p.Cut()                     // right after it
	}
	mark = h.mark()
	p.Cut()
	whole := func(m spMsg) bool {
		mk, ok := m.metric(h, "Mask")
		return ok && !mk.IsNull && len(mk.Value.Bytes) == len(big)
	}
	if db := h.wait(mark, "DBIRTH", nil); !whole(db) {
		if dd := h.wait(mark, "DDATA", nil); !whole(dd) || dd.p.Seq != db.p.Seq+1 {
			t.Errorf("after the restarts neither the DBIRTH nor the DDATA right after it carried the whole %d-byte Mask", len(big))
		}
	}
	if got := n.MaxMask(); got != mqttpub.DefaultMaxPayload-maskOverhead {
		t.Errorf("MaxMask() = %d after the restarts, want mqtt.max_payload's %d", got, mqttpub.DefaultMaxPayload-maskOverhead)
	}
	if got := lb.Count("packet limit is taken as lower"); got != 0 {
		t.Errorf("a packet limit learned from restarts:\n%s", lb)
	}
}

// TestWirePushAllOrNone: a birth's NBIRTH and DBIRTH are queued together
// or not at all (with one slot left the NBIRTH went in alone: the host got
// births without the device's, and the device stayed stale); an empty
// queue takes them whatever their size.
func TestWirePushAllOrNone(t *testing.T) {
	var w wire
	w.cond.L = &w.mu
	for i := 0; i < maxQueued-1; i++ {
		if !w.push(wireMsg{payload: []byte{1}}) {
			t.Fatalf("message %d refused below the bound", i)
		}
	}
	if w.push(wireMsg{payload: []byte{2}}, wireMsg{payload: []byte{3}}) {
		t.Fatal("two messages taken into one free slot")
	}
	if len(w.q) != maxQueued-1 || w.bytes != maxQueued-1 {
		t.Fatalf("a refused pair left %d messages, %d bytes queued; want %d, %d", len(w.q), w.bytes, maxQueued-1, maxQueued-1)
	}
	var e wire
	e.cond.L = &e.mu
	if !e.push(wireMsg{payload: make([]byte, maxQueuedBytes)}, wireMsg{payload: []byte{1}}) {
		t.Fatal("an empty queue refused a birth over the byte bound")
	}
}

// TestMaskRefusedByTheQueueCountedAsQueueFull: a mask whose DDATA is
// refused because the queue filled inside PublishMask (the camera's state,
// changed since the last message, went first in a DDATA of its own and
// took the last room) is dropped for a stalled connection, not for want
// of a session: /metrics counted it under reason="offline". The node is
// not started: its queue holds what is pushed, as a stalled writer's does.
func TestMaskRefusedByTheQueueCountedAsQueueFull(t *testing.T) {
	camOK := true
	n, err := New(Options{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "c", GroupID: "g", EdgeNodeID: "e", DeviceID: "d",
		Mask: true, Logger: discard(), Camera: func() (bool, string) { return camOK, "no frames" }})
	if err != nil {
		t.Fatal(err)
	}
	n.pollCamera()
	n.mu.Lock()
	n.sess = &session{ready: true}
	n.birthLocked("test")
	n.mu.Unlock()
	for len(n.wire.q) < maxQueued-1 {
		if !n.wire.push(wireMsg{s: n.sess, topic: n.topics.DDATA, payload: []byte{1}}) {
			t.Fatalf("the queue refused message %d below its bound", len(n.wire.q))
		}
	}
	if err := n.PublishResult(result(1, 40), 0); err != nil { // the last room
		t.Fatalf("the result into the last room: %v", err)
	}
	camOK = false
	n.pollCamera() // pending: goes before the mask, and finds the queue full
	if err := n.PublishMask(1, []byte("png"), 0); !errors.Is(err, ErrOffline) {
		t.Fatalf("PublishMask into a full queue: %v, want ErrOffline", err)
	}
	// Two data messages refused: the camera's DDATA and the mask's.
	if st := n.Stats(); st.DroppedOffline != 0 || st.DroppedQueueFull != 2 {
		t.Errorf("Stats() = %+v; want DroppedOffline 0, DroppedQueueFull 2 (the camera's DDATA and the mask)", st)
	}
}

// TestCarryKeepsTheLearnedLimit: a reload that rebuilds the edge node kept
// nothing of the packet limit it had learned, and learned it again at the
// price of two more lost sessions; kept for the same brokers, not for
// others. Kept, it is logged once at Start, as the JSON connection logs
// its own (a limit in force without a word: masks shrunk for no reason).
func TestCarryKeepsTheLearnedLimit(t *testing.T) {
	mk := func(broker string, c *Carry) (*Node, *testproc.LogBuffer) {
		t.Helper()
		log, lb := newLogger(t)
		n, err := New(Options{Brokers: []string{broker}, ClientID: "c", GroupID: testGroup, EdgeNodeID: testNode, DeviceID: testDevice,
			StateDir: t.TempDir(), Mask: true, Carry: c, Logger: log, MaxReconnectInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return n, lb
	}
	start := func(n *Node) {
		t.Helper()
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.Close(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	const broker = "tcp://127.0.0.1:1" // nothing listens: what is carried is in force before a connection
	old, _ := mk(broker, nil)
	old.packetLimit.Store(65536)
	old.outlived = outlived{size: 40000, mask: 39000}
	old.splitBirths = true // births lost over their Mask (learnBirthLocked): a trial's reload lost two more sessions
	same, lb := mk(broker, old.Carry())
	if got := same.packetLimit.Load(); got != 65536 || same.outlived != old.outlived || !same.splitBirths {
		t.Errorf("same brokers: limit %d, outlived %+v, births split %v; want 65536, %+v, true", got, same.outlived, same.splitBirths, old.outlived)
	}
	start(same)
	if n := lb.Count("sparkplug broker packet limit carried over", "packet_limit=65536"); n != 1 {
		t.Errorf("%d log lines on the carried limit, want 1 naming packet_limit=65536:\n%s", n, lb)
	}
	if n := lb.Count("births send the Mask in a DDATA of their own, carried over"); n != 1 {
		t.Errorf("%d log lines on births carried over sending the Mask apart, want 1:\n%s", n, lb)
	}
	other, lb := mk("tcp://127.0.0.1:2", old.Carry())
	if got := other.packetLimit.Load(); got != 0 || other.outlived != (outlived{}) || other.splitBirths {
		t.Errorf("other brokers: limit %d, outlived %+v, births split %v; want none", got, other.outlived, other.splitBirths)
	}
	start(other)
	if n := lb.Count("carried over"); n != 0 {
		t.Errorf("a carried limit logged for other brokers:\n%s", lb)
	}
}

// TestLeaveSendsNDEATHBeforeTheQueue: a planned leave (Close, the primary
// host going offline) sends the NDEATH at once, after at most the message
// being handed to the broker: the data still queued for the session is
// dropped, counted and logged. The old node sent the whole queue first
// (up to 16 MiB over a slow link), and a primary host waited that long
// for the death certificate, shown the data of a node that had already
// decided to leave. Here the queue is full behind a stalled connection
// when Close comes; the latest inspection queued must not reach the host.
func TestLeaveSendsNDEATHBeforeTheQueue(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	px := testbroker.NewProxy(t, b.URL)
	h := newHost(t, b.URL, testGroup)
	n, lb, _ := startNode(t, px.URL, func(o *Options) {
		o.MaxPayload = 1 << 20
		o.WriteTimeout = time.Minute // the writer waits out the stall
	})
	t.Cleanup(px.Resume)
	h.wait(0, "DBIRTH", nil)
	px.Stall()
	png := bytes.Repeat([]byte{0x89}, 512<<10)
	last := uint64(0)
	for seq := uint64(1); seq <= 400; seq++ {
		if err := n.PublishResult(result(seq, 40), 0); err != nil {
			break
		}
		last = seq
		if err := n.PublishMask(seq, png, 0); err != nil {
			break
		}
	}
	if last == 0 || n.Stats().Queued < 2 {
		t.Fatalf("the queue did not fill behind the stall (last inspection %d, %+v)", last, n.Stats())
	}
	mark := h.mark()
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		closed <- n.Close(ctx)
	}()
	time.Sleep(300 * time.Millisecond) // leave has begun: the node is closing
	px.Resume()
	h.wait(mark, "NDEATH", nil)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for _, m := range h.since(mark) {
		if s, ok := m.metric(h, "Inspection/Seq"); ok && m.verb == "DDATA" && s.Value.Uint == last {
			t.Fatalf("inspection %d, queued when Close came, reached the host before the NDEATH: the queue went first (%s)", last, verbs(h.since(mark)))
		}
	}
	if st := n.Stats(); st.DroppedLeaving == 0 {
		t.Errorf("Stats() after leaving a full queue = %+v; want the data dropped counted", st)
	}
	if lb.Count("sparkplug leaving: queued data dropped") != 1 {
		t.Errorf("the data dropped on leaving was not logged once:\n%s", lb.String())
	}
}

// TestStallReadsNotOnline: a connection that stops taking data while
// messages wait makes Health (the daemon's /healthz) and Stats.Online
// read not online within stallHealth, not only once the send queue is
// full (at 16 MiB, which a slow line may take minutes to fill, or never);
// when it flows again they read online, and an idle connection, with
// nothing to send for longer than stallHealth, is not taken for a stall.
func TestStallReadsNotOnline(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	px := testbroker.NewProxy(t, b.URL)
	h := newHost(t, b.URL, testGroup)
	n, _, _ := startNode(t, px.URL, func(o *Options) {
		o.MaxPayload = 1 << 20
		o.WriteTimeout = time.Minute // the session outlives the stall
	})
	t.Cleanup(px.Resume)
	h.wait(0, "DBIRTH", nil)
	px.Stall()
	// More than the socket buffers between the node and the proxy take,
	// so that the writer waits: what sits in those buffers is the
	// keepalive's to notice (see stallHealth).
	png := bytes.Repeat([]byte{0x89}, 512<<10)
	for seq := uint64(1); seq <= 400; seq++ {
		if err := n.PublishResult(result(seq, 40), 0); err != nil {
			t.Fatalf("inspection %d: %v", seq, err)
		}
		if err := n.PublishMask(seq, png, 0); err != nil {
			t.Fatalf("mask %d: %v", seq, err)
		}
		if n.Stats().Queued >= 3 {
			time.Sleep(300 * time.Millisecond)
			if n.Stats().Queued >= 3 {
				break
			}
		}
	}
	if st := n.Stats(); st.Queued < 3 || !st.Online {
		t.Fatalf("the test needs messages waiting behind the stall, the queue not full: %+v", st)
	}
	const stall = 5 * time.Second // stallHealth, a literal so that the test runs on the node before it
	t0 := time.Now()
	if !testbroker.WaitFor(context.Background(), stall+5*time.Second, func() bool {
		ok, _ := n.Health()
		return !ok && !n.Stats().Online
	}) {
		ok, detail := n.Health()
		t.Fatalf("%s into a stall with %d messages waiting: Health() = %v %q, Stats().Online %v", time.Since(t0).Round(time.Millisecond),
			n.Stats().Queued, ok, detail, n.Stats().Online)
	}
	if _, detail := n.Health(); !strings.Contains(detail, "stalled") {
		t.Errorf("Health() detail %q does not say the connection stalled", detail)
	}
	px.Resume()
	if !testbroker.WaitFor(context.Background(), 20*time.Second, func() bool { ok, _ := n.Health(); return ok }) {
		_, detail := n.Health()
		t.Fatalf("not healthy again after the connection flowed: %q", detail)
	}
	time.Sleep(stall + time.Second) // idle: nothing to send
	if ok, detail := n.Health(); !ok {
		t.Errorf("an idle connection reads unhealthy: %q", detail)
	}
}

// TestStatsFinalOnceClosed: a Close that times out (a broker gone quiet
// during a reload) returned while the session went on leaving: the queue
// it dropped was counted after the daemon had read Stats to add them to
// the next node's, and so missed, or counted twice by a second read. The
// counters now stop when Close is called: what is read after it is final
// and holds what the leaving dropped.
func TestStatsFinalOnceClosed(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	px := testbroker.NewProxy(t, b.URL)
	h := newHost(t, b.URL, testGroup)
	n, _, _ := startNode(t, px.URL, func(o *Options) {
		o.MaxPayload = 1 << 20
		o.WriteTimeout = 3 * time.Second
	})
	t.Cleanup(px.Resume)
	h.wait(0, "DBIRTH", nil)
	px.Stall()
	png := bytes.Repeat([]byte{0x89}, 512<<10)
	for seq := uint64(1); seq <= 400; seq++ {
		if n.PublishResult(result(seq, 40), 0) != nil || n.PublishMask(seq, png, 0) != nil {
			break
		}
	}
	if n.Stats().Queued < 2 {
		t.Fatalf("the queue did not fill behind the stall (%+v)", n.Stats())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := n.Close(ctx); err == nil {
		t.Fatal("Close behind a stalled connection returned nil within 1 ms; the test needs it to time out")
	}
	read := n.Stats() // what the daemon adds to the next node's
	px.Resume()
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the node did not end after Close")
	}
	final := n.Stats()
	read.Queued, read.QueuedBytes, final.Queued, final.QueuedBytes = 0, 0, 0, 0
	if read != final {
		t.Errorf("counters moved after Close returned: read %+v, final %+v", read, final)
	}
	if read.DroppedLeaving == 0 {
		t.Errorf("the data dropped on leaving is not in the counters read after Close: %+v", read)
	}
}
