package testfs

import (
	"fmt"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records its message instead
// of failing, so that Within's failure can be checked without failing this
// test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
}

// Within lets a call that returns in time pass and fails one that does not,
// naming what it waited for and for how long.
func TestWithin(t *testing.T) {
	ran := false
	Within(t, 5*time.Second, "a quick call", func() { ran = true })
	if !ran {
		t.Error("Within returned before its call ran")
	}

	r := &fatalRecorder{TB: t}
	release := make(chan struct{})
	defer close(release)
	Within(r, 10*time.Millisecond, "a call that waits", func() { <-release })
	if want := "a call that waits: still waiting after 10ms"; r.msg != want {
		t.Errorf("Within over a call that waits: failure %q, want %q", r.msg, want)
	}
}
