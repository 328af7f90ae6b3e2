package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/statelock"
)

const unsigned = "remote: {allow_unsigned: true}\n"

func TestRequestRefusalsNameTheField(t *testing.T) {
	r := newRig(t, unsigned)
	for _, tc := range []struct {
		name, cmd, body string
		code, field     string
		parts           []string
	}{
		{"not JSON", "status", "status please", CodeInvalid, "", []string{"malformed JSON at line 1, column 1"}},
		{"empty", "status", "", CodeInvalid, "", []string{"empty message"}},
		{"unclosed", "status", "{\"id\":\"s1\",\n", CodeInvalid, "", []string{"malformed JSON at line 2, column 1: unexpected end of the message"}},
		{"not an object", "status", `["s1"]`, CodeInvalid, "", []string{"expected a JSON object", "got a list"}},
		{"trailing data", "status", `{"id":"s1"} {}`, CodeInvalid, "", []string{"unexpected data after the JSON object"}},
		{"duplicate key", "threshold", "{\"id\":\"t1\",\n\"image\":1,\n\"image\":2}", CodeInvalid, "image", []string{"duplicate key at line 3, column 1"}},
		{"duplicate key on one line", "threshold", `{"id":"t2","image":1,"image":2}`, CodeInvalid, "image", []string{"duplicate key at line 1, column 22"}},
		{"syntax error mid-line", "status", `{"id":"s2" "x":1}`, CodeInvalid, "", []string{"malformed JSON at line 1, column 12: invalid character"}},
		{"bad value mid-line", "status", `{"id":x}`, CodeInvalid, "", []string{"malformed JSON at line 1, column 7: invalid character 'x'"}},
		{"nested duplicate", "config", `{"id":"c1","config":{"model":{"features":1,"features":2}}}`, CodeInvalid, "config.model.features", []string{"duplicate key"}},
		{"unknown field", "status", `{"id":"s1","verbose":true}`, CodeInvalid, "verbose", []string{"unknown field (this command takes: id)"}},
		{"wrong type", "refit", `{"id":"f1","count":"many"}`, CodeInvalid, "count", []string{"expected an integer, got string"}},
		{"float for int", "refit", `{"id":"f1","count":2.5}`, CodeInvalid, "count", []string{"expected an integer, got 2.5"}},
		{"int overflow", "refit", `{"id":"f1","count":99999999999999999999}`, CodeInvalid, "count", []string{"expected an integer, got 99999999999999999999: out of range"}},
		{"trigger id blank", "trigger", `{"id":"  "}`, CodeInvalid, "id", []string{"blank"}},
		{"trigger time not RFC 3339", "trigger", `{"id":"p1","time":"yesterday"}`, CodeInvalid, "time", []string{`"yesterday" is not an RFC 3339 time`}},
		{"float overflow", "threshold", `{"id":"t3","image":1e400}`, CodeInvalid, "image", []string{"expected a number, got 1e400: out of range"}},
		{"id missing", "status", `{}`, CodeInvalid, "id", []string{"missing"}},
		// A misspelt id is named, not only the id found missing; a field
		// the command takes is not.
		{"id misspelt", "status", `{"idd":"s2"}`, CodeInvalid, "idd", []string{`unknown field "idd" (this command takes: id); id: missing`}},
		{"id missing, unknown fields", "config-get", `{"format":"yaml","FORMAT":"json","zz":1,"idd":"g1"}`, CodeInvalid, "FORMAT",
			[]string{`unknown fields "FORMAT" (did you mean "format"?), "idd", "zz" (this command takes: format, id); id: missing`}},
		{"id missing beside known fields", "threshold", `{"image":2}`, CodeInvalid, "id", []string{"id: missing"}},
		// Unknown and duplicate keys of a pushed configuration are named
		// by their path, as values out of range are.
		{"pushed unknown key", "config", `{"id":"c3","config":{"model":{"treshold":{}}}}`, CodeInvalid, "config.model.treshold",
			[]string{`unknown key "treshold" in section "model" (did you mean "threshold"?)`}},
		{"pushed unknown top-level key", "config", `{"id":"c4","config":{"modle":{}}}`, CodeInvalid, "config.modle", []string{`unknown key "modle" at the top level`}},
		{"pushed YAML unknown key", "config", `{"id":"c5","config":"mqtt:\n  result_qos: 1\n  retian: true\n"}`, CodeInvalid, "config.mqtt.retian",
			[]string{`line 3 of the "config" text (a string at line 1, column 21 of the command): unknown key "retian" in section "mqtt"`}},
		{"pushed YAML duplicate key", "config", `{"id":"c6","config":"model:\n  features: 1\n  features: 2\n"}`, CodeInvalid, "config.model.features",
			[]string{`line 3 of the "config" text (a string at line 1, column 21 of the command): duplicate key "features" in section "model"`}},
		// A field's name is bounded in the reply, and its control
		// characters dropped.
		{"unknown field of 10000 characters", "status", `{"id":"s5","` + strings.Repeat("k", 10000) + `":1}`, CodeInvalid, strings.Repeat("k", 64) + "...", []string{"unknown field"}},
		{"id misspelt with a control character", "status", `{"i\u0007dd":"s6"}`, CodeInvalid, "idd", []string{"unknown field", "id: missing"}},
		{"pushed unknown key of 1000 characters", "config", `{"id":"c7","config":{"model":{"` + strings.Repeat("k", 1000) + `":1}}}`, CodeInvalid,
			"config.model." + strings.Repeat("k", 58) + "...", []string{"unknown key"}},
		{"id not a string", "status", `{"id":7}`, CodeInvalid, "id", []string{"expected a string, got 7"}},
		{"id too long", "status", `{"id":"` + strings.Repeat("é", 129) + `"}`, CodeInvalid, "id", []string{"129 characters long; at most 128"}},
		{"id control character", "status", `{"id":"a\u0007"}`, CodeInvalid, "id", []string{"control character"}},
		{"not UTF-8", "status", "{\"id\":\"s\xff\xfe\"}", CodeInvalid, "", []string{"not valid UTF-8 (byte 8)"}},
		{"unknown command", "reboot", `{"id":"x1"}`, CodeUnknownCommand, "", []string{`unknown command "reboot"`, "config, config-confirm, config-get, refit"}},
		{"deep nesting", "config", `{"id":"c2","config":` + strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 41), CodeInvalid, "config" + strings.Repeat(".a", 31), []string{"nested more than 32 levels deep"}},
		{"threshold out of range", "threshold", `{"id":"t2","image":-1}`, CodeInvalid, "image", []string{"image threshold -1: want a number in"}},
		{"rollback target", "rollback", `{"id":"r1","target":"firmware"}`, CodeInvalid, "target", []string{`"firmware" is not model or config`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.log.count("remote command refused")
			rep := r.do(tc.cmd, tc.body)
			mustFail(t, rep, tc.code, tc.parts...)
			if field(rep) != tc.field {
				t.Errorf("field %q, want %q (error %q)", field(rep), tc.field, rep.Error)
			}
			if n := r.log.count("remote command refused") - before; n != 1 {
				t.Errorf("%d log lines for one refusal", n)
			}
		})
	}
	// Refusals carry the id when one could be read, and change nothing.
	if rep := r.do("refit", `{"id":"f9","count":"x"}`); rep.ID != "f9" {
		t.Errorf("reply id %q, want f9", rep.ID)
	}
	if n := r.ctl.applies.Load() + r.ctl.installs.Load() + r.ctl.thresholds.Load(); n != 0 {
		t.Errorf("refused requests reached the controller %d times", n)
	}
}

// TestUnsignedTypeErrorsPlaced: an unsigned command's value of the wrong
// type was refused naming the field alone ("count: expected an integer"),
// while a signed envelope's fields and a pushed document's problems said
// where in the message; it now says "count at line L, column C", where the
// value starts, and so does the command inside a signed envelope, in
// lines and columns of its decoded payload.
func TestUnsignedTypeErrorsPlaced(t *testing.T) {
	r := newRig(t, unsigned)
	for _, tc := range []struct {
		cmd, body, field, want string
	}{
		{"refit", `{"id":"f1","count":"many"}`, "count", "count at line 1, column 20: expected an integer, got string"},
		{"refit", "{\n  \"id\": \"f2\",\n  \"interval\": 5\n}", "interval", "interval at line 3, column 15: expected a string, got number"},
		{"config", "{\"id\":\"c1\",\n \"config\":5}", "config", "config at line 2, column 11: expected an object or a string of YAML, got 5"},
		{"config", `{"id":"c2","config":{},"confirm":300}`, "confirm", `confirm at line 1, column 34: expected a duration such as "5m", got 300`},
		{"config", `{"id":"c3","config":{},"dry_run":"yes"}`, "dry_run", "dry_run at line 1, column 34: expected true or false, got string"},
		{"threshold", `{"id":"t1","image":"é"}`, "image", "image at line 1, column 20: expected a number, got string"},
		{"status", `{"id":7}`, "id", "id at line 1, column 7: expected a string, got 7"},
	} {
		rep := r.do(tc.cmd, tc.body)
		mustFail(t, rep, CodeInvalid, tc.want)
		if field(rep) != tc.field {
			t.Errorf("%s: field %q, want %q", tc.body, field(rep), tc.field)
		}
		if strings.Count(rep.Error, "line ") != 1 {
			t.Errorf("%s: placed %d times: %q", tc.body, strings.Count(rep.Error, "line "), rep.Error)
		}
	}
	// The command inside a signed envelope: lines of its payload.
	ops := newSigner("ops", 1)
	rs := newRig(t, "remote: {trust_keys: {ops: "+ops.pub()+"}}\n")
	rep := rs.wait(rs.submit("refit", "device", ops.sign(t, "refit", "device/box1", "{\"id\":\"f3\",\n\"count\":true}", rs.clk.Now())))
	mustFail(t, rep, CodeInvalid, "count at line 2, column 9: expected an integer, got bool")
}

func TestOversizeRefusedBeforeReading(t *testing.T) {
	r := newRig(t, "remote: {allow_unsigned: true, max_payload: 1KiB}\n")
	// Valid JSON with a valid id: only the size can refuse it.
	body := `{"id":"big","pad":"` + strings.Repeat("x", 1100) + `"}`
	rep := r.do("status", body)
	mustFail(t, rep, CodeTooLarge, "1121 bytes, over remote.max_payload (1KiB)")
	if rep.ID != "" {
		t.Errorf("an oversize message was read: reply id %q", rep.ID)
	}
}

func TestUnsignedCommandsOffByDefault(t *testing.T) {
	r := newRig(t, "")
	mustFail(t, r.do("status", `{"id":"s1"}`), CodeUnauthorized, "remote commands are off", "remote.allow_unsigned: true", "inspectd keygen")
	s := newSigner("ops", 1)
	mustFail(t, r.wait(r.submit("status", "device", s.sign(t, "status", "*", `{"id":"s2"}`, r.clk.Now()))), CodeUnauthorized,
		"no remote.trust_keys are configured to check the signature")
}

// TestSignedCommandOnABoxWithRemoteOffSaysHowToTurnItOn: a signed command
// to a box with no trust keys and allow_unsigned false was refused "remote
// commands are off: ..." without how to turn them on, though the README
// promises every command there is answered with that; it now names the
// signer's key and where its public key goes.
func TestSignedCommandOnABoxWithRemoteOffSaysHowToTurnItOn(t *testing.T) {
	r := newRig(t, "")
	s := newSigner("ops", 1)
	mustFail(t, r.wait(r.submit("status", "device", s.sign(t, "status", "*", `{"id":"s2"}`, r.clk.Now()))), CodeUnauthorized,
		"remote commands are off", `add the public key of "ops"`, "inspectd keygen", "to remote.trust_keys in the configuration file on the box")
}

// TestEnvelopeTargetOfAnotherBoxSaysWhichBoxes: a command signed for box2
// sent on box1's command topic was refused "signed for "device/box2", but
// this is device/box1 and it came from device", which read as if a device
// had sent it; it now says the envelope's target names box2 while the
// topic is box1's, as envelope.target, placed, like every envelope refusal.
func TestEnvelopeTargetOfAnotherBoxSaysWhichBoxes(t *testing.T) {
	ops := newSigner("ops", 1)
	r := newRig(t, "remote: {trust_keys: {ops: "+ops.pub()+"}}\n")
	now := r.clk.Now()
	body := `{"id":"c1","config":{"mqtt":{"result_qos":1}}}`
	rep := r.wait(r.submit("config", "device", ops.sign(t, "config", "device/box2", body, now)))
	mustFail(t, rep, CodeUnauthorized, "envelope.target at line 1, column", `the envelope's target names box "box2" while the topic is box "box1"'s (device/box1/cmd)`)
	if field(rep) != "envelope.target" || strings.Contains(rep.Error, "came from") {
		t.Errorf("field %q, message %q", field(rep), rep.Error)
	}
	rep = r.wait(r.submit("config", "fleet", ops.sign(t, "config", "group/line2", body, now)))
	mustFail(t, rep, CodeUnauthorized, `the envelope's target names "group/line2" while it came on the fleet topic to box "box1"`)
	if r.ctl.applies.Load() != 0 {
		t.Fatal("a refused signed request was applied")
	}
}

func TestSignedCommands(t *testing.T) {
	ops, mallory := newSigner("ops", 1), newSigner("ops", 2)
	r := newRig(t, "remote: {allow_unsigned: true, trust_keys: {ops: "+ops.pub()+"}}\n")
	now := r.clk.Now()
	send := func(name string, env []byte) Reply { return r.wait(r.submit(name, "device", env)) }

	rep := send("status", ops.sign(t, "status", "device/box1", `{"id":"s1"}`, now))
	if !rep.OK || rep.ID != "s1" {
		t.Fatalf("signed status: %+v", rep)
	}
	// allow_unsigned does not matter once keys are set.
	mustFail(t, r.do("status", `{"id":"s2"}`), CodeUnauthorized, "unsigned", "ops", "inspectd sign --key FILE --command status")
	mustFail(t, send("status", mallory.sign(t, "status", "*", `{"id":"s3"}`, now)), CodeUnauthorized, "does not verify with trust key \"ops\"")
	other := newSigner("qa", 3)
	mustFail(t, send("status", other.sign(t, "status", "*", `{"id":"s4"}`, now)), CodeUnauthorized, `"qa" is not one of this box's trust keys (ops)`)

	// A signed config body cannot run as another command, nor elsewhere.
	cfgBody := `{"id":"c1","config":{"mqtt":{"result_qos":1}}}`
	env := ops.sign(t, "config", "*", cfgBody, now)
	rep = send("refit", env)
	mustFail(t, rep, CodeUnauthorized, `signed for command "config", but it came as "refit"`)
	if field(rep) != "envelope.command" {
		t.Errorf("field %q", field(rep))
	}
	mustFail(t, send("config", ops.sign(t, "config", "device/box2", cfgBody, now)), CodeUnauthorized, `the envelope's target names box "box2" while the topic is box "box1"'s (device/box1/cmd)`)
	mustFail(t, r.wait(r.submit("config", "device", ops.sign(t, "config", "fleet", cfgBody, now))), CodeUnauthorized, `the envelope's target names "fleet" while the topic is box "box1"'s`)

	// Tampering with any signed part breaks the signature.
	var e Envelope
	json.Unmarshal(env, &e)
	for _, tamper := range []func(e *Envelope){
		func(e *Envelope) { e.TS++ },
		func(e *Envelope) { e.Nonce = "AAAAAAAAAAAAAAAAAAAAAA" },
		func(e *Envelope) { e.Target = "device/box1" },
		func(e *Envelope) { e.Payload = "eyJpZCI6ImMxIiwiY29uZmlnIjp7Im1xdHQiOnsicmVzdWx0X3FvcyI6Mn19fQ==" },
	} {
		x := e
		tamper(&x)
		b, _ := json.Marshal(x)
		mustFail(t, send("config", b), CodeUnauthorized, "does not verify")
	}
	if r.ctl.applies.Load() != 0 {
		t.Fatal("a refused signed request was applied")
	}

	// Beyond the skew in both directions, each called what it is.
	mustFail(t, send("status", ops.sign(t, "status", "*", `{"id":"s5"}`, now.Add(-6*time.Minute))), CodeUnauthorized, "stale", "6m0s before this box's clock", "remote.max_skew is 5m")
	mustFail(t, send("status", ops.sign(t, "status", "*", `{"id":"s6"}`, now.Add(6*time.Minute))), CodeUnauthorized, "from the future", "6m0s ahead of this box's clock")

	// Executed once; the same envelope again is the stored reply.
	rep = send("config", env)
	if !rep.OK || r.ctl.applies.Load() != 1 {
		t.Fatalf("signed config: %+v, applies %d", rep, r.ctl.applies.Load())
	}
	again := send("config", env)
	if !again.OK || again.Data["duplicate"] != true || r.ctl.applies.Load() != 1 {
		t.Errorf("repeat: %+v, applies %d", again, r.ctl.applies.Load())
	}
	// Malformed envelopes name the envelope field.
	for _, tc := range []struct{ body, field string }{
		{`{"envelope":"inspectd-sig-v2"}`, "envelope.envelope"},
		{`{"envelope":"inspectd-sig-v1","key":"ops","target":"*","command":"status","ts":1,"nonce":"short","payload":"","sig":""}`, "envelope.nonce"},
		{`{"envelope":"inspectd-sig-v1","key":"ops","target":"*","command":"status","ts":"now","nonce":"AAAAAAAAAAAAAAAAAAAAAA","payload":"","sig":""}`, "envelope.ts"},
		{`{"envelope":"inspectd-sig-v1","extra":1}`, "envelope.extra"},
	} {
		rep := send("status", []byte(tc.body))
		if rep.OK || field(rep) != tc.field {
			t.Errorf("%s: %+v, want a refusal naming %s", tc.body, rep, tc.field)
		}
	}
}

func TestReplayedNonceRefused(t *testing.T) {
	ops := newSigner("ops", 1)
	r := newRig(t, "remote: {trust_keys: {ops: "+ops.pub()+"}, dedup_window: 1s}\n")
	env := ops.sign(t, "threshold", "*", `{"id":"t1","image":9}`, r.clk.Now())
	r.ctl.setModel(t)
	if rep := r.wait(r.submit("threshold", "device", env)); !rep.OK {
		t.Fatal(rep)
	}
	// Past the dedup window but within twice the skew, across a restart:
	// the request id is forgotten, the nonce is not.
	r.clk.Add(2 * time.Second)
	r.restart()
	rep := r.wait(r.submit("threshold", "device", env))
	mustFail(t, rep, CodeUnauthorized, "replayed")
	if field(rep) != "envelope.nonce" || r.ctl.thresholds.Load() != 1 {
		t.Errorf("field %q, threshold set %d times", field(rep), r.ctl.thresholds.Load())
	}
	// A nonce spent by a refused request stays spent.
	bad := ops.sign(t, "threshold", "*", `{"id":"t2","image":-1}`, r.clk.Now())
	mustFail(t, r.wait(r.submit("threshold", "device", bad)), CodeInvalid, "want a number in")
	mustFail(t, r.wait(r.submit("threshold", "device", bad)), CodeUnauthorized, "replayed")
}

func TestDedupSurvivesRestart(t *testing.T) {
	r := newRig(t, unsigned)
	push := `{"id":"c1","config":{"mqtt":{"result_qos":1}}}`
	if rep := r.do("config", push); !rep.OK || rep.Data["applied"] != true {
		t.Fatalf("push: %+v", rep)
	}
	r.restart()
	rep := r.do("config", push)
	if !rep.OK || rep.Data["duplicate"] != true || r.ctl.applies.Load() != 1 {
		t.Errorf("after a restart: %+v, applied %d times", rep, r.ctl.applies.Load())
	}
	// Another command may use the same id; past the window the id is new.
	if rep := r.do("status", `{"id":"c1"}`); !rep.OK || rep.Data["duplicate"] != nil {
		t.Errorf("status c1: %+v", rep)
	}
	r.clk.Add(11 * time.Minute)
	if rep := r.do("config", `{"id":"c1","config":{"mqtt":{"result_qos":0}}}`); !rep.OK || rep.Data["duplicate"] != nil || r.ctl.applies.Load() != 2 {
		t.Errorf("after the window: %+v", rep)
	}
	// A refusal is not recorded: fixed, the same id runs.
	mustFail(t, r.do("config", `{"id":"c2","config":{"mqtt":{"result_qoz":1}}}`), CodeInvalid, "unknown key")
	if rep := r.do("config", `{"id":"c2","config":{"mqtt":{"result_qos":1}}}`); !rep.OK || rep.Data["duplicate"] != nil {
		t.Errorf("fixed request with the same id: %+v", rep)
	}
}

func TestInterruptedRequestAnsweredOnceAfterRestart(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC)
	// What a process killed during a refit leaves: the request recorded as
	// running, no reply.
	st, _, err := openStore(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.record("", "", time.Time{}, &entry{Name: "refit", ID: "f1", Origin: "fleet", At: now}, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, refitTempName), []byte("half a model"), 0o600)

	r := newRig(t, unsigned)
	r.opts.StateDir = dir
	r.restart()
	if _, err := os.Stat(filepath.Join(dir, refitTempName)); !os.IsNotExist(err) {
		t.Error("the interrupted refit's model file was left behind")
	}
	in := r.d.TakeInterrupted(func(o string) bool { return o == "fleet" })
	if len(in) != 1 || in[0].Name != "refit" || in[0].Reply.ID != "f1" || code(in[0].Reply) != CodeInterrupted {
		t.Fatalf("interrupted = %+v", in)
	}
	if again := r.d.TakeInterrupted(func(string) bool { return true }); len(again) != 0 {
		t.Errorf("interrupted requests handed out twice: %+v", again)
	}
	// Redelivered, it gets the stored reply and does not start a refit.
	rep := r.do("refit", `{"id":"f1","count":10}`)
	mustFail(t, rep, CodeInterrupted, "interrupted")
	if rep.Data["duplicate"] != true || r.ctl.frames.Load() != 0 {
		t.Errorf("redelivered interrupted refit: %+v, %d frames taken", rep, r.ctl.frames.Load())
	}
}

// TestConfigPushJSONErrorsPlaced: the problems of a pushed JSON object are
// placed at the line and column of the message where the offending key or
// value starts (they were told at the line counted from the object's
// first, "line 1" for a message on one line, and no column).
func TestConfigPushJSONErrorsPlaced(t *testing.T) {
	r := newRig(t, unsigned)
	for _, tc := range []struct{ name, body, field, part string }{
		{"bad value on line 4", "{\"id\": \"c1\",\n  \"config\": {\n    \"mqtt\": {\n      \"result_qos\": 9\n    }\n  }\n}",
			"config.mqtt.result_qos", "config push: line 4, column 21: mqtt.result_qos: 9 is not one of 0, 1, 2"},
		{"bad key on line 4", "{\"id\": \"c2\",\n  \"config\": {\n    \"mqtt\": {\n      \"reslt_qos\": 1\n    }\n  }\n}",
			"config.mqtt.reslt_qos", `config push: line 4, column 7: unknown key "reslt_qos" in section "mqtt"`},
		{"one line, a list item", `{"id":"c3","config":{"mqtt":{"brokers":["tcp://10.0.0.1:1883","ftp://x"]}}}`,
			"config.mqtt.brokers[1]", `config push: line 1, column 63: mqtt.brokers[1]: "ftp://x" has scheme "ftp"`},
		{"one line, replace mode", `{"id":"c4","mode":"replace","config":{"model":{"features":5000}}}`,
			"config.model.features", "config push: line 1, column 59: model.features: 5000 is out of range"},
		// White space JSON allows and YAML's flow syntax does not (a line
		// break between a key and its colon) was refused as YAML's
		// "did not find expected ',' or '}'".
		{"key and colon on two lines", "{\"id\":\"x1\",\"config\":{\"mqtt\":{\"result_qos\"\n: 9}},\"dry_run\":true}",
			"config.mqtt.result_qos", "config push: line 2, column 3: mqtt.result_qos: 9 is not one of 0, 1, 2"},
		{"a line break at every turn", "{\"id\":\"w6\",\n\"config\":\n{\"mqtt\":\n{\"result_qos\"\n:\n\"one\"}}}",
			"config.mqtt.result_qos", "config push: line 6, column 1: mqtt.result_qos:"},
		// Columns count characters, not bytes (56 here before).
		{"columns in characters", `{"id":"v1","config":{"mqtt":{"username":"héllo✓✓","treshold":1}}}`,
			"config.mqtt.treshold", `config push: line 1, column 51: unknown key "treshold" in section "mqtt"`},
		// A number or boolean where text goes was taken as its text (a
		// fit started on the model path "5").
		{"a number for a string", `{"id":"t1","config":{"model":{"path":5}}}`,
			"config.model.path", "config push: line 1, column 38: model.path: expected a string, got 5"},
		{"a boolean and a number for strings", `{"id":"t2","config":{"mqtt":{"username":true,"client_id":12.50}}}`,
			"config.mqtt.username", "config push: line 1, column 41: mqtt.username: expected a string, got true; config push: line 1, column 58: mqtt.client_id: expected a string, got 12.50"},
		{"a number in a list of strings", `{"id":"t3","config":{"mqtt":{"brokers":["tcp://10.0.0.1:1883",7]}}}`,
			"config.mqtt.brokers[1]", "config push: line 1, column 63: mqtt.brokers[1]: expected a string, got 7"},
		// A setting the object leaves out is placed at its section.
		{"missing beside a written one", "{\"id\": \"c5\", \"config\": {\"mqtt\":\n {\"tls\": {\"cert\": \"/etc/x.pem\"}}}}",
			"", "line 2, column 3: mqtt.tls.key: is empty but mqtt.tls.cert is set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := r.do("config", tc.body)
			mustFail(t, rep, CodeInvalid, tc.part)
			if tc.field != "" && field(rep) != tc.field {
				t.Errorf("field %q, want %q", field(rep), tc.field)
			}
		})
	}
}

// TestConfigPushTextErrorsPlaced: the problems of a pushed YAML text say
// that their line is the text's, and where the string holding it starts
// in the command (they said "line 2", which an operator looked for on the
// command's line 2).
func TestConfigPushTextErrorsPlaced(t *testing.T) {
	r := newRig(t, unsigned)
	for _, tc := range []struct{ name, body, field, part string }{
		{"one line", `{"id":"y1","config":"model:\n  features: abc\n"}`, "config.model.features",
			`config push: line 2 of the "config" text (a string at line 1, column 21 of the command): model.features: `},
		{"on the command's line 3", "{\"id\": \"y2\",\n  \"dry_run\": true,\n  \"config\": \"mqtt:\\n  reslt_qos: 1\\n\"\n}", "config.mqtt.reslt_qos",
			`config push: line 2 of the "config" text (a string at line 3, column 13 of the command): unknown key "reslt_qos" in section "mqtt"`},
		{"a syntax error", `{"id":"y3","mode":"replace","config":"model: [\n"}`, "config",
			`of the "config" text (a string at line 1, column 38 of the command): `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := r.do("config", tc.body)
			mustFail(t, rep, CodeInvalid, tc.part)
			if field(rep) != tc.field {
				t.Errorf("field %q, want %q", field(rep), tc.field)
			}
		})
	}
}

func TestConfigPushAndGet(t *testing.T) {
	r := newRig(t, unsigned+"mqtt: {brokers: [\"tcp://10.0.0.5:1883\"], username: plant, password: s3cret}\n")
	rep := r.do("config", `{"id":"c1","config":{"model":{"threads":1},"mqtt":{"result_qos":1}},"version":3}`)
	if !rep.OK || rep.Data["version"] != int64(3) {
		t.Fatalf("push: %+v", rep)
	}
	if got := rep.Data["changed"].([]string); strings.Join(got, ",") != "model.threads,mqtt.result_qos" {
		t.Errorf("changed = %v", got)
	}
	if saved, _ := config.Load(r.ctl.ConfigPath()); saved.Model.Threads != 1 || saved.MQTT.Password != "s3cret" {
		t.Error("the push was not saved, or lost the password")
	}
	// YAML text, same version: acknowledged, not applied.
	rep = r.do("config", `{"id":"c2","config":"mqtt:\n  result_qos: 0\n","version":3}`)
	if !rep.OK || rep.Data["applied"] != false || r.ctl.applies.Load() != 1 || r.ctl.Config().MQTT.ResultQoS != 1 {
		t.Errorf("same version: %+v", rep)
	}
	// Dry run: checked, nothing applied.
	rep = r.do("config", `{"id":"c3","config":"mqtt:\n  result_qos: 0\n","dry_run":true}`)
	if !rep.OK || rep.Data["dry_run"] != true || r.ctl.applies.Load() != 1 {
		t.Errorf("dry run: %+v", rep)
	}
	// YAML text keeps YAML's scalars: 12 is text to a string setting.
	if rep := r.do("config", `{"id":"y1","config":"mqtt:\n  username: 12\n","dry_run":true,"force":true}`); !rep.OK {
		t.Errorf("a YAML number for a string: %+v", rep)
	}
	// A line break between a key and its colon is JSON all the same.
	if rep := r.do("config", "{\"id\":\"x1\",\"config\":{\"mqtt\":{\"result_qos\"\n: 1}},\"dry_run\":true}"); !rep.OK || rep.Data["dry_run"] != true {
		t.Errorf("dry run with a line break before a colon: %+v", rep)
	}
	// Refusals with path and line.
	for _, tc := range []struct{ body, field, part string }{
		{`{"id":"c4","config":"model:\n  featurez: 3\n"}`, "config.model.featurez", `line 2 of the "config" text (a string at line 1, column 21 of the command): unknown key "featurez" in section "model"`},
		{`{"id":"c5","config":"model:\n\tfeatures: 3\n"}`, "config", `line 2, column 1 of the "config" text (a string at line 1, column 21 of the command): a tab character indents this line`},
		{`{"id":"c6","config":"a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"}`, "config", "anchor &a: anchors and aliases are not accepted"},
		{`{"id":"c7","config":{"model":{"features":5000}}}`, "config.model.features", "5000 is out of range 1..2048"},
		{`{"id":"c8","config":{"remote":{"trust_keys":{"x":"` + newSigner("x", 1).pub() + `"}}}}`, "config.remote.trust_keys", "cannot be changed by a configuration push"},
		{`{"id":"c9","config":[1]}`, "config", "expected an object or a string of YAML"},
		{`{"id":"c10","config":{},"mode":"patch"}`, "mode", `"patch" is not merge or replace`},
		{`{"id":"c11","config":{},"version":0}`, "version", "must be 1 or more"},
	} {
		rep := r.do("config", tc.body)
		mustFail(t, rep, CodeInvalid, tc.part)
		if field(rep) != tc.field {
			t.Errorf("%s: field %q, want %q", tc.body, field(rep), tc.field)
		}
	}
	if r.ctl.applies.Load() != 1 {
		t.Errorf("refused pushes were applied: %d applies", r.ctl.applies.Load())
	}
	// A failed apply says why; the version stays.
	r.ctl.mu.Lock()
	r.ctl.applyErr = errApply
	r.ctl.mu.Unlock()
	rep = r.do("config", `{"id":"c12","config":{"capture":{"source":"camera","camera":{"device":"/dev/video9"}}},"version":4}`)
	mustFail(t, rep, CodeFailed, "not applied; the previous configuration is in force", "/dev/video9: no such device")
	r.ctl.mu.Lock()
	r.ctl.applyErr = nil
	r.ctl.mu.Unlock()

	get := r.do("config-get", `{"id":"g1"}`)
	if !get.OK || get.Data["version"] != int64(3) {
		t.Fatalf("config-get: %+v", get)
	}
	b, _ := get.MarshalJSON() // as published: no HTML escaping, so a grep for <redacted> finds it
	if strings.Contains(string(b), "s3cret") || !strings.Contains(string(b), `"password":"<redacted>"`) || !strings.Contains(string(b), `"result_qos":1`) {
		t.Errorf("config-get shows %s", b)
	}
	if y := r.do("config-get", `{"id":"g2","format":"yaml"}`); !strings.Contains(y.Data["yaml"].(string), "password: <redacted>") {
		t.Errorf("config-get yaml: %v", y.Data["yaml"])
	}
	for _, rec := range strings.Split(r.log.all(), "\n") {
		if strings.Contains(rec, "s3cret") {
			t.Errorf("the password was logged: %s", rec)
		}
	}
	// What config-get returned, pushed back whole, changes nothing.
	back, _ := json.Marshal(map[string]any{"id": "c13", "config": get.Data["config"], "mode": "replace"})
	if rep := r.do("config", string(back)); !rep.OK || len(rep.Data["changed"].([]string)) != 0 || r.ctl.Config().MQTT.Password != "s3cret" {
		t.Errorf("config-get pushed back: %+v", rep)
	}

	// Rollback swaps with .prev; the version follows.
	rep = r.do("rollback", `{"id":"r1","target":"config"}`)
	if !rep.OK || r.ctl.Config().Model.Threads != 0 || r.ctl.Config().MQTT.ResultQoS != 0 {
		t.Fatalf("rollback: %+v, threads %d", rep, r.ctl.Config().Model.Threads)
	}
	if rep := r.do("rollback", `{"id":"r2","target":"config"}`); !rep.OK || r.ctl.Config().Model.Threads != 1 {
		t.Errorf("second rollback (forward): %+v", rep)
	}
	// A newer version that changes nothing: recorded, and said so (a new
	// user's trial could not tell it from a push refused as not newer).
	rep = r.do("config", `{"id":"c2b","config":{"mqtt":{"result_qos":1}},"version":40}`)
	if !rep.OK || rep.Data["applied"] != false || rep.Data["version"] != int64(40) || !strings.Contains(fmt.Sprint(rep.Data["note"]), "nothing to change") {
		t.Errorf("no-op push: %+v", rep)
	}
}

// A budget that cannot be checked (the box's available memory unknown)
// is refused naming its key as the push's other refusals name theirs
// (config.model.memory_budget; it said model.memory_budget).
func TestMemoryBudgetUncheckedNamesItsField(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	r.memUnknown.Store(true)
	rep := r.do("config", `{"id":"m0","config":{"model":{"memory_budget":"256MiB"}}}`)
	mustFail(t, rep, CodeFailed, "cannot check it: available memory unknown: read /proc/meminfo")
	if f := field(rep); f != "config.model.memory_budget" {
		t.Errorf("field %q, want config.model.memory_budget", f)
	}
}

func TestMemoryBudgetCheckedBeforeApplying(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	state := r.ctl.ModelInfo().StateBytes
	r.mem.Store(512 << 20)
	mustFail(t, r.do("config", `{"id":"m1","config":{"model":{"memory_budget":"64GiB"}}}`), CodeInvalid,
		"model.memory_budget", "64GiB is more than this box can give: 512.0 MiB available (test)")
	mustFail(t, r.do("config", `{"id":"m2","config":{"model":{"memory_budget":"1MiB"}}}`), CodeInvalid,
		"resolves to 1.0 MiB, below the", "scoring state of the model in force")
	if state < 1<<20 {
		t.Fatalf("test model state %d bytes is below 1 MiB; the check above proves nothing", state)
	}
	if rep := r.do("config", `{"id":"m3","config":{"model":{"memory_budget":"256MiB"}}}`); !rep.OK {
		t.Errorf("a budget that fits: %+v", rep)
	}
	if r.ctl.applies.Load() != 1 {
		t.Errorf("%d applies, want 1", r.ctl.applies.Load())
	}
}

func TestTrustKeys(t *testing.T) {
	ops, qa := newSigner("ops", 1), newSigner("qa", 2)
	r := newRig(t, unsigned)
	now := r.clk.Now()
	body := `{"id":"k1","keys":{"ops":"` + ops.pub() + `"}}`
	// With no keys yet, the first must sign its own installation.
	mustFail(t, r.do("trust-keys", body), CodeUnauthorized, "trust-keys must be signed")
	mustFail(t, r.wait(r.submit("trust-keys", "device", qa.sign(t, "trust-keys", "*", body, now))), CodeUnauthorized, `"qa" is not among the keys this request installs`)
	rep := r.wait(r.submit("trust-keys", "device", ops.sign(t, "trust-keys", "*", body, now)))
	if !rep.OK {
		t.Fatalf("bootstrap: %+v", rep)
	}
	if r.ctl.Config().Remote.TrustKeys["ops"] != ops.pub() {
		t.Fatal("key not installed")
	}
	// Now only ops may change them.
	body2 := `{"id":"k2","keys":{"ops":"` + ops.pub() + `","qa":"` + qa.pub() + `"}}`
	mustFail(t, r.wait(r.submit("trust-keys", "device", qa.sign(t, "trust-keys", "*", body2, now))), CodeUnauthorized, `"qa" is not one of this box's trust keys`)
	if rep := r.wait(r.submit("trust-keys", "device", ops.sign(t, "trust-keys", "*", body2, now))); !rep.OK || len(rep.Data["keys"].([]map[string]any)) != 2 {
		t.Fatalf("signed change: %+v", rep)
	}
	// Never by a config push, nor by a config rollback.
	push := `{"id":"c1","config":{"remote":{"trust_keys":{"ops":"` + ops.pub() + `"}}}}`
	mustFail(t, r.wait(r.submit("config", "device", ops.sign(t, "config", "*", push, now))), CodeInvalid, "remote.trust_keys: cannot be changed by a configuration push")
	rep = r.wait(r.submit("rollback", "device", ops.sign(t, "rollback", "*", `{"id":"r1","target":"config"}`, now)))
	if !rep.OK || len(r.ctl.Config().Remote.TrustKeys) != 2 || !strings.Contains(rep.Data["note"].(string), "trust keys") {
		t.Errorf("rollback: %+v, keys %v", rep, r.ctl.Config().Remote.TrustKeys)
	}
	// Bad and empty sets are refused naming the key.
	rep = r.wait(r.submit("trust-keys", "device", ops.sign(t, "trust-keys", "*", `{"id":"k3","keys":{"ops":"`+ops.pub()+`","bad":"bm90IGEga2V5"}}`, now)))
	mustFail(t, rep, CodeInvalid, "keys.bad: is not an Ed25519 public key")
	mustFail(t, r.wait(r.submit("trust-keys", "device", ops.sign(t, "trust-keys", "*", `{"id":"k4","keys":{}}`, now))), CodeInvalid, "would turn remote control off")
}

func TestQuickCommands(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	st := r.do("status", `{"id":"s1"}`)
	if !st.OK || st.Data["device_id"] != "box1" || st.Data["uptime_s"] != 3600.0 || st.Data["inspections"] != uint64(1234) || st.Data["refit"] != nil {
		t.Errorf("status: %+v", st)
	}
	if m := st.Data["model"].(map[string]any); m["id"] != r.ctl.ModelInfo().ID {
		t.Errorf("status model: %v", m)
	}
	before := r.ctl.ModelInfo()
	th := r.do("threshold", `{"id":"t1","image":12.5}`)
	ratio := before.PixelThreshold / before.ImageThreshold
	if !th.OK || th.Data["image_threshold"] != 12.5 || th.Data["pixel_threshold"] != 12.5*ratio || !(ratio > 0 && ratio <= 1) {
		t.Errorf("threshold without pixel (the model's pixel/image ratio %g kept): %+v", ratio, th)
	}
	th = r.do("threshold", `{"id":"t2","image":12.5,"pixel":10}`)
	if !th.OK || th.Data["image_threshold"] != 12.5 || th.Data["pixel_threshold"] != 10.0 {
		t.Errorf("threshold with pixel: %+v", th)
	}
	// A pixel threshold above the image threshold would leave flagged
	// frames without regions: refused, naming the field.
	th = r.do("threshold", `{"id":"t3","image":12.5,"pixel":20}`)
	if th.OK || th.Data["field"] != "pixel" || !strings.Contains(th.Error, "above the image threshold") {
		t.Errorf("pixel above image: %+v", th)
	}
	sn := r.do("snapshot", `{"id":"p1"}`)
	if ev := r.events.named("snapshot"); !sn.OK || len(ev) != 1 || sn.Data["bytes"] != len(ev[0].payload) || ev[0].payload[0] != 0xff {
		t.Errorf("snapshot: %+v, %d events", sn, len(ev))
	}
	if rc := r.do("restart-camera", `{"id":"c1"}`); !rc.OK || r.ctl.restarts.Load() != 1 {
		t.Errorf("restart-camera: %+v", rc)
	}
	mustFail(t, r.do("refit-cancel", `{"id":"x1"}`), CodeFailed, "no refit is running")
	mustFail(t, r.do("rollback", `{"id":"r1","target":"model"}`), CodeFailed, "model unchanged")
}

func TestRetainedRequestNeverRuns(t *testing.T) {
	r := newRig(t, unsigned)
	ch := make(chan Reply, 1)
	r.d.Submit(Request{Name: "config", Body: []byte(`{"id":"c1","config":{"mqtt":{"result_qos":1}}}`), Origin: "device", Retained: true}, func(rep Reply) { ch <- rep })
	mustFail(t, r.wait(ch), CodeRetained, "never executed")
	if r.ctl.applies.Load() != 0 {
		t.Error("a retained request was executed")
	}
}

func TestQueueFullAndClose(t *testing.T) {
	r := newRig(t, unsigned)
	r.opts.Queue = 1
	r.restart()
	// Hold the command goroutine in a snapshot until released.
	gate := r.ctl.holdFrames()
	first := r.submitRunning("snapshot", `{"id":"p1"}`)
	second := r.submit("status", "device", []byte(`{"id":"s1"}`))
	third := r.submit("status", "device", []byte(`{"id":"s2"}`))
	if rep := r.wait(third); rep.ID != "s2" {
		t.Errorf("the busy answer is addressed to %q, want the sender's s2", rep.ID)
	} else {
		mustFail(t, rep, CodeBusy, "1 commands are waiting")
	}
	close(gate)
	if rep := r.wait(first); !rep.OK {
		t.Error(rep)
	}
	if rep := r.wait(second); !rep.OK {
		t.Error(rep)
	}
	r.d.Close(context.Background())
	mustFail(t, r.wait(r.submit("status", "device", []byte(`{"id":"s3"}`))), CodeFailed, "stopping")
}

func TestCorruptRequestTableMovedAside(t *testing.T) {
	r := newRig(t, unsigned)
	if rep := r.do("status", `{"id":"s1"}`); !rep.OK {
		t.Fatal(rep)
	}
	r.d.Close(context.Background())
	path := filepath.Join(r.ctl.dir, StateFile)
	os.WriteFile(path, []byte(`{"format":1,"requests":[{"name":`), 0o600)
	r.start()
	if rep := r.do("status", `{"id":"s1"}`); !rep.OK || rep.Data["duplicate"] != nil {
		t.Errorf("after a corrupt table: %+v", rep)
	}
	if n := r.log.count("ERROR", "is unreadable", "moved to", "starting with an empty table"); n != 1 {
		t.Errorf("%d log lines about the corrupt table:\n%s", n, r.log.all())
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 1 {
		t.Errorf("corrupt table kept as %v", m)
	}
}

// TestReleasedOnceRecorded: a front end that acknowledges on Release (MQTT
// QoS 1) learns the request is durable before the command runs — recorded
// as running, so a crash from then on answers it "interrupted" — and a
// request answered without being recorded (refused, busy) is released
// too; each once. Acknowledged on arrival instead, a kill between the
// broker's PUBACK and the record lost the command without a reply.
func TestReleasedOnceRecorded(t *testing.T) {
	r := newRig(t, unsigned)
	r.opts.Queue = 1
	r.restart()
	var released [4]atomic.Int32
	submit := func(k int, name, body string) chan Reply {
		ch := make(chan Reply, 1)
		r.d.Submit(Request{Name: name, Body: []byte(body), Origin: "device", Release: func() { released[k].Add(1) }},
			func(rep Reply) { ch <- rep })
		return ch
	}
	gate := r.ctl.holdFrames()
	running := submit(0, "snapshot", `{"id":"p1"}`)
	deadline := time.Now().Add(10 * time.Second)
	for released[0].Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if e := r.d.store.lookup("snapshot", "p1", r.opts.Now(), time.Hour); e == nil || e.Done || released[0].Load() != 1 {
		t.Fatalf("while the command runs: released %d times, table entry %+v; want once, recorded as running", released[0].Load(), e)
	}
	waiting := submit(1, "status", `{"id":"s1"}`)
	busy := submit(2, "status", `{"id":"s2"}`)
	mustFail(t, r.wait(busy), CodeBusy, "waiting")
	close(gate)
	if rep := r.wait(running); !rep.OK {
		t.Error(rep)
	}
	if rep := r.wait(waiting); !rep.OK {
		t.Error(rep)
	}
	mustFail(t, r.wait(submit(3, "status", `{"id":""}`)), CodeInvalid, "id")
	for k := range released {
		if n := releasedOnce(&released[k]); n != 1 {
			t.Errorf("request %d released %d times, want once", k, n)
		}
	}
}

// releasedOnce returns the count once it is at least one or after ten
// seconds: a request is released after its reply is handed over (a crash
// in between then redelivers rather than loses it), so a reply can reach
// the test a moment before the release does.
func releasedOnce(n *atomic.Int32) int32 {
	for deadline := time.Now().Add(10 * time.Second); n.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // a second release would show here
	return n.Load()
}

// TestHeldOnlyUpToMaxHeld: requests waiting behind a long command keep
// their acknowledgement held only up to maxHeld; those beyond are released
// on arrival, so that a broker's limit of unacknowledged messages is never
// reached and triggers on the same connection keep flowing.
func TestHeldOnlyUpToMaxHeld(t *testing.T) {
	r := newRig(t, unsigned)
	gate := r.ctl.holdFrames()
	first := r.submitRunning("snapshot", `{"id":"p1"}`)
	var released [maxHeld + 2]atomic.Int32
	var replies []chan Reply
	for k := range released {
		ch := make(chan Reply, 1)
		r.d.Submit(Request{Name: "status", Body: []byte(fmt.Sprintf(`{"id":"s%d"}`, k)), Origin: "device", Release: func() { released[k].Add(1) }},
			func(rep Reply) { ch <- rep })
		replies = append(replies, ch)
	}
	for k := range released {
		want := int32(0) // held until recorded
		if k >= maxHeld {
			want = 1 // beyond maxHeld: released on arrival
		}
		if n := released[k].Load(); n != want {
			t.Errorf("waiting request %d released %d times while the snapshot runs, want %d", k, n, want)
		}
	}
	close(gate)
	if rep := r.wait(first); !rep.OK {
		t.Error(rep)
	}
	for k, ch := range replies {
		if rep := r.wait(ch); !rep.OK {
			t.Error(rep)
		}
		if n := releasedOnce(&released[k]); n != 1 {
			t.Errorf("request %d released %d times in all, want once", k, n)
		}
	}
}

// TestSlowReleaseOutsideTheLock: a front end's release may wait on its
// network (paho's acknowledgement on a stalled socket); the one Submit
// makes for a request beyond maxHeld runs outside the dispatcher's lock,
// so the device id, event sinks and every later request are not held up.
func TestSlowReleaseOutsideTheLock(t *testing.T) {
	r := newRig(t, unsigned)
	gate := r.ctl.holdFrames()
	first := r.submitRunning("snapshot", `{"id":"p1"}`)
	var waiting []<-chan Reply
	for k := range maxHeld {
		waiting = append(waiting, r.submit("status", "device", []byte(fmt.Sprintf(`{"id":"s%d"}`, k))))
	}
	stalled, unstall := make(chan struct{}), make(chan struct{})
	go r.d.Submit(Request{Name: "status", Body: []byte(`{"id":"slow"}`), Origin: "device", Release: func() { close(stalled); <-unstall }},
		func(Reply) {})
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the request beyond maxHeld was not released on arrival")
	}
	set := make(chan struct{})
	go func() { r.d.SetDeviceID("box9"); close(set) }()
	select {
	case <-set:
	case <-time.After(5 * time.Second):
		t.Error("SetDeviceID waited on a release")
	}
	close(unstall)
	close(gate)
	for _, ch := range append(waiting, first) {
		if rep := r.wait(ch); !rep.OK {
			t.Error(rep)
		}
	}
}

// A refusal carries the request's id whenever it can be read: before a
// nesting too deep for the JSON decoder, inside a signed envelope refused
// for its own fields (they came back with "id":"", unmatched on a fleet).
func TestRefusalsKeepTheID(t *testing.T) {
	r := newRig(t, unsigned)
	deep := `{"id":"deep","config":` + strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20001)
	if rep := r.do("config", deep); rep.OK || rep.ID != "deep" {
		t.Errorf("nested 20000 deep: reply %+v", rep)
	}
	env := `{"envelope":"` + EnvelopeVersion + `","key":"k","target":"*","command":"status","ts":"soon","nonce":"0123456789abcdef","payload":"` +
		base64.StdEncoding.EncodeToString([]byte(`{"id":"env1"}`)) + `","sig":"AA=="}`
	if rep := r.do("status", env); rep.OK || rep.ID != "env1" {
		t.Errorf("an envelope with a bad ts: reply %+v", rep)
	}
}

// flakySink is a front end whose publishes fail while down is set.
type flakySink struct{ down atomic.Bool }

func (f *flakySink) Emit(string, []byte, byte) error {
	if f.down.Load() {
		return errors.New("not connected")
	}
	return nil
}

// TestEventFailureLoggedOncePerOutage: a refit reports progress every
// second; a broker outage must log one line, not one per report, and say
// when events go out again.
func TestEventFailureLoggedOncePerOutage(t *testing.T) {
	r := newRig(t, "")
	f := &flakySink{}
	r.d.AddEvents(f)
	env := &Env{Log: r.d.log, d: r.d}
	f.down.Store(true)
	for range 5 {
		if !env.emit("refit", []byte("{}"), 0) {
			t.Fatal("the working front end took no event")
		}
	}
	if n := r.log.count("WARN remote event not published"); n != 1 {
		t.Fatalf("%d warnings over one outage of 5 reports, want 1:\n%s", n, r.log.all())
	}
	f.down.Store(false)
	env.emit("refit", []byte("{}"), 0)
	env.emit("refit", []byte("{}"), 0)
	if n := r.log.count("INFO remote event published again", "event=refit"); n != 1 {
		t.Fatalf("%d lines saying events go out again, want 1:\n%s", n, r.log.all())
	}
	f.down.Store(true)
	env.emit("refit", []byte("{}"), 0)
	if n := r.log.count("WARN remote event not published"); n != 2 {
		t.Fatalf("%d warnings after a second outage, want 2:\n%s", n, r.log.all())
	}
	r.d.RemoveEvents(f)
	if len(r.d.eventFailing) != 0 {
		t.Errorf("a removed front end's failures are still kept: %v", r.d.eventFailing)
	}
}

// TestRefuseUnsigned: the rule for unsigned commands, as a front end asks
// it for a command that does not go through the Dispatcher (Sparkplug's
// Node Control/Reboot): the same refusals authenticate gives, and for a
// Sparkplug write on a box with trust keys, what to do instead, which
// `inspectd sign` is only for the commands the JSON topics take.
func TestRefuseUnsigned(t *testing.T) {
	ops := newSigner("ops", 1)
	for _, tc := range []struct {
		yaml, command, origin string
		want                  string // "" when taken
	}{
		{"remote: {allow_unsigned: true}\n", "reboot", OriginSparkplug, ""},
		{"", "reboot", OriginSparkplug, "a Sparkplug write carries no signature, so it runs only with remote.allow_unsigned: true and no trust keys"},
		{"", "status", "device", "add a public key from `inspectd keygen` to remote.trust_keys"},
		{"remote: {allow_unsigned: true, trust_keys: {ops: " + ops.pub() + "}}\n", "reboot", OriginSparkplug,
			"signed by one of its trust keys (ops), and a Sparkplug write carries no signature; there is no signed form of it"},
		{"remote: {trust_keys: {ops: " + ops.pub() + "}}\n", "threshold", OriginSparkplug,
			"a Sparkplug write carries no signature; send it signed on the JSON command topic (`inspectd sign --key FILE --command threshold`)"},
		{"remote: {trust_keys: {ops: " + ops.pub() + "}}\n", "threshold", "device", "(ops); sign with `inspectd sign --key FILE --command threshold`"},
	} {
		r := newRig(t, tc.yaml)
		err := r.d.RefuseUnsigned(tc.command, tc.origin)
		var e *Error
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q %s from %s: refused %v", tc.yaml, tc.command, tc.origin, err)
		case tc.want != "" && (!errors.As(err, &e) || e.Code != CodeUnauthorized || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q %s from %s: %v; want unauthorized, %q", tc.yaml, tc.command, tc.origin, err, tc.want)
		}
	}
}

// TestCarryTakeBackSparesAFolderTakenMeanwhile: between the table's copy
// and the change's refusal another inspectd may take the new folder (it
// was free when the copy was made); the take-back must then leave the
// folder and everything in it alone. A folder nobody took is removed
// again once empty.
func TestCarryTakeBackSparesAFolderTakenMeanwhile(t *testing.T) {
	now := time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC)
	st, _, err := openStore(t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	taken := filepath.Join(base, "new", "state")
	undo, err := st.carryTo(taken, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := statelock.Take(taken)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if err := os.WriteFile(filepath.Join(taken, "model.safetensors"), []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{statelock.File, "model.safetensors", StateFile} {
		if _, err := os.Stat(filepath.Join(taken, f)); err != nil {
			t.Errorf("the take-back removed %s from a folder another inspectd took: %v", f, err)
		}
	}

	free := filepath.Join(base, "other", "state")
	if undo, err = st.carryTo(free, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(base, "other")); !os.IsNotExist(err) {
		t.Errorf("the folders made for a refused change are still there: %v", err)
	}
}

// TestThresholdRefusedWhileConfigured: while the configuration sets
// model.threshold.value, which every model load applies, a threshold
// command cannot be applied by design: it is refused as invalid, naming
// image and the setting, before anything runs (a trial got "failed", the
// code of a command that ran and failed). A refusal is not stored: the
// same id runs once the configuration allows it.
func TestThresholdRefusedWhileConfigured(t *testing.T) {
	r := newRig(t, unsigned+"model: {threshold: {value: 20}}\n")
	r.ctl.setModel(t)
	rep := r.do("threshold", `{"id":"t1","image":12.5}`)
	mustFail(t, rep, CodeInvalid, "model.threshold.value (20)", "push model.threshold.value instead")
	if field(rep) != "image" || r.ctl.thresholds.Load() != 0 {
		t.Errorf("field %q, thresholds set %d times; want image, 0", field(rep), r.ctl.thresholds.Load())
	}
	// The configured value itself is what the loads apply: taken.
	if rep := r.do("threshold", `{"id":"t2","image":20}`); !rep.OK {
		t.Errorf("the configured value: %+v", rep)
	}
	cfg := r.ctl.Config().Clone()
	cfg.Model.Threshold.Value = 0
	r.ctl.cfg.Store(cfg)
	if rep := r.do("threshold", `{"id":"t1","image":12.5}`); !rep.OK || rep.Data["duplicate"] == true {
		t.Errorf("t1 again once allowed: %+v", rep)
	}
}
