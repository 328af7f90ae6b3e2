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
