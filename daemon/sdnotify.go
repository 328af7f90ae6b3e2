package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Liveness is what a Notifier watches once the service is ready.
type Liveness struct {
	// Progress must advance whenever the pipeline does work: once per
	// published frame, and once per turn of a loop that waits with nothing
	// in flight (trigger mode waiting for a trigger, the camera being
	// reopened). It must advance at least every WatchdogInterval()/2 while
	// the pipeline is healthy. While it stands still, no WATCHDOG=1 is sent,
	// so systemd kills and restarts a wedged pipeline after WatchdogSec.
	// It is called from the Notifier's goroutine: it must be cheap and safe
	// to call concurrently (an atomic counter).
	Progress func() uint64
	// Idle, when set, reports true while the pipeline waits for input with
	// nothing in flight: in trigger mode, the capture stage parked on an
	// empty trigger queue, which can last hours. While it does, the
	// watchdog is pinged although Progress stands still; a stage that hangs
	// once work arrived (a camera read, an inference) is not idle.
	Idle func() bool
	// Inspections counts the inspections made; STATUS= reports their rate.
	// A counter that starts again from zero (a new pipeline) is followed.
	// Nil: STATUS= reports no rate.
	Inspections func() uint64
	// ModelID names the model in STATUS=.
	ModelID string
}

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	Logger *slog.Logger
	// StatusEvery is how often STATUS= is refreshed with the inspection
	// rate while the service is ready (0: every 10 s).
	StatusEvery time.Duration
	// ReloadTimeout bounds how long the watchdog is fed without pipeline
	// progress between Reloading and the next Ready, while the pipeline is
	// rebuilt (the model reloaded, perhaps re-measured). A reload that has
	// not finished by then is taken as hung: the pings stop and systemd
	// restarts the service. 0: 10 minutes, as the unit's TimeoutStartSec.
	ReloadTimeout time.Duration
}

// notifierState is where the service is in systemd's life cycle.
type notifierState int

const (
	stateStarting notifierState = iota
	stateReady
	stateReloading
	stateStopping
)

// Notifier speaks systemd's notification protocol (sd_notify(3)) for a
// Type=notify service: READY=1 once capture, model and MQTT are up,
// STATUS= lines with the inspection rate and the model, RELOADING=1 and
// STOPPING=1, and WATCHDOG=1 pings only while the pipeline makes progress,
// so that a hung pipeline is killed and restarted by systemd (WatchdogSec=)
// instead of staying blind while the process looks alive.
//
// The socket is $NOTIFY_SOCKET and the watchdog period $WATCHDOG_USEC (for
// this process when $WATCHDOG_PID says so), both set by systemd. Without
// $NOTIFY_SOCKET (not started by systemd, or not Type=notify) every method
// is a no-op. Methods are safe for concurrent use.
//
// One Notifier serves the whole process: NewNotifier at start, Ready each
// time a pipeline runs (after the first start and after every reload),
// Reloading when SIGHUP's configuration is about to replace the pipeline,
// Stopping on SIGTERM, Close on return.
type Notifier struct {
	log         *slog.Logger
	enabled     bool
	interval    time.Duration // watchdog timeout; 0: no watchdog
	statusEvery time.Duration
	reloadLimit time.Duration

	mu        sync.Mutex
	state     notifierState
	gen       uint64 // advanced by every Ready, Reloading and Stopping
	live      Liveness
	reloadAt  time.Time // when the current reload began
	lastProg  uint64    // Progress at the last ping
	movedAt   time.Time // when Progress last moved
	stalled   bool      // the stall has been logged (3/4 of a period still)
	gaveUp    bool      // a reload outlived ReloadTimeout (logged)
	lastInsp  uint64    // Inspections at the last STATUS=
	statusAt  time.Time
	sendFails int

	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// NewNotifier reads systemd's environment and, when the service has a
// notification socket, starts the goroutine that pings the watchdog and
// refreshes STATUS=. Close stops it.
func NewNotifier(o NotifierOptions) *Notifier {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StatusEvery <= 0 {
		o.StatusEvery = 10 * time.Second
	}
	if o.ReloadTimeout <= 0 {
		o.ReloadTimeout = 10 * time.Minute
	}
	n := &Notifier{log: o.Logger, statusEvery: o.StatusEvery, reloadLimit: o.ReloadTimeout,
		quit: make(chan struct{}), done: make(chan struct{})}
	n.enabled = os.Getenv("NOTIFY_SOCKET") != ""
	if !n.enabled {
		close(n.done)
		return n
	}
	iv, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog settings not understood; not pinging it", "err", err)
	}
	n.interval = iv
	go n.loop()
	return n
}

// Enabled says whether systemd listens (NOTIFY_SOCKET is set).
func (n *Notifier) Enabled() bool { return n.enabled }

// WatchdogInterval is the unit's WatchdogSec= (0: no watchdog). Loops
// that feed Liveness.Progress while idle must turn at least twice in it.
func (n *Notifier) WatchdogInterval() time.Duration { return n.interval }

// Ready sends READY=1 and a first STATUS=, and from now on pings the
// watchdog only while l.Progress moves. Call it once capture, model and
// MQTT are up, after the first start and after each reload.
func (n *Notifier) Ready(l Liveness) {
	if !n.enabled {
		return
	}
	if l.Progress == nil && n.interval > 0 {
		n.log.Error("no pipeline progress to watch: the systemd watchdog will not be pinged", "watchdog", n.interval)
	}
	var prog, insp uint64
	if l.Progress != nil {
		prog = l.Progress()
	}
	if l.Inspections != nil {
		insp = l.Inspections()
	}
	now := time.Now()
	n.mu.Lock()
	if n.state == stateStopping { // a pending stop wins over a restart that raced it
		n.mu.Unlock()
		return
	}
	n.state, n.live, n.gen = stateReady, l, n.gen+1
	n.lastProg, n.movedAt, n.stalled, n.gaveUp = prog, now, false, false
	n.lastInsp, n.statusAt = insp, now
	err := n.sendLocked("READY=1\nSTATUS=" + readyStatus(l.ModelID))
	n.mu.Unlock()
	n.logSend(err)
}

// readyStatus is STATUS= before a rate has been measured.
func readyStatus(modelID string) string {
	if modelID == "" {
		return "inspecting"
	}
	return "inspecting with model " + modelID
}

// Status sends a free-form STATUS= line, for phases the rate does not
// describe ("loading model", "fitting: 120/200 images"). While ready, the
// next periodic rate line replaces it.
func (n *Notifier) Status(format string, args ...any) {
	if !n.enabled {
		return
	}
	n.mu.Lock()
	err := n.sendLocked("STATUS=" + fmt.Sprintf(format, args...))
	n.mu.Unlock()
	n.logSend(err)
}

// Reloading sends RELOADING=1 (with MONOTONIC_USEC, as systemd 253+ wants
// it): call it when a SIGHUP's new configuration is about to replace the
// pipeline, and Ready when the new one runs. In between the watchdog is
// fed on its timer, for at most NotifierOptions.ReloadTimeout.
func (n *Notifier) Reloading() {
	if !n.enabled {
		return
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	n.mu.Lock()
	if n.state == stateStopping {
		n.mu.Unlock()
		return
	}
	n.state, n.reloadAt, n.gaveUp, n.gen = stateReloading, time.Now(), false, n.gen+1
	err := n.sendLocked(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading the configuration", ts.Nano()/1000))
	n.mu.Unlock()
	n.logSend(err)
}

// Stopping sends STOPPING=1: call it as soon as shutdown begins (SIGTERM),
// before in-flight frames are finished and MQTT says offline. systemd stops
// watching the watchdog then; no more pings are sent. It is final: a Ready
// or Reloading after it (a reload that raced the stop) sends nothing.
func (n *Notifier) Stopping() {
	if !n.enabled {
		return
	}
	n.mu.Lock()
	n.state, n.gen = stateStopping, n.gen+1
	err := n.sendLocked("STOPPING=1\nSTATUS=stopping: finishing in-flight frames")
	n.mu.Unlock()
	n.logSend(err)
}

// Close stops the Notifier's goroutine; it sends nothing.
func (n *Notifier) Close() {
	n.closeOnce.Do(func() { close(n.quit) })
	<-n.done
}

// loop ticks four times per watchdog period (at least once a second for
// STATUS= without a watchdog).
func (n *Notifier) loop() {
	defer close(n.done)
	tick := time.Second
	if n.interval > 0 {
		tick = min(tick, n.interval/4)
	}
	tick = min(tick, n.statusEvery)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-n.quit:
			return
		case now := <-t.C:
			n.tick(now)
		}
	}
}

// tick decides on one watchdog ping and one STATUS= refresh.
func (n *Notifier) tick(now time.Time) {
	n.mu.Lock()
	state, live, gen := n.state, n.live, n.gen
	n.mu.Unlock()
	switch state {
	case stateReady:
		// The callbacks run without the lock: a wedged pipeline may block
		// them, and then no ping is what should happen.
		var prog, insp uint64
		if live.Progress != nil {
			prog = live.Progress()
		}
		idle := live.Idle != nil && live.Idle()
		if live.Inspections != nil {
			insp = live.Inspections()
		}
		n.readyTick(now, gen, prog, idle, insp, live)
	case stateReloading:
		n.mu.Lock()
		if n.gen != gen {
			n.mu.Unlock()
			return
		}
		feed := now.Sub(n.reloadAt) < n.reloadLimit
		logGiveUp := !feed && !n.gaveUp
		n.gaveUp = n.gaveUp || logGiveUp
		var err error
		if feed && n.interval > 0 {
			err = n.sendLocked("WATCHDOG=1")
		}
		n.mu.Unlock()
		n.logSend(err)
		if logGiveUp {
			n.log.Error("reload has not finished: no longer feeding the systemd watchdog, so systemd restarts the service",
				"after", n.reloadLimit)
		}
	}
}

// readyTick pings when Progress moved since the last ping or the pipeline
// is idle, and refreshes STATUS= every StatusEvery; prog, idle and insp
// were read in generation gen.
func (n *Notifier) readyTick(now time.Time, gen, prog uint64, idle bool, insp uint64, live Liveness) {
	n.mu.Lock()
	if n.gen != gen { // Ready, Reloading or Stopping came in meanwhile
		n.mu.Unlock()
		return
	}
	ping, logStall, logResume := false, false, false
	if prog != n.lastProg || idle {
		ping, logResume = true, n.stalled
		n.lastProg, n.movedAt, n.stalled = prog, now, false
	} else if n.interval > 0 && !n.stalled && now.Sub(n.movedAt) >= n.interval*3/4 {
		// Logged a quarter period before systemd's kill, late enough that
		// a loop turning every half period never trips it.
		n.stalled, logStall = true, true
	}
	stillFor := now.Sub(n.movedAt)
	var status string
	if el := now.Sub(n.statusAt); el >= n.statusEvery {
		if insp < n.lastInsp { // a new pipeline counts from zero
			n.lastInsp = 0
		}
		if live.Inspections != nil {
			rate := float64(insp-n.lastInsp) / el.Seconds()
			status = fmt.Sprintf("%.1f inspections/s, model %s, %d inspected", rate, live.ModelID, insp)
		}
		n.lastInsp, n.statusAt = insp, now
	}
	var err error
	switch {
	case ping && n.interval > 0 && status != "":
		err = n.sendLocked("WATCHDOG=1\nSTATUS=" + status)
	case ping && n.interval > 0:
		err = n.sendLocked("WATCHDOG=1")
	case status != "":
		err = n.sendLocked("STATUS=" + status)
	}
	n.mu.Unlock()
	n.logSend(err)
	if logStall {
		n.log.Warn("pipeline made no progress: not pinging the systemd watchdog; systemd restarts the service unless it moves again",
			"still_for", stillFor.Round(time.Millisecond), "watchdog", n.interval)
	}
	if logResume {
		n.log.Info("pipeline progressing again: pinging the systemd watchdog")
	}
}

// sendLocked writes one notification datagram; n.mu is held, so that
// notifications leave in the order of the state changes (no WATCHDOG=1
// after STOPPING=1). It reports the first failure of a run of failures.
func (n *Notifier) sendLocked(msg string) error {
	_, err := sddaemon.SdNotify(false, msg)
	if err == nil {
		n.sendFails = 0
		return nil
	}
	n.sendFails++
	if n.sendFails > 1 {
		return nil
	}
	return err
}

// logSend logs what sendLocked reported, outside the lock.
func (n *Notifier) logSend(err error) {
	if err != nil {
		n.log.Warn("systemd notification not sent; the service runs on without systemd's bookkeeping", "err", err)
	}
}
