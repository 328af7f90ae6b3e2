package testbroker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testproc"
)

// TestStartKillRestart checks the helper itself: listeners come up, TLS
// verifies against the generated CA (and not against the other one),
// and the broker comes back on the same ports after SIGKILL.
func TestStartKillRestart(t *testing.T) {
	b := Start(t, Options{TLS: true, Users: map[string]string{"u": "p"}, Persistence: true})
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(b.Certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.TLSPort))
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS dial with the test CA: %v", err)
	}
	c.Close()

	other := x509.NewCertPool()
	pem, _ = os.ReadFile(b.Certs.OtherCAFile)
	other.AppendCertsFromPEM(pem)
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: other, ServerName: "127.0.0.1"}); err == nil {
		c.Close()
		t.Fatal("TLS dial with an unrelated CA succeeded")
	} else if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("unexpected TLS error with an unrelated CA: %v", err)
	}

	b.SaveNow()
	b.Kill()
	if b.Running() {
		t.Fatal("Running after Kill")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.Port), time.Second); err == nil {
		c.Close()
		t.Fatal("port still accepts connections after Kill")
	}
	b.Restart()
	c2, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.Port), time.Second)
	if err != nil {
		t.Fatalf("dial after Restart: %v", err)
	}
	c2.Close()
	b.Stop()
}

// WaitFor on a log it is given as a Changer looks at its condition once
// at the start and once at each write, and at nothing between writes: it
// polled every 10 ms, each look a copy of the whole log (about 25 looks
// over these 5 writes 40 ms apart). A wait with no write looks twice (at
// the start and at its timeout) and returns false; one whose context is
// cancelled returns at the cancel, false.
func TestWaitForLooksAtALogOnlyWhenWritten(t *testing.T) {
	var lb testproc.LogBuffer
	looks := 0 // cond is called from WaitFor's goroutine only
	const writes = 5
	go func() {
		for i := range writes - 1 {
			time.Sleep(40 * time.Millisecond)
			fmt.Fprintf(&lb, "line %d\n", i)
		}
		time.Sleep(40 * time.Millisecond)
		fmt.Fprintln(&lb, "done")
	}()
	if !WaitFor(t.Context(), 30*time.Second, func() bool { looks++; return lb.Count("done") == 1 }, &lb) {
		t.Fatalf("the line written was not seen:\n%s", lb.String())
	}
	if looks > writes+1 {
		t.Errorf("looked %d times over %d writes, want at most %d", looks, writes, writes+1)
	}

	looks = 0
	if WaitFor(t.Context(), 100*time.Millisecond, func() bool { looks++; return lb.Count("never") > 0 }, &lb) {
		t.Fatal("a line never written was seen")
	}
	if looks != 2 {
		t.Errorf("with no write: looked %d times, want 2 (at the start and at the timeout)", looks)
	}

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if WaitFor(ctx, time.Hour, func() bool { return lb.Count("never") > 0 }, &lb) {
		t.Fatal("a line never written was seen")
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Errorf("returned %s after its context was cancelled", waited)
	}

	// Without a Changer, a condition on what says no change is polled.
	n := 0
	if !WaitFor(t.Context(), 30*time.Second, func() bool { n++; return n == 3 }) {
		t.Error("a polled condition that became true was not seen")
	}
}

// WaitFor waits on one Changer with a plain select (it took any number
// through reflect.Select): two are refused with a panic, not waited on
// one of them alone, which would miss the other's writes.
func TestWaitForRefusesTwoChangers(t *testing.T) {
	var a, b testproc.LogBuffer
	defer func() {
		if recover() == nil {
			t.Error("WaitFor on two Changers did not panic")
		}
	}()
	WaitFor(t.Context(), time.Millisecond, func() bool { return false }, &a, &b)
}

// BenchmarkWaitForLog is a wait on a log of 2 MB whose line comes after
// 20 ms: each wait's allocation is what it copied. Polled every 10 ms
// with a copy each look, the wait copied the log two or three times.
func BenchmarkWaitForLog(b *testing.B) {
	for range b.N {
		b.StopTimer()
		var lb testproc.LogBuffer
		for i := range 40000 {
			fmt.Fprintf(&lb, "level=INFO msg=\"frame inspected\" seq=%d\n", i)
		}
		b.StartTimer()
		time.AfterFunc(20*time.Millisecond, func() { fmt.Fprintln(&lb, "done") })
		if !WaitFor(context.Background(), 10*time.Second, func() bool { return lb.Count("done") > 0 }, &lb) {
			b.Fatal("not seen")
		}
	}
}
