package mqttpub_test

import (
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// TestTLS: with the test CA and a client certificate the publisher
// connects and delivers; with an unrelated CA it keeps failing with an
// error that names the cause.
func TestTLS(t *testing.T) {
	b := testbroker.Start(t, testbroker.Options{TLS: true, RequireClientCert: true})
	sub := collect(t, b.URL, "scada", false, "inspectd/cam1/result")
	p, _ := newPublisher(t, b.TLSURL, "cam1", func(o *mqttpub.Options) {
		o.TLS = mqttpub.TLSOptions{CAFile: b.Certs.CAFile, CertFile: b.Certs.ClientCertFile, KeyFile: b.Certs.ClientKeyFile}
	})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishResult(sampleResult(1, ""), 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "result over TLS", func() bool { return len(sub.on("inspectd/cam1/result")) == 1 })

	// The server name may be given explicitly (here the DNS SAN "localhost").
	named, _ := newPublisher(t, b.TLSURL, "cam3", func(o *mqttpub.Options) {
		o.TLS = mqttpub.TLSOptions{CAFile: b.Certs.CAFile, CertFile: b.Certs.ClientCertFile,
			KeyFile: b.Certs.ClientKeyFile, ServerName: "localhost"}
	})
	if err := named.Start(); err != nil {
		t.Fatal(err)
	}
	if err := named.WaitConnected(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}

	wrong, lb := newPublisher(t, b.TLSURL, "cam2", func(o *mqttpub.Options) {
		o.TLS = mqttpub.TLSOptions{CAFile: b.Certs.OtherCAFile, CertFile: b.Certs.ClientCertFile, KeyFile: b.Certs.ClientKeyFile}
	})
	if err := wrong.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a failed TLS attempt", func() bool { return wrong.State().Failures >= 1 })
	st := wrong.State()
	if st.Connected || !strings.Contains(st.LastError, "certificate signed by unknown authority") {
		t.Fatalf("State() with the wrong CA = %+v", st)
	}
	if lb.Count("mqtt connect failed", "not signed by a CA this box trusts") < 1 {
		t.Fatalf("no clear log line for the wrong CA:\n%s", lb.String())
	}
	if ok, detail := wrong.Health(); ok || !strings.Contains(detail, "unknown authority") {
		t.Fatalf("Health() = %v, %q", ok, detail)
	}
}

// TestTLSFileErrors: unreadable TLS files are reported by New, naming the file.
func TestTLSFileErrors(t *testing.T) {
	certs, err := testbroker.GenerateCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tls  mqttpub.TLSOptions
		want string
	}{
		{mqttpub.TLSOptions{CAFile: "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{mqttpub.TLSOptions{CAFile: certs.ClientKeyFile}, "no PEM certificate"},
		{mqttpub.TLSOptions{CertFile: certs.ClientCertFile, KeyFile: certs.ServerKeyFile}, "private key does not match"},
		{mqttpub.TLSOptions{CertFile: certs.ClientCertFile}, "CertFile and KeyFile must be given together"},
	} {
		_, err := mqttpub.New(mqttpub.Options{Brokers: []string{"ssl://127.0.0.1:8883"}, DeviceID: "d", TLS: tc.tls})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("TLS %+v: error %v, want it to mention %q", tc.tls, err, tc.want)
		}
	}
}
