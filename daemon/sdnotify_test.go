package daemon_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon"
)

// notification is one datagram systemd would have received.
type notification struct {
	at  time.Time
	msg string
}

// notifySocket is a NOTIFY_SOCKET as systemd creates it: a unixgram socket
// whose datagrams are recorded with their arrival time.
type notifySocket struct {
	conn *net.UnixConn
	mu   sync.Mutex
	got  []notification
	done chan struct{}
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySocket{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.got = append(s.got, notification{time.Now(), string(buf[:n])})
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-s.done })
	t.Setenv("NOTIFY_SOCKET", path)
	return s
}

// all returns what arrived so far.
func (s *notifySocket) all() []notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notification(nil), s.got...)
}

// pings returns the arrival times of WATCHDOG=1 within (from, to].
func (s *notifySocket) pings(from, to time.Time) []time.Time {
	var ts []time.Time
	for _, n := range s.all() {
		if hasAssignment(n.msg, "WATCHDOG=1") && n.at.After(from) && !n.at.After(to) {
			ts = append(ts, n.at)
		}
	}
	return ts
}

// first returns the first datagram holding assignment a ("READY=1"), or
// any assignment to the variable a names ("STATUS=").
func (s *notifySocket) first(a string) (notification, bool) {
	for _, n := range s.all() {
		if hasAssignment(n.msg, a) {
			return n, true
		}
	}
	return notification{}, false
}

// hasAssignment says whether msg has the line a, or a line starting with
// a when a ends in "=".
func hasAssignment(msg, a string) bool {
	for _, l := range strings.Split(msg, "\n") {
		if l == a || (strings.HasSuffix(a, "=") && strings.HasPrefix(l, a)) {
			return true
		}
	}
	return false
}

// maxGap is the longest time between from, the pings and to.
func maxGap(from time.Time, pings []time.Time, to time.Time) time.Duration {
	var g time.Duration
	prev := from
	for _, p := range append(pings, to) {
		g = max(g, p.Sub(prev))
		prev = p
	}
	return g
}

// fakeStage stands for a pipeline stage: it advances a progress counter
// per frame. Holding its lock wedges it, as an inspection hung in the
// backbone would.
type fakeStage struct {
	wedge  sync.Mutex
	frames atomic.Uint64
	stop   chan struct{}
	done   chan struct{}
}

func startFakeStage() *fakeStage {
	s := &fakeStage{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			s.wedge.Lock()
			s.frames.Add(1)
			s.wedge.Unlock()
		}
	}()
	return s
}

func (s *fakeStage) close() { close(s.stop); <-s.done }

// syncBuffer is a log sink the Notifier's goroutine may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestNotifierWatchdogFollowsProgress runs the whole life cycle against a
// real notification socket with a 400 ms watchdog: nothing before READY;
// READY=1 with the model; pings every quarter period while frames move;
// none for 2.5 periods while the stage is wedged (so
// systemd would restart it), with one log line; pings again when it moves;
// pings while the stage is idle (parked on an empty trigger queue), none
// once it took work and hung;
// pings on the timer during a reload, stopping when the reload outlives
// its bound; STATUS= with the inspection rate; STOPPING=1 and silence after,
// even when a racing reload reports ready.
func TestNotifierWatchdogFollowsProgress(t *testing.T) {
	sock := newNotifySocket(t)
	const interval = 400 * time.Millisecond
	t.Setenv("WATCHDOG_USEC", strconv.Itoa(int(interval/time.Microsecond)))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	var logs syncBuffer
	n := daemon.NewNotifier(daemon.NotifierOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		StatusEvery: 200 * time.Millisecond, ReloadTimeout: 500 * time.Millisecond})
	defer n.Close()
	if !n.Enabled() || n.WatchdogInterval() != interval {
		t.Fatalf("Enabled %v, WatchdogInterval %v; want true, %v", n.Enabled(), n.WatchdogInterval(), interval)
	}
	stage := startFakeStage()
	defer stage.close()

	// Starting: systemd does not watch yet; nothing is sent.
	time.Sleep(interval / 2)
	if got := sock.all(); len(got) != 0 {
		t.Fatalf("sent before Ready: %v", got)
	}

	ready := time.Now()
	n.Ready(daemon.Liveness{Progress: stage.frames.Load, Inspections: stage.frames.Load, ModelID: "849136775201"})
	time.Sleep(2 * interval)
	running := time.Now()
	if m, ok := sock.first("READY=1"); !ok || !strings.Contains(m.msg, "STATUS=inspecting with model 849136775201") {
		t.Fatalf("READY=1 with the model in STATUS= not received: %v", sock.all())
	}
	// A ping per tick (a quarter period) while frames move; the bound on
	// the gap leaves room for a loaded test machine's scheduler.
	ps := sock.pings(ready, running)
	if len(ps) < 3 {
		t.Errorf("%d pings in %v of progress; want about one per watchdog quarter", len(ps), running.Sub(ready))
	}
	if g := maxGap(ready, ps, running); g >= 2*interval {
		t.Errorf("pings %v apart while frames moved (watchdog %v); pings %v", g, interval, ps)
	}
	if m, ok := sock.first("STATUS="); !ok || m.msg == "" {
		t.Error("no STATUS=")
	}
	rate := false
	for _, m := range sock.all() {
		if strings.Contains(m.msg, "inspections/s, model 849136775201, ") {
			rate = true
		}
	}
	if !rate {
		t.Errorf("no STATUS= with the inspection rate and model: %v", sock.all())
	}

	// Wedged: the stage blocks (a hung inspection). At most one ping, for
	// frames counted just before; then none for two and a half watchdog periods, so
	// systemd would restart the service. The window opens a tick after the
	// stage stopped: a tick that read the progress just before the stage's
	// last frame pings, and so does the next, which sees that frame (two
	// pings 100 ms apart once failed this on a loaded machine).
	stage.wedge.Lock()
	time.Sleep(interval / 4)
	wedged := time.Now()
	time.Sleep(5 * interval / 2)
	if ps := sock.pings(wedged, time.Now()); len(ps) > 1 {
		t.Errorf("%d pings while the pipeline was wedged: %v (wedged at %v)", len(ps), ps, wedged)
	}
	if c := strings.Count(logs.String(), "pipeline made no progress"); c != 1 {
		t.Errorf("stall logged %d times; want once:\n%s", c, logs.String())
	}
	stage.wedge.Unlock()
	resumed := time.Now()
	time.Sleep(3 * interval / 2)
	if ps := sock.pings(resumed, time.Now()); len(ps) == 0 {
		t.Error("no ping after the pipeline moved again")
	}
	if !strings.Contains(logs.String(), "pipeline progressing again") {
		t.Error("resumption not logged")
	}

	// Idle: the stage is parked waiting for a trigger (no progress, nothing
	// in flight): the pings go on. Once work arrived and it hangs, they stop.
	var idle atomic.Bool
	var inspected atomic.Uint64
	inspected.Store(500)
	n.Ready(daemon.Liveness{Progress: stage.frames.Load, Idle: idle.Load, Inspections: inspected.Load, ModelID: "849136775201"})
	idle.Store(true)
	stage.wedge.Lock()
	parked := time.Now()
	time.Sleep(interval)
	inspected.Store(0) // the pipeline was replaced: its count starts again
	time.Sleep(3 * interval / 2)
	if ps := sock.pings(parked, time.Now()); len(ps) < 3 || maxGap(parked, ps, time.Now()) >= 2*interval {
		t.Errorf("pings %v while idle (parked at %v); want them to go on", ps, parked)
	}
	idle.Store(false)
	hung := time.Now()
	time.Sleep(5 * interval / 2)
	if ps := sock.pings(hung, time.Now()); len(ps) > 1 {
		t.Errorf("%d pings after the idle stage took work and hung: %v", len(ps), ps)
	}
	stage.wedge.Unlock()
	// From half a tick after parked: messages are stamped when the reader
	// takes them, and a tick of the old stage sent just before Ready can be
	// read after parked.
	for _, m := range sock.all() {
		var rate float64
		if _, st, ok := strings.Cut(m.msg, "STATUS="); ok && m.at.After(parked.Add(interval/2)) {
			if _, err := fmt.Sscanf(st, "%g inspections/s", &rate); err == nil && rate != 0 {
				t.Errorf("a counter that started again from zero reported as a rate: %q", m.msg)
			}
		}
	}

	// Reload: the pipeline is torn down (no progress); the watchdog is fed
	// on the timer for ReloadTimeout, then no more.
	stage.wedge.Lock()
	reload := time.Now()
	n.Reloading()
	time.Sleep(500*time.Millisecond + 3*interval/2)
	if m, ok := sock.first("RELOADING=1"); !ok || !strings.Contains(m.msg, "\nMONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 with MONOTONIC_USEC not received: %q", m.msg)
	}
	fed := sock.pings(reload, reload.Add(500*time.Millisecond))
	if len(fed) < 2 || maxGap(reload, fed, reload.Add(500*time.Millisecond)) >= 2*interval {
		t.Errorf("during the reload: pings %v; want the watchdog fed on its timer", fed)
	}
	if late := sock.pings(reload.Add(500*time.Millisecond+interval), time.Now()); len(late) != 0 {
		t.Errorf("%d pings after the reload outlived ReloadTimeout", len(late))
	}
	if !strings.Contains(logs.String(), "reload has not finished") {
		t.Error("hung reload not logged")
	}
	stage.wedge.Unlock()
	n.Ready(daemon.Liveness{Progress: stage.frames.Load, ModelID: "849136775202"})
	again := time.Now()
	time.Sleep(3 * interval / 2)
	if ps := sock.pings(again, time.Now()); len(ps) == 0 {
		t.Error("no ping after the reload's Ready")
	}

	// Stopping: STOPPING=1, then silence although frames still move, and
	// although a reload that raced the stop reports ready: the stop wins.
	n.Stopping()
	n.Reloading()
	n.Ready(daemon.Liveness{Progress: stage.frames.Load, ModelID: "849136775203"})
	time.Sleep(interval)
	all := sock.all()
	stopAt := -1
	for i, m := range all {
		if hasAssignment(m.msg, "STOPPING=1") {
			stopAt = i
		}
	}
	if stopAt < 0 {
		t.Fatal("STOPPING=1 not received")
	}
	for _, m := range all[stopAt+1:] {
		t.Errorf("sent after STOPPING=1: %q", m.msg)
	}
}

// TestNotifierWithoutSystemd: outside systemd every method is a no-op
// and Close returns.
func TestNotifierWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "1000")
	n := daemon.NewNotifier(daemon.NotifierOptions{})
	if n.Enabled() || n.WatchdogInterval() != 0 {
		t.Errorf("Enabled %v, WatchdogInterval %v; want false, 0", n.Enabled(), n.WatchdogInterval())
	}
	n.Ready(daemon.Liveness{})
	n.Status("x")
	n.Reloading()
	n.Stopping()
	n.Close()
	n.Close()
}

// TestNotifierWatchdogOfAnotherProcess: WATCHDOG_PID naming another
// process (a child that inherited the environment) disables the pings.
func TestNotifierWatchdogOfAnotherProcess(t *testing.T) {
	newNotifySocket(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	n := daemon.NewNotifier(daemon.NotifierOptions{})
	defer n.Close()
	if !n.Enabled() || n.WatchdogInterval() != 0 {
		t.Errorf("Enabled %v, WatchdogInterval %v; want true, 0", n.Enabled(), n.WatchdogInterval())
	}
}

// TestNotifierSocketGone: a socket that disappears is logged once and
// nothing else happens.
func TestNotifierSocketGone(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	t.Setenv("WATCHDOG_USEC", "")
	var logs syncBuffer
	n := daemon.NewNotifier(daemon.NotifierOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer n.Close()
	n.Ready(daemon.Liveness{Progress: func() uint64 { return 0 }})
	n.Status("a")
	n.Status("b")
	if c := strings.Count(logs.String(), "systemd notification not sent"); c != 1 {
		t.Errorf("logged %d times; want once:\n%s", c, logs.String())
	}
}
