package testproc

import (
	"fmt"
	"runtime"
	"testing"
)

// Count reads the log in place: a wait on a log (testbroker.WaitFor with
// the buffer) calls it at every write, and each call copied the whole
// log (String) and split it into lines, a megabyte a call for a
// megabyte's log.
func TestLogBufferCountCopiesNothing(t *testing.T) {
	var lb LogBuffer
	for i := range 20000 {
		fmt.Fprintf(&lb, "level=INFO msg=\"frame inspected\" seq=%d padding=%050d\n", i, i)
	}
	fmt.Fprintln(&lb, "level=WARN msg=\"sparkplug connected\" attempt=2")
	size := len(lb.String())
	if n := lb.Count("sparkplug connected", "attempt=2"); n != 1 {
		t.Fatalf("Count = %d, want 1", n)
	}
	if n := lb.Count("frame inspected"); n != 20000 {
		t.Fatalf("Count = %d, want 20000", n)
	}
	const calls = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range calls {
		lb.Count("sparkplug connected", "attempt=2")
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / calls; per > uint64(size)/100 {
		t.Errorf("Count allocated %d bytes a call on a log of %d bytes, want it read in place", per, size)
	}
}

// Changed is closed at the next Write, and a fresh one handed out after.
func TestLogBufferChanged(t *testing.T) {
	var lb LogBuffer
	c := lb.Changed()
	select {
	case <-c:
		t.Fatal("closed before any write")
	default:
	}
	if lb.Changed() != c {
		t.Fatal("two channels for one wait")
	}
	fmt.Fprintln(&lb, "a line")
	select {
	case <-c:
	default:
		t.Fatal("not closed by a write")
	}
	select {
	case <-lb.Changed():
		t.Fatal("the next channel closed before the next write")
	default:
	}
}
