package testbroker

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a listener the test starts later (a broker, a daemon's embedded broker).
//
// The port lies outside the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range): one from that range (what
// listening on port 0 gives) was free when picked but could be handed to
// anything that binds port 0 or connects out before the listener came up,
// such as the daemon's own HTTP endpoint on 127.0.0.1:0 under load, and
// the broker then failed to bind. Ports are taken in turn from a random
// place in the range left, so that no two calls in one test binary get
// the same port and test binaries run side by side rarely meet; each is
// checked free by listening on it. Where the ephemeral range leaves no
// room (or cannot be read and no room is left by Linux's default), it
// falls back to port 0.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := processPorts().free()
	if err != nil {
		t.Fatalf("testbroker: find a free port: %v", err)
	}
	return port
}

// processPorts is the picker of this test binary. It is shared by every
// test in the process, parallel ones too, because the ports it hands out
// must differ across all of them: state kept per test could not promise
// that.
var processPorts = sync.OnceValue(func() *portPicker {
	lo, hi := ephemeralRange()
	return newPortPicker(lo, hi, rand.IntN(1<<16))
})

// Ports below minPickPort are left alone: well-known services (and the
// privileged ports under 1024) crowd them.
const (
	minPickPort = 10000
	maxPickPort = 65535
)

// Linux's default ip_local_port_range, assumed where /proc cannot be read.
const (
	defaultEphemeralLo = 32768
	defaultEphemeralHi = 60999
)

// ephemeralRange reads the kernel's ephemeral port range.
func ephemeralRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeralLo, defaultEphemeralHi
	}
	lo, hi, err = parsePortRange(string(b))
	if err != nil {
		return defaultEphemeralLo, defaultEphemeralHi
	}
	return lo, hi
}

// parsePortRange parses ip_local_port_range: two port numbers separated by
// white space.
func parsePortRange(s string) (lo, hi int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("port range %q: want two numbers", s)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo < 1 || hi > maxPickPort || lo > hi {
		return 0, 0, fmt.Errorf("port range %q: want two port numbers, the lower first", s)
	}
	return lo, hi, nil
}

// portPicker hands out loopback ports from minPickPort..maxPickPort less
// an ephemeral range, in turn from a starting point.
type portPicker struct {
	mu    sync.Mutex
	ports []int // the candidates, in order
	next  int   // index of the next candidate to try
}

func newPortPicker(ephLo, ephHi, start int) *portPicker {
	p := &portPicker{}
	for port := minPickPort; port <= maxPickPort; port++ {
		if port < ephLo || port > ephHi {
			p.ports = append(p.ports, port)
		}
	}
	if len(p.ports) > 0 {
		p.next = start % len(p.ports)
	}
	return p
}

// free returns the next candidate that can be listened on now, each at most
// once per round of the candidates; port 0's choice when none can.
func (p *portPicker) free() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range p.ports {
		port := p.ports[p.next]
		p.next = (p.next + 1) % len(p.ports)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
