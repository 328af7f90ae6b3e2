package remote

import (
	"strings"
	"testing"
)

// TestKeysMatchedExactly: keys of command bodies and envelopes name their
// fields exactly, as configuration keys do. encoding/json matched them
// regardless of case: {"ID":"t7","Image":18} set the threshold, a key
// given twice in two cases took the last, and {"id":"t10","ID":"t11"}
// was answered as t11 while its sender waited for t10.
func TestKeysMatchedExactly(t *testing.T) {
	ops := newSigner("ops", 1)
	r := newRig(t, "remote: {allow_unsigned: true, trust_keys: {ops: "+ops.pub()+"}}\n")
	r.ctl.setModel(t)
	signed := func(cmd, body string) Reply {
		return r.wait(r.submit(cmd, "device", ops.sign(t, cmd, "device/box1", body, r.clk.Now())))
	}
	for _, tc := range []struct {
		name, cmd, body string
		id, field       string
		parts           []string
	}{
		{"mis-cased id and field", "threshold", `{"ID":"t7","Image":18}`, "", "ID",
			[]string{`unknown fields "ID" (did you mean "id"?), "Image" (did you mean "image"?) (this command takes: id, image, pixel); id: missing`}},
		{"mis-cased field", "threshold", `{"id":"t8","Image":18}`, "t8", "Image",
			[]string{`unknown field (did you mean "image"? keys are case-sensitive; this command takes: id, image, pixel)`}},
		{"field twice in two cases", "threshold", `{"id":"t9","image":19,"IMAGE":25}`, "t9", "IMAGE",
			[]string{`duplicate key (also given as "image"`}},
		{"id twice in two cases", "threshold", `{"id":"t10","ID":"t11","image":19}`, "t10", "ID",
			[]string{`duplicate key (also given as "id"`}},
		{"mis-cased id first", "threshold", `{"ID":"t11","id":"t10","image":19}`, "t10", "ID",
			[]string{`unknown field (did you mean "id"? keys are case-sensitive; this command takes: id, image, pixel)`}},
		{"mis-cased config", "config", `{"id":"c7","Config":{"mqtt":{"result_qos":1}}}`, "c7", "Config",
			[]string{`did you mean "config"?`}},
		{"mis-cased trigger id", "trigger", `{"ID":"p6"}`, "", "ID", []string{`unknown field "ID" (did you mean "id"?)`, "id: missing"}},
		{"mis-cased trust keys", "trust-keys", `{"id":"k1","Keys":{"ops":"` + ops.pub() + `"}}`, "k1", "Keys", []string{`did you mean "keys"?`}},
		// The pushed configuration's own keys were strict already.
		{"mis-cased config section", "config", `{"id":"c8","config":{"MQTT":{"result_qos":1}}}`, "c8", "config.MQTT", []string{`unknown key "MQTT"`}},
		{"mis-cased config key", "config", `{"id":"c9","config":{"mqtt":{"Result_QoS":1}}}`, "c9", "config.mqtt.Result_QoS", []string{`unknown key "Result_QoS"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := signed(tc.cmd, tc.body)
			mustFail(t, rep, CodeInvalid, tc.parts...)
			if rep.ID != tc.id || field(rep) != tc.field {
				t.Errorf("reply id %q field %q, want %q and %q (error %q)", rep.ID, field(rep), tc.id, tc.field, rep.Error)
			}
		})
	}
	// Unsigned bodies, on a box that takes them.
	u := newRig(t, unsigned)
	u.ctl.setModel(t)
	for _, tc := range []struct{ cmd, body, id, field, part string }{
		{"threshold", `{"ID":"t7","Image":18}`, "", "ID", `"ID" (did you mean "id"?)`},
		{"threshold", `{"id":"t9","image":19,"IMAGE":25}`, "t9", "IMAGE", `duplicate key (also given as "image"`},
		{"threshold", `{"id":"t10","ID":"t11","image":19}`, "t10", "ID", `duplicate key (also given as "id"`},
		{"config", `{"id":"c7","Config":{"mqtt":{"result_qos":1}}}`, "c7", "Config", `did you mean "config"?`},
		{"trigger", `{"ID":"p6"}`, "", "ID", `did you mean "id"?`},
	} {
		rep := u.do(tc.cmd, tc.body)
		mustFail(t, rep, CodeInvalid, tc.part)
		if rep.ID != tc.id || field(rep) != tc.field {
			t.Errorf("%s: reply id %q field %q, want %q and %q (error %q)", tc.body, rep.ID, field(rep), tc.id, tc.field, rep.Error)
		}
	}
	// Envelope keys too; the refusal goes to the id inside the payload.
	env := ops.sign(t, "status", "device/box1", `{"id":"s1"}`, r.clk.Now())
	for _, k := range []string{"sig", "payload", "ts"} {
		bad := strings.Replace(string(env), `"`+k+`":`, `"`+strings.ToUpper(k[:1])+k[1:]+`":`, 1)
		rep := r.wait(r.submit("status", "device", []byte(bad)))
		want := strings.ToUpper(k[:1]) + k[1:]
		mustFail(t, rep, CodeInvalid, `did you mean "`+k+`"?`)
		if field(rep) != "envelope."+want {
			t.Errorf("envelope with %q: field %q (error %q)", want, field(rep), rep.Error)
		}
		if id := map[string]string{"sig": "s1", "ts": "s1", "payload": ""}[k]; rep.ID != id {
			t.Errorf("envelope with %q: reply id %q, want %q", want, rep.ID, id)
		}
	}
	dup := strings.Replace(string(env), `"key":"ops"`, `"key":"ops","KEY":"ops"`, 1)
	rep := r.wait(r.submit("status", "device", []byte(dup)))
	mustFail(t, rep, CodeInvalid, `duplicate key (also given as "key"`)
	if field(rep) != "envelope.KEY" || rep.ID != "s1" {
		t.Errorf("envelope with key twice: field %q, id %q", field(rep), rep.ID)
	}
	if n := r.ctl.thresholds.Load() + u.ctl.thresholds.Load() + r.ctl.applies.Load() + u.ctl.applies.Load(); n != 0 {
		t.Errorf("refused requests reached the controller %d times", n)
	}
	// Spelt exactly, the same requests run.
	if rep := u.do("threshold", `{"id":"t12","image":18}`); !rep.OK {
		t.Errorf("threshold spelt exactly: %+v", rep)
	}
}
