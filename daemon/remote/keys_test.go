package remote

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
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

// TestEnvelopeErrorsPlaced: a refusal of a signed envelope's own field
// says where in the message that field's value starts (its key, for an
// unknown or duplicate key), in lines and columns of characters, as the
// refusals of the command inside do; they named the field alone, so in a
// pretty-printed envelope an operator searched for it.
func TestEnvelopeErrorsPlaced(t *testing.T) {
	ops, mallory, qa := newSigner("ops", 1), newSigner("ops", 2), newSigner("qa", 3)
	r := newRig(t, "remote: {trust_keys: {ops: "+ops.pub()+"}}\n")
	now := r.clk.Now()
	env := string(ops.sign(t, "status", "device/box1", `{"id":"s1"}`, now))
	sig := regexp.MustCompile(`"sig":\s*"[^"]*"`)
	// where is "line L, column C" of key's value in body (of the key
	// itself with key true), found by hand.
	where := func(body, name string, key bool) string {
		i := strings.Index(body, `"`+name+`"`)
		if !key {
			i += len(name) + 2
			for body[i] == ':' || body[i] == ' ' {
				i++
			}
		}
		line := 1 + strings.Count(body[:i], "\n")
		col := 1 + utf8.RuneCountInString(body[strings.LastIndex(body[:i], "\n")+1:i])
		return fmt.Sprintf("line %d, column %d", line, col)
	}
	var indented bytes.Buffer
	json.Indent(&indented, []byte(env), "", "  ")
	for _, tc := range []struct {
		name, cmd, body, field, code, want string
	}{
		{"sig not base64", "status", sig.ReplaceAllString(env, `"sig":"!!"`), "sig", CodeInvalid, "is not the standard base64"},
		{"sig not verifying", "status", string(mallory.sign(t, "status", "device/box1", `{"id":"s1"}`, now)), "sig", CodeUnauthorized, "does not verify"},
		{"key not trusted", "status", string(qa.sign(t, "status", "device/box1", `{"id":"s1"}`, now)), "key", CodeUnauthorized, "not one of this box's trust keys"},
		{"payload not a string", "status", regexp.MustCompile(`"payload":"[^"]*"`).ReplaceAllString(env, `"payload":5`), "payload", CodeInvalid, "expected a string"},
		{"ts not a number", "status", regexp.MustCompile(`"ts":\d+`).ReplaceAllString(env, `"ts":"now"`), "ts", CodeInvalid, "expected an integer"},
		{"nonce too short", "status", regexp.MustCompile(`"nonce":"[^"]*"`).ReplaceAllString(env, `"nonce":"short"`), "nonce", CodeInvalid, "16 to 64 characters"},
		{"command of another topic", "trigger", env, "command", CodeUnauthorized, `signed for command "status"`},
		{"unknown field", "status", strings.TrimSuffix(env, "}") + ",\n\"extra\":1}", "extra", CodeInvalid, "unknown field"},
		{"key twice in two cases", "status", strings.Replace(env, `"key":"ops"`, `"key":"ops", "KEY":"ops"`, 1), "KEY", CodeInvalid, "duplicate key"},
		{"pretty-printed", "status", sig.ReplaceAllString(indented.String(), `"sig": "!!"`), "sig", CodeInvalid, "is not the standard base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := r.wait(r.submit(tc.cmd, "device", []byte(tc.body)))
			key := tc.field == "extra" || tc.field == "KEY"
			mustFail(t, rep, tc.code, "envelope."+tc.field+" at "+where(tc.body, tc.field, key)+": ", tc.want)
			if field(rep) != "envelope."+tc.field {
				t.Errorf("field %q, want envelope.%s", field(rep), tc.field)
			}
		})
	}
	// The pretty-printed envelope's sig is on its ninth line, its value
	// after `  "sig": `.
	rep := r.wait(r.submit("status", "device", []byte(sig.ReplaceAllString(indented.String(), `"sig": "!!"`))))
	mustFail(t, rep, CodeInvalid, "envelope.sig at line 9, column 10: is not the standard base64")
	// A duplicate key keeps checkJSON's place, said once.
	dup := strings.Replace(env, `"key":"ops"`, `"key":"ops","key":"ops"`, 1)
	rep = r.wait(r.submit("status", "device", []byte(dup)))
	mustFail(t, rep, CodeInvalid, fmt.Sprintf("envelope.key: duplicate key at line 1, column %d", strings.Index(dup, `"key"`)+len(`"key":"ops",`)+1))
	if strings.Count(rep.Error, "line") != 1 {
		t.Errorf("duplicate key placed twice: %q", rep.Error)
	}
}
