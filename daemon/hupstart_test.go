package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
)

// TestSIGHUPDuringTheFirstFit: a SIGHUP that came while the start fitted
// the first model (before any model existed) was neither logged nor
// applied, as far as anyone could tell. It is logged at once, saying when
// it will be applied, and applied once the start is done. The fit is held
// at its first progress report until the signal was said, so that the
// signal surely lands in the fit, whatever the machine's speed.
func TestSIGHUPDuringTheFirstFit(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "inspectd.yaml")
	port := testbroker.FreePort(t)
	write := func(deviceID string) {
		y := "device_id: " + deviceID + "\nstate_dir: " + filepath.Join(dir, "state") + "\n" +
			syntheticLine + "\n" +
			"model: {features: 16, min_features: 16}\n" +
			"mqtt: {embedded_listen: 127.0.0.1:" + strconv.Itoa(port) + "}\nhttp: {listen: \"\"}\n"
		if err := os.WriteFile(cfgPath, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cell1")
	fitting, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	progress := func(done, total int) {
		once.Do(func() {
			close(fitting)
			<-release
		})
	}
	var logs, lines syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, RunOptions{ConfigPath: cfgPath, Print: &lines, FitFrames: 12, Progress: progress,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	}()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	select {
	case <-fitting:
	case err := <-done:
		t.Fatalf("Run ended before its fit: %v\n%s", err, logs.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("no fit started; log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "model fitted") {
		t.Fatal("the fit ended before its first progress report")
	}
	write("cell2")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if !testbroker.WaitFor(ctx, 60*time.Second, cond, &logs) {
			t.Fatalf("timed out waiting for %s; log:\n%s", what, logs.String())
		}
	}
	waitFor("the SIGHUP said during the fit", func() bool {
		return strings.Contains(logs.String(), `msg="SIGHUP during the start: the configuration file is reloaded once the start is done"`)
	})
	released = true
	close(release)
	waitFor("the reload after the start", func() bool {
		return strings.Contains(logs.String(), `msg="configuration reloaded"`) && strings.Contains(logs.String(), "device_id=cell2")
	})
	if i, j := strings.Index(logs.String(), `msg=inspecting`), strings.Index(logs.String(), `msg="configuration reloaded"`); i < 0 || j < i {
		t.Errorf("the reload came before the start was done:\n%s", logs.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
}
