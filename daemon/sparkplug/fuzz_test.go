package sparkplug

import (
	"testing"

	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// FuzzParseState feeds arbitrary STATE payloads to the parser: no panic,
// and what it accepts has both keys.
//
//	go test -run '^$' -fuzz FuzzParseState ./daemon/sparkplug
func FuzzParseState(f *testing.F) {
	for _, s := range []string{`{"online":true,"timestamp":1668114759262}`, `{"online":false,"timestamp":0}`,
		`ONLINE`, `{"online":true}`, `{"online":true,"timestamp":1.5e3}`, `null`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseState(b)
		if err == nil && len(b) > maxStatePayload {
			t.Fatalf("accepted %d bytes", len(b))
		}
		_ = st
	})
}

// FuzzCommand feeds arbitrary NCMD and DCMD payloads to the command check
// of an edge node: no panic, and every accepted write targets a writable
// metric with a value of its datatype.
//
//	go test -run '^$' -fuzz FuzzCommand ./daemon/sparkplug
func FuzzCommand(f *testing.F) {
	seed := func(dev bool, ms ...sppb.Metric) {
		b, err := cmd(ms...).Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(dev, b)
	}
	seed(false, write("Node Control/Rebirth", sppb.TypeBoolean, sppb.BoolValue(true)))
	seed(true, write("Command/Trigger", sppb.TypeString, sppb.StringValue("part-1")))
	seed(true, sppb.Metric{Alias: 100 + dThreshold, HasAlias: true, Value: sppb.DoubleValue(15)})
	seed(true, write("Command/Refit Frames", sppb.TypeUInt32, sppb.UIntValue(300)), write("Command/Refit", sppb.TypeBoolean, sppb.BoolValue(true)))
	f.Add(true, []byte{0x12, 0x05, 0x0a, 0x09})
	n, err := New(Options{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "c", GroupID: "g", EdgeNodeID: "e", DeviceID: "d",
		Submitter: &testSubmitter{}, OnReboot: func() {}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, dev bool, b []byte) {
		acts, err := n.checkCommand(dev, b, false)
		if err != nil {
			return
		}
		for _, a := range acts {
			c := &n.node
			if a.dev {
				c = &n.dev
			}
			if !writable(a.dev, a.metric) || a.val.Kind != c.m[a.metric].dt.Kind() {
				t.Fatalf("accepted a write of %s to %s", a.val.Kind, c.m[a.metric].name)
			}
			if a.req != nil && (a.req.ID == "" || len(a.req.ID) > 128) {
				t.Fatalf("request id %q", a.req.ID)
			}
		}
	})
}
