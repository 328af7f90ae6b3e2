// Package testfs helps tests that check the daemon does not wait for good
// on what is not a regular file: it makes named pipes that cannot outlive
// the test, and bounds a call that must return, so that a test showing a
// wait for good fails instead of hanging.
//
// The capture package keeps its own copy of these helpers: it may not
// import anything under daemon.
package testfs

import (
	"testing"
	"time"
)

// Within runs f and fails the test if it has not returned after d, naming
// what it was doing. f runs on its own goroutine, which is left behind when
// the time runs out; so that a pipe's open it waits in ends with the test,
// make the pipe with Mkfifo.
func Within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("%s: still waiting after %v", what, d)
	}
}
