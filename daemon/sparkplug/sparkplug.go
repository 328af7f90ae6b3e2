// Package sparkplug is inspectd's Sparkplug B edge node (Eclipse
// Sparkplug 3.0): it lets SCADA hosts such as Ignition's MQTT Engine see an
// inspection station as a device with tags, birth and death certificates
// and commands, beside (or instead of) the JSON topics of package mqttpub.
//
// The edge node spBv1.0/<group>/N*/<edge node> has one device,
// spBv1.0/<group>/D*/<edge node>/<device>, the inspection station. It has
// its own MQTT connection (clean session, no automatic reconnect: every
// CONNECT carries a new bdSeq in its NDEATH Will, which paho cannot change
// between reconnects), publishes NBIRTH and DBIRTH with every metric, name
// and alias, then DDATA with the metrics that changed, by alias, at QoS 0,
// seq 0..255 across all its messages. It takes the daemon's inspection
// results through the same methods as the JSON publisher (PublishResult,
// PublishAlarm, PublishMask, PublishHeatmap), so one pipeline feeds both.
// NCMD and DCMD writes (rebirth, reboot, threshold, trigger, refit) are
// checked against the metric catalog and handed to a remote.Submitter, the
// same implementations the JSON commands use; their replies come back as
// DDATA. The metric reference is in the README.
package sparkplug

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/remote"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// Namespace is the first topic level of Sparkplug B (§4.1.1).
const Namespace = "spBv1.0"

// Errors of the publishing methods.
var (
	// ErrClosed: Close has been called.
	ErrClosed = errors.New("sparkplug edge node closed")
	// ErrOffline: the edge node has no Sparkplug session (not connected, or
	// waiting for the primary host), so the DDATA was not sent; the values
	// are kept and go out in the next DBIRTH. It wraps
	// mqttpub.ErrNotConnected, which the pipeline does not log per frame.
	ErrOffline = fmt.Errorf("sparkplug edge node not online: %w", mqttpub.ErrNotConnected)
)

// Options configure a Node. Zero durations take the defaults below.
type Options struct {
	// Brokers are the MQTT servers, tried in order on every CONNECT (the
	// JSON publisher's list).
	Brokers []string
	// ClientID must differ from the JSON connection's; required.
	ClientID string
	Username string
	Password string
	// TLS is used for ssl://, tls://, mqtts:// and wss:// brokers; nil
	// means Go's defaults (system roots, the URL's host name).
	TLS *tls.Config
	// KeepAlive is the MQTT keepalive (default 30s): a host learns of a
	// dead edge node from its NDEATH Will within 1.5 keepalives.
	KeepAlive time.Duration
	// ConnectTimeout bounds one CONNECT (default 10s).
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the backoff between CONNECTs (default 60s).
	MaxReconnectInterval time.Duration
	// WriteTimeout bounds how long a publish waits for a stalled
	// connection, and the NDEATH before an intentional disconnect
	// (default 10s). The wait is the node's writer goroutine's: the
	// publishing methods only queue their message.
	WriteTimeout time.Duration
	// MaxPayload is the largest message payload published, in bytes
	// (default mqttpub.DefaultMaxPayload): the daemon passes
	// mqtt.max_payload, the JSON publisher's limit, since both connections
	// go to the same broker. A DDATA or DBIRTH that its Mask would take
	// over it, or over PacketLimit, carries the Mask as null instead
	// (MasksTooLarge): the inspection's other metrics go out, and a broker
	// that limits packets (mosquitto's max_packet_size) is not made to drop
	// the connection over it, which cost a death and a birth per
	// anomalous part. A DBIRTH over it with a Mask that fits a DDATA
	// carries the Mask as null and sends it in a DDATA right after.
	MaxPayload int
	// PacketLimit, when set, returns the broker's packet size limit as
	// another connection to it learned it (the JSON publisher's
	// mqttpub.Publisher.PacketLimit; 0: none learned). The edge node's
	// QoS 0 messages have no acknowledgement to learn it from. It is read
	// for every message, under the node's lock, and by MaxMask: it must
	// neither block nor call the node.
	PacketLimit func() int

	// GroupID, EdgeNodeID and DeviceID name the topics
	// spBv1.0/<GroupID>/N*/<EdgeNodeID> and .../D*/<EdgeNodeID>/<DeviceID>:
	// UTF-8 without +, / or #. All three are required.
	GroupID    string
	EdgeNodeID string
	DeviceID   string
	// PrimaryHostID, when set, makes the node publish births only while
	// spBv1.0/STATE/<PrimaryHostID> says the host is online, and end the
	// session (NDEATH, DISCONNECT, a new CONNECT) when it goes offline.
	PrimaryHostID string
	// JSONDelivers says the JSON topics carry the results too (mqtt.profile
	// both). Health then reports a wait for the primary host as healthy,
	// saying so in its detail: the box delivers everything to its JSON
	// consumers, and waiting is what the specification asks of an edge
	// node whose host is offline, a fault of the host's to be seen there.
	// Without it (profile sparkplug) the box delivers nothing meanwhile,
	// and Health says so. Not being connected is unhealthy either way.
	JSONDelivers bool
	// StateDir holds the bdSeq file (BdSeqFile); empty keeps it in memory,
	// so a restart starts again at 0 (tests only).
	StateDir string
	// Mask declares the Mask metric (the pipeline publishes masks, config
	// mqtt.mask other than never).
	Mask bool
	// Submitter runs the DCMD writes of Inspection/Threshold,
	// Command/Trigger and Command/Refit, and decides whether an NCMD
	// Node Control/Reboot is taken (CommandReboot); nil refuses them all.
	Submitter remote.Submitter
	// OnReboot is called when the Submitter answers a Node Control/Reboot
	// = true OK, outside any lock, from the goroutine that delivers the
	// reply: it must only start the restart (cancel a context), not wait
	// for it. nil refuses the write. The daemon restarts itself; systemd
	// brings it back.
	OnReboot func()
	// Carry, when set, is what the edge node this one replaces knew
	// (Node.Carry): its births then say the counters and the latest
	// inspection and alarm, not zeros and nulls.
	Carry *Carry
	// Counts, when set, gives Stats/Anomalous Count and Stats/Error Count:
	// the daemon's own counters of this process (its /metrics
	// inspectd_inspections_total), so that an edge node started mid-run,
	// by a configuration change to mqtt.profile sparkplug or both, says
	// what the process counted before it rather than 0, and the two never
	// disagree. It is read at New, with every anomalous or error result
	// and every StatsInterval, without the node's lock. nil: the node
	// counts the results it is given (Carry takes the counts across a
	// replacement).
	Counts func() Counts
	// Camera reports whether frames are coming and, if not, why; it is
	// polled every StatsInterval for Camera/Connected and Camera/Error.
	// nil leaves those metrics null.
	Camera func() (ok bool, detail string)
	// Rate, when set, gives Stats/Inspections per Second, read at New and
	// every StatsInterval without the node's lock: the daemon measures it
	// all along, whereas a meter of the node's own has no two samples
	// before its first births, sent right after the CONNECT, which then
	// said 0 on every connect and reload. ok false: not measured yet. nil:
	// the node measures it from the results' Seq over RateWindow.
	Rate func() (perSecond float64, ok bool)
	// StatsInterval is how often Camera is polled and Stats/Inspections per
	// Second recomputed (default 1s).
	StatsInterval time.Duration
	// RateWindow is the span Stats/Inspections per Second averages over
	// (default DefaultRateWindow; the daemon's Rate uses that too).
	RateWindow time.Duration
	// Logger receives one line per session event and per refused command;
	// default slog.Default().
	Logger *slog.Logger
}

// Counts are the daemon's cumulative inspection counters (Options.Counts).
type Counts struct {
	// Anomalous counts the inspections with verdict anomalous.
	Anomalous uint64
	// Errors counts the inspections that could not be made (the model or
	// registration failed on the frame); a trigger that got no frame is
	// not one.
	Errors uint64
}

// Defaults for zero Options fields.
const (
	DefaultKeepAlive            = 30 * time.Second
	DefaultConnectTimeout       = 10 * time.Second
	DefaultMaxReconnectInterval = 60 * time.Second
	DefaultWriteTimeout         = 10 * time.Second
	DefaultStatsInterval        = time.Second
	DefaultRateWindow           = 5 * time.Second
)

func (o Options) withDefaults() (Options, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.KeepAlive, DefaultKeepAlive)
	def(&o.ConnectTimeout, DefaultConnectTimeout)
	def(&o.MaxReconnectInterval, DefaultMaxReconnectInterval)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.StatsInterval, DefaultStatsInterval)
	def(&o.RateWindow, DefaultRateWindow)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	for name, id := range map[string]string{"GroupID": o.GroupID, "EdgeNodeID": o.EdgeNodeID, "DeviceID": o.DeviceID} {
		if err := checkID(id); err != nil {
			return o, fmt.Errorf("sparkplug %s %q: %w", name, id, err)
		}
	}
	if o.GroupID == "STATE" {
		return o, errors.New(`sparkplug GroupID "STATE" is reserved for host application states`)
	}
	if o.PrimaryHostID != "" {
		if err := checkID(o.PrimaryHostID); err != nil {
			return o, fmt.Errorf("sparkplug PrimaryHostID %q: %w", o.PrimaryHostID, err)
		}
	}
	if o.ClientID == "" {
		return o, errors.New("sparkplug ClientID is empty: the edge node needs its own MQTT client id")
	}
	if len(o.Brokers) == 0 {
		return o, errors.New("sparkplug Brokers is empty: expected at least one URL such as tcp://127.0.0.1:1883")
	}
	for i, b := range o.Brokers {
		if u, err := url.Parse(b); err != nil || u.Scheme == "" || u.Host == "" {
			return o, fmt.Errorf("sparkplug Brokers[%d] %q: expected a URL such as tcp://host:1883", i, b)
		}
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = mqttpub.DefaultMaxPayload
	}
	if o.MaxPayload < 0 || o.MaxPayload > mqttpub.MaxPacketPayload {
		return o, fmt.Errorf("sparkplug MaxPayload is %d; expected 1 to %d bytes", o.MaxPayload, mqttpub.MaxPacketPayload)
	}
	for name, d := range map[string]time.Duration{"KeepAlive": o.KeepAlive, "ConnectTimeout": o.ConnectTimeout,
		"MaxReconnectInterval": o.MaxReconnectInterval, "WriteTimeout": o.WriteTimeout,
		"StatsInterval": o.StatsInterval, "RateWindow": o.RateWindow} {
		if d < 0 {
			return o, fmt.Errorf("sparkplug %s is %s; expected a positive duration", name, d)
		}
	}
	if o.KeepAlive < time.Second {
		return o, fmt.Errorf("sparkplug KeepAlive is %s; MQTT counts it in whole seconds", o.KeepAlive)
	}
	return o, nil
}

// checkID applies §4.1.1 to group, edge node, device and host ids.
func checkID(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	case strings.ContainsAny(s, "+/#\x00"):
		return errors.New("holds +, / or # (reserved in Sparkplug topics) or NUL")
	}
	return nil
}

// Topics are the edge node's topic names.
type Topics struct {
	NBIRTH, NDEATH, NDATA, NCMD, DBIRTH, DDATA, DCMD string
	// STATE is the primary host's state topic; empty without one.
	STATE string
}

// TopicsFor returns the topic names of edge node node in group with
// device dev, and the STATE topic of host ("" for none).
func TopicsFor(group, node, dev, host string) Topics {
	n := func(verb string) string { return Namespace + "/" + group + "/" + verb + "/" + node }
	d := func(verb string) string { return n(verb) + "/" + dev }
	t := Topics{NBIRTH: n("NBIRTH"), NDEATH: n("NDEATH"), NDATA: n("NDATA"), NCMD: n("NCMD"),
		DBIRTH: d("DBIRTH"), DDATA: d("DDATA"), DCMD: d("DCMD")}
	if host != "" {
		t.STATE = Namespace + "/STATE/" + host
	}
	return t
}

// Node is a Sparkplug B edge node with one device. Create it with New,
// Start it, feed it results; all methods are safe for concurrent use.
type Node struct {
	o      Options
	log    *slog.Logger
	topics Topics
	bd     *bdSeqStore

	stop chan struct{} // closed by Close
	done chan struct{} // closed when run, stats and write have returned
	wg   sync.WaitGroup
	wire wire // the messages queued for the broker, in seq order (write)

	mu             sync.Mutex
	node           catalog // NBIRTH, NDATA, NCMD
	dev            catalog // DBIRTH, DDATA, DCMD
	started        bool
	closed         bool
	sess           *session // the connected session, nil between sessions
	born           bool     // NBIRTH and DBIRTH queued in this session (wire)
	seq            uint8    // the next message's seq
	host           hostState
	hostUp         bool // the primary host is online, as this session's STATE says
	lastErr        string
	counts         struct{ anomalous, errors uint64 }
	lastSeq        uint64 // the latest inspection's Seq (for the rate)
	rate           rateMeter
	alarm          pendingAlarm
	maskFor        maskSlot // the inspection whose mask may come next
	reqs           uint64   // request ids handed out
	scratch        []sppb.Metric
	buf            []byte
	lastEncE       string // the last encoding error logged
	stalled        bool   // the send queue overflowed and that was logged; reset by the next birth queued
	tooLarge       uint64 // masks sent as null for their size (MasksTooLarge)
	tooLargeLogged int    // the payload limit the last such log line named; 0: none
	maskFollows    bool   // the birth being encoded goes with a DDATA of the Mask (fitLocked)
	// stat holds the counters Stats reports, since New (a replacement
	// starts at 0: the daemon adds those of the nodes it replaced).
	stat struct {
		sessions, births          uint64
		droppedOffline, queueFull uint64
		droppedLeaving            uint64
		bdSeq                     uint64 // the current or last session's
		hasBdSeq                  bool
	}
	// packetLimit is the broker's packet limit the node learned from its
	// own connection (learnFromLoss), 0: none. Read without mu (MaxMask).
	packetLimit atomic.Int64
	// learn guards outlived (what the node's connections outlived, over
	// every session) and suspect (the packet the last session was lost
	// right after, when it was a suspect; 0: none), for learnFromLoss.
	learn    sync.Mutex
	outlived outlived
	suspect  int
	// birthSuspects counts the sessions in a row lost right after a
	// DBIRTH with a Mask larger than every packet outlived; splitBirths:
	// two were, and births send the Mask apart (learnBirthLocked). Guarded
	// by learn.
	birthSuspects int
	splitBirths   bool
	// carried is the packet limit Options.Carry brought (0: none), logged
	// at Start: a limit in force without a word looked like masks shrunk
	// for no reason after a reload.
	carried int64
}

// New validates the options and reads the bdSeq file; it does not
// connect.
func New(o Options) (*Node, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	log := o.Logger.With("component", "sparkplug")
	bd, err := openBdSeq(o.StateDir, log)
	if err != nil {
		return nil, err
	}
	nd, dd := nodeDefs(), deviceDefs()
	n := &Node{o: o, log: log, bd: bd, topics: TopicsFor(o.GroupID, o.EdgeNodeID, o.DeviceID, o.PrimaryHostID),
		stop: make(chan struct{}), done: make(chan struct{}),
		node: newCatalog(nd[:], 1), dev: newCatalog(dd[:], 100)}
	n.wire.cond.L = &n.wire.mu
	now := nowMS()
	n.node.set(nRebirth, sppb.BoolValue(false), now)
	n.node.set(nReboot, sppb.BoolValue(false), now)
	n.dev.set(dTrigger, sppb.StringValue(""), now)
	n.dev.set(dRefit, sppb.BoolValue(false), now)
	n.dev.set(dRefitFrames, sppb.UIntValue(0), now)
	n.dev.set(dAnomalousCount, sppb.ULongValue(0), now)
	n.dev.set(dErrorCount, sppb.ULongValue(0), now)
	n.dev.set(dRate, sppb.DoubleValue(0), now)
	n.dev.m[dMask].omitted = !o.Mask
	n.dev.m[dMask].meta = &sppb.MetaData{ContentType: "image/png"}
	n.rate.window = o.RateWindow
	if c := o.Carry; c != nil {
		n.counts.anomalous, n.counts.errors, n.lastSeq = c.anomalous, c.errors, c.lastSeq
		if slices.Equal(c.brokers, o.Brokers) {
			n.packetLimit.Store(c.packetLimit)
			n.outlived = c.outlived
			n.carried = c.packetLimit
			n.splitBirths = c.splitBirths
		}
		for i, v := range c.vals {
			m := &n.dev.m[i]
			m.val, m.null, m.ts, m.dirty = v.val, v.null, v.ts, true
		}
	}
	if o.Counts != nil {
		n.setCountsLocked(o.Counts(), now)
	}
	if o.Rate != nil {
		if v, ok := o.Rate(); ok {
			n.dev.set(dRate, sppb.DoubleValue(tenth(v)), now)
		}
	}
	return n, nil
}

// Carry is what an edge node hands to the one that replaces it (a reload
// that rebuilds the MQTT connections): the cumulative counters and the
// latest inspection's, alarm's and command's values. A SCADA host reads
// the counters to tell how many inspections it missed; a reload is not a
// restart of the process and must not set them back to 0.
type Carry struct {
	anomalous, errors, lastSeq uint64
	vals                       map[int]carriedValue
	// brokers, packetLimit, outlived and splitBirths: what the node
	// learned of its brokers' packet limit (learnFromLoss,
	// learnBirthLocked), kept when the replacement goes to the same
	// brokers (a reload forgot it, and learned it again at the price of
	// two more lost sessions).
	brokers     []string
	packetLimit int64
	outlived    outlived
	splitBirths bool
}

type carriedValue struct {
	val  sppb.Value
	null bool
	ts   uint64
}

// carriedMetrics are the device metrics a replacement keeps: not the writable
// command metrics (reset by a birth), the camera's and the rate (measured
// again) nor the mask (the next alarm's).
func carriedMetrics() []int {
	return []int{dScore, dThreshold, dNormalized, dAnomalous, dVerdict, dSeq, dTriggerID, dError, dModelID,
		dAnomalousCount, dErrorCount, dLatencyQueue, dLatencyPreprocess, dLatencyBackbone, dLatencyPaDiM, dLatencyMap,
		dLatencyPublish, dAlarmSeq, dAlarmScore, dAlarmRegions, dAlarmWidth, dAlarmHeight, dLastCommand, dLastID,
		dLastOK, dLastReply, dFile}
}

// Carry returns what a replacement of this edge node should go on from.
func (n *Node) Carry() *Carry {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := &Carry{anomalous: n.counts.anomalous, errors: n.counts.errors, lastSeq: n.lastSeq, vals: map[int]carriedValue{},
		brokers: slices.Clone(n.o.Brokers), packetLimit: n.packetLimit.Load()}
	n.learn.Lock()
	c.outlived, c.splitBirths = n.outlived, n.splitBirths
	n.learn.Unlock()
	for _, i := range carriedMetrics() {
		if m := n.dev.m[i]; !m.null {
			c.vals[i] = carriedValue{val: m.val, ts: m.ts}
		}
	}
	return c
}

// Topics returns the edge node's topic names.
func (n *Node) Topics() Topics { return n.topics }

// Start connects in the background and returns at once; the connection is
// retried until Close.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return ErrClosed
	case n.started:
		return errors.New("sparkplug edge node already started")
	}
	n.started = true
	n.log.Info("sparkplug edge node starting", "brokers", strings.Join(n.o.Brokers, ","), "client_id", n.o.ClientID,
		"node", n.topics.NBIRTH, "device", n.o.DeviceID, "primary_host", n.o.PrimaryHostID)
	if n.carried > 0 {
		n.log.Info("sparkplug broker packet limit carried over from the edge node this one replaces (same brokers): larger Masks are shrunk, or go as null, from the start",
			"packet_limit", n.carried, "max_payload", n.MaxPayload())
	}
	if n.splitBirths { // set in New only: no lesson has run yet
		n.log.Info("sparkplug births send the Mask in a DDATA of their own, carried over from the edge node this one replaces (same brokers)",
			"outlived_bytes", n.outlived.size)
	}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		defer n.wire.close() // after run: no session is left to queue for
		n.run()
	}()
	go func() { defer n.wg.Done(); n.stats() }()
	go func() { defer n.wg.Done(); n.write() }()
	go func() { n.wg.Wait(); close(n.done) }()
	return nil
}

// Close ends the session as the specification asks of an intentional
// disconnect (an NDEATH with the session's bdSeq, then DISCONNECT) and
// stops reconnecting. It returns when that is done or ctx ends.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	started := n.started
	close(n.stop)
	// The counters stop here, not when the session has ended: a Close
	// that times out (a broker gone quiet during a reload) returned while
	// the session still dropped its queue and could start a birth, and
	// the daemon, which reads Stats after Close to add them to the next
	// node's, missed those or, read again, counted them twice. What the
	// leaving drops is counted now; nothing after counts (serve,
	// birthLocked and the publishes refuse a closed node).
	s := n.sess
	dropped := 0
	if s != nil {
		n.sess, n.born = nil, false
		dropped = n.wire.drop(s) // the node's lock before the queue's
		n.stat.droppedLeaving += uint64(dropped)
	}
	n.mu.Unlock()
	if dropped > 0 {
		n.log.Warn("sparkplug leaving: queued data dropped so that the NDEATH goes at once; the next births carry the latest values",
			"reason", "closing", "bdSeq", s.bdSeq, "dropped", dropped)
	}
	if !started {
		return nil
	}
	select {
	case <-n.done:
		n.log.Info("sparkplug edge node closed")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sparkplug close: %w", ctx.Err())
	}
}

// Health reports whether hosts are getting data now (births sent in a live
// session), or, with Options.JSONDelivers, whether the node is connected
// and only waits for its primary host; detail says what the node waits for
// otherwise. It satisfies the HTTP API's health-checker interface.
func (n *Node) Health() (bool, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return false, "closed"
	case !n.started:
		return false, "not started"
	case n.born:
		if d, queued := n.wire.stalled(time.Now()); d > 0 {
			return false, fmt.Sprintf("connected as %s (bdSeq %d), but stalled: the connection has taken nothing for %s while %d messages wait",
				n.topics.NBIRTH, n.sess.bdSeq, d.Round(time.Second), queued)
		}
		return true, fmt.Sprintf("online as %s (bdSeq %d)", n.topics.NBIRTH, n.sess.bdSeq)
	case n.sess != nil && n.sess.ready && n.hostAwayLocked():
		detail := fmt.Sprintf("connected, waiting for primary host %s to be online", n.o.PrimaryHostID)
		if n.o.JSONDelivers {
			detail += " (the JSON topics deliver meanwhile)"
		}
		return n.o.JSONDelivers, detail
	case n.sess != nil:
		return false, "connected, births not sent yet"
	case n.lastErr != "":
		return false, "not connected: " + n.lastErr
	}
	return false, "connecting to " + strings.Join(n.o.Brokers, ",")
}

// Stats is a snapshot of the edge node's state and counters, for
// monitoring (the daemon's /metrics). Counters count since New.
type Stats struct {
	// Online is true while births have been sent in a live session: hosts
	// are getting data (Health's online, without Options.JSONDelivers'
	// wait for the primary host). A stalled connection (stallHealth) is
	// not online.
	Online bool
	// PrimaryHostOnline is true while the current session's last STATE of
	// Options.PrimaryHostID says online; false without a primary host and
	// while not connected (there is no STATE to go by then).
	PrimaryHostOnline bool
	// Sessions counts MQTT sessions established: CONNECTs the broker
	// accepted, each with its own bdSeq.
	Sessions uint64
	// Births counts NBIRTH and DBIRTH pairs queued: one per session that
	// got that far, plus every rebirth (a host's Node Control/Rebirth, a
	// retry after a stall or a failed publish).
	Births uint64
	// BdSeq is the bdSeq of the current session, or of the last one when
	// not connected; HasBdSeq is false before the first session.
	BdSeq    uint64
	HasBdSeq bool
	// Queued and QueuedBytes are the messages in the send queue, waiting
	// for the writer to hand them to the broker connection, and the bytes
	// of their payloads.
	Queued      int
	QueuedBytes int
	// DroppedOffline counts inspections' DDATA (a result's, a mask's) not
	// sent because the node had no live session (not connected, waiting
	// for the primary host, births not sent yet or refused); their latest
	// values go out in the next DBIRTH. DroppedQueueFull counts data
	// messages (DDATA, NDATA) the full send queue refused (a stalled
	// connection; see queueLocked).
	DroppedOffline, DroppedQueueFull uint64
	// DroppedLeaving counts data messages (DDATA, NDATA) still queued when
	// a session ended on purpose (Close, the primary host offline, a failed
	// subscribe): dropped so that the NDEATH goes at once.
	DroppedLeaving uint64
	// MasksTooLarge counts the masks sent as null for their size
	// (Node.MasksTooLarge): the edge node's own refusals, apart from the
	// JSON mask topic's, which refuses the same mask on its own.
	MasksTooLarge uint64
}

// Stats returns the edge node's state and counters now. It may be called
// at any time, also after Close. The counters stop moving when Close is
// called, even one that times out: read after it, they are final, for
// the node that replaces this one to go on from.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Stats{
		Online:            n.started && !n.closed && n.born && !n.stalledLocked(),
		PrimaryHostOnline: n.o.PrimaryHostID != "" && n.sess != nil && n.hostUp,
		Sessions:          n.stat.sessions, Births: n.stat.births,
		BdSeq: n.stat.bdSeq, HasBdSeq: n.stat.hasBdSeq,
		DroppedOffline: n.stat.droppedOffline, DroppedQueueFull: n.stat.queueFull,
		DroppedLeaving: n.stat.droppedLeaving, MasksTooLarge: n.tooLarge,
	}
	// The node's lock before the queue's, as messages are queued.
	n.wire.mu.Lock()
	st.Queued, st.QueuedBytes = len(n.wire.q), n.wire.bytes
	n.wire.mu.Unlock()
	return st
}

// stalledLocked says whether the connection has stalled (wire.stalled).
// Callers hold mu (the node's lock before the queue's).
func (n *Node) stalledLocked() bool {
	d, _ := n.wire.stalled(time.Now())
	return d > 0
}

func nowMS() uint64 { return uint64(time.Now().UnixMilli()) }
