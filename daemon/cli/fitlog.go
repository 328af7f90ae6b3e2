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
	return h, slog.New(&holdHandler{h: h, next: next})
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

// holdHandler is a heldWarning logger's slog.Handler.
type holdHandler struct {
	h    *heldWarning
	next slog.Handler
}

// Enabled is the next handler's.
func (hh *holdHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return hh.next.Enabled(ctx, l)
}

// Handle holds the warning awaited, and passes anything else on.
func (hh *holdHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && strings.HasPrefix(r.Message, hh.h.prefix) {
		h := hh.h
		h.mu.Lock()
		if !h.done && h.rec == nil {
			c := r.Clone()
			h.rec, h.next = &c, hh.next
			h.mu.Unlock()
			return nil
		}
		h.mu.Unlock()
	}
	return hh.next.Handle(ctx, r)
}

// WithAttrs binds as on the next handler.
func (hh *holdHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &holdHandler{h: hh.h, next: hh.next.WithAttrs(as)}
}

// WithGroup opens a group on the next handler.
func (hh *holdHandler) WithGroup(name string) slog.Handler {
	return &holdHandler{h: hh.h, next: hh.next.WithGroup(name)}
}
