package mqttpub

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// TLSFields names the settings the files of a TLSOptions come from, for
// its errors: the daemon's configuration keys (ConfigTLSFields) or a
// command's flags (`sparkplug watch --cafile`). One builder (Build) serves
// the JSON publisher, the Sparkplug edge node, `config check` and the
// watch, so that a file is refused for the same reason, in the same words,
// wherever it is named.
type TLSFields struct{ CA, Cert, Key string }

// ConfigTLSFields are the configuration keys of mqtt.tls.
func ConfigTLSFields() TLSFields {
	return TLSFields{CA: "mqtt.tls.ca", Cert: "mqtt.tls.cert", Key: "mqtt.tls.key"}
}

// TLSFileError is a TLS file that cannot be used: the setting that names
// it, the file, why, and what it should hold.
type TLSFileError struct {
	// Field is the setting naming File (mqtt.tls.ca, --cafile).
	Field, File string
	// PairField and PairFile are the certificate a key does not match,
	// "" otherwise.
	PairField, PairFile string
	// Err is the cause: an errno ("no such file or directory"), or what is
	// wrong with the content.
	Err error
	// Want says what the file should hold.
	Want string
}

// Error names the setting and the file: "mqtt.tls.ca /etc/ca.pem: …".
func (e *TLSFileError) Error() string {
	if e.PairField != "" {
		return fmt.Sprintf("%s %s and %s %s: %v; %s", e.PairField, e.PairFile, e.Field, e.File, e.Err, e.Want)
	}
	return fmt.Sprintf("%s %s: %v; %s", e.Field, e.File, e.Err, e.Want)
}

// Detail is the error without the setting's name, for a caller that puts
// the name first itself ("mqtt.tls.ca: /etc/ca.pem: …").
func (e *TLSFileError) Detail() error { return tlsDetail{e} }

// Unwrap returns the cause.
func (e *TLSFileError) Unwrap() error { return e.Err }

type tlsDetail struct{ e *TLSFileError }

func (d tlsDetail) Error() string {
	e := d.e
	if e.PairField != "" {
		return fmt.Sprintf("%s with %s %s: %v; %s", e.File, e.PairField, e.PairFile, e.Err, e.Want)
	}
	return fmt.Sprintf("%s: %v; %s", e.File, e.Err, e.Want)
}

func (d tlsDetail) Unwrap() error { return d.e }

// Config builds the client TLS configuration from the files, its errors
// naming the mqtt.tls keys (Build with ConfigTLSFields).
func (t TLSOptions) Config() (*tls.Config, error) { return t.Build(ConfigTLSFields()) }

// tlsConfig is Config, for New.
func (t TLSOptions) tlsConfig() (*tls.Config, error) { return t.Config() }

// Build builds the client TLS configuration, reading the files now so
// that a wrong path is reported at start-up, not at the first connect.
// An error about a file is a *TLSFileError naming it by names.
func (t TLSOptions) Build(names TLSFields) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // explicit operator choice, documented as test-only
	}
	const (
		wantCA   = "expected a PEM file of the CA certificates that sign the broker's certificate"
		wantCert = "expected the client certificate (PEM) the broker accepts"
	)
	wantKey := "expected the PEM private key of the certificate in " + names.Cert
	if t.CAFile != "" {
		data, err := readTLSFile(t.CAFile)
		if err != nil {
			return nil, &TLSFileError{Field: names.CA, File: t.CAFile, Err: pathCause(err), Want: wantCA}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			why := pemProblem(data, "CERTIFICATE")
			if why == nil {
				why = errors.New("it holds no PEM certificate")
			}
			return nil, &TLSFileError{Field: names.CA, File: t.CAFile, Err: why, Want: wantCA}
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		certPEM, err := readTLSFile(t.CertFile)
		if err != nil {
			return nil, &TLSFileError{Field: names.Cert, File: t.CertFile, Err: pathCause(err), Want: wantCert}
		}
		keyPEM, err := readTLSFile(t.KeyFile)
		if err != nil {
			return nil, &TLSFileError{Field: names.Key, File: t.KeyFile, Err: pathCause(err), Want: wantKey}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// crypto/tls says which input it could not read ("failed to
			// find any PEM data in certificate input", also for a block
			// whose body does not decode): said of that file, with why.
			either := func(why error) error {
				if why == nil {
					return err
				}
				return why
			}
			msg := err.Error()
			switch {
			case strings.Contains(msg, "certificate input"), strings.HasPrefix(msg, "x509:"):
				return nil, &TLSFileError{Field: names.Cert, File: t.CertFile, Err: either(pemProblem(certPEM, "CERTIFICATE")), Want: wantCert}
			case strings.Contains(msg, "key input"):
				return nil, &TLSFileError{Field: names.Key, File: t.KeyFile, Err: either(pemProblem(keyPEM, "PRIVATE KEY")), Want: wantKey}
			}
			// The rest (a key that is not the certificate's) is the key's.
			return nil, &TLSFileError{Field: names.Key, File: t.KeyFile, PairField: names.Cert, PairFile: t.CertFile, Err: err, Want: wantKey}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// readTLSFile reads a TLS file, refusing unopened what is neither a
// regular file nor a folder (whose read says "is a directory"): opening a
// named pipe waited for a writer, so that `config check`, a start and a
// reload naming one as mqtt.tls.ca hung for good (SIGTERM too), and a
// device such as /dev/zero was read until memory ran out. Its error is a
// *fs.PathError, whose cause pathCause gives ("is a named pipe").
func readTLSFile(path string) ([]byte, error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errors.New("is " + atomicfile.FileKind(st.Mode()))}
	}
	return os.ReadFile(path)
}

// pathCause is the errno of a file that cannot be read ("no such file or
// directory", "is a directory"), the file being named by the caller.
func pathCause(err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// pemProblem says what is wrong with the first damaged PEM block of the
// kind in data (its type ends with kind: "CERTIFICATE", "PRIVATE KEY"),
// nil when none is. A block whose body is not valid base64 is skipped by
// encoding/pem without a word, and was reported as "no PEM certificate",
// sending the reader to look for the wrong thing: it is named here, by
// its line, with what is wrong in it.
func pemProblem(data []byte, kind string) error {
	rest := data
	for {
		i := bytes.Index(rest, []byte("-----BEGIN "))
		if i < 0 {
			break
		}
		start := rest[i:]
		line := 1 + bytes.Count(data[:len(data)-len(start)], []byte("\n"))
		eol := bytes.IndexByte(start, '\n')
		if eol < 0 {
			eol = len(start)
		}
		head := strings.TrimSpace(string(start[:eol]))
		typ := strings.TrimSuffix(strings.TrimPrefix(head, "-----BEGIN "), "-----")
		if !strings.HasSuffix(typ, kind) {
			rest = start[eol:]
			continue
		}
		block, _ := pem.Decode(start)
		if block == nil {
			end := bytes.Index(start, []byte("-----END "+typ+"-----"))
			if end < 0 {
				return fmt.Errorf("its PEM block %q (line %d) has no END line", head, line)
			}
			var body []byte
			var lineAt []int // the file's line of each byte of body
			for k, l := range bytes.Split(start[eol:end], []byte("\n")) {
				if l = bytes.TrimSpace(l); !bytes.Contains(l, []byte(":")) { // headers (Proc-Type: …) aside
					body = append(body, l...)
					for range l {
						lineAt = append(lineAt, line+k)
					}
				}
			}
			if _, err := base64.StdEncoding.DecodeString(string(body)); err != nil {
				at := ""
				if ce := base64.CorruptInputError(0); errors.As(err, &ce) && int(ce) < len(lineAt) {
					at = fmt.Sprintf(" at line %d", lineAt[ce])
				}
				return fmt.Errorf("the body of its PEM block %q (line %d) is not valid base64%s: the file is damaged, copy it again", head, line, at)
			}
			return fmt.Errorf("its PEM block %q (line %d) does not decode", head, line)
		}
		if kind == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return fmt.Errorf("its PEM block %q (line %d) is not a valid certificate (%v)", head, line, err)
			}
		}
		rest = start[eol:]
	}
	return nil
}
