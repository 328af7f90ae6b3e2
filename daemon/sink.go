package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug"
)

// sinkSwitch is the pipeline's Sink in the daemon: it forwards to the
// current MQTT publisher, which a configuration change may replace.
// Publishing waits while the publisher is being replaced, so that no alarm
// finds a closed connection; health and metrics do not.
type sinkSwitch struct {
	// gate is held for reading by whatever publishes (out, do) and for
	// writing by replace and close for their whole length: the old
	// connections say offline and disconnect before the new ones connect
	// with the same client ids (the other way round, the old "offline"
	// and NDEATH would land after the new "online" and NBIRTH), and what
	// is published meanwhile waits and then goes to the new ones.
	gate sync.RWMutex
	// mu guards the fields below, and is held only while they are read
	// or set, never while a connection closes or opens (up to seconds): a
	// /healthz or /metrics that waited for a reload could miss a liveness
	// probe's timeout. Taken after gate, never before.
	mu  sync.RWMutex
	pub *mqttpub.Publisher
	// replacing is set while replace closes the connections and opens
	// the new ones, for Health to say so.
	replacing bool
	// jsonPub is pub for readers that take no lock: the edge node reads
	// the packet limit the JSON connection learned (packetLimit) while
	// out holds gate for reading, where taking it again would deadlock
	// against a replace waiting for it.
	jsonPub atomic.Pointer[mqttpub.Publisher]
	// node is the Sparkplug B edge node (mqtt.profile sparkplug or both);
	// nil otherwise. noJSON keeps results off the JSON topics (profile
	// sparkplug): the JSON connection then carries only the control plane
	// (status, info, triggers, commands).
	node   *sparkplug.Node
	noJSON bool
	// onTriggerResult sees every result that answers a trigger, for the
	// trigger intake's memory of answered ids.
	onTriggerResult func(*mqttpub.Result)
	// past holds the counters of the publishers and edge nodes a reload
	// replaced (Reconnects, Evicted, Refused, TooLarge, DroppedOffline),
	// added to the current ones' by state: inspectd_mqtt_*_total went back
	// to 0 at every reload that rebuilt the connections. Guarded by mu,
	// and set in the same hold that takes the replaced publisher off pub,
	// so that a reader counts its counters exactly once.
	past mqttpub.State
	// pastNode holds the counters of the edge nodes a reload replaced, and
	// the bdSeq of the last one's last session, added to the current
	// node's by sparkplugState: a reload is not a restart, and
	// inspectd_sparkplug_*_total must not go back to 0 at one (nor at a
	// profile change that ends the edge node and a later one that starts
	// another, which Carry would not bridge). Guarded by mu.
	pastNode sparkplug.Stats
	// configured is mqtt.max_payload in bytes, what state reports as the
	// payload limit before a publisher exists (a start's fit): 0 there
	// read as "no limit" to a dashboard.
	configured atomic.Int64
}

func (s *sinkSwitch) set(p *mqttpub.Publisher, node *sparkplug.Node, noJSON bool) {
	s.gate.Lock()
	defer s.gate.Unlock()
	s.mu.Lock()
	s.pub, s.node, s.noJSON = p, node, noJSON
	s.jsonPub.Store(p)
	s.mu.Unlock()
}

// packetLimit is the broker's packet size limit the JSON connection has
// learned (0: none, or no connection now), for the edge node's messages
// to the same broker (sparkplug.Options.PacketLimit). It takes no lock of
// the switch's.
func (s *sinkSwitch) packetLimit() int {
	if p := s.jsonPub.Load(); p != nil {
		return p.PacketLimit()
	}
	return 0
}

// out runs json with the publisher (unless the JSON profile is off) and
// sp with the edge node (when there is one); the JSON profile's error wins.
func (s *sinkSwitch) out(json func(*mqttpub.Publisher) error, sp func(*sparkplug.Node) error) error {
	s.gate.RLock() // the fields change only under gate: no mu needed
	defer s.gate.RUnlock()
	var err error
	if s.node != nil {
		err = sp(s.node)
	}
	if !s.noJSON {
		if s.pub == nil {
			return mqttpub.ErrNotStarted
		}
		err = json(s.pub)
	}
	return err
}

// do runs f with the current publisher, or returns ErrNotStarted; a
// replacement in progress is waited for.
func (s *sinkSwitch) do(f func(*mqttpub.Publisher) error) error {
	s.gate.RLock() // the fields change only under gate: no mu needed
	defer s.gate.RUnlock()
	if s.pub == nil {
		return mqttpub.ErrNotStarted
	}
	return f(s.pub)
}

// PublishResult implements Sink.
func (s *sinkSwitch) PublishResult(r *mqttpub.Result, qos byte) error {
	err := s.out(func(p *mqttpub.Publisher) error { return p.PublishResult(r, qos) },
		func(n *sparkplug.Node) error { return n.PublishResult(r, qos) })
	if r.TriggerID != "" && s.onTriggerResult != nil {
		s.onTriggerResult(r)
	}
	return err
}

// republish sends a stored answer again, at QoS 1, on the JSON result
// topic only. The Sparkplug device's Inspection/* metrics are the latest
// inspection's (a host counts missed parts by Inspection/Seq): an old
// answer set there as the latest took Seq back, stamped old values as new
// and could take the next alarm's regions and mask. Over Sparkplug, a
// repeated Command/Trigger is told in Command/Last Reply
// (answered_before); with the JSON profile off nothing is sent again
// (errNotRepublished).
func (s *sinkSwitch) republish(r *mqttpub.Result) error {
	return s.do(func(p *mqttpub.Publisher) error {
		if s.noJSON { // read under do's lock
			return errNotRepublished
		}
		return p.PublishResult(r, 1)
	})
}

// errNotRepublished: mqtt.profile sparkplug carries no results on JSON, and
// Sparkplug's Inspection/* metrics are the latest inspection's.
var errNotRepublished = errors.New("not sent again: mqtt.profile sparkplug")

// PublishAlarm implements Sink.
func (s *sinkSwitch) PublishAlarm(a *mqttpub.Alarm) error {
	return s.out(func(p *mqttpub.Publisher) error { return p.PublishAlarm(a) },
		func(n *sparkplug.Node) error { return n.PublishAlarm(a) })
}

// PublishMask implements Sink.
func (s *sinkSwitch) PublishMask(seq uint64, png []byte, qos byte) error {
	return s.out(func(p *mqttpub.Publisher) error { return p.PublishMask(png, qos) },
		func(n *sparkplug.Node) error { return n.PublishMask(seq, png, qos) })
}

// CarriesHeatmaps says whether a published heatmap goes anywhere: not with
// mqtt.profile sparkplug (results stay off the JSON topics, and the edge
// node has no heatmap metric), where encoding one is wasted work.
func (s *sinkSwitch) CarriesHeatmaps() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return !s.noJSON
}

// PublishHeatmap implements Sink.
func (s *sinkSwitch) PublishHeatmap(jpeg []byte, qos byte) error {
	return s.out(func(p *mqttpub.Publisher) error { return p.PublishHeatmap(jpeg, qos) },
		func(n *sparkplug.Node) error { return n.PublishHeatmap(jpeg, qos) })
}

// MaxPayload is the largest image payload the broker takes now (0: no
// limit known): the JSON publisher's limit and, with the Sparkplug edge
// node, the largest mask its DDATA carries, so that the pipeline downsizes
// a mask to fit both rather than the edge node sending it as null.
func (s *sinkSwitch) MaxPayload() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.pub == nil {
		return 0
	}
	n := s.pub.MaxPayload()
	if s.node != nil {
		if m := s.node.MaxMask(); m > 0 && (n == 0 || m < n) {
			n = m
		}
	}
	return n
}

// Health reports the MQTT connections' health (httpapi.Checker). It does
// not wait for a replacement in progress.
func (s *sinkSwitch) Health() (bool, string) {
	s.mu.RLock()
	pub, node, replacing := s.pub, s.node, s.replacing
	s.mu.RUnlock()
	if replacing {
		return false, "reconnecting for a configuration change"
	}
	ok, detail := false, "not started"
	if pub != nil {
		ok, detail = pub.Health()
	}
	if node != nil {
		nok, ndetail := node.Health()
		ok, detail = ok && nok, detail+"; sparkplug: "+ndetail
	}
	return ok, detail
}

// setNodeInfo hands the model and source description to the edge node.
func (s *sinkSwitch) setNodeInfo(info *mqttpub.Info) error {
	s.gate.RLock() // the fields change only under gate: no mu needed
	defer s.gate.RUnlock()
	if s.node == nil {
		return nil
	}
	return s.node.SetInfo(info)
}

// state is the JSON publisher's state; its MaxPayload is the edge node's
// when that is lower. Its counters go on across reloads (past). Its
// TooLarge counts the JSON connection's refusals alone: the edge node's
// masks sent as null are sparkplug.Stats.MasksTooLarge (sparkplugState),
// exported under their own sink label. Added in here, one mask too large
// for both connections (refused on the JSON topic, null in its DDATA)
// counted twice in one series.
// The current connections and past are read under one hold of mu, which
// replace does not keep while connections close: a replacement between
// two reads would count the publisher it ends twice, or not at all.
func (s *sinkSwitch) state() mqttpub.State {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := mqttpub.State{MaxPayload: int(s.configured.Load())}
	if s.pub != nil {
		st = s.pub.State()
		if s.node != nil {
			// The lower of the two connections' limits: the edge node
			// learns its own (mqtt.profile sparkplug sends images there only).
			st.MaxPayload = min(st.MaxPayload, s.node.MaxPayload())
		}
	}
	addCounters(&st, s.past)
	return st
}

func (s *sinkSwitch) setInfo(info *mqttpub.Info) error {
	return s.do(func(p *mqttpub.Publisher) error { return p.SetInfo(info) })
}

// setStatus replaces the retained status ("online", "degraded: ...").
func (s *sinkSwitch) setStatus(status string) error {
	return s.do(func(p *mqttpub.Publisher) error { return p.SetStatus(status) })
}

// carried is what the connections a reload closes knew, for the ones it
// opens to go on from (Daemon.connect; nil at start).
type carried struct {
	node *sparkplug.Carry // the edge node's; nil without one
	pub  *mqttpub.Carry   // the JSON publisher's; nil without one
}

// replace closes the connections and opens the ones f makes; publishing
// waits meanwhile, health and metrics do not (they see the closing
// connections until the new ones are set). On error none is set.
// f gets what the connections being closed knew, for the new ones to go
// on from.
func (s *sinkSwitch) replace(log *slog.Logger, f func(carry *carried) (*mqttpub.Publisher, *sparkplug.Node, bool, error)) error {
	s.gate.Lock()
	defer s.gate.Unlock()
	s.mu.Lock()
	pub, node := s.pub, s.node
	s.replacing = true
	s.mu.Unlock()
	// The edge node f starts learns its packet limit from the new JSON
	// connection, not from the one closing.
	s.jsonPub.Store(nil)
	carry := &carried{}
	if node != nil {
		carry.node = node.Carry()
	}
	if pub != nil {
		carry.pub = pub.Carry()
	}
	closeConns(log, pub, node, 3*time.Second)
	newPub, newNode, noJSON, err := f(carry)
	s.mu.Lock()
	s.retireLocked(pub, node)
	s.pub, s.node, s.noJSON, s.replacing = newPub, newNode, noJSON, false
	s.mu.Unlock()
	s.jsonPub.Store(newPub)
	return err
}

// close says goodbye on both connections (offline; the edge node's
// NDEATH) and disconnects, waiting a little for queued messages to be
// acknowledged (the rest stay in the outbox).
func (s *sinkSwitch) close(log *slog.Logger) {
	s.gate.Lock()
	defer s.gate.Unlock()
	s.mu.RLock()
	pub, node := s.pub, s.node
	s.mu.RUnlock()
	s.jsonPub.Store(nil)
	closeConns(log, pub, node, 5*time.Second)
	s.mu.Lock()
	s.retireLocked(pub, node)
	s.pub, s.node = nil, nil
	s.mu.Unlock()
}

// closeConns closes the edge node, then the JSON publisher (either may be
// nil), within wait. It takes no lock of the switch's.
func closeConns(log *slog.Logger, pub *mqttpub.Publisher, node *sparkplug.Node, wait time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if node != nil {
		if err := node.Close(ctx); err != nil {
			log.Warn("Sparkplug close", "err", err)
		}
	}
	if pub != nil {
		if err := pub.Close(ctx); err != nil {
			log.Warn("MQTT close", "err", err)
		}
	}
}

// retireLocked adds the counters of closed connections to past and
// pastNode; the caller takes them off pub and node in the same hold of mu.
func (s *sinkSwitch) retireLocked(pub *mqttpub.Publisher, node *sparkplug.Node) {
	if node != nil {
		st := node.Stats()
		addNodeCounters(&s.pastNode, st)
		if st.HasBdSeq {
			s.pastNode.BdSeq, s.pastNode.HasBdSeq = st.BdSeq, true
		}
	}
	if pub != nil {
		addCounters(&s.past, pub.State())
	}
}

// addCounters adds the cumulative counters of b to a.
func addCounters(a *mqttpub.State, b mqttpub.State) {
	add := func(x *mqttpub.ClassCounts, y mqttpub.ClassCounts) {
		x.Alarm, x.Result, x.Image = x.Alarm+y.Alarm, x.Result+y.Result, x.Image+y.Image
	}
	a.Reconnects += b.Reconnects
	a.DroppedOffline += b.DroppedOffline
	add(&a.Evicted, b.Evicted)
	add(&a.Refused, b.Refused)
	add(&a.TooLarge, b.TooLarge)
}

// sparkplugState is the edge node's state for /metrics: the current
// node's (offline, an empty queue without one) with the counters of the
// nodes replaced before it added. Both are read under one hold of mu: a
// replacement between two reads would count the node it ends twice, or
// not at all.
func (s *sinkSwitch) sparkplugState() sparkplug.Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := sparkplug.Stats{BdSeq: s.pastNode.BdSeq, HasBdSeq: s.pastNode.HasBdSeq}
	if s.node != nil {
		st = s.node.Stats()
		if !st.HasBdSeq { // no session yet: the last node's is the last one
			st.BdSeq, st.HasBdSeq = s.pastNode.BdSeq, s.pastNode.HasBdSeq
		}
	}
	addNodeCounters(&st, s.pastNode)
	return st
}

// addNodeCounters adds the cumulative counters of b to a.
func addNodeCounters(a *sparkplug.Stats, b sparkplug.Stats) {
	a.Sessions += b.Sessions
	a.Births += b.Births
	a.DroppedOffline += b.DroppedOffline
	a.DroppedQueueFull += b.DroppedQueueFull
	a.DroppedLeaving += b.DroppedLeaving
	a.MasksTooLarge += b.MasksTooLarge
}

// sparkplugMetrics maps the edge node's state onto the metrics' view of it.
func sparkplugMetrics(s sparkplug.Stats) httpapi.SparkplugStats {
	return httpapi.SparkplugStats{Online: s.Online, PrimaryHostOnline: s.PrimaryHostOnline, Sessions: s.Sessions, Births: s.Births,
		BdSeq: s.BdSeq, Queued: s.Queued, QueuedBytes: s.QueuedBytes, DroppedOffline: s.DroppedOffline, DroppedQueueFull: s.DroppedQueueFull,
		DroppedLeaving: s.DroppedLeaving}
}

// mqttStats maps the publisher's state, and the edge node's masks sent as
// null for their size (sparkplugTooLarge), onto the metrics' view of them.
func mqttStats(s mqttpub.State, sparkplugTooLarge uint64) httpapi.MQTTStats {
	byClass := func(c mqttpub.ClassCounts) map[string]uint64 {
		return map[string]uint64{"alarm": c.Alarm, "result": c.Result, "image": c.Image}
	}
	return httpapi.MQTTStats{Connected: s.Connected, Reconnects: s.Reconnects, Queued: s.Queued, QueuedBytes: s.QueuedBytes,
		OnDisk: s.OnDisk, NotDurable: s.NotDurable, Evicted: byClass(s.Evicted), Refused: byClass(s.Refused),
		TooLarge: byClass(s.TooLarge), SparkplugTooLarge: sparkplugTooLarge, DroppedOffline: s.DroppedOffline, MaxPayload: s.MaxPayload,
		StoreFailing: s.StoreError != "", ClientIDClash: s.ClientIDClash != ""}
}
