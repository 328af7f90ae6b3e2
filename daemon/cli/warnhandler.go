package cli

import (
	"context"
	"log/slog"
	"strings"
)

// warnCatcher takes warnings (and errors) that a warnHandler meets, to
// log later or never: fit's hold of the noisy-line warning (heldWarning)
// and eval's gathering of a set's warnings (setWarnings) are two of them,
// with one handler, so that both pass on, bind and group alike.
type warnCatcher interface {
	// catch takes r, met through next with bound (the attributes and
	// groups bound on the way, rendered by attrText), and says whether
	// it took it; one it did not take is passed on to next.
	catch(next slog.Handler, bound string, r slog.Record) bool
}

// warnHandler is the slog.Handler of a logger whose warnings c may take;
// everything else passes on to next. bound renders the attributes and
// groups bound by WithAttrs and WithGroup: two warnings alike but for
// them are not the same warning.
type warnHandler struct {
	c     warnCatcher
	next  slog.Handler
	bound string
}

// Enabled is the next handler's: a level it drops is not taken.
func (h *warnHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle gives a warning (or error) to the catcher, and passes on what
// it does not take.
func (h *warnHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && h.c.catch(h.next, h.bound, r) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs binds as on the next handler, and to the warnings' identity.
func (h *warnHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.bound)
	for _, a := range as {
		b.WriteString("\x00" + attrText(a))
	}
	return &warnHandler{c: h.c, next: h.next.WithAttrs(as), bound: b.String()}
}

// WithGroup opens a group on the next handler, and in the warnings'
// identity.
func (h *warnHandler) WithGroup(name string) slog.Handler {
	return &warnHandler{c: h.c, next: h.next.WithGroup(name), bound: h.bound + "\x00group " + name}
}

// attrText renders a for a warning's identity, its value resolved (a
// slog.LogValuer's own value).
func attrText(a slog.Attr) string {
	return a.Key + "=" + a.Value.Resolve().String()
}
