package testbroker

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortOutsideEphemeralRange: FreePort's ports lie outside the
// kernel's ephemeral range, where nothing binding port 0 or connecting out
// can take them before the test's listener binds; they are free, and no
// two calls give the same one.
func TestFreePortOutsideEphemeralRange(t *testing.T) {
	lo, hi := ephemeralRange()
	if len(newPortPicker(lo, hi, 0).ports) == 0 {
		t.Skipf("the ephemeral range %d-%d leaves no port from %d to pick", lo, hi, minPickPort)
	}
	seen := map[int]bool{}
	for range 200 {
		port := FreePort(t)
		if port >= lo && port <= hi {
			t.Fatalf("port %d is in the ephemeral range %d-%d", port, lo, hi)
		}
		if port < minPickPort {
			t.Fatalf("port %d is under %d", port, minPickPort)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", port, err)
		}
		l.Close()
	}
}

// TestPortPickerSkipsBusyPorts: a port something listens on is passed
// over, and a range that leaves no candidate falls back to port 0's.
func TestPortPickerSkipsBusyPorts(t *testing.T) {
	p := newPortPicker(defaultEphemeralLo, defaultEphemeralHi, 0)
	if got := len(p.ports); got != (defaultEphemeralLo-minPickPort)+(maxPickPort-defaultEphemeralHi) {
		t.Fatalf("%d candidates", got)
	}
	first, err := p.free()
	if err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(first)))
	if err != nil {
		t.Fatalf("listen on %d: %v", first, err)
	}
	defer busy.Close()
	p.next = 0 // start again at the busy port
	if got, err := p.free(); err != nil || got == first {
		t.Fatalf("free() = %d, %v; want a port other than the busy %d", got, err, first)
	}

	none := newPortPicker(1024, 65535, 7)
	if got, err := none.free(); err != nil || got == 0 {
		t.Fatalf("with no candidate free() = %d, %v; want port 0's choice", got, err)
	}
	for _, tc := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"32768\t60999\n", 32768, 60999, true},
		{"49152 65535", 49152, 65535, true},
		{"60999 32768", 0, 0, false},
		{"32768", 0, 0, false},
		{"a b", 0, 0, false},
	} {
		lo, hi, err := parsePortRange(tc.in)
		if (err == nil) != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("parsePortRange(%q) = %d, %d, %v", tc.in, lo, hi, err)
		}
	}
}
