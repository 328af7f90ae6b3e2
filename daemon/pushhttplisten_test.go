package daemon

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPushOfAnHTTPListenInUseNamesItsField: a push whose http.listen is an
// address another program holds was refused, code failed, the previous
// configuration kept, but with no field, where other refused values name
// theirs (a group push with one box refusing left the operator to read the
// error text to find which setting it was); the reply now names
// config.http.listen, its error in the same words (real mosquitto, a real
// listening socket).
func TestPushOfAnHTTPListenInUseNamesItsField(t *testing.T) {
	t.Parallel()
	op, r, _ := startPushRig(t, "cell-http", nil)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	rep := op.reply("cell-http", "config", fmt.Sprintf(`{"id":"h1","config":{"http":{"listen":%q}}}`, taken.Addr().String()), 60*time.Second)
	t.Logf("reply: %v", rep)
	if rep["ok"] != false || rep["code"] != "failed" || rep["field"] != "config.http.listen" {
		t.Errorf("push of http.listen %s (in use): %v, want it refused, code failed, field config.http.listen", taken.Addr(), rep)
	}
	if msg := fmt.Sprint(rep["error"]); !strings.Contains(msg, "http.listen: ") || !strings.Contains(msg, "address already in use") {
		t.Errorf("error %q: want the key and why", msg)
	}
	if got := r.daemon().Config().HTTP.Listen; got == taken.Addr().String() {
		t.Errorf("http.listen in force is %s, the refused address", got)
	}
}

// TestPushOfAnEmbeddedListenInUseNamesItsField: a push moving
// mqtt.embedded_listen to a port another program holds is refused before
// the running broker stops, as a reload is
// (TestReloadToATakenBrokerPortKeepsTheBroker), but its reply named no
// field; it now names config.mqtt.embedded_listen (the embedded broker,
// an operator connected to it, a real listening socket).
func TestPushOfAnEmbeddedListenInUseNamesItsField(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	r := startDaemon(t, func(r *runningDaemon) string {
		return r.baseYAML("cell-eb") + "remote: {allow_unsigned: true}\n"
	})
	r.daemon()
	r.waitFor("connected", func() bool { return strings.Contains(r.logs.String(), "mqtt connected") })
	op := newOperator(t, "tcp://127.0.0.1:"+strconv.Itoa(r.port))
	op.awaitCommands(r, "cell-eb")
	rep := op.reply("cell-eb", "config", fmt.Sprintf(`{"id":"e1","config":{"mqtt":{"embedded_listen":%q}},"force":true}`, taken.Addr().String()), 60*time.Second)
	t.Logf("reply: %v", rep)
	if rep["ok"] != false || rep["code"] != "failed" || rep["field"] != "config.mqtt.embedded_listen" {
		t.Errorf("push of mqtt.embedded_listen %s (in use): %v, want it refused, code failed, field config.mqtt.embedded_listen", taken.Addr(), rep)
	}
	if msg := fmt.Sprint(rep["error"]); !strings.Contains(msg, "mqtt.embedded_listen: ") || !strings.Contains(msg, "the running broker is kept") {
		t.Errorf("error %q: want the key and that the broker is kept", msg)
	}
}
