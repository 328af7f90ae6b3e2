package mqttpub

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testproc"
)

// A message counts as the session's backlog before the SUBACK and for
// BacklogSettle after it (paho may call the handler of a message read
// before the SUBACK only after the SUBACK was processed); later ones are
// live.
func TestBacklogSettles(t *testing.T) {
	at := new(atomic.Int64)
	if !backlog(at) {
		t.Error("before the SUBACK: not backlog")
	}
	at.Store(time.Now().UnixNano())
	if !backlog(at) {
		t.Error("right after the SUBACK: not backlog")
	}
	at.Store(time.Now().Add(-2 * BacklogSettle).UnixNano())
	if backlog(at) {
		t.Error("well after the SUBACK: still backlog")
	}
}

// TestCarriedPacketLimit: a publisher that replaces one which learned the
// broker's packet limit (a reload that rebuilt the connection) refuses a
// larger image from its first publish, before any connection, and says so
// once at Start, when it goes to the same brokers; the largest packet
// acknowledged comes along, the evidence a later drop is judged by. A
// lower MaxPayload (mqtt.max_payload changed too) still applies over it,
// and another broker list starts knowing no limit.
func TestCarriedPacketLimit(t *testing.T) {
	brokers := []string{"tcp://127.0.0.1:1"} // nothing listens: what is learned is in force before a connection
	newPub := func(brokers []string, maxPayload int, c *Carry, log *slog.Logger) *Publisher {
		t.Helper()
		p, err := New(Options{Brokers: brokers, DeviceID: "cam1", MaxPayload: maxPayload, Carry: c, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := newPub(brokers, 0, nil, discard())
	old.box.limit, old.box.maxGood = 65536, 40000 // as learned from a broker's drop
	c := old.Carry()

	lb := &testproc.LogBuffer{}
	p := newPub(slices.Clone(brokers), 0, c, slog.New(slog.NewTextHandler(lb, nil)))
	want := maxPayloadFor(len(p.Topics().Heatmap), 1, 65536)
	if st := p.State(); p.MaxPayload() != want || st.MaxPayload != want || st.BrokerPacketLimit != 65536 || p.PacketLimit() != 65536 {
		t.Fatalf("carried packet limit 65536: MaxPayload() %d, State %d/%d, PacketLimit %d; want %d and 65536",
			p.MaxPayload(), st.MaxPayload, st.BrokerPacketLimit, p.PacketLimit(), want)
	}
	if _, good := p.box.learned(); good != 40000 {
		t.Errorf("largest acknowledged packet %d carried, want 40000", good)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	var tooLarge *PayloadTooLargeError
	if err := p.PublishHeatmap(make([]byte, 70_000), 1); !errors.As(err, &tooLarge) || !tooLarge.Learned || tooLarge.Limit != want {
		t.Errorf("first heatmap over the carried limit: %v", err)
	}
	if err := p.PublishHeatmap(make([]byte, want), 1); err != nil {
		t.Errorf("a heatmap at the carried limit: %v", err)
	}
	if n := lb.Count("carried over"); n != 1 || !strings.Contains(lb.String(), "packet_limit=65536") {
		t.Errorf("%d lines on the carried limit, want 1 naming packet_limit=65536:\n%s", n, lb.String())
	}

	// mqtt.max_payload is the lower: it wins, and the broker's limit is kept.
	if low := newPub(brokers, 32<<10, c, discard()); low.MaxPayload() != 32<<10 || low.PacketLimit() != 65536 {
		t.Errorf("max_payload 32 KiB with a carried 65536: MaxPayload() %d, PacketLimit %d", low.MaxPayload(), low.PacketLimit())
	}
	// Other brokers, another order among them included, know no limit.
	for _, other := range [][]string{{"tcp://127.0.0.1:2"}, {brokers[0], "tcp://127.0.0.1:2"}, {"tcp://127.0.0.1:2", brokers[0]}} {
		q := newPub(other, 0, c, discard())
		if limit, good := q.box.learned(); q.MaxPayload() != DefaultMaxPayload || limit != 0 || good != 0 {
			t.Errorf("brokers %v: MaxPayload() %d, learned %d/%d from %v", other, q.MaxPayload(), limit, good, brokers)
		}
	}
	// Nothing learned: nothing said.
	lb2 := &testproc.LogBuffer{}
	q := newPub(brokers, 0, newPub(brokers, 0, nil, discard()).Carry(), slog.New(slog.NewTextHandler(lb2, nil)))
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = q.Close(ctx)
	if q.MaxPayload() != DefaultMaxPayload || lb2.Count("carried over") != 0 {
		t.Errorf("nothing learned: MaxPayload() %d, log:\n%s", q.MaxPayload(), lb2.String())
	}
}
