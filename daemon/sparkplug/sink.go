package sparkplug

import (
	"errors"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// maxText bounds string metrics that carry error texts and replies: a
// SCADA tag is not a log.
const maxText = 1024

// maxReplyText bounds Command/Last Reply (a reply's JSON).
const maxReplyText = 4096

// pendingAlarm is the regions of an anomalous inspection, held until its
// result arrives (the pipeline publishes the alarm first).
type pendingAlarm struct {
	ok      bool
	seq     uint64
	w, h    int
	regions []mqttpub.Region
}

// PublishResult records an inspection and publishes the metrics it changed
// as one DDATA (QoS 0 whatever qos says: Sparkplug data is QoS 0). The
// alarm regions published just before it for the same inspection go into
// the same DDATA; its mask, published after it, follows in a DDATA of its
// own (PublishMask). Without a Sparkplug session it returns ErrOffline;
// the values go out with the next DBIRTH.
//
// Every result recorded becomes the device's latest inspection
// (Inspection/*, whose Seq a host counts missed inspections by): a result
// sent again, such as the stored answer to a repeated trigger id, must
// not come here.
//
// An inspection that could not be made (Verdict "error") sets the score
// metrics to null rather than to a number nobody measured.
func (n *Node) PublishResult(r *mqttpub.Result, _ byte) error {
	// The daemon's counters move with anomalous and failed inspections
	// (which it counts before it publishes them); read without the lock,
	// as the daemon's code.
	var c Counts
	counted := n.o.Counts != nil && (r.Verdict == "anomalous" || r.Verdict == "error")
	if counted {
		c = n.o.Counts()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	n.recordLocked(r)
	if counted {
		n.setCountsLocked(c, resultTime(r))
	}
	n.countOfflineLocked()
	return n.flushLocked(&n.dev, n.topics.DDATA)
}

// countOfflineLocked counts an inspection's DDATA that is not sent for
// want of a live session (Stats.DroppedOffline). Only an inspection's:
// each is an event a host misses (it sees only the latest in the next
// DBIRTH), whereas the camera's state, the rate, the properties and the
// like are state the next birth carries whole; counted too, they moved
// the counter at every start and reload (SetInfo comes before the first
// birth) and every second while offline. The full queue's refusals are
// counted where they happen (sendLocked, PublishMask).
func (n *Node) countOfflineLocked() {
	if !n.born {
		n.stat.droppedOffline++
	}
}

// setCountsLocked sets Stats/Anomalous Count and Stats/Error Count from
// the daemon's counters. The counts are read before the lock is taken, so a reading older than
// one already set can come second: a counter never goes back (a host's
// historian reads a drop as a reset).
func (n *Node) setCountsLocked(c Counts, ts uint64) {
	n.counts.anomalous, n.counts.errors = max(n.counts.anomalous, c.Anomalous), max(n.counts.errors, c.Errors)
	n.dev.set(dAnomalousCount, sppb.ULongValue(n.counts.anomalous), ts)
	n.dev.set(dErrorCount, sppb.ULongValue(n.counts.errors), ts)
}

// recordLocked sets the device metrics from one inspection.
func (n *Node) recordLocked(r *mqttpub.Result) {
	ts := resultTime(r)
	d := &n.dev
	d.set(dSeq, sppb.ULongValue(r.Seq), ts)
	if r.Verdict == "error" {
		d.setNull(dScore, ts)
		d.setNull(dNormalized, ts)
		d.set(dError, sppb.StringValue(clip(r.Error, maxText)), ts)
		if n.o.Counts == nil {
			n.counts.errors++
			d.set(dErrorCount, sppb.ULongValue(n.counts.errors), ts)
		}
	} else {
		d.set(dScore, sppb.DoubleValue(r.Score), ts)
		d.set(dThreshold, sppb.DoubleValue(r.Threshold), ts)
		d.set(dNormalized, sppb.DoubleValue(r.NormalizedScore), ts)
		d.set(dError, sppb.StringValue(""), ts)
		for stage, v := range r.LatencyMS {
			if i, ok := stageMetric[stage]; ok {
				d.set(i, sppb.DoubleValue(v), ts)
			}
		}
	}
	if r.Verdict == "anomalous" && n.o.Counts == nil {
		n.counts.anomalous++
		d.set(dAnomalousCount, sppb.ULongValue(n.counts.anomalous), ts)
	}
	d.set(dAnomalous, sppb.BoolValue(r.Anomalous), ts)
	d.set(dVerdict, sppb.StringValue(clip(r.Verdict, maxText)), ts)
	d.set(dTriggerID, sppb.StringValue(clip(r.TriggerID, maxText)), ts)
	d.set(dFile, sppb.StringValue(clip(r.File, maxText)), ts)
	d.set(dModelID, sppb.StringValue(clip(r.ModelID, maxText)), ts)
	if a := &n.alarm; a.ok && a.seq == r.Seq {
		d.set(dAlarmSeq, sppb.ULongValue(a.seq), ts)
		d.set(dAlarmScore, sppb.DoubleValue(r.Score), ts)
		d.set(dAlarmWidth, sppb.IntValue(int32(a.w)), ts)
		d.set(dAlarmHeight, sppb.IntValue(int32(a.h)), ts)
		d.set(dAlarmRegions, sppb.DataSetValue(regionsDataSet(a.regions)), ts)
	}
	n.alarm.ok = false
	// The pipeline publishes an inspection's mask after its result: the
	// mask that names this Seq is stamped with this result's time.
	n.maskFor = maskSlot{ok: r.Verdict != "error", seq: r.Seq, ts: ts}
	n.lastSeq = r.Seq
}

// resultTime is the timestamp of a result's metrics: its frame's capture
// time, now when it has none.
func resultTime(r *mqttpub.Result) uint64 {
	if r.FrameTime.IsZero() {
		return nowMS()
	}
	return uint64(r.FrameTime.UnixMilli())
}

// regionsDataSet is Last Alarm/Regions: one row per region, largest first.
func regionsDataSet(rs []mqttpub.Region) *sppb.DataSet {
	ds := &sppb.DataSet{NumColumns: uint64(len(regionColumns)), Columns: regionColumns, Types: regionTypes,
		Rows: make([]sppb.Row, len(rs))}
	vals := make([]sppb.Value, len(rs)*len(regionColumns))
	for i, r := range rs {
		row := vals[i*len(regionColumns) : (i+1)*len(regionColumns)]
		row[0], row[1], row[2], row[3], row[4] = sppb.IntValue(int32(r.X)), sppb.IntValue(int32(r.Y)),
			sppb.IntValue(int32(r.W)), sppb.IntValue(int32(r.H)), sppb.IntValue(int32(r.Area))
		ds.Rows[i].Elements = row
	}
	return ds
}

// PublishAlarm keeps the alarm's regions for its result's DDATA (Last
// Alarm/*). Sparkplug has no queued delivery: alarms reach a host at most
// once, in the DDATA of their inspection, and a host that missed it sees
// Stats/Anomalous Count move.
func (n *Node) PublishAlarm(a *mqttpub.Alarm) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	n.alarm = pendingAlarm{ok: true, seq: a.Seq, w: a.ImageWidth, h: a.ImageHeight,
		regions: append(n.alarm.regions[:0], a.Regions...)}
	return nil
}

// PublishMask publishes inspection seq's PNG mask as the metric Mask
// (Bytes, content type image/png) in a DDATA of its own, stamped with the
// time of that inspection's result, which the pipeline publishes first. A
// mask whose result was not the last one recorded (a result left out
// under result_max_rate, a failed inspection, a second mask) is dropped:
// stamped on another inspection it would show the defect on the wrong
// part. Each mask is sent, even one equal to the last. It does nothing
// when the node was created without Options.Mask.
//
// A mask larger than MaxMask goes as null (see Options.MaxPayload): the
// DDATA still says which inspection it is for, and nil is returned, since
// the message went out; MasksTooLarge counts it.
func (n *Node) PublishMask(seq uint64, png []byte, _ byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if n.dev.m[dMask].omitted || !n.maskFor.ok || n.maskFor.seq != seq {
		return nil
	}
	n.maskFor.ok = false
	// What else changed (the camera's state between two stats ticks) goes
	// first, in a DDATA of its own: the mask's then holds the mask alone,
	// and a mask of MaxMask bytes fits whatever else was pending.
	born := n.born
	if err := n.flushLocked(&n.dev, n.topics.DDATA); err != nil && !errors.Is(err, ErrOffline) {
		return err
	}
	n.dev.putBytes(dMask, png, n.maskFor.ts)
	if born && !n.born {
		// The queue filled up with what went first, which ended the
		// births (queueLocked): the mask is refused for want of room in
		// it, not for want of a session, and was counted as offline.
		n.stat.queueFull++
		return ErrOffline
	}
	n.countOfflineLocked()
	return n.flushLocked(&n.dev, n.topics.DDATA)
}

// maskOverhead bounds the bytes of a DDATA that carries only the Mask,
// besides the mask: the payload's timestamp and seq, the metric's alias,
// timestamp and metadata (content type and size), the length prefixes.
const maskOverhead = 64

// MaxMask returns the largest PNG mask, in bytes, that goes out in a DDATA
// now (Options.MaxPayload, or less for Options.PacketLimit, less the
// DDATA's own bytes); 0 without Options.Mask. The daemon downsizes its
// masks to fit it and the JSON publisher's limit alike: sized for the JSON
// mask topic alone, a mask a few bytes under that limit made a DDATA over it.
func (n *Node) MaxMask() int {
	if !n.o.Mask {
		return 0
	}
	limit, _ := n.payloadLimit(n.topics.DDATA)
	return max(limit-maskOverhead, 1)
}

// MaxPayload is the largest DDATA payload the edge node publishes now:
// mqtt.max_payload, or less for a packet limit learned from the broker.
func (n *Node) MaxPayload() int {
	limit, _ := n.payloadLimit(n.topics.DDATA)
	return limit
}

// MasksTooLarge counts the masks sent as null since New because the
// message with them would have exceeded the payload limit (the daemon
// exports it as inspectd_mqtt_too_large_total{class="image",sink="sparkplug"}).
func (n *Node) MasksTooLarge() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tooLarge
}

// maskSlot is the inspection whose mask may come next: the last result
// recorded, unless it failed or its mask came.
type maskSlot struct {
	ok  bool
	seq uint64
	ts  uint64
}

// PublishHeatmap does nothing: a JPEG overlay per anomalous part is a
// picture for people, served by the JSON heatmap topic and /heatmap.jpg,
// not a tag for a SCADA historian.
func (n *Node) PublishHeatmap([]byte, byte) error { return nil }

// SetInfo publishes what the daemon runs as the node's Properties/*
// metrics (NDATA when they change, e.g. after a refit), the model's image
// threshold as Inspection/Threshold (DDATA when it changes), and its id as
// Inspection/Model ID until the first inspection.
func (n *Node) SetInfo(info *mqttpub.Info) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	now := nowMS()
	c := &n.node
	c.set(nVersion, sppb.StringValue(clip(info.Version, maxText)), now)
	c.set(nModelID, sppb.StringValue(clip(info.ModelID, maxText)), now)
	c.set(nBackbone, sppb.StringValue(clip(info.Backbone, maxText)), now)
	c.set(nFeatures, sppb.IntValue(int32(info.D)), now)
	c.set(nImageThreshold, sppb.DoubleValue(info.Thresholds.Image), now)
	c.set(nPixelThreshold, sppb.DoubleValue(info.Thresholds.Pixel), now)
	c.set(nCamera, sppb.StringValue(clip(info.Camera, maxText)), now)
	c.set(nRecipe, sppb.StringValue(clip(info.Recipe, maxText)), now)
	if !info.StartedAt.IsZero() {
		c.set(nStartedAt, sppb.ULongValue(uint64(info.StartedAt.UnixMilli())), now)
	}
	// Inspection/Threshold is writable: after a write, a refit or a
	// reload it says the threshold the next part is judged by, at once.
	// Set only until the first inspection, a host's written value
	// snapped back to the old one until a part came (on a triggered
	// line, perhaps hours), and a reload's birth showed the old model's.
	n.dev.set(dThreshold, sppb.DoubleValue(info.Thresholds.Image), now)
	if n.dev.m[dModelID].null {
		n.dev.set(dModelID, sppb.StringValue(clip(info.ModelID, maxText)), now)
	}
	if err := n.flushLocked(c, n.topics.NDATA); err != nil && err != ErrOffline {
		return err
	}
	if err := n.flushLocked(&n.dev, n.topics.DDATA); err != nil && err != ErrOffline {
		return err
	}
	return nil
}

// stats polls the camera and updates the inspection rate, and the counts
// from Options.Counts, every StatsInterval. The counts it sets are those
// read countsHold before (heldCounts): the daemon counts an inspection
// before it publishes it, and a tick between the two sent the counter in
// a DDATA before the inspection's own.
func (n *Node) stats() {
	t := time.NewTicker(n.o.StatsInterval)
	defer t.Stop()
	var held heldCounts
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.pollCamera()
		var c Counts
		countsOK := false
		if n.o.Counts != nil {
			// Failed free-run inspections are published once a second,
			// not each: the error count moves between results too.
			c, countsOK = held.settled(n.o.Counts(), time.Now())
		}
		var rate float64
		var rateOK bool
		if n.o.Rate != nil {
			rate, rateOK = n.o.Rate()
		}
		n.mu.Lock()
		if !n.born {
			// A birth whose publish failed while the connection stayed up
			// (a write timeout) left every later message dropped as
			// offline until a reconnect or a host's rebirth request.
			n.birthLocked("retry")
		}
		if countsOK {
			n.setCountsLocked(c, nowMS())
		}
		if n.o.Rate == nil {
			rate, rateOK = n.rate.add(time.Now(), n.lastSeq)
		}
		if rateOK {
			n.dev.set(dRate, sppb.DoubleValue(tenth(rate)), nowMS())
		}
		_ = n.flushLocked(&n.dev, n.topics.DDATA)
		n.mu.Unlock()
	}
}

// countsHold is how long the stats tick holds back a reading of
// Options.Counts. The daemon counts an inspection before it publishes it,
// and the inspection's DDATA carries the counters it moved (PublishResult
// reads them afresh); a tick that came between the two sent the counter
// in a DDATA of its own first, and a host that alarms on Stats/Anomalous
// Count looked for an inspection it did not have yet. Held back, the tick
// only sends what the results did not (failed inspections published once
// a second, results left out under mqtt.result_max_rate), that much later.
const countsHold = 2 * time.Second

// heldCounts is the stats tick's readings of Options.Counts within
// countsHold, oldest first.
type heldCounts struct {
	r []countsReading
}

type countsReading struct {
	c  Counts
	at time.Time
}

// settled records reading c taken at now and returns the latest reading
// taken countsHold or more before now; false when there is none yet.
func (h *heldCounts) settled(c Counts, now time.Time) (Counts, bool) {
	h.r = append(h.r, countsReading{c, now})
	cut := now.Add(-countsHold)
	i := 0
	for i+1 < len(h.r) && !h.r[i+1].at.After(cut) {
		i++
	}
	h.r = h.r[i:]
	if h.r[0].at.After(cut) {
		return Counts{}, false
	}
	return h.r[0].c, true
}

// pollCamera sets Camera/Connected and Camera/Error from Options.Camera,
// called without the lock (it is the daemon's code).
func (n *Node) pollCamera() {
	if n.o.Camera == nil {
		return
	}
	ok, detail := n.o.Camera()
	if ok {
		detail = "" // the healthy detail ("last frame 12 ms ago") changes every time
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	now := nowMS()
	n.dev.set(dCameraConnected, sppb.BoolValue(ok), now)
	n.dev.set(dCameraError, sppb.StringValue(clip(detail, maxText)), now)
}

// rateMeter turns the inspection counter into inspections per second over
// a sliding window, to a tenth.
type rateMeter struct {
	window  time.Duration
	samples []rateSample
}

type rateSample struct {
	t   time.Time
	seq uint64
}

// add records the counter at t and returns the rate over the window, once
// there are two samples.
func (r *rateMeter) add(t time.Time, seq uint64) (float64, bool) {
	if k := len(r.samples); k > 0 && seq < r.samples[k-1].seq { // a new pipeline counts from 1 again
		r.samples = r.samples[:0]
	}
	r.samples = append(r.samples, rateSample{t, seq})
	drop := 0
	for drop+1 < len(r.samples)-1 && t.Sub(r.samples[drop+1].t) >= r.window {
		drop++
	}
	r.samples = append(r.samples[:0], r.samples[drop:]...)
	first := r.samples[0]
	dt := t.Sub(first.t).Seconds()
	if len(r.samples) < 2 || dt <= 0 {
		return 0, false
	}
	return tenth(float64(seq-first.seq) / dt), true
}

// tenth rounds a rate to a tenth: the metric changes, and a DDATA goes
// out, only when the rate does by that much.
func tenth(v float64) float64 { return math.Round(v*10) / 10 }

// clip makes s valid UTF-8 of at most max bytes, cut on a rune boundary.
func clip(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
