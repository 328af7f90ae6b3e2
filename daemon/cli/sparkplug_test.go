package cli

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
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

// TestSparkplugWatchSaysWhyItCannotConnect: paho's own errors came out as
// they are ("connect to ...: network Error : EOF"); the watch says, with
// the broker's address, what it tried and what the failure means.
func TestSparkplugWatchSaysWhyItCannotConnect(t *testing.T) {
	// Something that reads the CONNECT and closes the connection
	// unanswered (not an MQTT broker, or one that turns the client away).
	// Read first: closed with the CONNECT unread, the client would see a
	// reset instead of the end of the stream.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			head := make([]byte, 2) // packet type, remaining length (< 128 for this CONNECT)
			if _, err := io.ReadFull(c, head); err == nil {
				_, _ = io.ReadFull(c, make([]byte, head[1]))
			}
			c.Close()
		}
	}()
	// A port nothing listens on.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := free.Addr().String()
	free.Close()
	for _, c := range []struct{ addr, want string }{
		{ln.Addr().String(), "(tried an MQTT 3.1.1 CONNECT with a clean session and no user name, within 10 s): it closed the connection without answering (EOF): is an MQTT broker listening there"},
		{closed, "(tried a connection to its address, within 10 s): nothing listens there ("},
	} {
		code, _, errs := runConfigCLI("sparkplug", "watch", "--broker", "tcp://"+c.addr)
		want := "inspectd sparkplug watch: could not connect to the MQTT broker tcp://" + c.addr + " " + c.want
		if code != 1 || !strings.HasPrefix(errs, want) || strings.Contains(errs, "network Error") || strings.Count(errs, "\n") != 1 {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and one line starting %q", code, errs, want)
		}
	}
}

// TestSparkplugWatchWarnsOfBrokenBirthsAndStates: an NBIRTH without
// metrics, and a STATE without a boolean "online" (JSON without it, with
// another type, or Sparkplug 2's text), printed as any other message, also
// get one warning line each on stderr, naming the topic; good ones none.
func TestSparkplugWatchWarnsOfBrokenBirthsAndStates(t *testing.T) {
	out, errs, done, c := startWatch(t, testbroker.Start(t, testbroker.Options{}), "spBv1.0/#", "--count", "8")
	pub := func(topic string, payload []byte) {
		t.Helper()
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	empty, err := (&sppb.Payload{Timestamp: 1, HasSeq: true}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	good, err := (&sppb.Payload{Timestamp: 1, HasSeq: true, Metrics: []sppb.Metric{{Name: "bdSeq", DataType: sppb.TypeInt64, Value: sppb.LongValue(0)}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	seq := func(n uint64) []byte {
		b, err := (&sppb.Payload{Timestamp: 2, Seq: n, HasSeq: true}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pub("spBv1.0/plant/NBIRTH/bare", empty)
	pub("spBv1.0/plant/NBIRTH/cell1", good)
	pub("spBv1.0/plant/NDATA/cell1", seq(1))
	pub("spBv1.0/plant/DDATA/cell1/cam1", seq(3)) // seq 2 never came
	pub("spBv1.0/STATE/h1", []byte(`{"timestamp":1}`))
	pub("spBv1.0/STATE/h2", []byte(`{"online":"yes","timestamp":1}`))
	pub("spBv1.0/STATE/h3", []byte("ONLINE"))
	pub("spBv1.0/STATE/h4", []byte(`{"online":false,"timestamp":1}`))
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("--count 8 did not end the watch; stdout:\n%s", out.String())
	}
	for _, want := range []string{
		"warning: spBv1.0/plant/NBIRTH/bare carries no metrics: a Sparkplug 3.0 NBIRTH carries bdSeq and every node metric",
		`warning: spBv1.0/STATE/h1 has no "online": a Sparkplug 3.0 host's STATE is {"online": true or false, "timestamp": ms}`,
		`warning: spBv1.0/STATE/h2 has "online": "yes": `,
		"warning: spBv1.0/STATE/h3 has 6 bytes that are not JSON (a Sparkplug 2 host sends ONLINE or OFFLINE as text)",
		"warning: spBv1.0/plant/DDATA/cell1/cam1 has seq 3 after 1: 1 message(s) of node plant/cell1 lost or not seen on the way",
	} {
		if strings.Count(errs.String(), want) != 1 {
			t.Errorf("stderr does not say once %q:\n%s", want, errs.String())
		}
	}
	if n := strings.Count(errs.String(), "warning: "); n != 5 {
		t.Errorf("%d warnings, want 5:\n%s", n, errs.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 8 {
		t.Errorf("%d lines on stdout, want every message printed:\n%s", n, out.String())
	}
}

// TestSparkplugWatchRefusesBadFlags: a broker URL the configuration would
// refuse is refused the same way (http:// ended in paho's "unknown
// protocol"), and --password without --username is refused (it was
// dropped without a word, and the broker's refusal said "no user name").
func TestSparkplugWatchRefusesBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--broker", "http://127.0.0.1:1883"}, `--broker: broker "http://127.0.0.1:1883" has scheme "http"; use tcp`},
		{[]string{"--broker", "127.0.0.1:1883"}, "--broker: broker"},
		{[]string{"--broker", "tcp://127.0.0.1:18831:99"}, `has host part "127.0.0.1:18831:99", not host:port (too many colons in address)`},
		{[]string{"--broker", "tcp://u:p@127.0.0.1:1883"}, "set --username and --password instead"},
		{[]string{"--password", "secret"}, "--password needs --username"},
	} {
		code, _, errs := runConfigCLI(append([]string{"sparkplug", "watch"}, c.args...)...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 2 and %q", c.args, code, errs, c.want)
		}
	}
}

// TestSparkplugWatchSeqFromTheFirstMessage: a watch started on a node
// already running (the common case) reports a gap in its seq from the
// first message it sees of it, 255 wrapping to 0; it reported none until
// the node's next NBIRTH, perhaps hours away. An NDEATH (no seq) ends the
// reference: the next message is the first again.
func TestSparkplugWatchSeqFromTheFirstMessage(t *testing.T) {
	out, errs, done, c := startWatch(t, testbroker.Start(t, testbroker.Options{}), "spBv1.0/#", "--count", "7")
	pub := func(topic string, p *sppb.Payload) {
		t.Helper()
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if tok := c.Publish(topic, 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	seq := func(n uint64) *sppb.Payload { return &sppb.Payload{Timestamp: 2, Seq: n, HasSeq: true} }
	pub("spBv1.0/plant/DDATA/cell1/cam1", seq(254)) // the reference
	pub("spBv1.0/plant/DDATA/cell1/cam1", seq(255))
	pub("spBv1.0/plant/DDATA/cell1/cam1", seq(0))
	pub("spBv1.0/plant/DDATA/cell1/cam1", seq(3)) // 1 and 2 never came
	pub("spBv1.0/plant/NDEATH/cell1", &sppb.Payload{Timestamp: 3})
	pub("spBv1.0/plant/DDATA/cell1/cam1", seq(40)) // after the death: the reference again
	pub("spBv1.0/plant/DDATA/cell1/cam1", seq(41))
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("--count 7 did not end the watch; stdout:\n%s", out.String())
	}
	want := "warning: spBv1.0/plant/DDATA/cell1/cam1 has seq 3 after 0: 2 message(s) of node plant/cell1 lost or not seen on the way"
	if strings.Count(errs.String(), want) != 1 || strings.Count(errs.String(), "warning: ") != 1 {
		t.Errorf("stderr does not say once, and alone, %q:\n%s", want, errs.String())
	}
}

// TestSparkplugWatchTLS: a plant broker with a private CA that asks for
// client certificates is watched with --cafile, --cert and --key (the
// daemon's mqtt.tls.ca, cert and key); the watch had only the system's
// CAs. What goes wrong is said naming the flag and its file, or what the
// broker refused and which flag gives it.
func TestSparkplugWatchTLS(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{TLS: true, RequireClientCert: true})
	crt := b.Certs
	out, errs, done, c := startWatch(t, b, "spBv1.0/#", "--broker", b.TLSURL, "--cafile", crt.CAFile,
		"--cert", crt.ClientCertFile, "--key", crt.ClientKeyFile, "--count", "1")
	birth, err := (&sppb.Payload{Timestamp: 1, HasSeq: true, Metrics: []sppb.Metric{{Name: "bdSeq", DataType: sppb.TypeInt64, Value: sppb.LongValue(0)}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Publish("spBv1.0/plant/NBIRTH/cell1", 1, false, birth); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), `"topic":"spBv1.0/plant/NBIRTH/cell1"`) {
			t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no message through TLS; stdout:\n%s\nstderr:\n%s", out.String(), errs.String())
	}

	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--broker", b.TLSURL}, 1, "its certificate is not signed by a CA the watch trusts"},
		{[]string{"--broker", b.TLSURL, "--cafile", crt.OtherCAFile}, 1, "not signed by a CA in --cafile " + crt.OtherCAFile},
		{[]string{"--broker", b.TLSURL, "--cafile", crt.CAFile}, 1, "give it with --cert and --key"}, // the alert, or the close before it
		{[]string{"--broker", b.TLSURL, "--cafile", crt.CAFile, "--cert", crt.ClientCertFile, "--key", crt.ClientKeyFile, "--server-name", "other.example"},
			1, "its certificate is not for this address"},
		{[]string{"--broker", b.TLSURL, "--cafile", missing}, 1, "--cafile " + missing + ": no such file or directory"},
		{[]string{"--broker", b.TLSURL, "--cafile", crt.ClientKeyFile}, 1, "--cafile " + crt.ClientKeyFile + ": it holds no PEM certificate"},
		{[]string{"--broker", b.TLSURL, "--cert", crt.ClientCertFile, "--key", missing}, 1, "--key " + missing + ": no such file or directory"},
		{[]string{"--broker", b.TLSURL, "--cert", missing, "--key", crt.ClientKeyFile}, 1, "--cert " + missing + ": no such file or directory"},
		{[]string{"--broker", b.TLSURL, "--cert", crt.CAFile, "--key", crt.ClientKeyFile}, 1, "--cert " + crt.CAFile + " and --key " + crt.ClientKeyFile + ": "},
		{[]string{"--broker", b.TLSURL, "--cert", crt.ClientCertFile}, 2, "--cert needs --key"},
		{[]string{"--broker", b.URL, "--cafile", crt.CAFile}, 2, "are for a TLS broker"},
	} {
		code, _, errs := runConfigCLI(append([]string{"sparkplug", "watch"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

// TestSparkplugWatchSaysWhichStepFailed: on a real mosquitto, a URL whose
// scheme does not fit the port gets the connection reset, whatever step it
// was at. ssl:// on the plain port was told as a CONNECT the broker closed
// on, though it was the TLS handshake; ws:// there was told to use ssl://.
// The watch now says which step failed; --help names every scheme the
// broker URL takes (it said tcp:// and ssl:// only).
func TestSparkplugWatchSaysWhichStepFailed(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{TLS: true})
	plain := strings.TrimPrefix(b.URL, "tcp://")
	tlsPort := strings.TrimPrefix(b.TLSURL, "ssl://")
	for _, c := range []struct {
		args      []string
		want, not string
	}{
		{[]string{"--broker", "ssl://" + plain, "--cafile", b.Certs.CAFile},
			"(tried a TLS handshake, within 10 s): the TLS handshake failed (", "MQTT 3.1.1 CONNECT"},
		{[]string{"--broker", "ws://" + plain + "/mqtt"},
			"(tried a WebSocket upgrade (HTTP GET /mqtt), within 10 s): the port did not answer a WebSocket upgrade (", "use ssl://"},
		// The handshake goes through, the upgrade does not.
		{[]string{"--broker", "wss://" + tlsPort + "/mqtt", "--cafile", b.Certs.CAFile},
			"(tried a WebSocket upgrade (HTTP GET /mqtt), within 10 s): the port did not answer a WebSocket upgrade (", "TLS handshake"},
		// As before: no step before the CONNECT to blame.
		{[]string{"--broker", "tcp://" + tlsPort},
			"(tried an MQTT 3.1.1 CONNECT with a clean session and no user name, within 10 s): it closed the connection without answering (", "WebSocket"},
	} {
		code, _, errs := runConfigCLI(append([]string{"sparkplug", "watch"}, c.args...)...)
		want := "inspectd sparkplug watch: could not connect to the MQTT broker " + c.args[1] + " " + c.want
		if code != 1 || !strings.HasPrefix(errs, want) || strings.Contains(errs, c.not) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 1 and one line starting %q, without %q", c.args, code, errs, want, c.not)
		}
	}
	_, _, help := runConfigCLI("sparkplug", "watch", "--help")
	for _, s := range []string{"tcp://", "mqtt://", "ssl://", "tls://", "mqtts://", "ws://", "wss://"} {
		if !strings.Contains(help, s) {
			t.Errorf("--help does not name %s:\n%s", s, help)
		}
	}
}
