package remote

import (
	"strings"
	"testing"
)

// TestPushedPasswordOfTheWrongTypeIsNotEchoed: a push whose mqtt.password
// was written as a JSON number (a numeric password left unquoted) was
// refused "mqtt.password: expected a string, got 987654321", the password
// itself in the reply and the log line, though the README promises the
// MQTT password is never logged nor put in a reply; the refusal now names
// the field and the kind of value, not the value. Other settings still
// quote what they got.
func TestPushedPasswordOfTheWrongTypeIsNotEchoed(t *testing.T) {
	r := newRig(t, unsigned)
	rep := r.do("config", `{"id":"p1","config":{"mqtt":{"username":"line","password":987654321}},"force":true}`)
	mustFail(t, rep, CodeInvalid, "mqtt.password: expected a string, got a number")
	if field(rep) != "config.mqtt.password" {
		t.Errorf("field %q, want config.mqtt.password", field(rep))
	}
	if strings.Contains(rep.Error, "987654321") {
		t.Errorf("the refusal echoes the password: %q", rep.Error)
	}
	rep = r.do("config", `{"id":"p2","config":{"mqtt":{"username":"line","password":true}},"force":true}`)
	mustFail(t, rep, CodeInvalid, "mqtt.password: expected a string, got a boolean")
	// Not a secret: the value is quoted, as before.
	mustFail(t, r.do("config", `{"id":"p3","config":{"mqtt":{"username":12345}},"force":true}`), CodeInvalid, "mqtt.username: expected a string, got 12345")
}
