// Package testbroker starts a real mosquitto broker on free loopback ports
// for integration tests. Tests talk to the same broker that runs in
// production, not to a fake, so reconnects, persistent sessions, TLS and
// authentication behave exactly as they will on a plant network.
//
// The broker runs as a child process with a mosquitto.conf written into
// t.TempDir(). It can be stopped (SIGTERM, saves its persistence database),
// killed (SIGKILL, saves nothing) and restarted on the same ports. Tests
// are skipped, with a message saying how to install it, when mosquitto is
// not found on PATH or in /usr/sbin.
package testbroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options selects the broker features a test needs.
type Options struct {
	// Users, when not empty, turns authentication on: only these
	// username/password pairs may connect (anonymous access is refused).
	// The password file is written with mosquitto_passwd.
	Users map[string]string
	// TLS adds a second listener that speaks TLS with a certificate signed
	// by a CA generated for this test (see Broker.Certs).
	TLS bool
	// RequireClientCert makes the TLS listener demand a client certificate
	// signed by the test CA.
	RequireClientCert bool
	// Persistence keeps sessions (subscriptions and queued messages of
	// clients with clean session off) in a database that survives Stop
	// and, once SaveNow has run, Kill.
	Persistence bool
	// MaxPacketSize, when positive, is mosquitto's max_packet_size: a
	// client that sends a larger packet is disconnected without a word
	// (MQTT 3.1.1 has no way to say why), as on a broker configured like
	// ../shared/cases/mqtt/mosquitto-small-packets.conf.
	MaxPacketSize int
}

// Broker is a running (or stopped) mosquitto child process.
type Broker struct {
	// URL is the plain TCP listener, for example "tcp://127.0.0.1:41234".
	URL string
	// TLSURL is the TLS listener ("ssl://127.0.0.1:port"), empty without Options.TLS.
	TLSURL string
	// Port and TLSPort are the listener ports; they stay the same across Restart.
	Port, TLSPort int
	// Certs holds the generated certificate files; nil without Options.TLS.
	Certs *Certs
	// Dir is the broker's private folder (config, log, database).
	Dir string

	t       testing.TB
	bin     string
	conf    string
	logPath string
	dbPath  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has been reaped
}

// Find returns the mosquitto binary, looking on PATH and then in
// /usr/sbin (where Debian installs it, often off a normal user's PATH).
func Find() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	const sbin = "/usr/sbin/mosquitto"
	if st, err := os.Stat(sbin); err == nil && !st.IsDir() {
		return sbin, nil
	}
	return "", errors.New("mosquitto not found on PATH or in /usr/sbin (install it with `make test-deps` or `apt-get -o DPkg::Lock::Timeout=600 install mosquitto mosquitto-clients`)")
}

// Start writes the configuration, starts mosquitto and waits until its
// listeners accept connections. The broker is killed when the test ends.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	bin, err := Find()
	if err != nil {
		t.Skipf("skipping MQTT integration test: %v", err)
	}
	dir := t.TempDir()
	b := &Broker{
		Dir:     dir,
		t:       t,
		bin:     bin,
		conf:    filepath.Join(dir, "mosquitto.conf"),
		logPath: filepath.Join(dir, "mosquitto.log"),
		dbPath:  filepath.Join(dir, "mosquitto.db"),
	}
	b.Port = FreePort(t)
	b.URL = fmt.Sprintf("tcp://127.0.0.1:%d", b.Port)

	var conf strings.Builder
	// mosquitto started as root drops to the "mosquitto" user, which
	// cannot read files in a root-owned temp dir; stay as whoever we are.
	if u, err := user.Current(); err == nil && os.Getuid() == 0 {
		fmt.Fprintf(&conf, "user %s\n", u.Username)
	}
	fmt.Fprintf(&conf, "log_dest file %s\n", b.logPath)
	conf.WriteString("log_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
	conf.WriteString("connection_messages true\nlog_timestamp_format %H:%M:%S\n")
	if opts.Persistence {
		// autosave_interval 0: save only on SIGUSR1 (SaveNow) and on exit, so
		// that a test knows exactly what a SIGKILLed broker remembers.
		fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\npersistence_file mosquitto.db\nautosave_interval 0\n", dir)
	} else {
		conf.WriteString("persistence false\n")
	}
	if len(opts.Users) > 0 {
		pw := filepath.Join(dir, "passwd")
		if err := writePasswordFile(pw, opts.Users); err != nil {
			t.Skipf("skipping MQTT integration test: %v", err)
		}
		fmt.Fprintf(&conf, "allow_anonymous false\npassword_file %s\n", pw)
	} else {
		conf.WriteString("allow_anonymous true\n")
	}
	if opts.MaxPacketSize > 0 {
		fmt.Fprintf(&conf, "max_packet_size %d\n", opts.MaxPacketSize)
	}
	fmt.Fprintf(&conf, "listener %d 127.0.0.1\n", b.Port)
	if opts.TLS {
		certs, err := GenerateCerts(filepath.Join(dir, "certs"))
		if err != nil {
			t.Fatalf("testbroker: generate certificates: %v", err)
		}
		b.Certs = certs
		b.TLSPort = FreePort(t)
		b.TLSURL = fmt.Sprintf("ssl://127.0.0.1:%d", b.TLSPort)
		fmt.Fprintf(&conf, "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n",
			b.TLSPort, certs.CAFile, certs.ServerCertFile, certs.ServerKeyFile)
		if opts.RequireClientCert {
			conf.WriteString("require_certificate true\n")
		}
	}
	if err := os.WriteFile(b.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatalf("testbroker: write %s: %v", b.conf, err)
	}
	t.Cleanup(b.Kill)
	b.Restart()
	return b
}

// writePasswordFile creates a mosquitto password file with mosquitto_passwd
// (the hash format is mosquitto's own; writing it by hand would tie the
// tests to one mosquitto version).
func writePasswordFile(path string, users map[string]string) error {
	tool, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/mosquitto_passwd"); serr != nil {
			return errors.New("mosquitto_passwd not found (it comes with the mosquitto package)")
		}
		tool = "/usr/bin/mosquitto_passwd"
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	for name, pass := range users {
		out, err := exec.Command(tool, "-b", path, name, pass).CombinedOutput()
		if err != nil {
			return fmt.Errorf("mosquitto_passwd -b %s %s: %v: %s", path, name, err, out)
		}
	}
	return nil
}

// Restart starts mosquitto again on the same ports with the same
// configuration (and database, with Persistence) and waits until it
// accepts connections. It is a no-op while the broker is running.
func (b *Broker) Restart() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return
	}
	// The port may be held for a moment by the previous process's sockets;
	// mosquitto sets SO_REUSEADDR, so a retry or two is enough.
	var lastErr error
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		cmd := exec.Command(b.bin, "-c", b.conf)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			b.t.Fatalf("testbroker: start %s -c %s: %v", b.bin, b.conf, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		if err := b.waitReady(done); err != nil {
			_ = cmd.Process.Kill()
			<-done
			lastErr = fmt.Errorf("%w; output: %s; log tail: %s", err, stderr.String(), b.logTail(800))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b.cmd, b.done = cmd, done
		return
	}
	b.t.Fatalf("testbroker: mosquitto did not start: %v", lastErr)
}

// waitReady polls the listeners until they accept a TCP connection or the
// process exits.
func (b *Broker) waitReady(done <-chan struct{}) error {
	ports := []int{b.Port}
	if b.TLSPort != 0 {
		ports = append(ports, b.TLSPort)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range ports {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		for {
			select {
			case <-done:
				return errors.New("mosquitto exited during start-up")
			default:
			}
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("listener %s not ready after 5s: %w", addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Stop ends the broker gracefully (SIGTERM): it disconnects clients and,
// with Persistence, writes its database.
func (b *Broker) Stop() { b.signal(syscall.SIGTERM) }

// Kill ends the broker with SIGKILL: clients see the connection drop
// without a DISCONNECT and nothing is saved.
func (b *Broker) Kill() { b.signal(syscall.SIGKILL) }

func (b *Broker) signal(sig syscall.Signal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(sig)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	b.cmd, b.done = nil, nil
}

// Running reports whether the broker process is up.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd != nil
}

// SaveNow makes mosquitto write its persistence database (SIGUSR1) and
// waits until the new file is in place, so that a later Kill keeps the
// sessions and subscriptions that exist now. Requires Options.Persistence.
func (b *Broker) SaveNow() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		b.t.Fatalf("testbroker: SaveNow on a stopped broker")
	}
	before, _ := os.Stat(b.dbPath)
	if err := b.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		b.t.Fatalf("testbroker: SIGUSR1: %v", err)
	}
	// mosquitto writes mosquitto.db.new and renames it over the old file,
	// so a new inode means the save finished.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		after, err := os.Stat(b.dbPath)
		if err == nil && (before == nil || !os.SameFile(before, after)) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.t.Fatalf("testbroker: mosquitto did not save %s within 5s; log tail: %s", b.dbPath, b.logTail(800))
}

// Log returns mosquitto's log so far (connections, auth failures, TLS errors).
func (b *Broker) Log() string {
	data, _ := os.ReadFile(b.logPath)
	return string(data)
}

func (b *Broker) logTail(n int) string {
	s := b.Log()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// Changer is what a WaitFor condition reads, where it can say when it
// changed (testproc.LogBuffer): the condition is then looked at again
// only when it may have become true.
type Changer interface {
	// Changed returns a channel closed at the next change after the call.
	Changed() <-chan struct{}
}

// pollInterval is how often WaitFor looks at a condition that reads
// nothing given as a Changer.
const pollInterval = 10 * time.Millisecond

// WaitFor waits until cond is true or timeout passes (or ctx ends); it
// reports whether cond became true, looking at it once more at the end.
// Integration tests use it instead of sleeps so they finish as soon as
// the broker has done its part. Where cond reads only what on gives (a
// log it waits for a line in), it is looked at again at each change and
// at nothing else: a wait on a log polled it every 10 ms, copying the
// whole log each time. Without on it is polled every 10 ms. A condition
// reads one log: more than one on is a mistake in the test (the wait
// would miss the changes of all but one), refused with a panic.
func WaitFor(ctx context.Context, timeout time.Duration, cond func() bool, on ...Changer) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch len(on) {
	case 0:
		tick := time.NewTicker(pollInterval)
		defer tick.Stop()
		for {
			if cond() {
				return true
			}
			select {
			case <-ctx.Done():
				return cond()
			case <-tick.C:
			}
		}
	case 1:
	default:
		panic("testbroker.WaitFor: a condition waits on one Changer at most")
	}
	for {
		// The channel taken before cond reads: a change made after the
		// read closes it.
		changed := on[0].Changed()
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-changed:
		}
	}
}
