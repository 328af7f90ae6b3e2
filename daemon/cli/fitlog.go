package cli

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// noisyLineLog begins the model package's warning of a noisy line
// (model.Fit), which a remote refit's log needs: fit on the command line
// says the same on stdout (noisyLineAdvice), and said it twice.
const noisyLineLog = "the line is noisy:"

// heldWarning holds back the warning whose message begins with prefix,
// the first one logged, until the command says it in its own words (drop)
// or ends without having said it (release: a fit refused after the
// model's fit, for want of separation, say, still tells of the noise).
type heldWarning struct {
	prefix string
	mu     sync.Mutex
	rec    *slog.Record
	next   slog.Handler // the handler the held record came through
	done   bool
}

// holdWarning returns the hold of the warning beginning with prefix and a
// logger that writes everything else through next.
func holdWarning(next slog.Handler, prefix string) (*heldWarning, *slog.Logger) {
	h := &heldWarning{prefix: prefix}
	return h, slog.New(&warnHandler{c: h, next: next})
}

// drop forgets the held warning: the command said it.
func (h *heldWarning) drop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rec, h.done = nil, true
}

// release logs the held warning, if it is held still; one logged after
// drop or release passes straight on.
func (h *heldWarning) release(ctx context.Context) {
	h.mu.Lock()
	rec, next := h.rec, h.next
	h.rec, h.done = nil, true
	h.mu.Unlock()
	if rec != nil {
		_ = next.Handle(ctx, *rec) // a log line that cannot be written has nowhere to be reported
	}
}

// catch holds the warning awaited, the first one met: the others, and
// any after drop or release, pass on.
func (h *heldWarning) catch(next slog.Handler, _ string, r slog.Record) bool {
	if !strings.HasPrefix(r.Message, h.prefix) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done || h.rec != nil {
		return false
	}
	c := r.Clone()
	h.rec, h.next = &c, next
	return true
}
