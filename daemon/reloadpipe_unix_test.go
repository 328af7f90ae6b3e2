package daemon

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestReloadRefusesANamedPipe: a SIGHUP with a named pipe put in the
// configuration file's place was read from the pipe as a file, twice (the
// second read, for an empty file, waited for another writer, and held the
// reload for good where none came). It is refused unopened now, in the
// words of config check, and the configuration in force kept (real
// mosquitto).
func TestReloadRefusesANamedPipe(t *testing.T) {
	r := startDaemon(t, nil)
	r.daemon()
	r.waitFor("connected", func() bool { return strings.Contains(r.logs.String(), "mqtt connected") }, &r.logs)
	if err := os.Remove(r.cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(r.cfgPath, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	// Writers for both of the old reload's reads, so that it went on.
	good := r.baseYAML("cell1")
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for range 2 {
			if w, err := os.OpenFile(r.cfgPath, os.O_WRONLY, 0); err == nil {
				w.WriteString(good)
				w.Close()
			}
		}
	}()
	defer func() {
		// Releases the writers' opens where the reload did not take the
		// pipe's other end.
		if p, err := os.OpenFile(r.cfgPath, os.O_RDWR, 0); err == nil {
			<-wrote
			p.Close()
		}
	}()
	mark := len(r.logs.String())
	r.hup()
	r.waitFor("the reload refused", func() bool { return testutil.ToFloat64(r.daemon().metrics.ReloadFailures) == 1 })
	if after := r.logs.String()[mark:]; !strings.Contains(after, "config "+r.cfgPath+": is a named pipe, not a configuration file") {
		t.Errorf("the refusal does not say the file is a named pipe:\n%s", after)
	}
}
