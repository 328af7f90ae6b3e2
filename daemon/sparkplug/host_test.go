package sparkplug

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testproc"
	"github.com/inspectd/inspectd/daemon/remote"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// spMsg is one Sparkplug message as the test host received it.
type spMsg struct {
	topic    string
	verb     string // NBIRTH, DDATA, ...
	p        sppb.Payload
	qos      byte
	retained bool
}

// metric finds a metric by name, or by the alias the births gave that name.
func (m spMsg) metric(h *testHost, name string) (sppb.Metric, bool) {
	alias, hasAlias := h.alias(name)
	for _, x := range m.p.Metrics {
		if x.Name == name || hasAlias && x.HasAlias && x.Alias == alias && x.Name == "" {
			return x, true
		}
	}
	return sppb.Metric{}, false
}

// testHost is a Sparkplug host application written for the tests: it
// subscribes to the group, decodes every message with sppb and checks the
// rules of the specification as messages arrive. Violations fail the test
// when it ends.
type testHost struct {
	t      testing.TB
	client mqtt.Client
	group  string

	mu         sync.Mutex
	msgs       []spMsg
	violations []string
	nextSeq    map[string]int    // per edge node: the seq expected next, -1 before NBIRTH
	aliases    map[string]uint64 // metric name -> alias, from the births
	names      map[uint64]string
}

func newHost(t testing.TB, url, group string) *testHost {
	t.Helper()
	h := &testHost{t: t, group: group, nextSeq: map[string]int{}, aliases: map[string]uint64{}, names: map[uint64]string{}}
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID("test-host-" + t.Name()).SetCleanSession(true).
		SetProtocolVersion(4).SetOrderMatters(true).SetConnectTimeout(5 * time.Second).SetConnectionLostHandler(nil)
	h.client = mqtt.NewClient(o)
	if tok := h.client.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test host: connect %s: %v", url, tok.Error())
	}
	tok := h.client.Subscribe(Namespace+"/"+group+"/#", 1, func(_ mqtt.Client, m mqtt.Message) { h.receive(m) })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test host: subscribe: %v", tok.Error())
	}
	t.Cleanup(func() {
		h.client.Disconnect(0)
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, v := range h.violations {
			t.Errorf("Sparkplug rule broken: %s", v)
		}
	})
	return h
}

func (h *testHost) violate(format string, a ...any) {
	h.violations = append(h.violations, fmt.Sprintf(format, a...))
}

func (h *testHost) receive(m mqtt.Message) {
	levels := strings.Split(m.Topic(), "/")
	if len(levels) < 4 {
		return
	}
	msg := spMsg{topic: m.Topic(), verb: levels[2], qos: m.Qos(), retained: m.Retained()}
	if msg.verb == "NCMD" || msg.verb == "DCMD" || msg.verb == "STATE" {
		return // the host's own commands
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := sppb.Unmarshal(m.Payload(), &msg.p); err != nil {
		h.violate("%s: payload does not decode: %v", m.Topic(), err)
		return
	}
	node := levels[1] + "/" + levels[3]
	h.check(node, &msg)
	h.msgs = append(h.msgs, msg)
}

// check applies the rules of Sparkplug 3.0 §6.4 to one message.
func (h *testHost) check(node string, m *spMsg) {
	p := &m.p
	if m.retained {
		h.violate("%s is retained", m.topic)
	}
	if p.Timestamp == 0 {
		h.violate("%s has no payload timestamp", m.topic)
	}
	if m.verb == "NDEATH" {
		if p.HasSeq {
			h.violate("NDEATH carries a seq")
		}
		if len(p.Metrics) != 1 || p.Metrics[0].Name != "bdSeq" || p.Metrics[0].DataType != sppb.TypeInt64 {
			h.violate("NDEATH payload is not only the Int64 bdSeq metric: %+v", p.Metrics)
		}
		h.nextSeq[node] = -1
		return
	}
	if m.qos != 0 {
		h.violate("%s published at QoS %d, want 0", m.verb, m.qos)
	}
	if !p.HasSeq || p.Seq > 255 {
		h.violate("%s seq %d (present %v)", m.verb, p.Seq, p.HasSeq)
	}
	want, known := h.nextSeq[node]
	switch {
	case m.verb == "NBIRTH":
		if p.Seq != 0 {
			h.violate("NBIRTH seq %d, want 0", p.Seq)
		}
		clear(h.aliases)
		clear(h.names)
	case !known || want < 0:
		h.violate("%s (seq %d) before any NBIRTH", m.verb, p.Seq)
	case int(p.Seq) != want:
		h.violate("%s seq %d, want %d", m.verb, p.Seq, want)
	}
	h.nextSeq[node] = int(p.Seq+1) % 256
	for _, x := range p.Metrics {
		if x.Timestamp == 0 {
			h.violate("%s metric %q/%d has no timestamp", m.verb, x.Name, x.Alias)
		}
		switch m.verb {
		case "NBIRTH", "DBIRTH":
			if x.Name == "" || !x.HasAlias || x.DataType == sppb.TypeUnknown {
				h.violate("%s metric %+v lacks a name, alias or datatype", m.verb, x)
			}
			if !x.IsNull && x.Value.Kind != x.DataType.Kind() {
				h.violate("%s metric %q: %s value for datatype %s", m.verb, x.Name, x.Value.Kind, x.DataType)
			}
			if other, dup := h.names[x.Alias]; dup {
				h.violate("alias %d of %q is also %q's", x.Alias, x.Name, other)
			}
			h.aliases[x.Name], h.names[x.Alias] = x.Alias, x.Name
		case "NDATA", "DDATA":
			if x.Name != "" || !x.HasAlias {
				h.violate("%s metric %q/%d: data messages carry the alias only", m.verb, x.Name, x.Alias)
			}
			if _, ok := h.names[x.Alias]; !ok {
				h.violate("%s alias %d not in the births", m.verb, x.Alias)
			}
			if x.DataType != sppb.TypeUnknown {
				h.violate("%s metric alias %d repeats its datatype", m.verb, x.Alias)
			}
		}
	}
}

func (h *testHost) alias(name string) (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.aliases[name]
	return a, ok
}

// mark is the number of messages received so far.
func (h *testHost) mark() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// since returns the messages received after mark.
func (h *testHost) since(mark int) []spMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]spMsg(nil), h.msgs[mark:]...)
}

// wait returns the first message after mark with verb that satisfies
// cond (nil: any), failing the test after 10 s.
func (h *testHost) wait(mark int, verb string, cond func(spMsg) bool) spMsg {
	h.t.Helper()
	var found spMsg
	ok := testbroker.WaitFor(context.Background(), 10*time.Second, func() bool {
		for _, m := range h.since(mark) {
			if m.verb == verb && (cond == nil || cond(m)) {
				found = m
				return true
			}
		}
		return false
	})
	if !ok {
		h.t.Fatalf("test host: no %s after message %d within 10s; got %s", verb, mark, verbs(h.since(mark)))
	}
	return found
}

// quiet checks that nothing arrives after mark for d.
func (h *testHost) quiet(mark int, d time.Duration) {
	h.t.Helper()
	time.Sleep(d)
	if got := h.since(mark); len(got) > 0 {
		h.t.Fatalf("test host: expected no message, got %s", verbs(got))
	}
}

func verbs(ms []spMsg) string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%s(seq %d)", m.verb, m.p.Seq))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// command publishes an NCMD or DCMD as a host does: QoS 0, not retained.
func (h *testHost) command(topic string, p *sppb.Payload) {
	h.t.Helper()
	b, err := p.Marshal()
	if err != nil {
		h.t.Fatal(err)
	}
	h.raw(topic, b, false)
}

func (h *testHost) raw(topic string, b []byte, retained bool) {
	h.t.Helper()
	if tok := h.client.Publish(topic, 1, retained, b); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		h.t.Fatalf("test host: publish %s: %v", topic, tok.Error())
	}
}

// state publishes the primary host's retained STATE.
func (h *testHost) state(hostID string, online bool, ts uint64) {
	h.t.Helper()
	b, _ := json.Marshal(map[string]any{"online": online, "timestamp": ts})
	h.raw(Namespace+"/STATE/"+hostID, b, true)
}

func bdSeqOf(t testing.TB, m spMsg) uint64 {
	t.Helper()
	for _, x := range m.p.Metrics {
		if x.Name == "bdSeq" {
			return x.Value.Uint
		}
	}
	t.Fatalf("%s has no bdSeq metric", m.verb)
	return 0
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newLogger(t testing.TB) (*slog.Logger, *testproc.LogBuffer) {
	lb := &testproc.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("edge node log:\n%s", lb.String())
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// testSubmitter answers requests from its own goroutine, as the daemon's
// dispatcher does, and records them.
type testSubmitter struct {
	mu     sync.Mutex
	reqs   []remote.Request
	answer func(remote.Request) remote.Reply
}

func (s *testSubmitter) Submit(req remote.Request, done func(remote.Reply)) {
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	answer := s.answer
	s.mu.Unlock()
	go func() {
		if answer == nil {
			done(remote.Reply{ID: req.ID, OK: true})
			return
		}
		done(answer(req))
	}()
}

func (s *testSubmitter) requests() []remote.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]remote.Request(nil), s.reqs...)
}
