package daemon

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug"
)

// TestSinkReplaceDoesNotBlockHealth replaces a publisher whose broker
// stopped answering (its Close waits for acknowledgements that never come)
// and whose successor takes its time to open: the switch's health and
// state answer at once meanwhile (a /healthz liveness probe with a short
// timeout killed a healthy daemon during such a reload), a result
// published meanwhile waits and goes to the new publisher, and the old
// publisher's reconnect counter is counted exactly once, before and after
// the swap.
func TestSinkReplaceDoesNotBlockHealth(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{})
	proxy := testbroker.NewProxy(t, b.URL)
	log := testLogger(t)
	store := filepath.Join(t.TempDir(), "mqtt-outbox")
	newPub := func(broker string) *mqttpub.Publisher {
		t.Helper()
		p, err := mqttpub.New(mqttpub.Options{Brokers: []string{broker}, ClientID: "inspectd-sink-test", StoreDir: store,
			DeviceID: "sinktest", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var c collector
	subscribe(t, b.URL, mqttpub.TopicsFor("inspectd", "sinktest").Result, &c)

	old := newPub(proxy.URL)
	if !testbroker.WaitFor(t.Context(), 10*time.Second, func() bool { return old.State().Connected }) {
		t.Fatal("the first publisher did not connect")
	}
	proxy.Cut() // one reconnect, for the counter the switch carries over
	if !testbroker.WaitFor(t.Context(), 10*time.Second, func() bool { st := old.State(); return st.Connected && st.Reconnects == 1 }) {
		t.Fatalf("the first publisher did not reconnect: %+v", old.State())
	}
	var sw sinkSwitch
	sw.set(old, nil, false)
	t.Cleanup(func() { sw.close(log) })
	proxy.Stall()
	// Not acknowledged: the old publisher's Close waits for it.
	if err := sw.PublishResult(&mqttpub.Result{Header: mqttpub.Header{Seq: 1}, Verdict: "ok"}, 1); err != nil {
		t.Fatal(err)
	}

	fCalled, release, replaced := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	go func() {
		replaced <- sw.replace(log, func(carry *carried) (*mqttpub.Publisher, *sparkplug.Node, bool, error) {
			close(fCalled)
			<-release
			return newPub(b.URL), nil, false, nil
		})
	}()
	if !testbroker.WaitFor(t.Context(), 10*time.Second, func() bool { _, d := old.Health(); return d == "closed" }) {
		t.Fatal("the replacement did not start closing the old publisher")
	}

	type health struct {
		ok     bool
		detail string
		st     mqttpub.State
	}
	got := make(chan health, 1)
	go func() {
		ok, detail := sw.Health()
		got <- health{ok, detail, sw.state()}
	}()
	select {
	case h := <-got:
		if h.ok || !strings.Contains(h.detail, "configuration change") {
			t.Errorf("health during the replacement: %v %q, want not ok, saying the connections are replaced", h.ok, h.detail)
		}
		if h.st.Reconnects != 1 {
			t.Errorf("reconnects during the replacement: %d, want 1", h.st.Reconnects)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the switch's health waited for the replacement (the old publisher's close, the new one's open)")
	}
	<-fCalled // the old publisher closed before the new one opens

	published := make(chan error, 1)
	go func() {
		published <- sw.PublishResult(&mqttpub.Result{Header: mqttpub.Header{Seq: 2}, Verdict: "ok"}, 1)
	}()
	select {
	case err := <-published:
		t.Fatalf("a result published during the replacement did not wait for it: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	unblock()
	if err := <-replaced; err != nil {
		t.Fatal(err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if !testbroker.WaitFor(t.Context(), 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, r := range c.results {
			if r.Seq == 2 {
				return true
			}
		}
		return false
	}) {
		t.Fatal("the result published during the replacement did not arrive through the new publisher")
	}
	if st := sw.state(); st.Reconnects != 1 {
		t.Errorf("reconnects after the replacement: %d, want 1 (the old publisher's, once)", st.Reconnects)
	}
}
