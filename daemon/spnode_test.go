package daemon

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// TestSparkplugAndJSONFromOnePipeline: with mqtt.profile both, the one
// pipeline's inspections reach a Sparkplug host (NBIRTH, DBIRTH, then
// DDATA with the score) and the JSON result topic alike; a configuration
// push back to json alone ends the edge node with its NDEATH.
func TestSparkplugAndJSONFromOnePipeline(t *testing.T) {
	r := startDaemon(t, func(r *runningDaemon) string {
		return strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: both, ", 1)
	})
	r.daemon()
	var mu sync.Mutex
	kinds := map[string]int{}
	scores, results := 0, 0
	spTriggerAnswer := ""
	host := testbroker.Connect(t, mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:"+strconv.Itoa(r.port)).SetClientID("scada-host"),
		testbroker.Sub{Topic: "spBv1.0/#", Handler: func(_ mqtt.Client, m mqtt.Message) {
			parts := strings.Split(m.Topic(), "/")
			var p sppb.Payload
			if err := sppb.Unmarshal(m.Payload(), &p); err != nil {
				t.Errorf("%s: %v", m.Topic(), err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			kinds[parts[2]]++
			if parts[2] == "DDATA" || parts[2] == "DBIRTH" {
				for _, mt := range p.Metrics {
					if mt.Name == "Inspection/Score" || (parts[2] == "DDATA" && mt.Alias != 0) {
						scores++
						break
					}
				}
			}
		}},
		testbroker.Sub{Topic: "inspectd/cell1/result", Handler: func(_ mqtt.Client, m mqtt.Message) {
			mu.Lock()
			results++
			if strings.Contains(string(m.Payload()), `"trigger_id":"sp-1"`) {
				spTriggerAnswer = string(m.Payload())
			}
			mu.Unlock()
		}})
	// Ask for births: the host subscribed after them.
	rebirth := &sppb.Payload{Timestamp: uint64(time.Now().UnixMilli()),
		Metrics: []sppb.Metric{{Name: "Node Control/Rebirth", DataType: sppb.TypeBoolean, Value: sppb.Value{Kind: sppb.KindBoolean, Bool: true}}}}
	b, err := rebirth.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The request is repeated until a birth arrives: one sent before the
	// edge node subscribed to NCMD is lost, as it would be on a real broker.
	lastAsk := time.Time{}
	if !testbroker.WaitFor(r.ctx, 90*time.Second, func() bool {
		mu.Lock()
		born := kinds["NBIRTH"] > 0
		done := born && kinds["DBIRTH"] > 0 && kinds["DDATA"] >= 3 && scores >= 3 && results >= 3
		mu.Unlock()
		if !born && time.Since(lastAsk) > 3*time.Second {
			lastAsk = time.Now()
			host.Publish("spBv1.0/inspectd/NCMD/cell1", 0, false, b).Wait()
		}
		return done
	}) {
		mu.Lock()
		t.Fatalf("timed out waiting for births, data and JSON results (seen %v, scores %d, results %d); log:\n%s",
			kinds, scores, results, r.logs.String())
	}
	// A DCMD trigger takes the trigger path: in free-run it is answered on
	// result with an error saying so, under its id.
	trig := &sppb.Payload{Timestamp: uint64(time.Now().UnixMilli()),
		Metrics: []sppb.Metric{{Name: "Command/Trigger", DataType: sppb.TypeString, Value: sppb.Value{Kind: sppb.KindString, Str: "sp-1"}}}}
	tb, err := trig.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	host.Publish("spBv1.0/inspectd/DCMD/cell1/cell1", 0, false, tb).Wait()
	var answer string
	r.waitFor("the answer to the DCMD trigger", func() bool {
		mu.Lock()
		defer mu.Unlock()
		answer = spTriggerAnswer
		return answer != ""
	})
	if !strings.Contains(answer, "free-run") {
		t.Errorf("DCMD trigger answered %s", answer)
	}

	r.write(r.baseYAML("cell1"))
	r.hup()
	r.waitFor("the NDEATH after switching to json", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return kinds["NDEATH"] > 0
	})
}

// TestSparkplugReboot: NCMD Node Control/Reboot ends the daemon with
// ErrRestartRequested, for its service manager to start it again, where
// remote control takes unsigned commands.
func TestSparkplugReboot(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(r *runningDaemon) string {
		return strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: sparkplug, ", 1) + "remote: {allow_unsigned: true}\n"
	})
	r.daemon()
	host := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:" + strconv.Itoa(r.port)).SetClientID("scada-host"))
	if tok := host.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("host connect: %v", tok.Error())
	}
	defer host.Disconnect(0)
	reboot := &sppb.Payload{Timestamp: uint64(time.Now().UnixMilli()),
		Metrics: []sppb.Metric{{Name: "Node Control/Reboot", DataType: sppb.TypeBoolean, Value: sppb.Value{Kind: sppb.KindBoolean, Bool: true}}}}
	b, err := reboot.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor("the node to subscribe", func() bool {
		return strings.Contains(r.logs.String(), "NBIRTH") || strings.Contains(r.logs.String(), "sparkplug")
	}, &r.logs)
	deadline := time.After(60 * time.Second)
	for {
		host.Publish("spBv1.0/inspectd/NCMD/cell1", 0, false, b).Wait()
		select {
		case err := <-r.done:
			r.done <- nil
			if !errors.Is(err, ErrRestartRequested) {
				t.Fatalf("Run ended with %v, want ErrRestartRequested", err)
			}
			return
		case <-time.After(500 * time.Millisecond):
		case <-deadline:
			t.Fatal("the daemon did not stop on Node Control/Reboot")
		}
	}
}

// spHost is a Sparkplug host for daemon tests: it learns the aliases from
// the births and keeps every message with its metrics by name.
type spHost struct {
	c     mqtt.Client
	mu    sync.Mutex
	alias map[uint64]string
	msgs  []spMsg
}

// spMsg is one message the host received, its metrics by name.
type spMsg struct {
	verb    string
	metrics map[string]sppb.Metric
}

// newSPHost connects a host to r's embedded broker, subscribed to every
// Sparkplug topic.
func newSPHost(t *testing.T, r *runningDaemon) *spHost {
	t.Helper()
	h := &spHost{alias: map[uint64]string{}}
	h.c = testbroker.Connect(t, mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:"+strconv.Itoa(r.port)).SetClientID("scada-host"),
		testbroker.Sub{Topic: "spBv1.0/#", Handler: func(_ mqtt.Client, m mqtt.Message) {
			parts := strings.Split(m.Topic(), "/")
			if len(parts) < 4 || parts[1] == "STATE" {
				return
			}
			var p sppb.Payload
			if err := sppb.Unmarshal(m.Payload(), &p); err != nil {
				t.Errorf("%s: %v", m.Topic(), err)
				return
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			msg := spMsg{verb: parts[2], metrics: map[string]sppb.Metric{}}
			for _, mt := range p.Metrics {
				if mt.Name != "" && mt.HasAlias {
					h.alias[mt.Alias] = mt.Name
				}
				name := mt.Name
				if name == "" {
					name = h.alias[mt.Alias]
				}
				msg.metrics[name] = mt
			}
			h.msgs = append(h.msgs, msg)
		}})
	return h
}

// mark is the number of messages received so far, for since.
func (h *spHost) mark() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// find returns the first message from index from on with verb (any verb
// when "") that has metric (any when "").
func (h *spHost) find(from int, verb, metric string) (spMsg, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs[min(from, len(h.msgs)):] {
		if verb != "" && m.verb != verb {
			continue
		}
		if _, ok := m.metrics[metric]; metric == "" || ok {
			return m, true
		}
	}
	return spMsg{}, false
}

// since returns the messages from index from on.
func (h *spHost) since(from int) []spMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]spMsg(nil), h.msgs[min(from, len(h.msgs)):]...)
}

// send publishes a command with one metric write on topic.
func (h *spHost) send(t *testing.T, topic string, m sppb.Metric) {
	t.Helper()
	m.Timestamp = uint64(time.Now().UnixMilli())
	b, err := (&sppb.Payload{Timestamp: m.Timestamp, Metrics: []sppb.Metric{m}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h.c.Publish(topic, 0, false, b).Wait()
}

// born asks for births until an NBIRTH and a DBIRTH arrive (the host may
// have subscribed after the first ones; a rebirth sent before the edge
// node subscribed is lost, as on any broker).
func (h *spHost) born(t *testing.T, r *runningDaemon, ncmd string) {
	t.Helper()
	last := time.Time{}
	r.waitFor("the births", func() bool {
		// Looked for first: a request sent when the births were in already
		// brought a stray pair after the caller's mark.
		_, nb := h.find(0, "NBIRTH", "")
		_, db := h.find(0, "DBIRTH", "")
		if nb && db {
			return true
		}
		if time.Since(last) > 2*time.Second {
			last = time.Now()
			h.send(t, ncmd, sppb.Metric{Name: "Node Control/Rebirth", DataType: sppb.TypeBoolean, Value: sppb.BoolValue(true)})
		}
		return false
	})
}

// ended says whether Run has returned, and with what.
func (r *runningDaemon) ended() (error, bool) {
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err, true
	default:
		return nil, false
	}
}

// TestSparkplugRebootNeedsRemoteControl: Node Control/Reboot follows remote
// control's rule for unsigned commands, as the threshold and refit writes
// do: on a box that takes only signed commands, or has remote control off,
// an NCMD (which carries no signature) is refused unauthorized in Command/
// Last Reply and the log, and the daemon goes on. Node Control/Rebirth stays
// open: it changes nothing, and hosts need it.
func TestSparkplugRebootNeedsRemoteControl(t *testing.T) {
	t.Parallel()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, remote, want string
	}{
		{"signed only", "remote: {trust_keys: {ops: " + base64.StdEncoding.EncodeToString(pub) + "}}\n", "unsigned"},
		{"remote control off", "", "remote commands are off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startDaemon(t, func(r *runningDaemon) string {
				return strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: sparkplug, ", 1) + tc.remote
			})
			r.daemon()
			h := newSPHost(t, r)
			const ncmd = "spBv1.0/inspectd/NCMD/cell1"
			h.born(t, r, ncmd)

			mark := h.mark()
			h.send(t, ncmd, sppb.Metric{Name: "Node Control/Reboot", DataType: sppb.TypeBoolean, Value: sppb.BoolValue(true)})
			var reply spMsg
			r.waitFor("Command/Last Reply for the reboot", func() bool {
				if err, ok := r.ended(); ok {
					t.Fatalf("an unsigned Node Control/Reboot restarted the daemon (Run returned %v)", err)
				}
				var ok bool
				reply, ok = h.find(mark, "DDATA", "Command/Last Reply")
				return ok
			})
			if c := reply.metrics["Command/Last Command"].Value.Str; c != "reboot" {
				t.Errorf("Command/Last Command %q, want reboot", c)
			}
			if ok := reply.metrics["Command/Last OK"]; ok.Value.Bool {
				t.Error("Command/Last OK true for a refused reboot")
			}
			var rep map[string]any
			if err := json.Unmarshal([]byte(reply.metrics["Command/Last Reply"].Value.Str), &rep); err != nil ||
				rep["code"] != "unauthorized" || !strings.Contains(fmt.Sprint(rep["error"]), tc.want) {
				t.Errorf("Command/Last Reply %v (%v); want code unauthorized, an error saying %q", rep, err, tc.want)
			}
			if !strings.Contains(r.logs.String(), "remote command refused") || !strings.Contains(r.logs.String(), "command=reboot") {
				t.Errorf("no \"remote command refused\" log line for the reboot; log:\n%s", r.logs.String())
			}
			// The dispatcher refuses a threshold write the same way.
			mark = h.mark()
			h.send(t, "spBv1.0/inspectd/DCMD/cell1/cell1", sppb.Metric{Name: "Inspection/Threshold", DataType: sppb.TypeDouble, Value: sppb.DoubleValue(15)})
			r.waitFor("Command/Last Reply for the threshold", func() bool {
				var ok bool
				reply, ok = h.find(mark, "DDATA", "Command/Last Reply")
				return ok
			})
			var thr map[string]any
			if err := json.Unmarshal([]byte(reply.metrics["Command/Last Reply"].Value.Str), &thr); err != nil ||
				thr["code"] != rep["code"] || !strings.Contains(fmt.Sprint(thr["error"]), tc.want) {
				t.Errorf("threshold write answered %v (%v), the reboot %v: remote control and the reboot disagree", thr, err, rep)
			}
			// A rebirth is still taken unsigned, and the daemon still runs.
			mark = h.mark()
			h.send(t, ncmd, sppb.Metric{Name: "Node Control/Rebirth", DataType: sppb.TypeBoolean, Value: sppb.BoolValue(true)})
			r.waitFor("the NBIRTH of an unsigned rebirth", func() bool { _, ok := h.find(mark, "NBIRTH", ""); return ok })
			if err, ok := r.ended(); ok {
				t.Fatalf("daemon ended: %v", err)
			}
		})
	}
}

// TestSparkplugTriggerReplyIsTheJSONReply: Command/Last Reply for a DCMD
// trigger is the object the JSON front end publishes for the same command
// (the README says so): a trigger not taken carries "code": "failed" there
// too, not only "error".
func TestSparkplugTriggerReplyIsTheJSONReply(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(r *runningDaemon) string {
		return strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: both, ", 1) + "remote: {allow_unsigned: true}\n"
	})
	r.daemon()
	h := newSPHost(t, r)
	h.born(t, r, "spBv1.0/inspectd/NCMD/cell1")
	op := newOperator(t, "tcp://127.0.0.1:"+strconv.Itoa(r.port))
	op.awaitCommands(r, "cell1")
	// Free-run: neither trigger is taken.
	jsonReply := op.reply("cell1", "trigger", `{"id":"json-1"}`, 30*time.Second)

	mark := h.mark()
	h.send(t, "spBv1.0/inspectd/DCMD/cell1/cell1", sppb.Metric{Name: "Command/Trigger", DataType: sppb.TypeString, Value: sppb.StringValue("sp-1")})
	var m spMsg
	r.waitFor("Command/Last Reply for the trigger", func() bool {
		var ok bool
		m, ok = h.find(mark, "DDATA", "Command/Last Reply")
		return ok
	})
	var spReply map[string]any
	if err := json.Unmarshal([]byte(m.metrics["Command/Last Reply"].Value.Str), &spReply); err != nil {
		t.Fatal(err)
	}
	if spReply["id"] != "sp-1" {
		t.Errorf("Command/Last Reply %v: id is not the trigger id", spReply)
	}
	delete(spReply, "id")
	delete(jsonReply, "id")
	if fmt.Sprint(spReply) != fmt.Sprint(jsonReply) {
		t.Errorf("Command/Last Reply %v\nJSON reply          %v", spReply, jsonReply)
	}
	if spReply["code"] != "failed" {
		t.Errorf("Command/Last Reply %v has no code failed", spReply)
	}
}

// TestSparkplugRepeatedTriggerKeepsTheLatest: a trigger id written again
// to Command/Trigger within the dedup window is not inspected again, and
// its stored answer does not come back as the device's latest
// inspection: Inspection/Seq never goes back (a host counts missed parts
// by it) and Inspection/Trigger ID stays the latest part's. The reply
// names the earlier answer.
func TestSparkplugRepeatedTriggerKeepsTheLatest(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(r *runningDaemon) string {
		y := strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: both, ", 1)
		return strings.Replace(y, "capture: {", "capture: {trigger: {mode: external}, ", 1) + "remote: {allow_unsigned: true}\n"
	})
	r.daemon()
	h := newSPHost(t, r)
	h.born(t, r, "spBv1.0/inspectd/NCMD/cell1")
	dcmd := "spBv1.0/inspectd/DCMD/cell1/cell1"
	trigger := func(id string) (reply map[string]any, mark int) {
		t.Helper()
		mark = h.mark()
		h.send(t, dcmd, sppb.Metric{Name: "Command/Trigger", DataType: sppb.TypeString, Value: sppb.StringValue(id)})
		r.waitFor("the reply to trigger "+id, func() bool {
			for _, m := range h.since(mark) {
				if v, ok := m.metrics["Command/Last Reply"]; ok && m.verb == "DDATA" {
					reply = nil
					if json.Unmarshal([]byte(v.Value.Str), &reply) == nil && reply["id"] == id {
						return true
					}
				}
			}
			return false
		})
		return reply, mark
	}
	inspected := func(id string, from int) (seq uint64) {
		t.Helper()
		r.waitFor("the inspection of "+id, func() bool {
			for _, m := range h.since(from) {
				if v, ok := m.metrics["Inspection/Trigger ID"]; ok && m.verb == "DDATA" && v.Value.Str == id {
					seq = m.metrics["Inspection/Seq"].Value.Uint
					return true
				}
			}
			return false
		})
		return seq
	}
	_, mark := trigger("p1")
	seq1 := inspected("p1", mark)
	_, mark = trigger("p2")
	seq2 := inspected("p2", mark)
	reply, mark := trigger("p1")
	prev, _ := reply["answered_before"].(map[string]any)
	if reply["queued"] != false || prev == nil || prev["seq"] != float64(seq1) || prev["verdict"] == "" {
		t.Errorf("reply to p1 given again %v, want queued false and answered_before naming seq %d", reply, seq1)
	}
	time.Sleep(500 * time.Millisecond)
	for _, m := range h.since(mark) {
		if s, ok := m.metrics["Inspection/Seq"]; ok && s.Value.Uint < seq2 {
			t.Errorf("after p1 given again, Inspection/Seq went back to %d (latest %d)", s.Value.Uint, seq2)
		}
		if id, ok := m.metrics["Inspection/Trigger ID"]; ok && id.Value.Str == "p1" {
			t.Error("after p1 given again, Inspection/Trigger ID went back to p1")
		}
	}
	if n := strings.Count(r.lines.String(), "trigger=p1\n"); n != 1 {
		t.Errorf("p1 inspected %d times, want once", n)
	}
}

// TestSparkplugMaskIsItsInspections: every Mask metric shows the
// inspection whose Inspection/Seq it is stamped with. The pipeline
// publishes a mask after its result; the edge node once held it for the
// next result's DDATA, so each defect's mask went out on the next part,
// with that part's time.
func TestSparkplugMaskIsItsInspections(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(r *runningDaemon) string {
		y := strings.Replace(r.baseYAML("cell1"), "model: {features: 16, min_features: 16}",
			"model: {features: 16, min_features: 16, threshold: {value: 0.01}}", 1) // every part anomalous
		return strings.Replace(y, "mqtt: {", "mqtt: {profile: sparkplug, ", 1)
	})
	r.daemon()
	h := newSPHost(t, r)
	h.born(t, r, "spBv1.0/inspectd/NCMD/cell1")
	mark := h.mark()
	masks := 0
	r.waitFor("five masks", func() bool {
		masks = 0
		for _, m := range h.since(mark) {
			if _, ok := m.metrics["Mask"]; ok && m.verb == "DDATA" {
				masks++
			}
		}
		return masks >= 5
	})
	seqAt := map[uint64]uint64{} // Inspection/Seq by its timestamp
	for _, m := range h.since(0) {
		if s, ok := m.metrics["Inspection/Seq"]; ok {
			seqAt[s.Timestamp] = s.Value.Uint
		}
	}
	for _, m := range h.since(mark) {
		mk, ok := m.metrics["Mask"]
		if !ok || m.verb != "DDATA" {
			continue
		}
		tag := readImageTag(t, mk.Value.Bytes)
		if seq, ok := seqAt[mk.Timestamp]; !ok || seq != tag.Seq {
			t.Errorf("the mask of inspection %d is stamped %d, the time of inspection %d (found %v)", tag.Seq, mk.Timestamp, seq, ok)
		}
	}
}

// sparkplugTurnedOnMidRun runs a daemon on the JSON profile with every
// inspection anomalous (a threshold far below any score), then pushes
// mqtt.profile both, and returns the edge node's first DBIRTH with the
// anomalous inspections /metrics had counted before the push and after
// the birth.
func sparkplugTurnedOnMidRun(t *testing.T) (r *runningDaemon, dbirth spMsg, before, after uint64) {
	t.Helper()
	yaml := func(r *runningDaemon, profile string) string {
		y := strings.Replace(r.baseYAML("cell1"), "model: {features: 16, min_features: 16}",
			"model: {features: 16, min_features: 16, threshold: {value: 0.01}}", 1)
		return strings.Replace(y, "mqtt: {", "mqtt: {profile: "+profile+", ", 1)
	}
	r = startDaemon(t, func(r *runningDaemon) string { return yaml(r, "json") })
	d := r.daemon()
	h := newSPHost(t, r)
	r.moreInspections(30)
	r.waitFor("a measured inspection rate", func() bool { return d.Status().InspectionsPerSecond > 0 })
	anomalous := func() uint64 { return uint64(testutil.ToFloat64(d.metrics.Inspections.WithLabelValues("anomalous"))) }
	before = anomalous()
	if before == 0 {
		t.Fatal("no anomalous inspection counted with threshold 0.01")
	}
	r.write(yaml(r, "both"))
	r.moreInspections(3) // the rate over the last seconds before the reload moved
	r.hup()
	r.waitFor("the DBIRTH after turning Sparkplug on", func() bool {
		var ok bool
		dbirth, ok = h.find(0, "DBIRTH", "")
		return ok
	})
	return r, dbirth, before, anomalous()
}

// TestSparkplugCountsWhenTurnedOnMidRun: an edge node started by a
// configuration change mid-run says the counts of the process, as
// /metrics does, not 0: Stats/Anomalous Count is inspectd_inspections_total
// {verdict="anomalous"}.
func TestSparkplugCountsWhenTurnedOnMidRun(t *testing.T) {
	_, db, before, after := sparkplugTurnedOnMidRun(t)
	got := db.metrics["Stats/Anomalous Count"].Value.Uint
	if got < before || got > after {
		t.Errorf("DBIRTH Stats/Anomalous Count %d; /metrics counted %d before Sparkplug was turned on, %d after its birth", got, before, after)
	}
}

// last is the latest value of metric the host received.
func (h *spHost) last(metric string) (sppb.Metric, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.msgs) - 1; i >= 0; i-- {
		if m, ok := h.msgs[i].metrics[metric]; ok {
			return m, true
		}
	}
	return sppb.Metric{}, false
}

// TestSparkplugErrorCountIsInspectionsTotalError: Stats/Error Count counts
// what inspectd_inspections_total{verdict="error"} counts, inspections
// that could not be made, as both are documented to; a trigger answered
// with an error because it got no frame (here: free-run) is no
// inspection, and shows in inspectd_triggers_total instead.
func TestSparkplugErrorCountIsInspectionsTotalError(t *testing.T) {
	t.Parallel()
	r := startDaemon(t, func(r *runningDaemon) string {
		return strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: sparkplug, ", 1)
	})
	d := r.daemon()
	h := newSPHost(t, r)
	h.born(t, r, "spBv1.0/inspectd/NCMD/cell1")
	mark := h.mark()
	h.send(t, "spBv1.0/inspectd/DCMD/cell1/cell1", sppb.Metric{Name: "Command/Trigger", DataType: sppb.TypeString, Value: sppb.StringValue("sp-1")})
	r.waitFor("the error result answering the trigger", func() bool {
		// Not the first DDATA with the metric: the line's first free-run
		// result, coming after the birth, changes it from null to "".
		for _, m := range h.since(mark) {
			if id, ok := m.metrics["Inspection/Trigger ID"]; ok && m.verb == "DDATA" && id.Value.Str == "sp-1" {
				return true
			}
		}
		return false
	})
	time.Sleep(1500 * time.Millisecond) // a stats update, were the count to move later
	want := uint64(testutil.ToFloat64(d.metrics.Inspections.WithLabelValues("error")))
	if c, ok := h.last("Stats/Error Count"); !ok || c.Value.Uint != want {
		t.Errorf("Stats/Error Count %d after a trigger answered with an error; inspectd_inspections_total{verdict=\"error\"} is %d", c.Value.Uint, want)
	}
}

// TestSparkplugRateInTheFirstBirth: the DBIRTH of an edge node started
// while the line runs says the inspection rate, not 0.0: the node's own
// meter had no two samples yet at its first birth, right after the
// CONNECT, and so said 0 in every birth that followed a connect.
func TestSparkplugRateInTheFirstBirth(t *testing.T) {
	r, db, _, _ := sparkplugTurnedOnMidRun(t)
	rate := db.metrics["Stats/Inspections per Second"]
	st := r.daemon().Status()
	if rate.IsNull || rate.Value.Float64 <= 0 {
		t.Errorf("DBIRTH Stats/Inspections per Second %+v while the daemon inspects %.1f/s", rate, st.InspectionsPerSecond)
	}
}

// TestRateMeterOver: the edge node's rate is the daemon's count over the
// last few seconds of one-second samples, not over the minute the meter
// keeps for the status command.
func TestRateMeterOver(t *testing.T) {
	var r rateMeter
	if _, ok := r.over(5 * time.Second); ok {
		t.Error("a rate without samples")
	}
	t0 := time.Now()
	for i := 0; i <= 30; i++ { // 10 per second for 30 s
		r.samples = append(r.samples, rateSample{t0.Add(time.Duration(i) * time.Second), uint64(10 * i)})
	}
	if v, ok := r.over(5 * time.Second); !ok || v != 10 {
		t.Errorf("over 5 s: %v, %v; want 10", v, ok)
	}
	for i := 31; i <= 36; i++ { // then 6 s without an inspection
		r.samples = append(r.samples, rateSample{t0.Add(time.Duration(i) * time.Second), 300})
	}
	if v, _ := r.over(5 * time.Second); v != 0 {
		t.Errorf("over 5 s after 6 s without inspections: %v; want 0", v)
	}
	if v := r.perSecond(); v == 0 {
		t.Error("the minute's average fell to 0 with the last seconds'")
	}
}

// TestSparkplugHealthWaitingForPrimaryHost: while the Sparkplug side waits
// for its primary host, a box on mqtt.profile both delivers everything on
// the JSON topics and /healthz says 200, with the wait in the MQTT detail;
// on mqtt.profile sparkplug it delivers nothing and /healthz says 503.
func TestSparkplugHealthWaitingForPrimaryHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		profile string
		want    int
	}{{"both", http.StatusOK}, {"sparkplug", http.StatusServiceUnavailable}} {
		t.Run(tc.profile, func(t *testing.T) {
			r := startDaemon(t, func(r *runningDaemon) string {
				y := strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: "+tc.profile+", ", 1)
				y = strings.Replace(y, `http: {listen: ""}`, `http: {listen: "127.0.0.1:0"}`, 1)
				return y + "sparkplug: {primary_host_id: IamHost}\n"
			})
			url := r.httpURL()
			var code int
			var report httpapi.HealthReport
			r.waitFor("camera and model healthy, Sparkplug waiting for its host", func() bool {
				resp, err := http.Get(url + "/healthz")
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				code, report = resp.StatusCode, httpapi.HealthReport{}
				_ = json.NewDecoder(resp.Body).Decode(&report)
				return report.Camera.OK && report.Model.OK && strings.Contains(report.MQTT.Detail, "waiting for primary host IamHost")
			})
			if code != tc.want || report.MQTT.OK != (tc.want == http.StatusOK) {
				t.Errorf("/healthz %d, mqtt %+v; want %d", code, report.MQTT, tc.want)
			}
		})
	}
}

// TestSparkplugMaskWithinMQTTMaxPayload: the edge node's messages keep to
// mqtt.max_payload, as the JSON publisher's do (the same broker takes
// both). The pipeline downsizes a mask to what both carry (the DDATA's own
// bytes taken off), and a mask larger than that goes in its DDATA as null,
// counted in inspectd_mqtt_too_large_total{class="image",sink="sparkplug"}
// beside the JSON topic's refusal in sink="json"; without the limit the
// edge node sent it whole, for a broker that limits packets to drop its
// connection over. The two refusals were added into one series, which then
// counted one mask too large twice.
func TestSparkplugMaskWithinMQTTMaxPayload(t *testing.T) {
	det := syntheticDetector(t)
	frames := t.TempDir() // no part comes: the test publishes as the pipeline does
	var yaml string
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		y := strings.Replace(r.baseYAML("cell1"), syntheticLine,
			"capture: {source: folder, folder: {path: "+frames+", watch: true}}", 1)
		y = strings.Replace(y, `http: {listen: ""}`, `http: {listen: "127.0.0.1:0"}`, 1)
		yaml = strings.Replace(y, "mqtt: {", "mqtt: {profile: both, max_payload: 4KiB, ", 1)
		return yaml
	})
	d := r.daemon()
	node := func() *sparkplug.Node {
		d.sink.mu.RLock()
		defer d.sink.mu.RUnlock()
		return d.sink.node
	}
	r.waitFor("the Sparkplug births", func() bool {
		ok, _ := node().Health()
		return ok
	})
	if got := node().MaxMask(); got != 4096-64 {
		t.Errorf("the edge node carries masks of up to %d bytes; mqtt.max_payload is 4096", got)
	}
	if got, want := d.sink.MaxPayload(), node().MaxMask(); got != want {
		t.Errorf("the pipeline downsizes masks to %d bytes; the DDATA carries %d", got, want)
	}
	res := &mqttpub.Result{Header: mqttpub.Header{Seq: 1, FrameTime: time.Now(), Score: 40, Threshold: 14, NormalizedScore: 40.0 / 14},
		Anomalous: true, Verdict: "anomalous"}
	if err := d.sink.PublishResult(res, 0); err != nil {
		t.Fatal(err)
	}
	_ = d.sink.PublishMask(1, make([]byte, 10<<10), 0) // the JSON topic refuses it: too large
	if got := node().MasksTooLarge(); got != 1 {
		t.Errorf("%d masks sent as null by the edge node, want 1", got)
	}
	tooLarge := func(when string) {
		t.Helper()
		if got := d.sink.state().TooLarge.Image; got != 1 {
			t.Errorf("%s: the JSON connection counts %d images too large, want 1 (the mask topic's refusal alone)", when, got)
		}
		m := scrapeSeries(r.httpURL())
		for _, sink := range []string{"json", "sparkplug"} {
			key := `inspectd_mqtt_too_large_total{class="image",sink="` + sink + `"}`
			if got := m[key]; got != 1 {
				t.Errorf("%s: %s %v, want 1", when, key, got)
			}
		}
	}
	tooLarge("after the mask")

	// A reload that rebuilds the connections keeps the counters (they
	// went back to 0).
	before := node()
	r.write(strings.Replace(yaml, "mqtt: {", "mqtt: {keepalive: 20s, ", 1))
	r.hup()
	r.waitFor("the connections rebuilt by the reload", func() bool { n := node(); return n != nil && n != before })
	tooLarge("after a reload")
}
