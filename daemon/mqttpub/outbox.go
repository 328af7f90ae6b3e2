package mqttpub

import (
	"bytes"
	"container/list"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// The outbox is the publisher's queue of messages on their way to the
// broker, and the paho Store behind the client. Every message, whatever its
// QoS, goes through it; one goroutine (the sender, sender.go) takes them
// out in order and hands them to paho, at most maxInflight unacknowledged
// at a time. Owning the queue instead of leaving it to paho's Store is what
// makes these promises possible:
//
//   - priority: control (retained status, info) before alarms before
//     results before images; publish order within a class, across restarts;
//   - bounds (Options.OutboxMaxMessages / OutboxMaxBytes): the oldest images,
//     then the oldest results make room; alarms never evict alarms and are
//     refused (ErrOutboxFull) only when alarms alone fill the outbox;
//   - paho never holds more than maxInflight packet ids for us, so its
//     65,535 ids cannot run out however long the broker is away;
//   - messages stored by a previous run, and those handed to paho before a
//     reconnect, go out before anything newer of their class (the sender
//     waits until paho's replay of the session is acknowledged);
//   - a message the broker drops the connection for (too large) is set aside
//     once, not resent on every reconnect (see take and connEnded).
//
// Durability: alarms and results at QoS 1/2 (and messages on other topics,
// such as command answers) are written to one file each in dir
// (atomicfile: temp file, fsync, rename, directory fsync) before Publish
// returns, and removed when the broker acknowledges them. Images (mask,
// heatmap) and QoS 0 messages are held in memory only: an image is
// evidence, not the verdict, and fsyncing hundreds of kilobytes per frame
// would wear the flash and delay the alarms behind it. Every queued message
// is also held in memory, so delivery never reads the disk after start-up
// (a read error cannot lose a message mid-run).
//
// Incoming QoS 1/2 messages (triggers, commands), which paho also keeps in
// its Store until it has acknowledged them, are kept in memory only: paho
// acknowledges an incoming message after its handler returned, and until
// then the broker holds it for our persistent session and sends it again
// after a crash; a copy on disk would add two fsyncs per trigger and
// protect nothing (paho does not redeliver stored incoming publishes).
//
// File names: <seq>.msg for a queued message (its PUBLISH packet, packet id
// 0); <seq>-o.<id>.msg once a QoS 2 message has been handed to paho with
// packet id <id>: the broker may hold that id until PUBREL, so it must
// survive a crash (it is written, durably, before the old name is removed,
// and the id is in the name so that it stays reserved even if the file
// cannot be read at the next start). Outboxes of earlier versions
// (<seq>-o.<id>.msg for every message, <seq>-i.<id>.msg for incoming ones)
// load as queued messages.
type outbox struct {
	outboxOptions

	// wake tells the sender there may be something to do (cap 1).
	wake chan struct{}

	mu       sync.Mutex
	seq      uint64 // last sequence number given out
	order    uint64 // hand-over counter, for All
	pending  [numClasses]*list.List
	session  map[uint16]*entry                // handed to paho, by packet id
	others   map[string]packets.ControlPacket // outbound non-PUBLISH packets paho stores
	inbound  map[string]packets.ControlPacket // "i.<id>": memory only, see above
	handing  *entry                           // being handed to paho by the sender
	count    int                              // queued messages (pending + session), control excluded
	bytes    int64                            // their cost (topic + payload)
	onDisk   int                              // of count, those with a durable copy
	notDur   int                              // of count, alarms/results that failed to reach the disk
	storeErr string                           // last outbox I/O failure, "" once writes succeed again
	loadErr  string                           // stored messages that could not be read at start
	unreadQ  []string                         // queued messages not read yet (tried again, see retryUnread)

	evicted, refused, tooLarge [numClasses]uint64
	droppedOffline             uint64
	acks                       uint64       // acknowledgements received
	linger                     []lingerFile // copies of acknowledged messages, oldest first
	fullLogged                 bool         // the first eviction of an episode was logged
	alarmLogAt                 time.Time    // last "alarm refused" line
	alarmLogSkipped            int

	// Connection state, as the sender needs it.
	gen           uint64 // connection generation, bumped by connUp
	up            bool   // connected and announced (onConnect ran)
	everUp        bool
	attemptFailed bool // a connect attempt failed since the last loss
	reserved      bool // paho's start-up id reservation is over (see Get)
	connectedAt   time.Time
	lostAt        time.Time
	lastAckAt     time.Time // the latest acknowledgement (Del), for stalled

	// Learning the broker's packet size limit.
	probe   *entry // a message larger than any the broker accepted, in flight alone
	maxGood int    // largest packet the broker acknowledged
	limit   int    // learned packet size limit; 0 = none learned
	// Drops with nothing to blame (see suspectDrop): the messages larger
	// than maxGood that went out together on this connection, when (the
	// last probeWindow's), how many connections in a row ended right after
	// such a message, and whether probeFloor is off for this broker.
	recentBig []sentBig
	suspects  int
	noFloor   bool
}

// sentBig is a message larger than any the broker had acknowledged, sent
// along with others (not as a probe): its size and when it was handed.
type sentBig struct {
	size int
	at   time.Time
}

// outboxOptions are the outbox's fixed settings.
type outboxOptions struct {
	dir      string // "" keeps everything in memory
	log      *slog.Logger
	maxMsgs  int
	maxBytes int64
	// classify maps a topic to its class; superseded says whether a stored
	// message on that topic is replaced by a fresh one at start (status, info).
	classify   func(topic string) class
	superseded func(topic string) bool
}

// class orders messages for delivery and eviction: a lower class goes out
// first and is dropped last.
type class uint8

const (
	classControl class = iota // retained status and info: newest replaces older, not counted
	classAlarm
	classResult // results, and anything published on other topics
	classImage  // mask and heatmap
	numClasses
)

var classNames = [numClasses]string{"control", "alarm", "result", "image"}

func (c class) String() string { return classNames[c] }

// Delivery tuning. maxInflight matches mosquitto's default
// max_inflight_messages (20), a receive maximum every common broker
// accepts. probeFloor: every common broker accepts packets this small
// (the smallest documented limits are AWS IoT Core's 128 KB and
// Azure IoT Hub's 256 KB), so smaller messages need no isolation, as long
// as the broker has not shown otherwise: once it has dropped the
// connection over a message (a limit is learned, here or by the publisher
// this one replaced) or twice in a row right after messages under the
// floor (suspectDrop), it may well be a mosquitto with a small
// max_packet_size, and the floor no longer applies to it (probeAbove).
// probeWindow: a broker that refuses a packet for its size drops the
// connection as soon as it has read the header, well within this time.
const (
	maxInflight = 20
	probeFloor  = 16 << 10
	probeWindow = 5 * time.Second
	readRetries = 3
)

// entry is one message in the outbox.
type entry struct {
	seq     uint64
	class   class
	topic   string
	qos     byte // as published
	retain  bool
	payload []byte
	size    int   // bytes on the wire as a QoS 1/2 PUBLISH
	cost    int64 // what it counts against OutboxMaxBytes

	wantDisk bool   // belongs on disk (alarm/result at QoS 1/2, with a dir)
	file     string // base name of its durable copy; "" while in memory only
	writing  bool   // its durable copy is being written: not handed out before
	gone     bool   // acknowledged, evicted or set aside

	// Session state: set once paho has given it a packet id.
	id         uint16
	sendQoS    byte   // QoS it was handed with (a probe goes at QoS 1 at least)
	rel        bool   // QoS 2 past PUBREC: only PUBREL/PUBCOMP remain
	gen        uint64 // connection it was handed in; 0 = stored by an earlier run
	handedAt   time.Time
	order      uint64
	unreadable bool          // its file could not be read at start: id held, not sent this run
	elem       *list.Element // in pending[class] while queued
}

const (
	outboxExt    = ".msg"
	outboxTmpExt = ".tmp" // temporary files of outboxes written before atomicfile
	outboxBadExt = ".corrupt"
	tooLargeExt  = ".toolarge"
)

// openOutbox loads what a previous run left in dir. It does not fail: a
// folder that cannot be created or read leaves the outbox in memory, with
// the error in storeErr (and in the publisher's State and Health), so that
// inspection goes on and the operator sees why alarms are not durable.
func openOutbox(opts outboxOptions) *outbox {
	o := &outbox{outboxOptions: opts, wake: make(chan struct{}, 1),
		session: map[uint16]*entry{}, others: map[string]packets.ControlPacket{}, inbound: map[string]packets.ControlPacket{}}
	for c := range o.pending {
		o.pending[c] = list.New()
	}
	if o.dir == "" {
		return o
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		o.storeFailed(fmt.Errorf("create %s: %w", o.dir, err))
		return o
	}
	des, err := os.ReadDir(o.dir)
	if err != nil {
		o.storeFailed(fmt.Errorf("read %s: %w", o.dir, err))
		return o
	}
	o.load(des)
	return o
}

// load indexes the files of an earlier run.
func (o *outbox) load(des []os.DirEntry) {
	var loaded []*entry
	unreadable := 0
	var lastReadErr error
	for _, de := range des {
		name := de.Name()
		if atomicfile.IsTemp(name) || strings.HasSuffix(name, outboxTmpExt) {
			// A write that never reached its rename: the caller was never
			// told it succeeded, so dropping it loses nothing promised.
			_ = os.Remove(filepath.Join(o.dir, name))
			continue
		}
		if !strings.HasSuffix(name, outboxExt) {
			continue // set aside (.corrupt, .toolarge) or not ours
		}
		seq, kind, id, ok := parseOutboxName(name)
		if !ok {
			o.log.Warn("mqtt outbox: ignoring file with unexpected name", "dir", o.dir, "file", name)
			continue
		}
		o.seq = max(o.seq, seq)
		if kind == 'i' { // an incoming message of an older version: the broker still has it
			_ = os.Remove(filepath.Join(o.dir, name))
			continue
		}
		pkt, err := o.readPacket(name)
		var rerr readError
		switch {
		case errors.As(err, &rerr):
			// The disk, not the file, failed: leave it for the next start
			// rather than set it aside for good. A QoS 2 message's packet
			// id (in its name) stays reserved meanwhile.
			unreadable++
			lastReadErr = err
			if kind == 'o' {
				e := &entry{seq: seq, class: classResult, id: id, file: name, wantDisk: true, unreadable: true, sendQoS: 2}
				loaded = append(loaded, e)
			} else {
				o.unreadQ = append(o.unreadQ, name)
			}
			continue
		case err != nil:
			o.quarantine(name, err)
			continue
		}
		e := o.entryFromPacket(seq, name, kind, id, pkt)
		if e == nil {
			_ = os.Remove(filepath.Join(o.dir, name))
			continue
		}
		loaded = append(loaded, e)
	}
	sort.Slice(loaded, func(i, j int) bool { return loaded[i].seq < loaded[j].seq })
	o.mu.Lock()
	defer o.mu.Unlock()
	var drop []*entry
	for i, e := range loaded {
		// A crash between writing <seq>-o.<id>.msg and removing <seq>.msg
		// leaves both: the one with the packet id is the live copy.
		if i+1 < len(loaded) && loaded[i+1].seq == e.seq {
			if e.id != 0 && !e.unreadable {
				loaded[i+1], e = e, loaded[i+1]
			}
			drop = append(drop, e)
			continue
		}
		if e.id != 0 {
			if old := o.session[e.id]; old != nil { // two files claim one id: resend the older as new
				delete(o.session, e.id)
				old.id, old.gen = 0, 0
				o.insertPending(old)
			}
			e.gen, e.order = 0, e.seq
			o.session[e.id] = e
		} else {
			o.insertPending(e)
		}
		if !e.unreadable {
			o.count++
			o.bytes += e.cost
		}
		o.onDisk++
	}
	for _, e := range drop {
		_ = os.Remove(filepath.Join(o.dir, e.file))
	}
	o.order = o.seq // messages handed from now on come after those of earlier runs
	if unreadable > 0 {
		o.loadErr = fmt.Sprintf("%d stored messages could not be read (left in place, tried again): %v", unreadable, lastReadErr)
		o.log.Error("mqtt outbox: stored messages could not be read; they stay on disk and are tried again (QoS 2 ones at the next start)",
			"dir", o.dir, "count", unreadable, "error", lastReadErr)
	}
	if o.count > o.maxMsgs || o.bytes > o.maxBytes {
		before := o.count
		o.shrinkToBounds()
		o.log.Warn("mqtt outbox: stored messages exceed the configured bounds; dropped the oldest results",
			"dir", o.dir, "stored", before, "kept", o.count, "max_messages", o.maxMsgs, "max_bytes", o.maxBytes)
	}
}

// entryFromPacket turns a stored packet into an entry, or nil when it is
// not to be replayed (superseded state, stray packet kinds).
func (o *outbox) entryFromPacket(seq uint64, name string, kind byte, id uint16, pkt packets.ControlPacket) *entry {
	switch p := pkt.(type) {
	case *packets.PublishPacket:
		if p.Qos == 0 || o.superseded(p.TopicName) {
			return nil
		}
		e := newEntry(p.TopicName, p.Qos, p.Retain, p.Payload, o.classify(p.TopicName))
		e.seq, e.file, e.wantDisk = seq, name, true
		if p.Qos == 2 && kind == 'o' && p.MessageID != 0 {
			// The broker may hold this id until PUBREL: resend with it.
			e.id, e.sendQoS = p.MessageID, 2
		}
		return e
	case *packets.PubrelPacket:
		if kind != 'o' {
			return nil
		}
		return &entry{seq: seq, class: classResult, id: id, sendQoS: 2, rel: true, file: name, wantDisk: true, size: 4}
	}
	return nil
}

// parseOutboxName reads <seq>.msg, <seq>-o.<id>.msg and <seq>-i.<id>.msg.
func parseOutboxName(name string) (seq uint64, kind byte, id uint16, ok bool) {
	base := strings.TrimSuffix(name, outboxExt)
	s, key, hasKey := strings.Cut(base, "-")
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 {
		return 0, 0, 0, false
	}
	if !hasKey {
		return seq, 'q', 0, true
	}
	if len(key) < 3 || (key[:2] != "o." && key[:2] != "i.") {
		return 0, 0, 0, false
	}
	n, err := strconv.ParseUint(key[2:], 10, 16)
	if err != nil || n == 0 {
		return 0, 0, 0, false
	}
	return seq, key[0], uint16(n), true
}

// readError marks a failure to read a file, as opposed to a file whose
// content is not a packet.
type readError struct{ error }

func (e readError) Unwrap() error { return e.error }

// readPacket reads and decodes one stored packet, retrying a failed read
// a few times (a busy SD card, a brief EIO): only content that does not
// decode is quarantined.
func (o *outbox) readPacket(name string) (packets.ControlPacket, error) {
	path := filepath.Join(o.dir, name)
	var data []byte
	var err error
	for i := range readRetries {
		if data, err = os.ReadFile(path); err == nil {
			break
		}
		time.Sleep(time.Duration(i+1) * 20 * time.Millisecond)
	}
	if err != nil {
		return nil, readError{err}
	}
	pkt, err := packets.ReadPacket(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return pkt, nil
}

// quarantine renames a file whose content is not a packet, so that it is
// neither replayed nor lost.
func (o *outbox) quarantine(name string, err error) {
	bad := filepath.Join(o.dir, strings.TrimSuffix(name, outboxExt)+outboxBadExt)
	_ = os.Rename(filepath.Join(o.dir, name), bad)
	o.log.Error("mqtt outbox: unreadable message set aside", "file", bad, "error", err)
}

func newEntry(topic string, qos byte, retain bool, payload []byte, c class) *entry {
	return &entry{class: c, topic: topic, qos: qos, sendQoS: qos, retain: retain, payload: payload,
		size: packetSize(len(topic), 1, len(payload)), cost: int64(len(topic) + len(payload))}
}

// packetSize is the size on the wire of a PUBLISH packet: fixed header
// (type byte and 1-4 bytes of remaining length), topic (2-byte length
// prefix), packet id for QoS 1/2, payload (MQTT 3.1.1 section 3.3).
func packetSize(topicLen int, qos byte, payloadLen int) int {
	rem := 2 + topicLen + payloadLen
	if qos > 0 {
		rem += 2
	}
	return 1 + varintLen(rem) + rem
}

func varintLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	}
	return 4
}

// maxPayloadFor is the largest payload whose PUBLISH at qos on a topic of
// topicLen bytes fits in limit bytes. The remaining length's varint takes
// 1–4 bytes: for each width, the longest remaining length that both fits
// the limit and is written in that width at most; the best of the four.
func maxPayloadFor(topicLen int, qos byte, limit int) int {
	head := 2 + topicLen // topic length prefix and topic
	if qos > 0 {
		head += 2 // packet id
	}
	best := 0
	for i, top := range [...]int{127, 16383, 2097151, 268435455} { // the largest remaining length of each width
		best = max(best, min(limit-1-(i+1), top))
	}
	return max(best-head, 0)
}

// PayloadLimit is the largest payload whose PUBLISH at qos on topic fits a
// packet of packetLimit bytes (MQTT 3.1.1 section 3.3), 0 when none does.
// It turns the packet limit a publisher learned from the broker
// (Publisher.PacketLimit) into a payload limit for another connection to
// the same broker, whose topics and QoS differ: the Sparkplug edge node's.
func PayloadLimit(topic string, qos byte, packetLimit int) int {
	return maxPayloadFor(len(topic), qos, packetLimit)
}

// PacketSize is the size on the wire of a PUBLISH at qos on topic with a
// payload of payloadLen bytes (MQTT 3.1.1 section 3.3), for another
// connection that learns a broker's packet limit as this package does.
func PacketSize(topic string, qos byte, payloadLen int) int {
	return packetSize(len(topic), qos, payloadLen)
}

// LearnPacketLimit is learnLimit for another connection to a broker: the
// packet size limit to assume after the broker dropped the connection
// over a packet of size bytes when it had taken packets of good bytes.
func LearnPacketLimit(size, good int) int { return learnLimit(size, good) }

// learnLimit is the packet size limit to assume after the broker dropped
// the connection over a packet of size bytes when it had accepted good
// (the smallest refused and the largest accepted: the limit lies between).
// Administrators set a broker's limit (mosquitto's max_packet_size) in
// powers of two (65536, 262144) as often as in round decimal numbers
// (2000, 20000, 100000): the candidates are the largest power of two below
// size and size−1 rounded down to one significant digit (2112 → 2000).
// Only those at least good can be the limit (the broker took good). Of
// two, the smaller wins, as below the real limit a mask or heatmap is
// shrunk one step more and above it the next one costs a dropped session
// (with the power of two alone a broker at 2000 taught 2048, then 2002,
// each a lost session or two), unless the packet was just past the larger
// (by 1/65536 of it or less: a byte or two at 65536, 15 at 1,000,000): a
// packet refused that close above a round number points at that number,
// and the smaller one then shrank every mask for nothing, by half at worst
// (1,000,001 taught 524288 rather than 1,000,000, 65537 taught 60000
// rather than 65536). Any further past, either may be the limit: a round
// payload and its few dozen bytes of header (70,000 bytes of heatmap in a
// 70,030-byte packet) are refused as well by a broker at 65536, and the
// smaller stays the safe one. When neither is at
// least good, the limit lies between good and size: the midpoint halves
// what is left to learn at each drop, where size−1 shaved a few bytes off
// per dropped session, and it never goes below good.
func learnLimit(size, good int) int {
	if size <= 1 {
		return 1
	}
	limit := 0
	var cands []int
	for _, c := range []int{1 << (bits.Len(uint(size-1)) - 1), roundDecimal(size - 1)} {
		if c >= good {
			cands = append(cands, c)
		}
	}
	switch len(cands) {
	case 1:
		limit = cands[0]
	case 2:
		lo, hi := min(cands[0], cands[1]), max(cands[0], cands[1])
		limit = lo
		if size-1-hi <= hi>>16 {
			limit = hi
		}
	}
	if limit == 0 && good < size {
		limit = good + (size-good)/2
	}
	if limit == 0 { // the broker took more than size: no limit is known, take it as just below
		limit = size - 1
	}
	return limit
}

// roundDecimal rounds n > 0 down to one significant decimal digit.
func roundDecimal(n int) int {
	p := 1
	for n/p >= 10 {
		p *= 10
	}
	return n / p * p
}

// signal wakes the sender; it never blocks.
func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// insertPending puts e into its class's queue in sequence order; callers hold mu.
func (o *outbox) insertPending(e *entry) {
	l := o.pending[e.class]
	for el := l.Back(); el != nil; el = el.Prev() {
		if el.Value.(*entry).seq < e.seq {
			e.elem = l.InsertAfter(e, el)
			return
		}
	}
	e.elem = l.PushFront(e)
}

func (o *outbox) removePending(e *entry) {
	if e.elem != nil {
		o.pending[e.class].Remove(e.elem)
		e.elem = nil
	}
}

// How an entry leaves the outbox.
type finishHow uint8

const (
	dropped  finishHow = iota // evicted, or a QoS 0 message written or dropped
	acked                     // acknowledged by the broker
	setAside                  // too large for the broker: its file is kept, renamed
)

// ackGrace is how long the durable copy of an acknowledged message stays
// on disk. A broker may acknowledge before it has stored the message for
// its subscribers (the embedded broker writes its database a moment after
// the PUBACK): if the daemon dies in that moment, the copy is sent again
// at the next start (a duplicate, which QoS 1 allows) instead of being
// lost. Close removes what is left.
const ackGrace = time.Second

// lingerFile is the durable copy of an acknowledged message, kept for ackGrace.
type lingerFile struct {
	path string
	at   time.Time
}

// finish forgets e and its durable copy; callers hold mu.
func (o *outbox) finish(e *entry, how finishHow) {
	if e.gone {
		return
	}
	e.gone = true
	o.removePending(e)
	if e.class == classControl {
		return
	}
	if !e.unreadable {
		o.count--
		o.bytes -= e.cost
	}
	switch {
	case e.file != "":
		o.onDisk--
		path := filepath.Join(o.dir, e.file)
		switch how {
		case setAside:
			_ = os.Rename(path, strings.TrimSuffix(path, outboxExt)+tooLargeExt)
		case acked:
			o.linger = append(o.linger, lingerFile{path, time.Now()})
		default:
			o.remove(path)
		}
		e.file = ""
	case e.wantDisk && !e.writing:
		o.notDur--
	}
}

// remove deletes a durable copy. The removal is not fsynced: if a power
// cut undoes it the message is sent again, which QoS 1 allows.
func (o *outbox) remove(path string) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		o.log.Warn("mqtt outbox: cannot remove a message file", "file", path, "error", err)
	}
}

// sweep removes the copies of acknowledged messages older than ackGrace
// (all of them with all set).
func (o *outbox) sweep(now time.Time, all bool) {
	o.mu.Lock()
	var old []lingerFile
	i := 0
	for ; i < len(o.linger) && (all || now.Sub(o.linger[i].at) >= ackGrace); i++ {
		old = append(old, o.linger[i])
	}
	o.linger = o.linger[i:]
	o.mu.Unlock()
	for _, f := range old {
		o.remove(f.path)
	}
}

// errAlarmsFill says why an alarm was refused.
var errAlarmsFill = errors.New("alarms alone fill it")

// add queues a message and, for alarms and results at QoS 1/2, writes it
// to disk before returning. It returns ErrOutboxFull (refused) or
// ErrNotDurable (queued in memory only), both naming the topic.
func (o *outbox) add(topic string, qos byte, retain bool, payload []byte, c class) error {
	e := newEntry(topic, qos, retain, payload, c)
	o.mu.Lock()
	if !o.makeRoom(e) {
		o.refused[c]++
		logIt, skipped := c == classAlarm && time.Since(o.alarmLogAt) >= time.Second, o.alarmLogSkipped
		if c == classAlarm {
			if logIt {
				o.alarmLogAt, o.alarmLogSkipped = time.Now(), 0
			} else {
				o.alarmLogSkipped++
			}
		}
		n, b := o.count, o.bytes
		o.mu.Unlock()
		if logIt {
			o.log.Error("mqtt outbox full of alarms: ALARM REFUSED (the broker has been unreachable too long; raise mqtt.outbox_max_messages / outbox_max_bytes or fix the connection)",
				"topic", topic, "queued", n, "queued_bytes", b, "max_messages", o.maxMsgs, "max_bytes", o.maxBytes,
				"also_refused_since_last_line", skipped)
		}
		if c == classAlarm {
			return fmt.Errorf("mqtt publish %s: %w: %d messages, %d bytes queued, %w", topic, ErrOutboxFull, n, b, errAlarmsFill)
		}
		return fmt.Errorf("mqtt publish %s: %w: %d messages, %d bytes queued and nothing of lower priority to drop", topic, ErrOutboxFull, n, b)
	}
	o.seq++
	e.seq = o.seq
	o.count++
	o.bytes += e.cost
	e.wantDisk = o.dir != "" && qos > 0 && c != classImage && c != classControl
	e.writing = e.wantDisk
	o.insertPending(e)
	o.mu.Unlock()
	if !e.wantDisk {
		o.signal()
		return nil
	}
	err := o.persist(e)
	o.signal()
	if err != nil {
		return fmt.Errorf("mqtt publish %s: %w: queued in memory only (lost if the daemon stops before the broker has it): %w", topic, ErrNotDurable, err)
	}
	return nil
}

// persist writes e's durable copy (e.writing is set by the caller, under
// mu) and records the outcome.
func (o *outbox) persist(e *entry) error {
	name := fmt.Sprintf("%020d%s", e.seq, outboxExt)
	if e.id != 0 && e.sendQoS == 2 {
		name = fmt.Sprintf("%020d-o.%d%s", e.seq, e.id, outboxExt)
	}
	err := o.writePacket(name, e.packet(e.id), true)
	o.mu.Lock()
	defer o.mu.Unlock()
	e.writing = false
	switch {
	case err != nil:
		if !e.gone {
			o.notDur++
		}
		o.storeFailed(err)
	case e.gone: // acknowledged or evicted while being written
		_ = os.Remove(filepath.Join(o.dir, name))
		o.storeOK()
	default:
		e.file = name
		o.onDisk++
		o.storeOK()
	}
	return err
}

// writePacket stores a packet durably under name; fresh says that name
// held nothing before (so a failed write may remove what it left).
func (o *outbox) writePacket(name string, pkt packets.ControlPacket, fresh bool) error {
	var buf bytes.Buffer
	if err := pkt.Write(&buf); err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	path := filepath.Join(o.dir, name)
	if err := atomicfile.WriteBytes(path, 0o600, buf.Bytes()); err != nil {
		if fresh {
			// The rename may have happened before the directory fsync
			// failed: a message reported as not durable must not be
			// replayed later either.
			_ = os.Remove(path)
		}
		return err
	}
	return nil
}

// packet is e as the MQTT packet paho sends (and the outbox stores).
func (e *entry) packet(id uint16) packets.ControlPacket {
	if e.rel {
		p := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
		p.MessageID = id
		return p
	}
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.Retain, p.TopicName, p.Payload, p.MessageID = e.sendQoS, e.retain, e.topic, e.payload, id
	return p
}

// storeFailed records an outbox I/O failure, logging the transition from
// working to failing once; callers hold mu (or own o exclusively).
func (o *outbox) storeFailed(err error) {
	if o.storeErr == "" {
		o.log.Error("mqtt outbox cannot write: alarms and results are held in memory only until it can (lost if the daemon stops first)",
			"dir", o.dir, "error", err)
	}
	o.storeErr = err.Error()
}

// storeOK clears a recorded failure after a successful write; callers hold mu.
func (o *outbox) storeOK() {
	if o.storeErr != "" && o.notDur == 0 {
		o.log.Info("mqtt outbox writes again", "dir", o.dir)
		o.storeErr = ""
	}
}

// retryDisk writes the alarms and results held in memory only because
// the disk failed, oldest first, until one fails again.
func (o *outbox) retryDisk() {
	for {
		o.mu.Lock()
		var next *entry
		if o.notDur > 0 {
			next = o.oldestNotDurable()
		}
		if next == nil {
			o.mu.Unlock()
			return
		}
		next.writing = true
		o.notDur--
		o.mu.Unlock()
		if err := o.persist(next); err != nil {
			return
		}
	}
}

// retryUnread reads again the stored messages a read error kept out of
// the queue at start; those it can read now join it.
func (o *outbox) retryUnread() {
	o.mu.Lock()
	names := o.unreadQ
	o.unreadQ = nil
	o.mu.Unlock()
	var still []string
	for _, name := range names {
		seq, _, _, _ := parseOutboxName(name)
		pkt, err := o.readPacket(name)
		var rerr readError
		switch {
		case errors.As(err, &rerr):
			still = append(still, name)
			continue
		case err != nil:
			o.quarantine(name, err)
			continue
		}
		e := o.entryFromPacket(seq, name, 'q', 0, pkt)
		if e == nil {
			o.remove(filepath.Join(o.dir, name))
			continue
		}
		o.mu.Lock()
		o.insertPending(e)
		o.count++
		o.bytes += e.cost
		o.onDisk++
		o.mu.Unlock()
		o.log.Info("mqtt outbox: stored message read on a later try, queued", "file", name)
	}
	o.mu.Lock()
	o.unreadQ = append(o.unreadQ, still...)
	if len(o.unreadQ) == 0 && o.loadErr != "" {
		held := false
		for _, e := range o.session {
			held = held || e.unreadable
		}
		if !held {
			o.loadErr = ""
		}
	}
	o.mu.Unlock()
	if len(names) > len(still) {
		o.signal()
	}
}

// oldestNotDurable finds the oldest queued message that belongs on disk
// but is not; callers hold mu.
func (o *outbox) oldestNotDurable() *entry {
	var best *entry
	consider := func(e *entry) {
		if e.wantDisk && e.file == "" && !e.writing && !e.gone && (best == nil || e.seq < best.seq) {
			best = e
		}
	}
	for _, l := range o.pending {
		for el := l.Front(); el != nil; el = el.Next() {
			consider(el.Value.(*entry))
		}
	}
	for _, e := range o.session {
		consider(e)
	}
	return best
}

// makeRoom evicts what the bounds require for e, or reports that e must
// be refused. A message may push out pending images, then (unless it is an
// image) pending results, oldest first; nothing pushes out an alarm, and
// nothing handed to paho is touched. Callers hold mu.
func (o *outbox) makeRoom(e *entry) bool {
	fits := func(n int, b int64) bool { return n+1 <= o.maxMsgs && b+e.cost <= o.maxBytes }
	if e.class == classControl || fits(o.count, o.bytes) {
		return true
	}
	if e.cost > o.maxBytes {
		return false
	}
	victims := []class{classImage}
	if e.class != classImage {
		victims = append(victims, classResult)
	}
	// Find out first whether enough can go, so that nothing is dropped
	// for a message that is refused anyway.
	n, b := o.count, o.bytes
	var out []*entry
	for _, c := range victims {
		for el := o.pending[c].Front(); el != nil && !fits(n, b); el = el.Next() {
			v := el.Value.(*entry)
			out = append(out, v)
			n--
			b -= v.cost
		}
	}
	if !fits(n, b) {
		return false
	}
	for _, v := range out {
		o.evicted[v.class]++
		o.finish(v, dropped)
	}
	if !o.fullLogged {
		o.fullLogged = true
		o.log.Warn("mqtt outbox full: dropping the oldest images, then the oldest results, to make room (counted; alarms are kept)",
			"queued", o.count, "queued_bytes", o.bytes, "max_messages", o.maxMsgs, "max_bytes", o.maxBytes)
	}
	return true
}

// shrinkToBounds drops the oldest results until the stored outbox fits
// the bounds (alarms stay even beyond them); callers own o.
func (o *outbox) shrinkToBounds() {
	for _, c := range []class{classImage, classResult} {
		for el := o.pending[c].Front(); el != nil && (o.count > o.maxMsgs || o.bytes > o.maxBytes); {
			next := el.Next()
			v := el.Value.(*entry)
			o.evicted[c]++
			o.finish(v, dropped)
			el = next
		}
	}
}

// setControl queues a retained control message (status, info), replacing
// a queued one for the same topic: only the newest state matters.
func (o *outbox) setControl(topic string, payload []byte) {
	o.mu.Lock()
	for el := o.pending[classControl].Front(); el != nil; el = el.Next() {
		if c := el.Value.(*entry); c.topic == topic {
			o.pending[classControl].Remove(el)
			c.elem = nil
			break
		}
	}
	e := newEntry(topic, 1, true, payload, classControl)
	o.seq++
	e.seq = o.seq
	o.insertPending(e)
	o.mu.Unlock()
	o.signal()
}

// take picks the next message to hand to paho, or nil when nothing may go
// now. It returns the queued messages it set aside because they exceed a
// learned broker limit. The caller hands e to paho and then calls handed.
func (o *outbox) take() (e *entry, aside []*entry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.up || o.handing != nil {
		return nil, nil
	}
	if el := o.pending[classControl].Front(); el != nil {
		e = el.Value.(*entry)
		o.removePending(e)
		o.handing = e
		return e, nil
	}
	if o.probe != nil || o.gated() {
		return nil, nil
	}
	inflight, images := o.inflight()
	if inflight >= maxInflight {
		return nil, nil
	}
	for c := classAlarm; c < numClasses; c++ {
		for el := o.pending[c].Front(); el != nil; el = o.pending[c].Front() {
			cand := el.Value.(*entry)
			if cand.writing {
				break // not before its durable copy exists: keeps the class in order
			}
			if o.limit > 0 && cand.size > o.limit {
				o.tooLarge[c]++
				o.finish(cand, setAside)
				aside = append(aside, cand)
				continue
			}
			if c == classImage && images > 0 {
				break // one image at a time: an image never holds up the line for long
			}
			if cand.size > o.probeAbove() {
				// Larger than anything the broker has accepted: send it
				// alone, at least at QoS 1, and nothing else until it is
				// acknowledged; if the broker drops the connection over
				// it, nothing else shares its fate (connEnded).
				if inflight > 0 {
					return nil, aside
				}
				cand.sendQoS = max(cand.qos, 1)
				o.probe = cand
			}
			o.removePending(cand)
			o.handing = cand
			return cand, aside
		}
	}
	return nil, aside
}

// probeAbove is the packet size above which a message goes alone as a
// probe: larger than the largest packet the broker acknowledged and, until
// the broker has dropped the connection over a message (or, twice in a
// row, right after messages under the floor: suspectDrop), than probeFloor.
// Once a limit is learned the floor is disproved for this broker: a
// message between its real limit and the learned one, sent pipelined,
// would drop the connection with no message to blame (nothing learned, the
// drop taken for a client-id clash, the queue stuck behind it), where
// alone it is blamed and lowers the limit again (learnLimit), a few drops
// in all. Messages no larger than one the broker took still pipeline.
// Both sizes are those of a QoS 1 PUBLISH (entry.size), as probes go at
// QoS 1 at least and maxGood counts only messages sent at QoS 1 or 2.
// Callers hold mu.
func (o *outbox) probeAbove() int {
	if o.limit > 0 || o.noFloor {
		return o.maxGood
	}
	return max(o.maxGood, probeFloor)
}

// handed ends a hand-over. A QoS 0 message is done once paho has it; a
// QoS 1/2 message paho did not store (it refused it before giving it an
// id) goes back to the front of its queue.
func (o *outbox) handed(e *entry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.handing = nil
	if e != o.probe && e.class != classControl && e.size > o.maxGood && (e.sendQoS == 0 || e.id != 0) {
		o.noteBig(e.size, time.Now()) // sent together with others: see suspectDrop
	}
	switch {
	case e.gone:
	case e.sendQoS == 0:
		o.finish(e, dropped)
	case e.id == 0:
		if o.probe == e {
			o.probe = nil
		}
		o.insertPending(e)
	}
}

// gated reports whether messages handed before the current connection
// (paho replays them first) are still unacknowledged: nothing newer may
// overtake them. Callers hold mu.
func (o *outbox) gated() bool {
	for _, e := range o.session {
		if e.class != classControl && !e.unreadable && e.gen < o.gen {
			return true
		}
	}
	return false
}

// inflight counts the messages paho holds for us (and the images among them).
func (o *outbox) inflight() (n, images int) {
	for _, e := range o.session {
		if e.class == classControl || e.unreadable {
			continue
		}
		n++
		if e.class == classImage {
			images++
		}
	}
	return n, images
}

// connUp is called once a connection is established and announced.
func (o *outbox) connUp(now time.Time) {
	o.mu.Lock()
	o.gen++
	o.up, o.everUp, o.attemptFailed, o.fullLogged = true, true, false, false
	o.connectedAt = now
	if o.probe != nil { // paho replays it first: it is on trial again
		o.probe.gen, o.probe.handedAt = o.gen, now
	}
	o.recentBig = o.recentBig[:0]
	for _, e := range o.session { // paho replays these at once, together
		if e != o.probe && e.class != classControl && !e.unreadable && !e.rel && e.size > o.maxGood {
			o.noteBig(e.size, now)
		}
	}
	o.mu.Unlock()
	o.signal()
}

// connLost records when the connection went down (paho reports it late,
// on its own goroutine).
func (o *outbox) connLost(now time.Time) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lostAt.Before(o.connectedAt) {
		o.lostAt = now
	}
	return o.lostAt.Sub(o.connectedAt)
}

// dropEvent describes a connection that has ended.
type dropEvent struct {
	connectedFor time.Duration
	tooLarge     *entry // the message the broker dropped the connection over
	newLimit     int    // packet limit learned from it
	// noFloor: this drop was the second in a row right after messages
	// under probeFloor larger than any the broker took (suspectDrop), and
	// such messages go alone from now on; suspectBytes is the largest.
	noFloor      bool
	suspectBytes int
}

// connEnded closes the books on the connection that was up, before paho
// reconnects and replays its session (it runs from paho's synchronous
// "connecting" notification). If the connection went down while a message
// larger than any the broker had accepted was in flight alone, that message
// is taken to be the cause: it is set aside (not replayed) and the packet
// limit is lowered below its size. ok is false when no connection was up.
func (o *outbox) connEnded(now time.Time) (ev dropEvent, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.up {
		return ev, false
	}
	o.up = false
	end := now
	if o.lostAt.After(o.connectedAt) {
		end = o.lostAt
	}
	ev.connectedFor = end.Sub(o.connectedAt)
	if p := o.probe; p != nil && p.gen == o.gen && end.Sub(p.handedAt) < probeWindow && o.session[p.id] == p {
		o.probe = nil
		delete(o.session, p.id)
		// paho keeps p's packet id claimed for good (its token never
		// completes); that costs one of 65,535 ids per message set aside,
		// and only a few are ever set aside, as each lowers the limit.
		o.tooLarge[p.class]++
		o.finish(p, setAside)
		lim := learnLimit(p.size, o.maxGood)
		if o.limit == 0 || lim < o.limit {
			o.limit = lim
		}
		ev.tooLarge, ev.newLimit = p, o.limit
		o.suspects = 0
	} else if size := o.suspectDrop(end); size == 0 {
		o.suspects = 0
	} else if o.suspects++; o.suspects >= 2 && !o.noFloor {
		o.noFloor = true
		ev.noFloor, ev.suspectBytes = true, size
		o.requeueBig()
	}
	o.recentBig = o.recentBig[:0]
	return ev, true
}

// noteBig records a message larger than any the broker took going out
// together with others at now. Callers hold mu.
func (o *outbox) noteBig(size int, now time.Time) {
	i := 0
	for i < len(o.recentBig) && now.Sub(o.recentBig[i].at) >= probeWindow {
		i++
	}
	o.recentBig = append(o.recentBig[:0], o.recentBig[i:]...)
	if len(o.recentBig) >= 64 { // dozens a second: the oldest matter least
		o.recentBig = o.recentBig[1:]
	}
	o.recentBig = append(o.recentBig, sentBig{size, now})
}

// suspectDrop returns the size of the largest message, larger than any the
// broker has acknowledged, that went out together with others within
// probeWindow before a connection ended at end with no probe to blame; 0
// if none did. Under probeFloor messages go together until a limit is
// learned, and a broker that takes less than the floor (mosquitto's
// max_packet_size 3000, and images of a few KB) dropped the connection
// over them with nothing to blame, at every reconnect: no limit was ever
// learned, and the short connections were taken for a client-id clash.
// Two such drops in a row (connEnded) turn the floor off for this broker,
// so that the next such message goes alone and a drop over it teaches a
// limit. One is not enough: a broker restarted right after a heatmap
// looks the same, and a failed reconnect attempt (the broker was away)
// starts the count again (connectFailed). A wrong suspicion costs only
// images sent one at a time until the broker has taken one of each size;
// a probe is blamed only if the connection ends before it is
// acknowledged, which a broker that takes it does within milliseconds.
// Callers hold mu.
func (o *outbox) suspectDrop(end time.Time) int {
	size := 0
	for _, b := range o.recentBig {
		if b.size > o.maxGood && end.Sub(b.at) < probeWindow {
			size = max(size, b.size)
		}
	}
	return size
}

// requeueBig puts the QoS 1 messages larger than any the broker took,
// handed on a connection lost over such messages, back in their queues
// with no packet id, so that they go alone (probeAbove) rather than being
// replayed together by paho at the next connect, again and again. As for
// a message set aside, paho keeps their old ids claimed. QoS 2 messages
// keep theirs: the broker may hold the id. Callers hold mu.
func (o *outbox) requeueBig() {
	for id, e := range o.session {
		if e == o.probe || e.class == classControl || e.unreadable || e.rel || e.sendQoS != 1 || e.size <= o.maxGood {
			continue
		}
		delete(o.session, id)
		e.id, e.gen, e.sendQoS = 0, 0, e.qos
		o.insertPending(e)
	}
}

// connectFailed is called after a failed connection attempt: QoS 0
// messages kept over a short drop are dropped now, and new ones are
// refused (ErrNotConnected) until connected.
func (o *outbox) connectFailed() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attemptFailed = true
	o.suspects = 0 // the broker was away (restarting): not what suspectDrop looks for
	for _, l := range o.pending {
		for el := l.Front(); el != nil; {
			next := el.Next()
			if e := el.Value.(*entry); e.qos == 0 && e.class != classControl {
				o.droppedOffline++
				o.finish(e, dropped)
			}
			el = next
		}
	}
}

// isUp says whether a connection is established and announced (connUp),
// and not lost since.
func (o *outbox) isUp() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.up
}

// stallHealth is how long the broker may acknowledge nothing while
// messages await its acknowledgement before the connection counts as
// stalled (Publisher.Health). An established connection read healthy
// through a broker or network that had stopped answering until the
// outbox filled (hours at a few alarms a minute) or the keepalive gave
// up. A connection with nothing awaiting acknowledgement is no stall,
// however long it is quiet; one that carries only QoS 0 messages has no
// acknowledgement to wait for, and is the keepalive's to find.
const stallHealth = 5 * time.Second

// stalled reports how long the broker has acknowledged nothing while
// messages awaited its acknowledgement on the current connection, when
// that is stallHealth or more (0 otherwise), and how many wait. A message
// handed before the connection (paho replays it) waits from the connect.
func (o *outbox) stalled(now time.Time) (time.Duration, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.up {
		return 0, 0
	}
	n := 0
	var since time.Time
	for _, e := range o.session {
		if e.unreadable {
			continue
		}
		at := e.handedAt
		if at.Before(o.connectedAt) {
			at = o.connectedAt
		}
		if n == 0 || at.Before(since) {
			since = at
		}
		n++
	}
	if n == 0 {
		return 0, 0
	}
	if o.lastAckAt.After(since) {
		since = o.lastAckAt
	}
	if d := now.Sub(since); d >= stallHealth {
		return d, n
	}
	return 0, 0
}

// acceptQoS0 says whether a QoS 0 message can be taken now: while
// connected, and over a drop until a reconnect attempt has failed (a broker
// that dropped the connection for a reason of its own is usually back at
// once, and the message would otherwise be lost for nothing).
func (o *outbox) acceptQoS0() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.up || (o.everUp && !o.attemptFailed)
}

// packetLimit returns the learned packet size limit (0: none).
func (o *outbox) packetLimit() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.limit
}

// learned returns what the outbox learned of the broker: the packet size
// limit (0: none) and the largest packet it acknowledged, in bytes.
func (o *outbox) learned() (limit, maxGood int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.limit, o.maxGood
}

// inherit starts the outbox from what an earlier one learned of the same
// broker (learned): maxGood too, as the evidence a later drop is judged
// by, so that packets the broker took are not sent alone again and a drop
// lowers the limit no further than that evidence allows. A carried limit
// is a learned one: messages larger than maxGood go alone (probeAbove).
func (o *outbox) inherit(limit, maxGood int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.limit, o.maxGood = limit, maxGood
}

// noteTooLarge counts a message refused for its size before queueing.
func (o *outbox) noteTooLarge(c class) {
	o.mu.Lock()
	o.tooLarge[c]++
	o.mu.Unlock()
}

// markReserved ends paho's start-up id reservation (see Get).
func (o *outbox) markReserved() {
	o.mu.Lock()
	o.reserved = true
	o.mu.Unlock()
}

// idle reports whether nothing is queued or in flight (control included).
func (o *outbox) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, l := range o.pending {
		if l.Len() > 0 {
			return false
		}
	}
	for _, e := range o.session {
		if !e.unreadable {
			return false
		}
	}
	return o.handing == nil
}

// acknowledged counts the acknowledgements received so far.
func (o *outbox) acknowledged() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.acks
}

// outboxStats is the outbox part of State.
type outboxStats struct {
	queued, onDisk, notDurable int
	bytes                      int64
	storeErr                   string
	evicted, refused, tooLarge ClassCounts
	droppedOffline             uint64
	limit                      int
}

func (o *outbox) stats() outboxStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	cc := func(a [numClasses]uint64) ClassCounts {
		return ClassCounts{Alarm: a[classAlarm], Result: a[classResult], Image: a[classImage]}
	}
	storeErr := o.storeErr
	if storeErr == "" {
		storeErr = o.loadErr
	}
	return outboxStats{queued: o.count, onDisk: o.onDisk, notDurable: o.notDur, bytes: o.bytes, storeErr: storeErr,
		evicted: cc(o.evicted), refused: cc(o.refused), tooLarge: cc(o.tooLarge), droppedOffline: o.droppedOffline, limit: o.limit}
}

// --- paho's Store interface ---

// Open is part of paho's Store interface; the outbox is usable from
// construction on, and stays usable after Close because paho may still
// record an acknowledgement while it tears a connection down.
func (o *outbox) Open() {}

// Close is part of paho's Store interface; see Open.
func (o *outbox) Close() {}

// Put records a packet paho is about to send. An outbound PUBLISH is the
// message the sender is handing over (it now has a packet id); a QoS 2
// message's id is made durable before paho sends it, the new file written
// before the old one is removed. Anything else paho stores is kept in memory.
func (o *outbox) Put(key string, m packets.ControlPacket) {
	if !strings.HasPrefix(key, "o.") {
		o.mu.Lock()
		o.inbound[key] = m
		o.mu.Unlock()
		return
	}
	id := m.Details().MessageID
	switch p := m.(type) {
	case *packets.PublishPacket:
		o.mu.Lock()
		e := o.handing
		if e == nil || e.id != 0 || e.topic != p.TopicName || !samePayload(e.payload, p.Payload) {
			// Published directly (Close's goodbye), not through the sender.
			e = newEntry(p.TopicName, p.Qos, p.Retain, p.Payload, classControl)
		}
		e.id, e.gen, e.handedAt = id, o.gen, time.Now()
		o.order++
		e.order = o.order
		o.session[id] = e
		rebind := e.sendQoS == 2 && e.file != ""
		if rebind {
			e.writing = true
		}
		o.mu.Unlock()
		if rebind {
			o.rebind(e)
		}
	case *packets.PubrelPacket:
		// paho 1.5 does not store PUBREL; should a later version, the
		// QoS 2 message moves to its last stage, durably.
		o.mu.Lock()
		e := o.session[id]
		if e == nil {
			o.others[key] = m
			o.mu.Unlock()
			return
		}
		e.rel = true
		rebind := e.file != ""
		if rebind {
			e.writing = true
		}
		o.mu.Unlock()
		if rebind {
			o.rebind(e)
		}
	default:
		o.mu.Lock()
		o.others[key] = m
		o.mu.Unlock()
	}
}

// rebind replaces e's durable copy by one that records its packet id (or
// its PUBREL stage): the new file is durable before the old one goes, so a
// crash leaves one or the other, never neither.
func (o *outbox) rebind(e *entry) {
	name := fmt.Sprintf("%020d-o.%d%s", e.seq, e.id, outboxExt)
	err := o.writePacket(name, e.packet(e.id), name != e.file)
	o.mu.Lock()
	defer o.mu.Unlock()
	e.writing = false
	if err != nil {
		// The old copy stays (resent with a new id after a crash, which
		// QoS 2 turns into a possible duplicate); the id is not durable.
		o.storeFailed(fmt.Errorf("record packet id %d of %s: %w", e.id, e.file, err))
		return
	}
	old := e.file
	e.file = name
	if old != name {
		_ = os.Remove(filepath.Join(o.dir, old))
	}
	if e.gone { // acknowledged meanwhile
		_ = os.Remove(filepath.Join(o.dir, name))
	}
	o.storeOK()
}

func samePayload(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// Get returns the packet stored under key, or nil.
func (o *outbox) Get(key string) packets.ControlPacket {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !strings.HasPrefix(key, "o.") {
		return o.inbound[key]
	}
	id, err := strconv.ParseUint(key[2:], 10, 16)
	if err != nil {
		return nil
	}
	e := o.session[uint16(id)]
	if e == nil {
		return o.others[key]
	}
	if e.unreadable {
		// Its file could not be read: paho reserves the id at start (from
		// this placeholder, which is never sent) and skips it in the
		// replay (nil), so no new message takes an id the broker may hold.
		if o.reserved {
			return nil
		}
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.Qos, p.MessageID, p.TopicName = 2, e.id, "unreadable"
		return p
	}
	return e.packet(e.id)
}

// All returns the keys paho holds: messages handed to it in hand-over
// order (those of an earlier run first), then the rest. paho calls it at
// start (to reserve packet ids) and to replay the session after each
// connect; it does the replay after the connection is open, when the
// sender may already have handed over new messages (paho sent those
// itself): they are left out, or paho would send them twice.
func (o *outbox) All() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	list := make([]*entry, 0, len(o.session))
	for _, e := range o.session {
		if o.up && e.gen == o.gen {
			continue
		}
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].order < list[j].order })
	keys := make([]string, 0, len(list)+len(o.others)+len(o.inbound))
	for _, e := range list {
		keys = append(keys, "o."+strconv.Itoa(int(e.id)))
	}
	for k := range o.others {
		keys = append(keys, k)
	}
	for k := range o.inbound {
		keys = append(keys, k)
	}
	return keys
}

// Del forgets a packet: for an outbound message, the broker has
// acknowledged it (PUBACK, PUBCOMP).
func (o *outbox) Del(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !strings.HasPrefix(key, "o.") {
		delete(o.inbound, key)
		return
	}
	id, err := strconv.ParseUint(key[2:], 10, 16)
	if err != nil {
		return
	}
	e := o.session[uint16(id)]
	if e == nil {
		delete(o.others, key)
		return
	}
	delete(o.session, uint16(id))
	o.acks++
	o.lastAckAt = time.Now()
	if e.sendQoS > 0 {
		o.maxGood = max(o.maxGood, e.size)
	}
	if o.probe == e {
		o.probe = nil
	}
	o.finish(e, acked)
	o.signal()
}

// Reset forgets the session (paho calls it for clean sessions only):
// messages handed to paho are queued again, to be sent with new ids.
func (o *outbox) Reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, e := range o.session {
		delete(o.session, id)
		if e.class == classControl || e.unreadable || e.rel {
			continue
		}
		e.id, e.gen, e.sendQoS = 0, 0, e.qos
		o.insertPending(e)
	}
	o.probe = nil
	clear(o.others)
	clear(o.inbound)
}
