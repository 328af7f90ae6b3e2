package mqttpub

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsValidation(t *testing.T) {
	ok := Options{Brokers: []string{"tcp://127.0.0.1:1883"}, DeviceID: "cam1"}
	o, err := ok.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.ClientID != "inspectd-cam1" || o.TopicPrefix != "inspectd" || o.KeepAlive != 30*time.Second ||
		o.MaxReconnectInterval != time.Minute || o.Logger == nil || o.MaxPayload != 256<<10 ||
		o.OutboxMaxMessages != 10000 || o.OutboxMaxBytes != 64<<20 {
		t.Fatalf("defaults not applied: %+v", o)
	}
	for _, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.DeviceID = "" }, "DeviceID is empty"},
		{func(o *Options) { o.DeviceID = "a/b" }, "single topic level"},
		{func(o *Options) { o.DeviceID = "cam+1" }, "wildcards"},
		{func(o *Options) { o.TopicPrefix = "plant//x" }, "empty topic level"},
		{func(o *Options) { o.TopicPrefix = "plant/#" }, "wildcards"},
		{func(o *Options) { o.Brokers = nil }, "Brokers is empty"},
		{func(o *Options) { o.Brokers = []string{"127.0.0.1:1883"} }, "Brokers[0]"},
		{func(o *Options) { o.Brokers = []string{"tcp://x:1883", "http://x:80"} }, `Brokers[1] "http://x:80": unsupported scheme`},
		{func(o *Options) { o.Brokers = []string{"tcp://broker"} }, "missing port"},
		{func(o *Options) { o.KeepAlive = 500 * time.Millisecond }, "KeepAlive"},
		{func(o *Options) { o.ConnectTimeout = -time.Second }, "ConnectTimeout"},
		{func(o *Options) { o.TLS.KeyFile = "k.pem" }, "CertFile and KeyFile"},
		{func(o *Options) { o.MaxPayload = -1 }, "MaxPayload is -1"},
		{func(o *Options) { o.MaxPayload = 300 << 20 }, "MaxPayload is 314572800; expected 1 to"},
		{func(o *Options) { o.OutboxMaxMessages = -5 }, "OutboxMaxMessages is -5"},
		{func(o *Options) { o.OutboxMaxBytes = -5 }, "OutboxMaxBytes is -5"},
	} {
		o := ok
		tc.edit(&o)
		if _, err := o.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want it to contain %q", err, tc.want)
		}
	}
	// Multi-level prefixes are allowed.
	o = ok
	o.TopicPrefix = "plant1/line3"
	if _, err := o.withDefaults(); err != nil {
		t.Fatal(err)
	}
	if got := TopicsFor("plant1/line3", "cam1").Alarm; got != "plant1/line3/cam1/alarm" {
		t.Fatal(got)
	}
}

// TestBrokerURLPortPerScheme checks the port suggested for a broker URL
// without one: MQTT's for TCP schemes, MQTT over TLS's for TLS ones, and
// none for a WebSocket, whose URL without a port is dialled at 80 or 443
// (as config accepts it) rather than refused with an MQTT port.
func TestBrokerURLPortPerScheme(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // "" for accepted
	}{
		{"tcp://b", "missing port: expected tcp://b:1883"},
		{"mqtt://b", "missing port: expected mqtt://b:1883"},
		{"ssl://b", "missing port: expected ssl://b:8883"},
		{"tls://b", "missing port: expected tls://b:8883"},
		{"mqtts://b", "missing port: expected mqtts://b:8883"},
		{"mqtt+ssl://b", "missing port: expected mqtt+ssl://b:8883"},
		{"tcps://b", "missing port: expected tcps://b:8883"},
		{"ssl://[fe80::1%25eth0]", "missing port: expected ssl://[fe80::1%25eth0]:8883"},
		{"ws://b/mqtt", ""},
		{"wss://b/mqtt", ""},
		{"wss://b", ""},
		{"wss://b:9001/mqtt", ""},
	} {
		o := Options{Brokers: []string{tc.url}, DeviceID: "cam1"}
		_, err := o.withDefaults()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v; want it accepted", tc.url, err)
		case tc.want != "" && (err == nil || !strings.HasSuffix(err.Error(), tc.want)):
			t.Errorf("%s: %v; want it to end %q", tc.url, err, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := backoff(i+1, 10*time.Second); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if got := backoff(1000, time.Minute); got != time.Minute {
		t.Errorf("backoff(1000) = %s", got)
	}
}
