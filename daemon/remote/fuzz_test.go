package remote

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/model/sysmem"
)

// FuzzParseEnvelope feeds the envelope parser arbitrary messages: it must
// never panic, what it accepts must survive a marshal round trip, and a
// signature must verify only over exactly the signed bytes.
func FuzzParseEnvelope(f *testing.F) {
	ops := newSigner("ops", 1)
	at := time.Unix(1795000000, 0)
	for _, s := range []string{
		string(ops.sign(f, "config", "fleet", `{"id":"c1","config":{"model":{"features":64}}}`, at)),
		string(ops.sign(f, "refit", "device/box1", `{"id":"f1","count":200}`, at)),
		string(ops.sign(f, "status", "group/line3", ``, at)),
		`{"envelope":"inspectd-sig-v1"}`, `{"envelope":null}`, `{"envelope":"inspectd-sig-v1","ts":-1}`,
		`{"envelope":"inspectd-sig-v1","key":"a","target":"*","command":"c","ts":1,"nonce":"AAAAAAAAAAAAAAAA","payload":"!!","sig":""}`,
		`{"envelope":"inspectd-sig-v1","envelope":"inspectd-sig-v1"}`, `[]`, ``, `{`,
		strings.Replace(string(ops.sign(f, "status", "*", `{"id":"s1"}`, at)), `"sig"`, `"Sig"`, 1),
		strings.Replace(string(ops.sign(f, "status", "*", `{"id":"s1"}`, at)), `"key":"ops"`, `"key":"ops",`+"\n"+`"KEY":"ops"`, 1),
		`{"envelope":"inspectd-sig-v1","key":"ops","target":"*","command":"status","ts":1,"nonce":"AAAAAAAAAAAAAAAA","payload":5,"sig":""}`,
		"{\n  \"envelope\": \"inspectd-sig-v1\",\n  \"key\": \"ops\",\n  \"sig\": \"!!\",\n  \"éxtra\": 1\n}",
	} {
		f.Add([]byte(s))
	}
	var indented bytes.Buffer
	json.Indent(&indented, ops.sign(f, "config", "fleet", `{"id":"c1","config":"model:\n  features: 64\n"}`, at), "", "  ")
	f.Add(indented.Bytes())
	pub := ops.priv.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, payload, err := ParseEnvelope(data)
		if err != nil {
			var re *Error
			if e != nil || payload != nil || !errors.As(err, &re) || re.Code == "" {
				t.Fatalf("refusal %v with envelope %v, or without a code", err, e)
			}
			// As authenticate words it: still the refusal, of the
			// envelope's field.
			placed := placeField(err, data, "envelope.")
			var pe *Error
			if !errors.As(placed, &pe) || pe.Code != re.Code || (re.Field != "") != strings.HasPrefix(pe.Field, "envelope.") {
				t.Fatalf("placed %v as %v", err, placed)
			}
			return
		}
		var keys map[string]json.RawMessage
		json.Unmarshal(data, &keys)
		for k := range keys {
			if !slices.Contains(jsonFields(reflect.TypeFor[Envelope]()), k) {
				t.Fatalf("accepted key %q of %q", k, data)
			}
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, p2, err := ParseEnvelope(b)
		if err != nil || !reflect.DeepEqual(e, e2) || !bytes.Equal(payload, p2) {
			t.Fatalf("round trip: %v", err)
		}
		verified := e.Verify(pub, payload) == nil
		if verified && len(payload) > 0 {
			flipped := bytes.Clone(payload)
			flipped[0] ^= 1
			if e.Verify(pub, flipped) == nil {
				t.Fatal("a signature verified over a changed payload")
			}
		}
	})
}

// FuzzSignVerify signs arbitrary payloads for arbitrary commands and
// targets: a valid envelope must verify, and carrying it to another
// command must not.
func FuzzSignVerify(f *testing.F) {
	f.Add([]byte(`{"id":"c1"}`), "config", "fleet")
	f.Add([]byte{}, "status", "*")
	f.Add([]byte("\n\n"), "a", "device/x")
	ops := newSigner("ops", 1)
	pub := ops.priv.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, payload []byte, command, target string) {
		e, err := Sign(ops.priv, "ops", target, command, payload, time.Unix(1795000000, 0), bytes.NewReader(make([]byte, 16)))
		if err != nil {
			return // a command or target Sign refuses
		}
		b, _ := json.Marshal(e)
		e2, p2, err := ParseEnvelope(b)
		if err != nil || !bytes.Equal(p2, payload) {
			t.Fatalf("signed envelope refused: %v", err)
		}
		if err := e2.Verify(pub, p2); err != nil {
			t.Fatalf("signed envelope does not verify: %v", err)
		}
		other := *e2
		other.Command += "x"
		if other.Verify(pub, p2) == nil {
			t.Fatal("the signature verified for another command")
		}
	})
}

// FuzzPrepare feeds every command's parser arbitrary bodies: it must never
// panic, a refusal must be an *Error with a code, and checkJSON must accept
// only valid JSON objects. Plans are not run.
func FuzzPrepare(f *testing.F) {
	for _, s := range []string{
		`{"id":"s1"}`, `{"id":"c1","config":{"mqtt":{"result_qos":1}},"version":3,"mode":"merge","dry_run":true}`,
		`{"id":"c2","config":"model:\n  features: 64\n"}`, `{"id":"c3","config":"a: &a [1]\nb: *a\n"}`,
		`{"id":"f1","count":20,"interval":"2s","validate":5,"max_false_alarm_rate":0.1,"features":100}`,
		`{"id":"f2","folder":"/nonexistent"}`, `{"id":"t1","image":17.5,"pixel":15}`, `{"id":"r1","target":"config"}`,
		`{"id":"k1","keys":{"ops":"` + newSigner("ops", 1).pub() + `"}}`, `{"id":"g1","format":"yaml"}`,
		`{"id":1}`, `{"id":"x","id":"y"}`, `{"ID":"t7","Image":18}`, `{"id":"t10","ID":"t11","image":19}`, `{"id":"c7","Config":{}}`, `{"id":"x","count":1e400}`, `[]`, ``,
		"{\"id\":\"w6\",\n\"config\":\n{\"mqtt\":\n{\"result_qos\"\n:\n\"one\"}}}", `{"id":"v1","config":{"mqtt":{"username":"héllo✓✓","treshold":1}}}`,
		`{"id":"n1","config":{"model":{"path":5},"mqtt":{"brokers":["tcp://a:1",7],"username":true}}}`, `{"id":"d1","config":{"mqtt":{"result_qos":1,"result_qos":2}}}`,
		"{\"id\": \"y2\",\n  \"config\": \"mqtt:\\n  reslt_qos: 1\\n\"\n}", `{"id":"y3","mode":"replace","config":"model: [\n"}`,
		`{"id":"m1","config":{"mqtt":{"result_qos":1,}}}`, `{"id":"m2","config":{"mqtt":`, `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	} {
		f.Add([]byte(s))
	}
	ctl := newController(f, "box1", "remote: {allow_unsigned: true, max_refit_frames: 3}\n")
	d, err := New(Options{Controller: ctl, DeviceID: "box1", Logger: slog.New(slog.DiscardHandler),
		Memory: func() (sysmem.Memory, error) { return sysmem.Memory{Bytes: 1 << 30, Source: "fuzz"}, nil }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close(f.Context()) })
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkJSON(body) == nil {
			if !json.Valid(body) || bytes.TrimLeft(body, " \t\r\n")[0] != '{' {
				t.Fatalf("checkJSON accepted %q", body)
			}
		}
		if _, err := requestID(body, ""); err != nil {
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("requestID: %T %v", err, err)
			}
		}
		for _, c := range commands() {
			env := &Env{Ctl: ctl, Log: slog.New(slog.DiscardHandler), Now: time.Now, Name: c.Name(), ID: "fuzz", Origin: "device", d: d}
			plan, err := c.Prepare(env, body)
			if err != nil {
				var re *Error
				if plan != nil || !errors.As(err, &re) || re.Code == "" {
					t.Fatalf("%s: refusal %T %v without a code, or with a plan", c.Name(), err, err)
				}
				continue
			}
			if plan == nil || plan.Run == nil {
				t.Fatalf("%s: no plan and no error", c.Name())
			}
			// Accepted: every key names a field exactly ("ID" is not "id").
			var keys map[string]json.RawMessage
			json.Unmarshal(body, &keys)
			for k := range keys {
				if !slices.Contains(jsonFields(reflect.TypeOf(c.args()).Elem()), k) {
					t.Fatalf("%s: accepted key %q of %q", c.Name(), k, body)
				}
			}
		}
	})
}
