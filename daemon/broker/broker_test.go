package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/broker"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startPublisher starts a publisher for device cam1 on url with its outbox
// in store ("" keeps it in memory); stop closes it and returns Close's error.
func startPublisher(tb testing.TB, url, store string) (p *mqttpub.Publisher, stop func() error) {
	tb.Helper()
	p, err := mqttpub.New(mqttpub.Options{Brokers: []string{url}, DeviceID: "cam1", StoreDir: store, Logger: quiet()})
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.Start(); err != nil {
		tb.Fatal(err)
	}
	return p, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return p.Close(ctx)
	}
}

// TestEmbeddedBrokerDelivers: the publisher connects to the embedded
// broker and a subscriber receives its alarm and the retained status.
func TestEmbeddedBrokerDelivers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := broker.Start(ctx, broker.Options{Address: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") || strings.HasSuffix(b.URL(), ":0") {
		t.Fatalf("URL() = %q", b.URL())
	}

	var mu sync.Mutex
	got := map[string][]byte{}
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("scada").
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			mu.Lock()
			got[m.Topic()] = append([]byte(nil), m.Payload()...)
			mu.Unlock()
		}))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	if tok := sub.Subscribe("inspectd/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	p, err := mqttpub.New(mqttpub.Options{Brokers: []string{b.URL()}, DeviceID: "cam1", StoreDir: t.TempDir(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := p.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishAlarm(&mqttpub.Alarm{Header: mqttpub.Header{Seq: 3}, Regions: []mqttpub.Region{{X: 1, Y: 2, W: 3, H: 4, Area: 9}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		alarm, status := got["inspectd/cam1/alarm"], got["inspectd/cam1/status"]
		mu.Unlock()
		if alarm != nil && status != nil {
			var a mqttpub.Alarm
			if err := json.Unmarshal(alarm, &a); err != nil || a.Seq != 3 || len(a.Regions) != 1 || a.Regions[0].Area != 9 {
				t.Fatalf("alarm %s: %v", alarm, err)
			}
			if string(status) != "online" {
				t.Fatalf("status %q", status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber got %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if err := p.Close(cctx); err != nil {
		t.Fatal(err)
	}
}

func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = broker.Start(context.Background(), broker.Options{Address: l.Addr().String(), Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("Start on a taken port: %v", err)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:1883", "192.168.1.5:1883", ":1883", "example.com:1883"} {
		_, err := broker.Start(context.Background(), broker.Options{Address: addr, Logger: quiet()})
		if err == nil || !strings.Contains(err.Error(), "only listens on loopback") {
			t.Errorf("Start(%q): %v", addr, err)
		}
	}
	if _, err := broker.Start(context.Background(), broker.Options{Address: "127.0.0.1", Logger: quiet()}); err == nil ||
		!strings.Contains(err.Error(), "expected host:port") {
		t.Errorf("address without port: %v", err)
	}
}

// TestContextStops: cancelling the context stops the broker and frees the port.
func TestContextStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b, err := broker.Start(ctx, broker.Options{Address: "localhost:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-b.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("broker did not stop on context cancel")
	}
	l, err := net.Listen("tcp", b.Addr())
	if err != nil {
		t.Fatalf("port not released after stop: %v", err)
	}
	l.Close()
	b.Close() // idempotent
}

// scada is a SCADA client with a persistent session (clean session off)
// that counts the alarms it receives, by sequence number.
type scada struct {
	t      *testing.T
	url    string
	mu     sync.Mutex
	alarms map[uint64]int
	client mqtt.Client
}

func (s *scada) connect() {
	s.t.Helper()
	s.client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(s.url).SetClientID("scada").SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			var a mqttpub.Alarm
			if json.Unmarshal(m.Payload(), &a) == nil {
				s.mu.Lock()
				s.alarms[a.Seq]++
				s.mu.Unlock()
			}
		}))
	if tok := s.client.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		s.t.Fatalf("scada connect: %v", tok.Error())
	}
}

func (s *scada) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.alarms)
}

// await waits up to 10 s for n distinct alarms and returns how many came.
func (s *scada) await(n int) int {
	deadline := time.Now().Add(10 * time.Second)
	for s.distinct() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return s.distinct()
}

// publishAlarms runs a publisher on url that publishes alarms first..last
// and closes once the broker has acknowledged them all.
func publishAlarms(t *testing.T, url, store string, first, last uint64) {
	t.Helper()
	p, stop := startPublisher(t, url, store)
	for i := first; i <= last; i++ {
		if err := p.PublishAlarm(&mqttpub.Alarm{Header: mqttpub.Header{Seq: i}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.State().Queued > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatalf("publisher close: %v", err)
	}
}

// TestSessionsSurviveRestart: a SCADA client with a persistent session is
// away while the daemon (publisher and embedded broker) restarts: it gets
// every alarm, those from before the restart included (18 of 18), and a
// newcomer finds the retained status.
func TestSessionsSurviveRestart(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	dir, outbox := t.TempDir(), t.TempDir()
	start := func() *broker.Broker {
		b, err := broker.Start(context.Background(), broker.Options{Address: addr, StoreDir: dir, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := start()
	s := &scada{t: t, url: b.URL(), alarms: map[uint64]int{}}
	s.connect()
	if tok := s.client.Subscribe("inspectd/cam1/alarm", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	s.client.Disconnect(100) // away

	publishAlarms(t, b.URL(), outbox, 1, 9)
	b.Close() // the daemon stops
	b = start()
	defer b.Close()
	publishAlarms(t, b.URL(), outbox, 10, 18)

	s.connect() // back: the session and its queue are still there
	defer s.client.Disconnect(0)
	if n := s.await(18); n != 18 {
		t.Fatalf("the absent subscriber received %d of 18 alarms", n)
	}

	// Retained messages survive too: a newcomer finds "offline" (the
	// publisher's goodbye) after a restart with no publisher.
	b.Close()
	b = start()
	defer b.Close()
	got := make(chan string, 1)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("newcomer"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	c.Subscribe("inspectd/cam1/status", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) })
	select {
	case st := <-got:
		if st != mqttpub.StatusOffline {
			t.Fatalf("retained status %q", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no retained status after a restart")
	}
}

// TestStoreLockedAndDamaged: a second broker on the same store is refused
// with a clear error; a damaged database is moved aside and the broker
// starts.
func TestStoreLockedAndDamaged(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.Start(context.Background(), broker.Options{Address: "127.0.0.1:0", StoreDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = broker.Start(context.Background(), broker.Options{Address: "127.0.0.1:0", StoreDir: dir, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second broker on one store: %v", err)
	}
	b.Close()
	db := filepath.Join(dir, "broker.db")
	if err := os.WriteFile(db, bytes.Repeat([]byte{0xa5}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err = broker.Start(context.Background(), broker.Options{Address: "127.0.0.1:0", StoreDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatalf("start on a damaged store: %v", err)
	}
	b.Close()
	if m, _ := filepath.Glob(db + ".corrupt-*"); len(m) != 1 {
		t.Fatalf("damaged store not moved aside: %v", m)
	}
}

// The crash test re-runs this test binary as a daemon (embedded broker and
// publisher) that it can SIGKILL.
const (
	envChild = "BROKER_TEST_CHILD"
	envAddr  = "BROKER_TEST_ADDR"
	envStore = "BROKER_TEST_STORE"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(childDaemon())
	}
	os.Exit(m.Run())
}

// childDaemon starts the embedded broker, says READY, waits for a line on
// stdin, publishes alarms 1..18 and says ACKED once the broker has
// acknowledged them all; then it waits to be killed.
func childDaemon() int {
	store := os.Getenv(envStore)
	b, err := broker.Start(context.Background(), broker.Options{Address: os.Getenv(envAddr), StoreDir: filepath.Join(store, "broker"), Logger: quiet()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("READY")
	in := bufio.NewReader(os.Stdin)
	_, _ = in.ReadString('\n')
	p, err := mqttpub.New(mqttpub.Options{Brokers: []string{b.URL()}, DeviceID: "cam1", StoreDir: filepath.Join(store, "outbox"), Logger: quiet()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = p.Start()
	for i := uint64(1); i <= 18; i++ {
		if err := p.PublishAlarm(&mqttpub.Alarm{Header: mqttpub.Header{Seq: i}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	for p.State().Queued > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println("ACKED")
	_, _ = io.Copy(io.Discard, in)
	return 0
}

// TestSessionsSurviveKill: the daemon is SIGKILLed right after the
// embedded broker acknowledged 18 alarms for an absent SCADA client with a
// persistent session; the next start delivers all 18.
func TestSessionsSurviveKill(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testbroker.FreePort(t))
	store := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envAddr+"="+addr, envStore+"="+store)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("child said %q, want %q (%v)", lines.Text(), want, lines.Err())
		}
	}
	expect("READY")
	s := &scada{t: t, url: "tcp://" + addr, alarms: map[uint64]int{}}
	s.connect()
	if tok := s.client.Subscribe("inspectd/cam1/alarm", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	s.client.Disconnect(100)
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	expect("ACKED")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// The daemon starts again: broker and publisher, which sends again
	// what it had sent in the last moment before the kill (the broker
	// acknowledges a message a moment before it has stored it).
	b, err := broker.Start(context.Background(), broker.Options{Address: addr, StoreDir: filepath.Join(store, "broker"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, stop := startPublisher(t, b.URL(), filepath.Join(store, "outbox"))
	defer func() { _ = stop() }()
	s.connect()
	defer s.client.Disconnect(0)
	if n := s.await(18); n != 18 {
		t.Fatalf("after a SIGKILL the absent subscriber received %d of 18 alarms", n)
	}
}

// deliver publishes n alarms through a broker started with store (""
// for memory) to a subscriber with a persistent session, with the
// publisher's outbox on disk when store is set, and returns the time until
// the subscriber has them all.
func deliver(b *testing.B, store string, n int) time.Duration {
	b.Helper()
	br, err := broker.Start(context.Background(), broker.Options{Address: "127.0.0.1:0", StoreDir: store, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	var got atomic.Int64
	done := make(chan struct{})
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(br.URL()).SetClientID("scada").SetCleanSession(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			if strings.HasSuffix(m.Topic(), "/alarm") && got.Add(1) == int64(n) {
				close(done)
			}
		}))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer sub.Disconnect(0)
	if tok := sub.Subscribe("inspectd/cam1/alarm", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	outbox := ""
	if store != "" {
		outbox = filepath.Join(store, "outbox")
	}
	p, stop := startPublisher(b, br.URL(), outbox)
	defer func() { _ = stop() }()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := p.WaitConnected(wctx); err != nil {
		b.Fatal(err)
	}
	alarm := &mqttpub.Alarm{Header: mqttpub.Header{Seq: 1, Score: 17, Threshold: 12, ModelID: "m1"},
		ImageWidth: 640, ImageHeight: 480, Regions: []mqttpub.Region{{X: 1, Y: 2, W: 30, H: 40, Area: 900}}}
	start := time.Now()
	for i := range n {
		alarm.Seq = uint64(i + 1)
		if err := p.PublishAlarm(alarm); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("subscriber got %d of %d", got.Load(), n)
	}
	return time.Since(start)
}

// BenchmarkEmbeddedBrokerAlarms: alarms per second from the publisher
// through the embedded broker to a subscriber with a persistent session,
// with everything on disk (outbox and broker store, each fsynced), as a
// ratio to the same path in memory measured in the same run.
func BenchmarkEmbeddedBrokerAlarms(b *testing.B) {
	const n = 300
	mem := deliver(b, "", n)
	b.ResetTimer()
	var disk time.Duration
	for b.Loop() {
		disk += deliver(b, b.TempDir(), n)
	}
	b.StopTimer()
	perDisk := disk / time.Duration(b.N)
	b.ReportMetric(float64(n)/perDisk.Seconds(), "alarms/s")
	b.ReportMetric(float64(n)/mem.Seconds(), "alarms/s_memory")
	b.ReportMetric(float64(perDisk)/float64(mem), "x_memory")
}

// TestShutdownOrder: client first, broker last stops in well under a
// second with the goodbye acknowledged; the other order (a broker stopped
// by its context first) does not make the client wait either.
func TestShutdownOrder(t *testing.T) {
	for _, brokerFirst := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		b, err := broker.Start(ctx, broker.Options{Address: "127.0.0.1:0", StoreDir: t.TempDir(), Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		p, err := mqttpub.New(mqttpub.Options{Brokers: []string{b.URL()}, DeviceID: "cam1", StoreDir: t.TempDir(), Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.WaitConnected(wctx); err != nil {
			t.Fatal(err)
		}
		wcancel()
		if err := p.PublishAlarm(&mqttpub.Alarm{Header: mqttpub.Header{Seq: 1}}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if brokerFirst {
			cancel()
			<-b.Done()
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = p.Close(cctx)
		ccancel()
		b.Close()
		cancel()
		took := time.Since(start)
		switch {
		case !brokerFirst && (err != nil || took > 500*time.Millisecond):
			t.Fatalf("client first: Close %v after %s", err, took)
		case brokerFirst && took > time.Second:
			t.Fatalf("broker first: stopping took %s (Close: %v)", took, err)
		}
		t.Logf("broker first=%v: stopped in %s", brokerFirst, took.Round(time.Millisecond))
	}
}
