//go:build !unix

package testfs

import (
	"runtime"
	"testing"
)

// Mkfifo skips the test: there are no named pipes on this system.
func Mkfifo(t testing.TB, path string) {
	t.Helper()
	t.Skipf("no named pipes on %s (%s)", runtime.GOOS, path)
}
