package broker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// mochi's listener logs a connection's end with an empty message: it gets
// one, a closed connection goes to the debug level, other errors stay
// warnings with their attributes.
func TestListenerLogNamesEvents(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(listenerLog{slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo})}).With("component", "broker")
	closed := &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}
	log.Warn("", "listener", "inspectd", "error", closed)
	log.Warn("", "listener", "inspectd", "error", fmt.Errorf("wrapped as text: %v", closed))
	if b.Len() != 0 {
		t.Fatalf("closed connections logged at info or above:\n%s", &b)
	}
	log.Warn("", "listener", "inspectd", "error", errors.New("protocol violation"))
	log.Info("client connected", "client", "c1")
	out := b.String()
	for _, w := range []string{`level=WARN msg="client connection ended" component=broker listener=inspectd error="protocol violation"`, `msg="client connected"`} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, `msg=""`) {
		t.Errorf("empty message logged:\n%s", out)
	}
}
