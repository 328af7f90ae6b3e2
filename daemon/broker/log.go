package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
)

// listenerLog gives mochi's records a message where it leaves it empty:
// its listeners log the error that ends a client's connection with none
// ("msg=\"\"" in the daemon's log). A connection closed under the read (the
// broker shutting down, or the client going away) is routine and goes to
// the debug level; any other error stays a warning.
type listenerLog struct{ slog.Handler }

func (h listenerLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != "" {
		return h.Handler.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, "client connection ended", r.PC)
	routine := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && closedConn(err) {
			routine = true
		}
		out.AddAttrs(a)
		return true
	})
	if routine {
		out.Level = slog.LevelDebug
		if !h.Handler.Enabled(ctx, out.Level) {
			return nil
		}
	}
	return h.Handler.Handle(ctx, out)
}

func (h listenerLog) WithAttrs(as []slog.Attr) slog.Handler {
	return listenerLog{h.Handler.WithAttrs(as)}
}

func (h listenerLog) WithGroup(name string) slog.Handler {
	return listenerLog{h.Handler.WithGroup(name)}
}

// closedConn says whether err is a connection closed or ended under a
// read; mochi may pass it on as text only.
func closedConn(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "use of closed network connection")
}
