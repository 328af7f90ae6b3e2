package testbroker

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP relay between MQTT clients and a broker that a test can
// stall in one direction: the connection stays open while nothing arrives,
// as on a network that drops packets or a broker that stopped answering.
// It reproduces states a healthy loopback never shows, such as a broker
// that received a QoS 2 PUBLISH and answered PUBREC that never reached the
// client.
type Proxy struct {
	// URL is the client side, "tcp://127.0.0.1:port".
	URL string

	t      testing.TB
	ln     net.Listener
	target string

	mu       sync.Mutex
	cond     *sync.Cond
	stallUp  bool // client → broker held back
	stallDn  bool // broker → client held back
	conns    map[net.Conn]struct{}
	closed   bool
	accepted int
}

// NewProxy relays connections to target (host:port, or a tcp:// URL) until
// the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	if len(target) > 6 && target[:6] == "tcp://" {
		target = target[6:]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testbroker: proxy listen: %v", err)
	}
	p := &Proxy{URL: "tcp://" + ln.Addr().String(), t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		p.accepted++
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.relay(c, up, func() bool { return p.stallUp })
		go p.relay(up, c, func() bool { return p.stallDn })
	}
}

// relay copies src to dst chunk by chunk, holding each chunk while stalled()
// says so; it closes both ends when either fails.
func (p *Proxy) relay(src, dst net.Conn, stalled func() bool) {
	defer p.drop(src, dst)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for stalled() && !p.closed {
				p.cond.Wait()
			}
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF, reset or closed: either side ending ends the relay
			return
		}
	}
}

func (p *Proxy) drop(a, b net.Conn) {
	a.Close()
	b.Close()
	p.mu.Lock()
	delete(p.conns, a)
	delete(p.conns, b)
	p.mu.Unlock()
}

// StallToClient holds back everything the broker sends (acknowledgements
// included) until Resume; the client's packets still reach the broker.
func (p *Proxy) StallToClient() { p.set(func() { p.stallDn = true }) }

// Stall holds back traffic in both directions until Resume.
func (p *Proxy) Stall() { p.set(func() { p.stallUp, p.stallDn = true, true }) }

// Resume lets held traffic through again.
func (p *Proxy) Resume() { p.set(func() { p.stallUp, p.stallDn = false, false }) }

// Cut closes every relayed connection (both sides see a reset or EOF); new
// connections are still accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Accepted returns how many client connections the proxy has relayed.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *Proxy) set(f func()) {
	p.mu.Lock()
	f()
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Close stops accepting and closes every relayed connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.ln.Close()
}

// String names the proxy and its target for test logs.
func (p *Proxy) String() string { return fmt.Sprintf("proxy %s -> %s", p.URL, p.target) }
