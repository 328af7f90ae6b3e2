package remote

import (
	"crypto/sha256"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// maxWarnedTopics bounds the topics RetainGuard remembers having warned
// about; beyond it retained messages are still skipped, without a warning.
const maxWarnedTopics = 1024

// retainedCopyWindow is how long a skipped retained message is remembered
// (RetainGuard.CopyOfSkipped), and how long the MQTT front end holds a
// command the broker kept for the session before it decides (MQTT.handle).
// A command published retained at QoS 1 while inspectd is away reaches it
// twice when it comes back: as the copy its persistent session queued
// (the retain flag cleared, MQTT 3.1.1), sent right after CONNACK, and as
// the retained message its subscription is handed, after the SUBACK; the
// two are a round trip apart (mosquitto 2 sends the copy first,
// milliseconds ahead on loopback: TestMQTTRetainedCommandQueuedCopyNotRun
// logs the order). A second covers a slow link. It delays the commands
// that waited at the broker while inspectd was away, and the live ones
// that arrive while those are held (to keep their order); a trigger is
// not held, so one sent live in that second is inspected before them.
const retainedCopyWindow = time.Second

// maxRememberedRetained bounds the retained messages remembered for
// CopyOfSkipped at once; beyond it (a thousand retained commands within a
// second) a copy may run.
const maxRememberedRetained = 1024

// RetainGuard keeps retained messages from being executed. A broker hands
// a retained command or trigger to every new subscription, so executing it
// would run it again at every start and every reconnect. The MQTT command
// front end uses one, and CopyOfSkipped for the retained message's queued
// copy. The daemon's trigger intake skips retained triggers its own way
// and needs no copy check: the broker's queued copy of a trigger is
// answered stale unless its own time is recent (README, Triggers).
type RetainGuard struct {
	log     *slog.Logger
	now     func() time.Time
	skipped atomic.Uint64
	mu      sync.Mutex
	warned  map[string]bool
	// recent holds when each retained message (topic and payload, hashed)
	// was skipped, for twice retainedCopyWindow (see forgetLocked).
	recent map[[sha256.Size]byte]time.Time
}

// Skipped counts the retained messages skipped (for a metric).
func (g *RetainGuard) Skipped() uint64 { return g.skipped.Load() }

// NewRetainGuard returns a guard that logs to log (slog.Default() if nil).
func NewRetainGuard(log *slog.Logger) *RetainGuard {
	if log == nil {
		log = slog.Default()
	}
	return &RetainGuard{log: log, now: time.Now, warned: map[string]bool{}, recent: map[[sha256.Size]byte]time.Time{}}
}

// Skip reports whether m must not be executed: a retained message is
// skipped with one warning per topic telling the operator how to clear it.
// An empty message is skipped silently: it is the publish that clears a
// retained one (which reaches the subscribers already connected without
// the retain flag), and no request is empty.
func (g *RetainGuard) Skip(m mqttpub.Message) bool {
	if len(m.Payload) == 0 {
		return true
	}
	if !m.Retained {
		return false
	}
	g.skipped.Add(1)
	now := g.now()
	g.mu.Lock()
	first := !g.warned[m.Topic] && len(g.warned) < maxWarnedTopics
	if first {
		g.warned[m.Topic] = true
	}
	g.forgetLocked(now)
	if len(g.recent) < maxRememberedRetained {
		g.recent[retainedKey(m.Topic, m.Payload)] = now
	}
	g.mu.Unlock()
	if first {
		g.log.Warn("retained message not executed: the broker would hand it over at every start and reconnect; clear it with an empty retained publish",
			"topic", m.Topic, "bytes", len(m.Payload), "clear_with", "mosquitto_pub -r -n -t '"+m.Topic+"'")
	}
	return true
}

// CopyOfSkipped reports whether a message that is not retained, which
// arrived at arrived, carries the topic and the exact payload of a
// retained message Skip refused within retainedCopyWindow of that, before
// or after: the copy of it that the broker queued for a persistent
// session while the client was away, which must not run either. It logs
// nothing: the retained message's warning stands for both. A copy that
// arrives before its retained message cannot be told from a command sent
// while inspectd was away until the retained one is there: the MQTT front
// end holds those for retainedCopyWindow before it asks.
func (g *RetainGuard) CopyOfSkipped(topic string, payload []byte, arrived time.Time) bool {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.forgetLocked(now)
	if len(g.recent) == 0 {
		return false
	}
	at, ok := g.recent[retainedKey(topic, payload)]
	return ok && at.Sub(arrived).Abs() <= retainedCopyWindow
}

// forgetLocked drops what was skipped so long ago that no copy held for
// retainedCopyWindow can still be asked about: twice the window.
func (g *RetainGuard) forgetLocked(now time.Time) {
	for k, at := range g.recent {
		if now.Sub(at) > 2*retainedCopyWindow {
			delete(g.recent, k)
		}
	}
}

// retainedKey identifies a message by its topic and exact payload.
func retainedKey(topic string, payload []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(topic))
	h.Write([]byte{0}) // no topic holds a NUL: the boundary is unambiguous
	h.Write(payload)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}
