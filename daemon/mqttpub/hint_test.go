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

// TestHintTLS: the connect errors paho gives against a real mosquitto 2.0
// TLS listener that asks for client certificates (strings copied from such
// runs) each get a hint naming the setting to fix. A refused or missing
// client certificate and a wrong scheme got none; a broker certificate of
// an unknown CA was blamed on "the configured CA" with no mqtt.tls.ca set.
func TestHintTLS(t *testing.T) {
	for _, c := range []struct{ name, err, want, not string }{
		{"no client certificate", "network Error : remote error: tls: certificate required",
			"asks for a client certificate and got none: set mqtt.tls.cert and mqtt.tls.key", ""},
		// The broker's alert about our certificate (its CA unknown to the
		// broker), not x509's about the broker's.
		{"client certificate of another CA", "network Error : remote error: tls: unknown certificate authority",
			"does not trust the client certificate: mqtt.tls.cert", "mqtt.tls.ca"},
		{"broker certificate of another CA", "network Error : tls: failed to verify certificate: x509: certificate signed by unknown authority",
			"not signed by a CA this box trusts: set mqtt.tls.ca to the CA that signed it (or check the one set)", "configured"},
		// tcp:// to the TLS port and ssl:// to the plain one read the same.
		{"wrong scheme for the port", "network Error : read tcp 127.0.0.1:50252->127.0.0.1:18913: read: connection reset by peer",
			"check the scheme in mqtt.brokers against the port (ssl:// for a TLS listener", ""},
		// TLS 1.3: the refusal of a client certificate may come as a reset
		// of the CONNECT written after the handshake.
		{"client certificate refused by a reset", "network Error : write tcp 127.0.0.1:50178->127.0.0.1:18913: write: connection reset by peer",
			"refuse the client certificate (mqtt.tls.cert and mqtt.tls.key)", ""},
	} {
		h := ConnectHint(errors.New(c.err))
		if !strings.Contains(h, c.want) || (c.not != "" && strings.Contains(h, c.not)) {
			t.Errorf("%s: hint %q, want one with %q", c.name, h, c.want)
		}
	}
}
