package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/remote"
)

// BenchmarkRefit runs a remote refit on a running daemon (synthetic
// 640×480 parts, free-run as fast as the pipeline takes frames, d = 100)
// and reports, for N live frames collected: inspections per second before
// and during the refit and their ratio, the time from the command to the
// new model in force, and the peak resident set during the refit (VmHWM,
// reset just before it).
//
//	go test -run '^$' -bench BenchmarkRefit -benchtime 1x ./daemon/
func BenchmarkRefit(b *testing.B) {
	for _, n := range []int{200, 800} {
		b.Run("frames="+strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				benchRefit(b, n)
			}
		})
	}
}

func benchRefit(b *testing.B, frames int) {
	dir := b.TempDir()
	cfgPath := filepath.Join(dir, "inspectd.yaml")
	yaml := "device_id: bench\nstate_dir: " + filepath.Join(dir, "state") + "\n" +
		"capture: {synthetic: {width: 640, height: 480, fps: 0, defect_rate: 0}}\n" +
		"model: {features: 100, optimize: int8}\n" +
		"mqtt: {embedded_listen: 127.0.0.1:" + strconv.Itoa(testbroker.FreePort(b)) + ", result_max_rate: 1}\nhttp: {listen: \"\"}\n" +
		"remote: {allow_unsigned: true}\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *Daemon, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, RunOptions{ConfigPath: cfgPath, FitFrames: 40, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnStarted: func(d *Daemon) { started <- d }})
	}()
	defer func() { cancel(); <-done }()
	var d *Daemon
	select {
	case d = <-started:
	case err := <-done:
		b.Fatal(err)
	}
	rate := func(span time.Duration) float64 {
		n0, t0 := d.Status().Inspections, time.Now()
		time.Sleep(span)
		return float64(d.Status().Inspections-n0) / time.Since(t0).Seconds()
	}
	time.Sleep(3 * time.Second) // warm up
	before := rate(10 * time.Second)

	resetPeakRSS()
	replies := make(chan remote.Reply, 1)
	n0, t0 := d.Status().Inspections, time.Now()
	body, _ := json.Marshal(map[string]any{"id": "bench", "count": frames, "max_false_alarm_rate": 1})
	d.disp.Submit(remote.Request{ID: "bench", Name: "refit", Body: body, Origin: "device"}, func(r remote.Reply) { replies <- r })
	var r remote.Reply
	select {
	case r = <-replies:
	case <-time.After(30 * time.Minute):
		b.Fatal("refit did not finish")
	}
	took := time.Since(t0)
	during := float64(d.Status().Inspections-n0) / took.Seconds()
	if !r.OK {
		b.Fatalf("refit failed: %s %v", r.Error, r.Data)
	}
	b.ReportMetric(took.Seconds(), "s/refit")
	b.ReportMetric(before, "insp/s-before")
	b.ReportMetric(during, "insp/s-during")
	b.ReportMetric(during/before, "during/before")
	b.ReportMetric(peakRSSMB(), "peak-MB")
	b.Logf("refit of %d frames: %v; %.1f inspections/s before, %.1f during (%.2f×); peak RSS %.0f MB; model %v",
		frames, took.Round(time.Millisecond), before, during, during/before, peakRSSMB(), r.Data["model_id"])
}

// resetPeakRSS resets the kernel's high-water mark of the resident set
// (VmHWM), so that peakRSSMB reports the peak from now on.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSMB is VmHWM in MB.
func peakRSSMB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}
