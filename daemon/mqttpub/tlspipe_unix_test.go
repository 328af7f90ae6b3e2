//go:build unix

package mqttpub_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testfs"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// TestTLSFileThatIsANamedPipe: an mqtt.tls.ca (or cert, key) that is a
// named pipe was opened and read, so that `config check`, a start and a
// reload waited for a writer for good (SIGTERM too: a trial's config
// check had to be killed), and one with a writer was read as the file. It
// is refused unopened now, naming the key, the file and what it is.
func TestTLSFileThatIsANamedPipe(t *testing.T) {
	certs, err := testbroker.GenerateCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		field string
		opts  func(pipe string) mqttpub.TLSOptions
	}{
		{"mqtt.tls.ca", func(p string) mqttpub.TLSOptions { return mqttpub.TLSOptions{CAFile: p} }},
		{"mqtt.tls.cert", func(p string) mqttpub.TLSOptions {
			return mqttpub.TLSOptions{CertFile: p, KeyFile: certs.ClientKeyFile}
		}},
		{"mqtt.tls.key", func(p string) mqttpub.TLSOptions {
			return mqttpub.TLSOptions{CertFile: certs.ClientCertFile, KeyFile: p}
		}},
	} {
		pipe := filepath.Join(dir, strings.ReplaceAll(tc.field, ".", "-")+".pem")
		testfs.Mkfifo(t, pipe)
		// A writer, so that the old read returned (with what it wrote)
		// instead of waiting; let go by the open below where the build
		// did not open the pipe.
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if w, err := os.OpenFile(pipe, os.O_WRONLY, 0); err == nil {
				w.WriteString("not PEM\n")
				w.Close()
			}
		}()
		var err error
		testfs.Within(t, 20*time.Second, tc.field+" a named pipe", func() {
			_, err = tc.opts(pipe).Config()
		})
		if r, oerr := os.OpenFile(pipe, os.O_RDWR, 0); oerr == nil {
			<-wrote
			r.Close()
		}
		if want := tc.field + " " + pipe + ": is a named pipe; expected"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s a named pipe: %v, want %q", tc.field, err, want)
		}
	}
}
