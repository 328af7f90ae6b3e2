package sparkplug

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/sparkplug/sppb"
)

// TestStatsFollowSessionsAndBirths: Stats says what the edge node does, as
// /metrics shows it: a session counted when its CONNECT is accepted, with
// its bdSeq; no birth while the primary host is offline, an inspection
// refused meanwhile counted as dropped offline; a birth counted when the
// host comes online, and each rebirth a host asks for; the host's going
// offline a new session, with the next bdSeq.
func TestStatsFollowSessionsAndBirths(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{})
	h := newHost(t, b.URL, testGroup)
	h.state("scada", false, 100) // retained: the host is down when the edge node starts
	t.Cleanup(func() { h.raw(Namespace+"/STATE/scada", nil, true) })
	n, lb, _ := startNode(t, b.URL, func(o *Options) { o.PrimaryHostID = "scada" })
	waitLog(t, lb, "sparkplug waiting for the primary host")

	check := func(when string, want Stats) {
		t.Helper()
		if got := n.Stats(); got != want {
			t.Errorf("%s: Stats() = %+v, want %+v", when, got, want)
		}
	}
	want := Stats{Sessions: 1, HasBdSeq: true}
	check("connected, the host offline", want)

	if err := n.PublishResult(result(1, 5), 0); !errors.Is(err, ErrOffline) {
		t.Fatalf("a result before the births: %v, want ErrOffline", err)
	}
	want.DroppedOffline = 1
	check("a result refused before the births", want)

	h.state("scada", true, 200)
	h.wait(0, "DBIRTH", nil)
	want.Online, want.PrimaryHostOnline, want.Births = true, true, 1
	check("born", want) // the host got the DBIRTH: nothing is left queued

	mark := h.mark()
	h.command(n.Topics().NCMD, cmd(write("Node Control/Rebirth", sppb.TypeBoolean, sppb.BoolValue(true))))
	h.wait(mark, "DBIRTH", nil)
	want.Births = 2
	check("after a rebirth", want)

	mark = h.mark()
	if err := n.PublishResult(result(2, 5), 0); err != nil {
		t.Fatal(err)
	}
	h.wait(mark, "DDATA", nil)
	check("a result sent", want)

	// The host goes offline: NDEATH, and a new session, which waits.
	h.state("scada", false, 200)
	h.wait(mark, "NDEATH", nil)
	if !testbroker.WaitFor(context.Background(), 10*time.Second, func() bool { return n.Stats().Sessions == 2 }) {
		t.Fatalf("no second session counted: %+v", n.Stats())
	}
	want.Online, want.PrimaryHostOnline, want.Sessions, want.BdSeq = false, false, 2, 1
	check("the next session, waiting for the host", want)
}
