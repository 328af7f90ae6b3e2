package mqttpub_test

import (
	"errors"
	"os"
	"path/filepath"
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

// damage writes a copy of the PEM file src whose body has a character
// that is not base64 on its third line, as a file cut and pasted through
// a terminal or an editor that wraps comes.
func damage(t *testing.T, src string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	lines[2] = lines[2][:10] + "*" + lines[2][11:]
	out := filepath.Join(t.TempDir(), "damaged-"+filepath.Base(src))
	if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTLSDamagedPEM: a CA or client certificate file whose PEM body is
// not valid base64 was refused with "no PEM certificate found" (or
// crypto/tls's "failed to find any PEM data"), and the operator looked
// for a missing or misnamed file. The error now says the block's body is
// not valid base64, or not a certificate, naming the key and the file,
// in the same words for the JSON publisher (New) and the Sparkplug edge
// node (Config), and with the watch's flags when it names them (Build).
func TestTLSDamagedPEM(t *testing.T) {
	certs, err := testbroker.GenerateCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	notCert := filepath.Join(t.TempDir(), "not-a-cert.pem")
	if err := os.WriteFile(notCert, []byte("-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badCA, badCert, badKey := damage(t, certs.CAFile), damage(t, certs.ClientCertFile), damage(t, certs.ClientKeyFile)
	for _, tc := range []struct {
		name  string
		tls   mqttpub.TLSOptions
		field string
		file  string
		why   string
	}{
		{"CA body not base64", mqttpub.TLSOptions{CAFile: badCA}, "mqtt.tls.ca", badCA, "is not valid base64 at line 3"},
		{"CA block not a certificate", mqttpub.TLSOptions{CAFile: notCert}, "mqtt.tls.ca", notCert, "is not a valid certificate"},
		{"client certificate body not base64", mqttpub.TLSOptions{CertFile: badCert, KeyFile: certs.ClientKeyFile}, "mqtt.tls.cert", badCert, "is not valid base64"},
		{"client certificate not a certificate", mqttpub.TLSOptions{CertFile: notCert, KeyFile: certs.ClientKeyFile}, "mqtt.tls.cert", notCert, "is not a valid certificate"},
		{"key body not base64", mqttpub.TLSOptions{CertFile: certs.ClientCertFile, KeyFile: badKey}, "mqtt.tls.key", badKey, "is not valid base64"},
	} {
		_, newErr := mqttpub.New(mqttpub.Options{Brokers: []string{"ssl://127.0.0.1:8883"}, DeviceID: "d", TLS: tc.tls})
		_, cfgErr := tc.tls.Config()
		want := tc.field + " " + tc.file + ": "
		if newErr == nil || cfgErr == nil || newErr.Error() != cfgErr.Error() {
			t.Errorf("%s: New: %v; Config: %v; want one error", tc.name, newErr, cfgErr)
			continue
		}
		if msg := newErr.Error(); !strings.Contains(msg, want) || !strings.Contains(msg, tc.why) || strings.Contains(msg, "no PEM") ||
			strings.Contains(msg, "failed to find") {
			t.Errorf("%s: %q, want it to name %q and say %q", tc.name, msg, want, tc.why)
		}
		var fe *mqttpub.TLSFileError
		if !errors.As(newErr, &fe) || fe.Field != tc.field || fe.File != tc.file {
			t.Errorf("%s: %v is no TLSFileError of %s %s", tc.name, newErr, tc.field, tc.file)
		}
	}
	_, err = mqttpub.TLSOptions{CAFile: badCA}.Build(mqttpub.TLSFields{CA: "--cafile", Cert: "--cert", Key: "--key"})
	if err == nil || !strings.HasPrefix(err.Error(), "--cafile "+badCA+": the body of its PEM block") {
		t.Errorf("Build with flag names: %v", err)
	}
}
