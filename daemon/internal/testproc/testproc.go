// Package testproc helps tests that need a process they can kill: it runs
// the test binary again as a child (the test's TestMain recognises the
// child by an environment variable and runs the code under test there),
// reads the lines the child prints, and collects log output for
// assertions.
package testproc

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Child is a running copy of the test binary.
type Child struct {
	Cmd *exec.Cmd
	// Stdin is the child's standard input; children in this project close
	// cleanly when it reaches EOF.
	Stdin io.WriteCloser
	// Done receives the child's exit (Cmd.Wait's error) once.
	Done  chan error
	lines chan string
}

// Start runs os.Args[0] with no test selected and the extra environment
// env (which tells TestMain to act as the child). The child's standard
// error is logged when the test fails; it is killed when the test ends.
func Start(t testing.TB, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	lb := &LogBuffer{}
	cmd.Stderr = lb
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("child process log:\n%s", lb.String())
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{Cmd: cmd, Stdin: stdin, lines: make(chan string, 16), Done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	go func() { c.Done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return c
}

// Expect waits up to 15 s for a line starting with prefix and returns the
// rest of it, trimmed.
func (c *Child) Expect(t testing.TB, prefix string) string {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited before printing %q", prefix)
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return strings.TrimSpace(rest)
			}
		case <-timeout:
			t.Fatalf("child did not print %q within 15s", prefix)
		}
	}
}

// Kill sends SIGKILL and waits until the child is gone.
func (c *Child) Kill(t testing.TB) {
	t.Helper()
	if err := c.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.Done
}

// LogBuffer is a goroutine-safe sink for log output. Each Write closes
// the channel Changed gave out, so that a wait on the log
// (testbroker.WaitFor with the buffer) looks at it again only when
// something was written, where it polled and copied the whole log every
// 10 ms.
type LogBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed at the next Write; nil until asked for
}

// Write appends p, and wakes those waiting on Changed.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return l.buf.Write(p)
}

// Changed returns a channel closed at the next Write. Taken before the
// log is read, it misses no write made after that read.
func (l *LogBuffer) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Count returns how many lines contain all of subs. It reads the log in
// place: a wait calls it at every write, and a copy of the whole log each
// time grew with the log.
func (l *LogBuffer) Count(subs ...string) int {
	want := make([][]byte, len(subs))
	for i, s := range subs {
		want[i] = []byte(s)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range bytes.Lines(l.buf.Bytes()) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		ok := len(line) > 0
		for _, s := range want {
			ok = ok && bytes.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}
