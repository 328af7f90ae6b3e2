package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testproc"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// startWatch runs `sparkplug watch` with args on broker b until it
// subscribed, and connects an edge node's client to b.
func startWatch(t *testing.T, b *testbroker.Broker, filter string, args ...string) (out, errs *testproc.LogBuffer, done <-chan int, c mqtt.Client) {
	t.Helper()
	out, errs = &testproc.LogBuffer{}, &testproc.LogBuffer{}
	ended := make(chan int, 1)
	go func() {
		ended <- Main(context.Background(), append([]string{"sparkplug", "watch", "--broker", b.URL}, args...), strings.NewReader(""), out, errs)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(errs.String(), "watching "+filter+" on ") {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not subscribe; stderr:\n%s", errs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("edge"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return out, errs, ended, c
}

// TestSparkplugWatch: `sparkplug watch` on a real broker prints each
// message as one JSON line: births with their names, data messages (which
// carry only aliases) named from the births, null scores as null, a
// DataSet as columns and rows, a mask as its size and content type, a host's
// STATE as its JSON, and a payload that does not decode as an error line,
// going on after it; --count ends it.
func TestSparkplugWatch(t *testing.T) {
	out, errs, done, c := startWatch(t, testbroker.Start(t, testbroker.Options{}), "spBv1.0/#", "--count", "6")
	pub := func(topic string, p *sppb.Payload, raw []byte) {
		t.Helper()
		if p != nil {
			var err error
			if raw, err = p.Marshal(); err != nil {
				t.Fatal(err)
			}
		}
		if tok := c.Publish(topic, 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	const ts = 1764752400000 // 2025-12-03T09:00:00Z
	regions := &sppb.DataSet{NumColumns: 2, Columns: []string{"x", "area"}, Types: []sppb.DataType{sppb.TypeInt32, sppb.TypeInt32},
		Rows: []sppb.Row{{Elements: []sppb.Value{sppb.IntValue(-3), sppb.IntValue(40)}}}}
	pub("spBv1.0/STATE/IamHost", nil, []byte(`{"online":true,"timestamp":1}`))
	pub("spBv1.0/plant/NBIRTH/cell1", &sppb.Payload{Timestamp: ts, HasSeq: true, Metrics: []sppb.Metric{
		{Name: "bdSeq", DataType: sppb.TypeInt64, Value: sppb.LongValue(3)}}}, nil)
	pub("spBv1.0/plant/DBIRTH/cell1/cam", &sppb.Payload{Timestamp: ts, Seq: 1, HasSeq: true, Metrics: []sppb.Metric{
		{Name: "Inspection/Score", Alias: 101, HasAlias: true, DataType: sppb.TypeDouble, Value: sppb.DoubleValue(6.5)},
		{Name: "Last Alarm/Regions", Alias: 102, HasAlias: true, DataType: sppb.TypeDataSet, Value: sppb.DataSetValue(regions)},
		{Name: "Mask", Alias: 103, HasAlias: true, DataType: sppb.TypeBytes, IsNull: true}}}, nil)
	pub("spBv1.0/plant/DDATA/cell1/cam", &sppb.Payload{Timestamp: ts, Seq: 2, HasSeq: true, Metrics: []sppb.Metric{
		{Alias: 101, HasAlias: true, DataType: sppb.TypeDouble, IsNull: true},
		{Alias: 103, HasAlias: true, DataType: sppb.TypeBytes, Value: sppb.BytesValue([]byte("\x89PNG....")), MetaData: &sppb.MetaData{ContentType: "image/png"}},
		{Alias: 7, HasAlias: true, DataType: sppb.TypeUInt64, Value: sppb.ULongValue(9)}}}, nil)
	pub("spBv1.0/plant/DDATA/cell1/cam", nil, []byte("not protobuf \xff\xff\xff"))
	pub("spBv1.0/plant/DDATA/cell1/cam", &sppb.Payload{Seq: 3, HasSeq: true, Metrics: []sppb.Metric{
		{Alias: 101, HasAlias: true, DataType: sppb.TypeDouble, Value: sppb.DoubleValue(31)}}}, nil)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, errs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("--count 6 did not end the watch; stdout:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6:\n%s", len(lines), out.String())
	}
	recs := make([]map[string]any, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &recs[i]); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, l)
		}
	}
	check := func(i int, path, want string) {
		t.Helper()
		var v any = recs[i]
		for _, k := range strings.Split(path, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		if got, _ := json.Marshal(v); string(got) != want {
			t.Errorf("line %d %s: %s, want %s\n%s", i+1, path, got, want, lines[i])
		}
	}
	check(0, "type", `"STATE"`)
	check(0, "state", `{"online":true,"timestamp":1}`)
	check(1, "metrics", `{"bdSeq":3}`)
	check(1, "timestamp", `"2025-12-03T09:00:00Z"`)
	check(2, "metrics", `{"Inspection/Score":6.5,"Last Alarm/Regions":{"columns":["x","area"],"rows":[[-3,40]]},"Mask":null}`)
	check(3, "seq", `2`)
	check(3, "metrics", `{"Inspection/Score":null,"Mask":{"bytes":8,"content_type":"image/png"},"alias 7 (no birth seen)":9}`)
	if e, _ := recs[4]["error"].(string); !strings.Contains(e, "does not decode as Sparkplug B") {
		t.Errorf("line 5: %s, want an error line", lines[4])
	}
	check(5, "metrics", `{"Inspection/Score":31}`)
	if n := strings.Count(errs.String(), "no birth seen from spBv1.0/plant/DDATA/cell1/cam: its data shows aliases"); n != 1 {
		t.Errorf("the missed birth told %d times, want once; stderr:\n%s", n, errs.String())
	}
}

// TestSparkplugWatchUsage: flags a watch cannot run with are usage errors.
func TestSparkplugWatchUsage(t *testing.T) {
	for _, args := range [][]string{{"--group", "a/b"}, {"--count", "-1"}, {"extra"}} {
		code, _, errs := runConfigCLI(append([]string{"sparkplug", "watch"}, args...)...)
		if code != 2 || !strings.Contains(errs, "usage: inspectd sparkplug watch") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}

// TestSparkplugWatchRebirth: with --rebirth, data from a node whose births
// were missed makes the watcher ask it for new ones, once: an NCMD with
// Node Control/Rebirth true on the node's command topic.
func TestSparkplugWatchRebirth(t *testing.T) {
	out, errs, done, c := startWatch(t, testbroker.Start(t, testbroker.Options{}), "spBv1.0/plant/#", "--group", "plant", "--rebirth", "--count", "3")
	data, err := (&sppb.Payload{Seq: 5, HasSeq: true, Metrics: []sppb.Metric{{Alias: 101, HasAlias: true, DataType: sppb.TypeDouble, Value: sppb.DoubleValue(1)}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second does not ask again
		if tok := c.Publish("spBv1.0/plant/DDATA/cell1/cam", 1, false, data); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("no NCMD seen; stdout:\n%s\nstderr:\n%s", out.String(), errs.String())
	}
	if n := strings.Count(out.String(), `"topic":"spBv1.0/plant/NCMD/cell1","type":"NCMD"`); n != 1 ||
		!strings.Contains(out.String(), `"metrics":{"Node Control/Rebirth":true}`) {
		t.Errorf("%d rebirth requests, want one with Node Control/Rebirth true:\n%s", n, out.String())
	}
}
