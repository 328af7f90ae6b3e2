package mqttpub

import (
	"errors"
	"strings"
	"testing"
)

// A broker address that answers with something other than MQTT (the
// daemon's own HTTP port in a field trial) gets advice, as a refused
// connection does.
func TestHintNotMQTT(t *testing.T) {
	if h := ConnectHint(errors.New("network Error : non-CONNACK first packet received")); !strings.Contains(h, "does not speak MQTT") {
		t.Errorf("hint %q", h)
	}
	if h := ConnectHint(errors.New("network Error : dial tcp: lookup brokr.invalid on 127.0.0.53:53: no such host")); !strings.Contains(h, "does not resolve") {
		t.Errorf("hint for a name that does not resolve = %q", h)
	}
	if h := ConnectHint(errors.New("dial tcp 127.0.0.1:1: connect: connection refused")); !strings.Contains(h, "nothing listens") {
		t.Errorf("hint %q", h)
	}
}
