package sparkplug

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

func TestBdSeqStore(t *testing.T) {
	log, lb := newLogger(t)
	dir := t.TempDir()
	s, err := openBdSeq(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(0); want < 3; want++ {
		if got, err := s.next(); err != nil || got != want {
			t.Fatalf("next() = %d, %v; want %d", got, err, want)
		}
	}
	// A new process goes on from the file, and wraps after 255.
	if err := os.WriteFile(filepath.Join(dir, BdSeqFile), []byte("254\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A temporary file left by a write cut short is removed.
	tmp := filepath.Join(dir, "."+BdSeqFile+".tmp-123")
	if err := os.WriteFile(tmp, []byte("9"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = openBdSeq(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	for _, want := range []uint64{255, 0, 1} {
		if got, _ := s.next(); got != want {
			t.Fatalf("next() = %d, want %d", got, want)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(dir, BdSeqFile)); string(data) != "1\n" {
		t.Errorf("file holds %q after handing out 1", data)
	}
	// A damaged file: start at 0 and say so.
	for _, bad := range []string{"x", "256", "-1", ""} {
		if err := os.WriteFile(filepath.Join(dir, BdSeqFile), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err = openBdSeq(dir, log)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := s.next(); got != 0 {
			t.Errorf("after a file with %q: next() = %d, want 0", bad, got)
		}
	}
	if n := lb.Count("sparkplug bdSeq file is not a number 0..255"); n != 4 {
		t.Errorf("%d warnings for 4 damaged files", n)
	}
	// Unwritable: the number is still handed out, with an error.
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != 0 { // root writes anyway
		s, err = openBdSeq(ro, log)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.next(); got != 0 || err == nil || !strings.Contains(err.Error(), BdSeqFile) {
			t.Errorf("unwritable dir: next() = %d, %v", got, err)
		}
	}
}

func TestParseState(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want hostStatus
		err  string
	}{
		{`{"online":true,"timestamp":1668114759262}`, hostStatus{true, 1668114759262}, ""},
		{` {"timestamp": 5, "online": false, "extra": [1]} `, hostStatus{false, 5}, ""},
		{`ONLINE`, hostStatus{}, "the text form of Sparkplug B 2.2"},
		{`{"online":true}`, hostStatus{}, `expected both "online"`},
		{`{"online":"yes","timestamp":1}`, hostStatus{}, `"online" is string, expected a boolean`},
		{`{"online":true,"timestamp":-1}`, hostStatus{}, `"timestamp" is number -1, expected a whole number of ms`},
		{`{"online":true,"timestamp":1.5}`, hostStatus{}, `"timestamp" is number 1.5, expected a whole number of ms`},
		{`{"online":true,"timestamp":1`, hostStatus{}, "unexpected EOF"},
		{`{"online":true,"timestamp":1} {}`, hostStatus{}, "extra data"},
		{`{"online":true,"timestamp":1}` + strings.Repeat(" ", maxStatePayload), hostStatus{}, "more than 1024"},
		{``, hostStatus{}, "the payload is empty"},
		// Valid JSON that is not an object (a review: "" is bool, expected a boolean).
		{`true`, hostStatus{}, `}: got a JSON bool`},
		{`"ONLINE"`, hostStatus{}, `}: got a JSON string`},
		{`5`, hostStatus{}, `}: got a JSON number`},
		{`[1]`, hostStatus{}, `}: got a JSON array`},
	} {
		got, err := parseState([]byte(tc.in))
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("parseState(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseState(%q) error %v; want %q", tc.in, err, tc.err)
		}
	}
}

// TestHostStateOrder follows the primary host test of the Sparkplug TCK:
// a host's death carries its birth's timestamp, an old birth sent again is
// ignored, and a Will delivered late (older) never overrides a newer birth.
func TestHostStateOrder(t *testing.T) {
	var h hostState
	for i, step := range []struct {
		online bool
		ts     uint64
		accept bool
	}{
		{false, 100, true}, // retained death of an earlier host session
		{true, 200, true},  // host birth
		{true, 200, true},  // the same, retained, after the edge node reconnects
		{false, 100, false},
		{false, 200, true}, // host death with its birth's timestamp
		{true, 200, false}, // the old birth again
		{false, 200, true},
		{true, 300, true},
		{false, 299, false}, // a late Will of an older session
	} {
		if got := h.accept(hostStatus{step.online, step.ts}); got != step.accept {
			t.Fatalf("step %d (online %v, ts %d): accepted %v", i, step.online, step.ts, got)
		}
	}
}

func TestRateMeter(t *testing.T) {
	r := rateMeter{window: 5 * time.Second}
	t0 := time.Unix(1000, 0)
	if _, ok := r.add(t0, 0); ok {
		t.Error("a rate from one sample")
	}
	for i := 1; i <= 20; i++ { // 10 inspections per second for 20 s
		v, ok := r.add(t0.Add(time.Duration(i)*time.Second), uint64(10*i))
		if !ok || v != 10 {
			t.Fatalf("second %d: %v, %v; want 10", i, v, ok)
		}
	}
	if len(r.samples) > 7 {
		t.Errorf("%d samples kept for a 5 s window of 1 s steps", len(r.samples))
	}
	// The line stops: the rate falls to 0 within the window.
	var v float64
	for i := 21; i <= 27; i++ {
		v, _ = r.add(t0.Add(time.Duration(i)*time.Second), 200)
	}
	if v != 0 {
		t.Errorf("rate %v after 6 s without inspections", v)
	}
	// A new pipeline counts from 1 again: no negative rate.
	if v, _ := r.add(t0.Add(28*time.Second), 3); v < 0 {
		t.Errorf("rate %v after the counter restarted", v)
	}
}

func TestClip(t *testing.T) {
	if got := clip("héllo", 2); got != "h" {
		t.Errorf("clip on a rune boundary: %q", got)
	}
	if got := clip("a\xffb", 10); got != "a\uFFFDb" {
		t.Errorf("clip of invalid UTF-8: %q", got)
	}
}

func TestOptionsRefused(t *testing.T) {
	good := Options{Brokers: []string{"tcp://127.0.0.1:1883"}, ClientID: "c", GroupID: "g", EdgeNodeID: "e", DeviceID: "d"}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.GroupID = "a/b" }, `sparkplug GroupID "a/b": holds +, / or #`},
		{func(o *Options) { o.GroupID = "STATE" }, "reserved"},
		{func(o *Options) { o.EdgeNodeID = "" }, "sparkplug EdgeNodeID \"\": is empty"},
		{func(o *Options) { o.DeviceID = "cam#" }, "DeviceID"},
		{func(o *Options) { o.PrimaryHostID = "h+" }, "PrimaryHostID"},
		{func(o *Options) { o.ClientID = "" }, "ClientID is empty"},
		{func(o *Options) { o.Brokers = nil }, "Brokers is empty"},
		{func(o *Options) { o.Brokers = []string{"127.0.0.1:1883"} }, "Brokers[0]"},
		{func(o *Options) { o.KeepAlive = 500 * time.Millisecond }, "KeepAlive"},
		{func(o *Options) { o.WriteTimeout = -time.Second }, "WriteTimeout is -1s"},
	} {
		o := good
		tc.edit(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v; want an error with %q", err, tc.want)
		}
	}
}

// TestCatalogChanges: only changed metrics go out, in the order their
// values were captured, and a birth carries everything.
func TestCatalogChanges(t *testing.T) {
	d := deviceDefs()
	c := newCatalog(d[:], 100)
	c.set(dScore, sppb.DoubleValue(1), 20)
	c.set(dVerdict, sppb.StringValue("ok"), 10)
	if got := c.changes(nil); len(got) != 2 || got[0].Alias != 100+dVerdict || got[1].Alias != 100+dScore {
		t.Fatalf("changes %+v; want Verdict (captured first) then Score, by alias", got)
	}
	c.set(dScore, sppb.DoubleValue(1), 30)
	if got := c.changes(nil); len(got) != 0 {
		t.Fatalf("an unchanged value is sent again: %+v", got)
	}
	c.setNull(dScore, 40)
	if got := c.changes(nil); len(got) != 1 || !got[0].IsNull {
		t.Fatalf("a value going null: %+v", got)
	}
	b := c.birth(nil, 50)
	if len(b) != numDevice || b[len(b)-1].Timestamp != 50 || b[0].Name == "" {
		t.Fatalf("birth %d metrics, last timestamp %d", len(b), b[len(b)-1].Timestamp)
	}
	if i, ok := c.lookup(&sppb.Metric{Alias: 100 + dScore, HasAlias: true, Name: "Inspection/Verdict"}); ok {
		t.Errorf("a command whose name and alias disagree found metric %d", i)
	}
}

// sink is the daemon's Sink (daemon/pipeline.go): the edge node takes the
// pipeline's results through the same methods as the JSON publisher.
type sink interface {
	PublishResult(r *mqttpub.Result, qos byte) error
	PublishAlarm(a *mqttpub.Alarm) error
	PublishMask(seq uint64, png []byte, qos byte) error
	PublishHeatmap(jpeg []byte, qos byte) error
}

var _ sink = (*Node)(nil)

// TestCarryAcrossReplacement: an edge node rebuilt by a reload (another
// keepalive, broker or group) goes on from the one it replaces: its birth
// says the cumulative counters and the latest inspection and alarm, not 0
// and null (a host reading Stats/Anomalous Count saw the count fall to 0).
func TestCarryAcrossReplacement(t *testing.T) {
	o := Options{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "c", GroupID: "Plant 1", EdgeNodeID: "e", DeviceID: "d", Logger: discard()}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range inspections(5) {
		a.recordLocked(r)
	}
	a.alarm = pendingAlarm{ok: true, seq: 6, w: 64, h: 48}
	a.recordLocked(&mqttpub.Result{Header: mqttpub.Header{Seq: 6, FrameTime: time.Now(), Score: 20, Threshold: 10}, Anomalous: true, Verdict: "anomalous"})
	want := map[int]sppb.Value{}
	for _, i := range []int{dAnomalousCount, dErrorCount, dSeq, dScore, dAlarmSeq} {
		want[i] = a.dev.m[i].val
		if a.dev.m[i].null {
			t.Fatalf("metric %s null before the replacement", a.dev.m[i].name)
		}
	}
	o.Carry = a.Carry()
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range want {
		if m := b.dev.m[i]; m.null || !m.val.Equal(v) {
			t.Errorf("%s after the replacement: %+v (null %v), want %+v", m.name, m.val, m.null, v)
		}
	}
	if b.counts != a.counts || b.lastSeq != a.lastSeq {
		t.Errorf("counts %+v seq %d, want %+v seq %d", b.counts, b.lastSeq, a.counts, a.lastSeq)
	}
	b.recordLocked(&mqttpub.Result{Header: mqttpub.Header{Seq: 7, FrameTime: time.Now(), Score: 30, Threshold: 10}, Anomalous: true, Verdict: "anomalous"})
	if got := b.dev.m[dAnomalousCount].val; !got.Equal(sppb.ULongValue(a.counts.anomalous + 1)) {
		t.Errorf("the count goes on from the carried one: %+v", got)
	}
}

// TestCountsFromTheDaemon: with Options.Counts the counters are the
// daemon's, from the first birth on (an edge node started mid-run does not
// say 0), and a result moves them only as far as the daemon counted: a
// trigger answered with an error, which is no inspection, is not one.
func TestCountsFromTheDaemon(t *testing.T) {
	var mu sync.Mutex
	daemon := Counts{Anomalous: 77, Errors: 5}
	o := Options{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "c", GroupID: "Plant 1", EdgeNodeID: "e", DeviceID: "d", Logger: discard(),
		Counts: func() Counts { mu.Lock(); defer mu.Unlock(); return daemon }}
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, anomalous, errs uint64) {
		t.Helper()
		n.mu.Lock()
		defer n.mu.Unlock()
		if a, e := n.dev.m[dAnomalousCount].val.Uint, n.dev.m[dErrorCount].val.Uint; a != anomalous || e != errs {
			t.Errorf("%s: Stats/Anomalous Count %d, Stats/Error Count %d; want %d, %d", when, a, e, anomalous, errs)
		}
	}
	check("at New", 77, 5)
	_ = n.PublishResult(&mqttpub.Result{Header: mqttpub.Header{Seq: 9, FrameTime: time.Now(), TriggerID: "t1"}, Anomalous: true, Verdict: "error",
		Error: "trigger not served: no frame"}, 1)
	check("after a trigger answered with an error", 77, 5)
	mu.Lock()
	daemon.Anomalous++
	mu.Unlock()
	_ = n.PublishResult(&mqttpub.Result{Header: mqttpub.Header{Seq: 10, FrameTime: time.Now(), Score: 20, Threshold: 10}, Anomalous: true, Verdict: "anomalous"}, 1)
	check("after an anomalous inspection", 78, 5)
	// A reading taken before a newer one was set (the stats tick reads
	// before it locks) never takes a counter back.
	n.mu.Lock()
	n.setCountsLocked(Counts{Anomalous: 77, Errors: 5}, nowMS())
	n.mu.Unlock()
	check("after an older reading", 78, 5)
}

// TestRateFromTheDaemon: with Options.Rate the first birth already says
// the daemon's measured rate, to a tenth; not measured yet leaves 0.
func TestRateFromTheDaemon(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		ok   bool
		want float64
	}{{12.34, true, 12.3}, {0, false, 0}} {
		o := Options{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "c", GroupID: "Plant 1", EdgeNodeID: "e", DeviceID: "d", Logger: discard(),
			Rate: func() (float64, bool) { return tc.v, tc.ok }}
		n, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		if m := n.dev.m[dRate]; m.null || m.val.Float64 != tc.want {
			t.Errorf("Rate %v, %v: Stats/Inspections per Second %+v at New, want %v", tc.v, tc.ok, m.val, tc.want)
		}
	}
}

// TestHealthWhileWaitingForHost: a wait for the primary host is healthy
// only where the JSON topics deliver the results meanwhile; not being
// connected never is.
func TestHealthWhileWaitingForHost(t *testing.T) {
	for _, json := range []bool{false, true} {
		n, err := New(Options{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "c", GroupID: "g", EdgeNodeID: "e", DeviceID: "d",
			PrimaryHostID: "IamHost", JSONDelivers: json, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		n.started, n.lastErr = true, "connection refused"
		if ok, detail := n.Health(); ok {
			t.Errorf("JSONDelivers %v: healthy while not connected (%s)", json, detail)
		}
		n.sess = &session{ready: true}
		if ok, detail := n.Health(); ok != json || !strings.Contains(detail, "waiting for primary host IamHost") {
			t.Errorf("JSONDelivers %v: Health() = %v, %q while waiting for the host", json, ok, detail)
		}
	}
}
