package testbroker

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
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
