package remote

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// maxWarnedTopics bounds the topics RetainGuard remembers having warned
// about; beyond it retained messages are still skipped, without a warning.
const maxWarnedTopics = 1024

// RetainGuard keeps retained messages from being executed. A broker hands
// a retained command or trigger to every new subscription, so executing it
// would run it again at every start and every reconnect. The MQTT command
// front end uses one; the trigger handler should too.
type RetainGuard struct {
	log     *slog.Logger
	skipped atomic.Uint64
	mu      sync.Mutex
	warned  map[string]bool
}

// Skipped counts the retained messages skipped (for a metric).
func (g *RetainGuard) Skipped() uint64 { return g.skipped.Load() }

// NewRetainGuard returns a guard that logs to log (slog.Default() if nil).
func NewRetainGuard(log *slog.Logger) *RetainGuard {
	if log == nil {
		log = slog.Default()
	}
	return &RetainGuard{log: log, warned: map[string]bool{}}
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
	g.mu.Lock()
	first := !g.warned[m.Topic] && len(g.warned) < maxWarnedTopics
	if first {
		g.warned[m.Topic] = true
	}
	g.mu.Unlock()
	if first {
		g.log.Warn("retained message not executed: the broker would hand it over at every start and reconnect; clear it with an empty retained publish",
			"topic", m.Topic, "bytes", len(m.Payload), "clear_with", "mosquitto_pub -r -n -t '"+m.Topic+"'")
	}
	return true
}
