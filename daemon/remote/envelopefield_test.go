package remote

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A signature refused for its time or its nonce names the envelope's field
// as every other refusal of an envelope field does (envelope.ts,
// envelope.nonce, where its value starts in the message), not a bare "ts"
// or "nonce" that reads as a field of the command's body.
func TestEnvelopeTimeAndNonceRefusalsNameTheEnvelopeField(t *testing.T) {
	ops := newSigner("ops", 1)
	r := newRig(t, "remote: {trust_keys: {ops: "+ops.pub()+"}}\n")

	stale := ops.sign(t, "status", "*", `{"id":"s1"}`, r.clk.Now().Add(-time.Hour))
	rep := r.wait(r.submit("status", "device", stale))
	mustFail(t, rep, CodeUnauthorized, "stale: signed at")
	if field(rep) != "envelope.ts" || !strings.HasPrefix(rep.Error, "envelope.ts at line 1, column ") {
		t.Errorf("stale: field %q, error %q: want envelope.ts, placed", field(rep), rep.Error)
	}
	ahead := ops.sign(t, "status", "*", `{"id":"s2"}`, r.clk.Now().Add(time.Hour))
	rep = r.wait(r.submit("status", "device", ahead))
	mustFail(t, rep, CodeUnauthorized, "from the future")
	if field(rep) != "envelope.ts" {
		t.Errorf("from the future: field %q: want envelope.ts", field(rep))
	}

	// Two signatures with the same nonce, over other bodies: the second
	// is a replay.
	nonce := bytes.Repeat([]byte{7}, 16)
	signWith := func(body string) []byte {
		e, err := Sign(ops.priv, ops.name, "*", "status", []byte(body), r.clk.Now(), bytes.NewReader(nonce))
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if rep := r.wait(r.submit("status", "device", signWith(`{"id":"s3"}`))); !rep.OK {
		t.Fatal(rep)
	}
	rep = r.wait(r.submit("status", "device", signWith(`{"id":"s4"}`)))
	mustFail(t, rep, CodeUnauthorized, "replayed")
	if field(rep) != "envelope.nonce" || !strings.HasPrefix(rep.Error, "envelope.nonce at line 1, column ") {
		t.Errorf("replayed: field %q, error %q: want envelope.nonce, placed", field(rep), rep.Error)
	}
}

// TestTrustKeysBootstrapRefusalPlacesTheEnvelopeField: on a box with no
// trust keys yet, a trust-keys request signed by a key it does not
// install was refused naming envelope.key but not where it is
// ("envelope.key: \"qa\" is not among ..."), unlike every other refusal
// of an envelope field; it now says where the key's value starts.
func TestTrustKeysBootstrapRefusalPlacesTheEnvelopeField(t *testing.T) {
	ops, qa := newSigner("ops", 1), newSigner("qa", 2)
	r := newRig(t, unsigned)
	body := `{"id":"k1","keys":{"ops":"` + ops.pub() + `"}}`
	rep := r.wait(r.submit("trust-keys", "device", qa.sign(t, "trust-keys", "*", body, r.clk.Now())))
	mustFail(t, rep, CodeUnauthorized, `"qa" is not among the keys this request installs`)
	if field(rep) != "envelope.key" || !strings.HasPrefix(rep.Error, "envelope.key at line 1, column ") {
		t.Errorf("field %q, error %q: want envelope.key, placed", field(rep), rep.Error)
	}
}

// TestUnsignedUnknownCommandSaysItIsNoCommand: an unsigned request for a
// command this box does not have (a typo, "stätus") was told to be signed
// with `inspectd sign --command stätus`, and the signed copy then got
// unknown_command; the refusal now says at once that there is no such
// command, naming the known ones, and gives no advice to sign it.
func TestUnsignedUnknownCommandSaysItIsNoCommand(t *testing.T) {
	ops := newSigner("ops", 1)
	r := newRig(t, "remote: {trust_keys: {ops: "+ops.pub()+"}}\n")
	rep := r.wait(r.submit("stätus", "device", []byte(`{"id":"u1"}`)))
	mustFail(t, rep, CodeUnauthorized, "unsigned", `"stätus" is no command (known: `, "status")
	if strings.Contains(rep.Error, "--command stätus") {
		t.Errorf("error %q advises signing a command that does not exist", rep.Error)
	}
	// A known one is still told how to sign it.
	mustFail(t, r.wait(r.submit("status", "device", []byte(`{"id":"u2"}`))), CodeUnauthorized, "sign with `inspectd sign --key FILE --command status`")
}
