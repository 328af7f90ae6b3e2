// Package remote is inspectd's remote control: the commands that plants send
// to one box, a group or a whole fleet (configuration pushes, refits,
// thresholds, rollbacks, snapshots, status), independent of the transport
// that carries them. The JSON-over-MQTT front end and the Sparkplug B front
// end both turn what they receive into a Request and hand it to a Submitter;
// each Request gets exactly one Reply.
package remote

import (
	"bytes"
	"encoding/json"
)

// Request is one command as a front end hands it over.
type Request struct {
	// ID correlates the reply; 1 to 128 characters. Front ends leave it
	// empty: the dispatcher reads it from Body's "id" (a front end whose
	// transport carries the id outside the body may set it instead; when
	// both are present they must agree).
	ID string
	// Name is the command, for example "config", "refit" or "status".
	Name string
	// Body is the command's JSON object as it arrived (for the JSON front
	// end the exact payload bytes, id included; a front end that speaks
	// another encoding builds an equivalent object), or a signed Envelope
	// wrapping it. Submit copies it.
	Body json.RawMessage
	// Origin says where it came from, for logs and replies: "device",
	// "fleet", "group/<name>" or "sparkplug".
	Origin string
	// Retained is true when the transport delivered the message with the
	// retain flag: such a request is never executed.
	Retained bool
	// Backlog is true when the broker kept the message for this client's
	// session while it was not connected, and delivered it as the
	// connection came up (mqttpub.Message.Backlog).
	Backlog bool
	// Release, when set, is called once the request is durable (recorded
	// in the request table, so that a crash from then on answers it
	// "interrupted" after the restart) or answered without being
	// recorded: a front end whose transport redelivers what it has not
	// acknowledged (MQTT QoS 1) acknowledges it then. It is called once.
	Release func()
}

// Reply is the one answer to a Request. It is published as a JSON object
// {"id","ok","error",...} where Data's keys are merged in.
type Reply struct {
	ID    string
	OK    bool
	Error string
	// Data holds the command's results; keys "id", "ok" and "error" are
	// reserved. A refusal or failure carries "code" (CodeInvalid, CodeBusy,
	// ...) and, where one field is to blame, "field"; a reply repeated for
	// a repeated request id carries "duplicate": true.
	Data map[string]any
}

// MarshalJSON writes the reply as one flat object.
func (r Reply) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(r.Data)+3)
	for k, v := range r.Data {
		m[k] = v
	}
	m["id"] = r.ID
	m["ok"] = r.OK
	if r.Error != "" {
		m["error"] = r.Error
	}
	// Without HTML escaping: a reply is read by programs and people, and
	// "\u003credacted\u003e" defeated a grep for <redacted>.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Submitter accepts requests from a front end. It must not block for long
// (the MQTT message handler calls it): it enqueues the request and calls
// done exactly once, later, from another goroutine, with the reply.
// *Dispatcher implements it.
type Submitter interface {
	Submit(req Request, done func(Reply))
}
