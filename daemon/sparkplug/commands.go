package sparkplug

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/remote"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// MaxCommandPayload bounds an NCMD or DCMD payload; a command is a few
// metrics, and the decoder's memory grows with its input.
const MaxCommandPayload = 64 << 10

// MaxRefitFrames bounds Command/Refit Frames.
const MaxRefitFrames = 100_000

// The remote commands the DCMD writes map onto, with the JSON bodies the
// JSON front end receives for them (remote.Request.Body).
const (
	// CommandThreshold: {"id": "...", "image": <threshold>}.
	CommandThreshold = "threshold"
	// CommandTrigger: {"id": "<the trigger id>"}, as on the trigger topic.
	CommandTrigger = "trigger"
	// CommandRefit: {"id": "...", "count": <frames>}, count left out for
	// the daemon's default.
	CommandRefit = "refit"
	// CommandReboot: {"id": "..."}, for Node Control/Reboot = true. It is
	// not one of the dispatcher's commands: the Submitter decides whether
	// this box takes it, by the rule remote control applies to the other
	// writes (an NCMD carries no signature), and answers OK to go ahead;
	// OnReboot is called then. A restart is remote control: left open, any
	// client that reaches the broker could restart the box at will.
	CommandReboot = "reboot"
)

type thresholdBody struct {
	ID    string  `json:"id"`
	Image float64 `json:"image"`
}

// triggerBody leaves out the optional "time" of the JSON trigger: a
// Sparkplug command is QoS 0 on a clean session, so no broker holds it
// while inspectd is down, and a host's clock need not agree with the
// box's to within capture.trigger.max_age.
type triggerBody struct {
	ID string `json:"id"`
}

type refitBody struct {
	ID    string `json:"id"`
	Count uint32 `json:"count,omitempty"`
}

type rebootBody struct {
	ID string `json:"id"`
}

// action is one validated command metric, to run once all are valid.
type action struct {
	metric int // catalog index
	dev    bool
	val    sppb.Value
	req    *remote.Request // for the remote commands
}

// onCommand handles an NCMD (dev false) or DCMD. Every metric is checked
// before anything happens: a malformed payload, a retained message, an
// unknown metric, a read-only one, a wrong datatype or value is refused
// with one log line and no effect.
func (n *Node) onCommand(dev bool, m mqtt.Message) {
	topic := m.Topic()
	if len(m.Payload()) == 0 && !m.Retained() {
		// The publish that clears a retained command, which the refusal
		// of one tells the user to send: brokers hand it to live
		// subscribers with the retain flag cleared. Nothing to refuse.
		n.log.Debug("sparkplug: empty command ignored (a retained command's clearing)", "topic", topic)
		return
	}
	acts, err := n.checkCommand(dev, m.Payload(), m.Retained())
	if err != nil {
		n.log.Warn("sparkplug command refused", "topic", topic, "error", err)
		return
	}
	for _, a := range acts {
		n.apply(a)
	}
}

// checkCommand decodes a command payload and validates every metric in it.
func (n *Node) checkCommand(dev bool, payload []byte, retained bool) ([]action, error) {
	switch {
	case retained:
		// A retained command would run again on every connect; Sparkplug
		// commands are never retained (tck-id-topics-ncmd-mqtt).
		return nil, errors.New("retained message; commands must be published with retain false (clear it with an empty retained publish)")
	case len(payload) > MaxCommandPayload:
		return nil, fmt.Errorf("payload is %d bytes, more than %d", len(payload), MaxCommandPayload)
	}
	var p sppb.Payload
	if err := sppb.Unmarshal(payload, &p); err != nil {
		return nil, err
	}
	if len(p.Metrics) == 0 {
		return nil, errors.New("no metrics to write")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c := &n.node
	if dev {
		c = &n.dev
	}
	acts := make([]action, 0, len(p.Metrics))
	frames := uint32(n.dev.m[dRefitFrames].val.Uint) // a Refit after Refit Frames in one DCMD uses the new count
	for i := range p.Metrics {
		m := &p.Metrics[i]
		a, err := n.checkWrite(c, dev, m, &frames)
		if err != nil {
			what := fmt.Sprintf("metric %q", m.Name)
			if m.HasAlias {
				what = fmt.Sprintf("metric alias %d", m.Alias)
				if m.Name != "" {
					what += fmt.Sprintf(" (%q)", m.Name)
				}
			}
			return nil, fmt.Errorf("metrics[%d], %s: %w", i, what, err)
		}
		acts = append(acts, a)
	}
	return acts, nil
}

// checkWrite validates one metric of a command against the catalog.
func (n *Node) checkWrite(c *catalog, dev bool, m *sppb.Metric, frames *uint32) (action, error) {
	i, ok := c.lookup(m)
	if !ok {
		kind := "edge node (NCMD)"
		if dev {
			kind = "device (DCMD)"
		}
		return action{}, fmt.Errorf("not a metric of this %s", kind)
	}
	d := c.m[i].def
	if !writable(dev, i) {
		return action{}, fmt.Errorf("%s is read-only", d.name)
	}
	if m.DataType != sppb.TypeUnknown && m.DataType != d.dt {
		return action{}, fmt.Errorf("%s has datatype %s, the command says %s", d.name, d.dt, m.DataType)
	}
	if m.IsNull || m.Value.Kind != d.dt.Kind() {
		got := m.Value.Kind.String()
		if m.IsNull {
			got = "null"
		}
		return action{}, fmt.Errorf("%s takes a %s %s, the command has %s", d.name, d.dt, d.dt.Kind(), got)
	}
	a := action{metric: i, dev: dev, val: m.Value}
	switch {
	case !dev && i == nReboot && m.Value.Bool:
		if n.o.OnReboot == nil {
			return a, errors.New("Node Control/Reboot is not enabled in this daemon")
		}
		id := n.requestID()
		a.req = &remote.Request{ID: id, Name: CommandReboot, Body: mustJSON(rebootBody{ID: id})}
	case dev && i == dThreshold:
		v := m.Value.Float64
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			return a, fmt.Errorf("threshold %v must be a finite number above 0", v)
		}
		id := n.requestID()
		a.req = &remote.Request{ID: id, Name: CommandThreshold, Body: mustJSON(thresholdBody{ID: id, Image: v})}
	case dev && i == dTrigger:
		// The same rules as a trigger id on the JSON topic, in the
		// metric's own words (the value is a string, not JSON).
		if err := mqttpub.CheckTriggerID(m.Value.Str); err != nil {
			return a, fmt.Errorf("Command/Trigger: the trigger id %v", err)
		}
		body := mustJSON(triggerBody{ID: m.Value.Str})
		a.req = &remote.Request{ID: m.Value.Str, Name: CommandTrigger, Body: body}
	case dev && i == dRefit && m.Value.Bool:
		id := n.requestID()
		a.req = &remote.Request{ID: id, Name: CommandRefit, Body: mustJSON(refitBody{ID: id, Count: *frames})}
	case dev && i == dRefitFrames:
		if m.Value.Uint > MaxRefitFrames {
			return a, fmt.Errorf("Command/Refit Frames %d is more than %d", m.Value.Uint, MaxRefitFrames)
		}
		*frames = uint32(m.Value.Uint)
	}
	if a.req != nil {
		if n.o.Submitter == nil {
			return a, fmt.Errorf("%s: remote commands are not enabled in this daemon", d.name)
		}
		a.req.Origin = remote.OriginSparkplug
	}
	return a, nil
}

// writable lists the metrics a host may write.
func writable(dev bool, i int) bool {
	if !dev {
		return i == nRebirth || i == nReboot
	}
	return i == dThreshold || i == dTrigger || i == dRefit || i == dRefitFrames
}

// apply runs one validated write.
func (n *Node) apply(a action) {
	switch {
	case !a.dev && a.metric == nRebirth:
		if !a.val.Bool {
			return
		}
		n.mu.Lock()
		if n.hostAwayLocked() {
			// No birth may go before the primary host is online; the one it
			// comes with is the rebirth asked for. Said, since the host
			// that asked otherwise sees nothing happen.
			n.log.Info("sparkplug rebirth asked while the primary host is offline: the births go once it is online",
				"primary_host", n.o.PrimaryHostID)
			n.mu.Unlock()
			return
		}
		// tck-id-operational-behavior-data-commands-rebirth-action-1..3:
		// no more data, then NBIRTH (same bdSeq) and DBIRTH.
		n.born = false
		n.birthLocked("rebirth requested")
		n.mu.Unlock()
	case a.dev && a.metric == dRefitFrames:
		n.mu.Lock()
		n.dev.set(dRefitFrames, a.val, nowMS())
		_ = n.flushLocked(&n.dev, n.topics.DDATA)
		n.mu.Unlock()
	case a.req != nil:
		req := *a.req
		n.log.Info("sparkplug command", "command", req.Name, "id", req.ID)
		n.o.Submitter.Submit(req, func(r remote.Reply) { n.reply(req, r) })
	}
}

// reply publishes a command's outcome: Command/Last Command, Last ID, Last
// OK and Last Reply (the reply's JSON, as the JSON front end publishes it),
// and for a trigger Command/Trigger, the id written. A reboot the
// Submitter allowed starts once its reply is out.
func (n *Node) reply(req remote.Request, r remote.Reply) {
	n.publishReply(req, r)
	if req.Name == CommandReboot && r.OK {
		n.log.Warn("sparkplug Node Control/Reboot taken: restarting", "id", req.ID)
		n.o.OnReboot()
	}
}

func (n *Node) publishReply(req remote.Request, r remote.Reply) {
	if !r.OK && r.Data["code"] == nil {
		// Every failed reply says its code (remote.Reply); the dispatcher
		// gives "failed" to a failure without one of its own, and a
		// Submitter that answers outside it (the daemon's trigger intake)
		// gets the same, so Last Reply is the JSON front end's object.
		data := make(map[string]any, len(r.Data)+1)
		for k, v := range r.Data {
			data[k] = v
		}
		data["code"] = remote.CodeFailed
		r.Data = data
	}
	text, err := json.Marshal(r)
	if err != nil {
		text = mustJSON(map[string]any{"id": r.ID, "ok": r.OK, "error": r.Error})
	}
	if len(text) > maxReplyText {
		// Cut short, the JSON would not parse: the reply's outcome stays,
		// with where the whole of it is.
		short := map[string]any{"id": clip(r.ID, maxText), "ok": r.OK, "truncated": true,
			"note": fmt.Sprintf("the reply is %d bytes, over the %d this metric carries", len(text), maxReplyText)}
		if r.Error != "" {
			short["error"] = clip(r.Error, maxText)
		}
		text = mustJSON(short)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	now := nowMS()
	d := &n.dev
	if req.Name == CommandTrigger {
		d.set(dTrigger, sppb.StringValue(req.ID), now)
	}
	// Sent even when equal to the last reply: each reply is news.
	d.put(dLastCommand, sppb.StringValue(req.Name), now)
	d.put(dLastID, sppb.StringValue(req.ID), now)
	d.put(dLastOK, sppb.BoolValue(r.OK), now)
	d.put(dLastReply, sppb.StringValue(string(text)), now)
	_ = n.flushLocked(d, n.topics.DDATA)
}

// requestID makes the id of a remote request that has no id of its own:
// unique across restarts (remote answers a repeated id from its store).
func (n *Node) requestID() string {
	n.reqs++
	return fmt.Sprintf("sparkplug-%d-%d", time.Now().UnixMilli(), n.reqs)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil { // only strings and finite numbers go in
		panic("sparkplug command body: " + err.Error())
	}
	return b
}
