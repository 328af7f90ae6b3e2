package remote

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/jsonkeys"
	"github.com/inspectd/inspectd/model/sysmem"
)

// DefaultQueue is how many requests may wait for the command goroutine.
const DefaultQueue = 64

// maxHeld is how many waiting requests keep their transport's
// acknowledgement held (Request.Release) until they are recorded; those
// queued beyond it are released on arrival. A broker sends a client only
// so many unacknowledged QoS 1 messages (mosquitto's
// max_inflight_messages: 20): holding more behind a long command would
// stall the triggers that share the connection.
const maxHeld = 8

// Options configure a Dispatcher.
type Options struct {
	// Controller is the daemon. Required.
	Controller Controller
	// DeviceID is this box's resolved device id, which signed envelopes'
	// "device/<id>" targets name. Required.
	DeviceID string
	// StateDir holds the request table (StateFile) and the refit's
	// temporary model file; "" keeps the table in memory (tests only: a
	// restart would then forget answered requests and seen nonces).
	StateDir string
	// Queue bounds the requests waiting to run (default DefaultQueue);
	// beyond it a request is answered busy.
	Queue int
	// Logger gets one line per request; default slog.Default().
	Logger *slog.Logger
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
	// Memory reports the memory available to the daemon (default
	// sysmem.Available), for checking a refit or a memory budget before
	// anything is allocated.
	Memory func() (sysmem.Memory, error)
	// ConfigRules check a pushed configuration beside config.Validate
	// (config.Rule: what the config package cannot judge, such as a recipe
	// name), so that a push is refused with the line and field as a file
	// would be, rather than applied and failed at the model's load.
	ConfigRules []config.Rule
}

// Dispatcher runs remote commands. It implements Submitter: front ends
// hand it requests from their message handlers; one goroutine authenticates
// and runs them one at a time, a refit runs as a background job meanwhile,
// and every request gets exactly one reply. Requests are deduplicated by
// id and nonces remembered through a table persisted in the state
// directory.
type Dispatcher struct {
	ctl      Controller
	rules    []config.Rule // Options.ConfigRules
	stateDir string        // guarded by mu: SetStateDir
	log      *slog.Logger
	now      func() time.Time
	memory   func() (sysmem.Memory, error)
	cmds     map[string]Command
	store    *store
	queue    chan item
	// started is closed by Started: commands, and reverts of unconfirmed
	// pushes, wait for it.
	started     chan struct{}
	startedOnce sync.Once
	// reloaded carries FileReloaded and FileNotReloaded to the command
	// goroutine (one pending at most: one look at the file settles any
	// number of reloads; reloadErr, under mu, is the last one's outcome).
	reloaded chan struct{}
	// retry is the state of a failed revert of an unconfirmed push, ended
	// the last push whose wait the box's file ended; read and written by
	// the command goroutine only.
	retry revertRetryState
	ended endedWait
	// unapplied is the configuration file a SIGHUP could not apply (its
	// checksum, and why), so that an edit that loads but failed to apply
	// does not end a push's wait; command goroutine only.
	unapplied unappliedFile
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu        sync.Mutex
	connected time.Time // when a front end last moved to a new connection (Attach)
	reloadErr error     // the last SIGHUP's outcome, taken by the command goroutine
	reloadOK  bool      // a SIGHUP applied the file since the command goroutine last looked
	deviceID  string
	closed    bool
	job       *job
	sinks     []Events
	// eventFailing marks the front ends' events whose last publish
	// failed (Env.emit), so that an outage is logged once.
	eventFailing map[eventSink]bool
	interrupted  []*entry
	// unrecorded is why requests cannot be recorded in state_dir now, nil
	// while they can (StateError): set and logged at the first failure,
	// cleared and logged at the next request recorded.
	unrecorded *unrecordable
	keysOf     *config.Config // the configuration keys were parsed from
	keys       map[string]ed25519.PublicKey
	keysErr    error
}

type item struct {
	req     Request
	done    func(Reply)
	err     error     // refused on arrival (too large)
	arrived time.Time // when Submit took it
}

// Interrupted is a request whose reply a previous process did not send
// before it died: the command was running (the reply says interrupted),
// or had just finished (its stored reply). The front end publishes it
// (TakeInterrupted), then the dispatcher records it sent.
type Interrupted struct {
	Name, Origin string
	Reply        Reply
}

// New loads the request table and starts the command goroutine. Requests
// found running in the table (the previous process died during them) are
// answered "interrupted" (see TakeInterrupted) and, if delivered again,
// get that stored reply instead of running a second time.
func New(opts Options) (*Dispatcher, error) {
	if opts.Controller == nil || opts.DeviceID == "" {
		return nil, errors.New("remote: a Controller and a DeviceID are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Memory == nil {
		opts.Memory = sysmem.Available
	}
	st, interrupted, err := openStore(opts.StateDir, opts.Now())
	var corrupt *CorruptTableError
	switch {
	case errors.As(err, &corrupt):
		opts.Logger.Error("remote: "+corrupt.Error(), "component", "remote")
	case err != nil:
		return nil, err
	}
	// Why the last push's wait ended, for a late config-confirm; a record
	// that cannot be read is only a warning: the confirm is then told
	// that no push waits.
	ended, eerr := loadEnded(endedPath(st.path))
	if eerr != nil {
		opts.Logger.Warn("remote: the record of why the last push's wait for config-confirm ended is unreadable; ignored", "component", "remote", "file", endedPath(st.path), "error", eerr)
	}
	if p := st.pending; p != nil && p.AppliedAt.IsZero() {
		// Stopped while the push was applied: this start runs on whatever
		// file is there, so a confirm from now on came over its connection.
		p.AppliedAt = opts.Now()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{
		ctl: opts.Controller, deviceID: opts.DeviceID, stateDir: opts.StateDir,
		log: opts.Logger.With("component", "remote"), now: opts.Now, memory: opts.Memory,
		cmds: map[string]Command{}, store: st, queue: make(chan item, opts.Queue), started: make(chan struct{}), reloaded: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, interrupted: interrupted, rules: opts.ConfigRules, ended: ended,
	}
	for _, c := range commands() {
		d.cmds[c.Name()] = c
	}
	for _, e := range interrupted {
		d.log.Warn("remote command's reply not sent before the previous stop (interrupted while it ran, or stopped just after); sent now", "command", e.Name, "id", e.ID, "origin", e.Origin, "since", e.At)
	}
	removeStaleRefitFile(opts.StateDir, d.log)
	d.wg.Add(1)
	go d.loop()
	return d, nil
}

// SetDeviceID follows a device_id change: signed envelopes' "device/<id>"
// targets name the new id from now on.
func (d *Dispatcher) SetDeviceID(id string) {
	d.mu.Lock()
	d.deviceID = id
	d.mu.Unlock()
}

// device is the current device id.
func (d *Dispatcher) device() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.deviceID
}

// available is the memory the daemon may still use.
func (d *Dispatcher) available() (sysmem.Memory, error) { return d.memory() }

// AddEvents registers a front end for command events (refit progress,
// snapshots).
func (d *Dispatcher) AddEvents(e Events) {
	d.mu.Lock()
	d.sinks = append(d.sinks, e)
	d.mu.Unlock()
}

// RemoveEvents unregisters a front end (when its MQTT connection is
// replaced).
func (d *Dispatcher) RemoveEvents(e Events) {
	d.mu.Lock()
	d.sinks = slices.DeleteFunc(d.sinks, func(x Events) bool { return x == e })
	maps.DeleteFunc(d.eventFailing, func(k eventSink, _ bool) bool { return k.sink == e })
	d.mu.Unlock()
}

// TakeInterrupted returns, once, the interrupted requests (see New) whose
// origin match accepts, for the front end to publish their replies.
func (d *Dispatcher) TakeInterrupted(match func(origin string) bool) []Interrupted {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Interrupted
	keep := d.interrupted[:0]
	for _, e := range d.interrupted {
		if !match(e.Origin) {
			keep = append(keep, e)
			continue
		}
		r, err := storedReply(e.Reply)
		if err != nil {
			continue
		}
		out = append(out, Interrupted{Name: e.Name, Origin: e.Origin, Reply: r})
	}
	d.interrupted = keep
	return out
}

// Submit implements Submitter. It copies req.Body (the caller may reuse
// it) unless the body is over remote.max_payload, which is refused before
// anything else looks at it. It never blocks: when the queue is full the
// request is answered busy.
func (d *Dispatcher) Submit(req Request, done func(Reply)) {
	if r := req.Release; r != nil {
		req.Release = sync.OnceFunc(r)
	}
	it := item{req: req, done: done, arrived: d.now()}
	if max := d.ctl.Config().Remote.MaxPayload; uint64(len(req.Body)) > uint64(max) {
		it.err = errorf(CodeTooLarge, "", "message is %d bytes, over remote.max_payload (%s); nothing of it was read", len(req.Body), max)
		it.req.Body = nil
	} else {
		it.req.Body = bytes.Clone(req.Body)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		// With the id its sender used: the MQTT front end hands over what
		// it still holds when it stops, after the dispatcher closed.
		go func() {
			d.refuse(it, peekID(it.req.Body), errorf(CodeFailed, "", "inspectd is stopping; not executed"))
		}()
		return
	}
	select {
	case d.queue <- it:
		beyond := len(d.queue) > maxHeld
		d.mu.Unlock()
		if beyond { // released outside the lock: a front end's release may wait on its network
			it.release()
		}
	default:
		d.mu.Unlock()
		go d.refuse(it, peekID(it.req.Body), errorf(CodeBusy, "", "%d commands are waiting; try again shortly", cap(d.queue)))
	}
}

// Close stops taking requests, cancels a running refit (its reply says
// so), answers what still waits, and returns when the command goroutine
// and the job have ended or ctx is done.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	if d.job != nil && d.job.cancelReason == "" {
		d.job.cancelReason = "inspectd is stopping"
	}
	close(d.queue)
	d.mu.Unlock()
	d.cancel()
	finished := make(chan struct{})
	go func() { d.wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("remote: commands still running at close: %w", ctx.Err())
	}
}

func (d *Dispatcher) loop() {
	defer d.wg.Done()
	// Nothing runs before the daemon does: a command or a revert applies
	// configurations and swaps models, which need every part started.
	select {
	case <-d.started:
	case <-d.ctx.Done(): // closed before it started: what waits is refused
	}
	if d.ctx.Err() == nil {
		d.publishUnpublished()
		d.startPending() // a push found waiting: said once the daemon runs, as it may end the wait
	}
	for {
		due, t := d.confirmTimer()
		select {
		case it, ok := <-d.queue:
			if !ok {
				return
			}
			d.handle(it)
		case <-due:
			d.revertUnconfirmed()
		case <-d.reloaded:
			d.mu.Lock()
			err, ok := d.reloadErr, d.reloadOK
			d.reloadErr, d.reloadOK = nil, false
			d.mu.Unlock()
			if ok {
				d.unapplied = unappliedFile{}
				d.settlePending(true)
			}
			if err != nil {
				d.unapplied = unappliedFile{err: err.Error()}
				if path := d.ctl.ConfigPath(); path != "" {
					d.unapplied.sum, _ = fileSHA256(path)
				}
				d.reloadFailed(err)
			}
		}
		if t != nil {
			t.Stop()
		}
	}
}

// FileReloaded tells the dispatcher that the configuration file was
// applied again (SIGHUP): a push waiting for config-confirm whose file was
// edited on the box since stops waiting now, with its log line then, not
// at the next command that looks. It does not wait.
func (d *Dispatcher) FileReloaded() { d.reload(nil) }

// FileNotReloaded tells the dispatcher that a SIGHUP did not apply the
// configuration file (err: it does not load, or could not be applied): a
// push waiting for config-confirm is still in force and goes on waiting,
// which is logged then, with what a restart or the deadline would do. It
// does not wait.
func (d *Dispatcher) FileNotReloaded(err error) { d.reload(err) }

func (d *Dispatcher) reload(err error) {
	d.mu.Lock()
	d.reloadErr = err
	d.reloadOK = d.reloadOK || err == nil
	d.mu.Unlock()
	select {
	case d.reloaded <- struct{}{}:
	default: // one is pending already
	}
}

// Started tells the dispatcher that the daemon runs (its parts started):
// commands taken before wait for it, and so does the revert of a push
// whose confirm window ran out while the box was down.
func (d *Dispatcher) Started() { d.startedOnce.Do(func() { close(d.started) }) }

// SetStateDir follows a state_dir change: the request table (answered
// ids, nonces, a push waiting for config-confirm) moves to the new
// directory, which the next start reads, and the refit's files go there.
// On error the table stays where it was.
func (d *Dispatcher) SetStateDir(dir string) error {
	if err := d.store.move(dir, d.now(), d.ctl.Config().Remote.DedupWindow.Std()); err != nil {
		return err
	}
	d.mu.Lock()
	d.stateDir = dir
	d.mu.Unlock()
	return nil
}

// noteConnection records that a front end moved to a new connection.
func (d *Dispatcher) noteConnection() {
	d.mu.Lock()
	d.connected = d.now()
	d.mu.Unlock()
}

// connectedAt is when a front end last moved to a new connection.
func (d *Dispatcher) connectedAt() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connected
}

// dir is the state directory in force.
func (d *Dispatcher) dir() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stateDir
}

// refuse answers a request that is not executed, with one log line.
func (d *Dispatcher) refuse(it item, id string, err error) {
	defer it.release()
	if id == "" {
		id = it.req.ID
	}
	r := errorReply(id, err, nil)
	d.log.Warn("remote command refused", "command", it.req.Name, "id", id, "origin", it.req.Origin, "error", err)
	it.done(r)
}

// auth is the outcome of authenticate.
type auth struct {
	body   []byte // the command's JSON body
	env    *Envelope
	signer string
}

// release tells the front end the request is durable or answered
// (Request.Release).
func (it item) release() {
	if it.req.Release != nil {
		it.req.Release()
	}
}

// handle runs one request on the command goroutine.
func (d *Dispatcher) handle(it item) {
	defer it.release() // answered without being recorded
	start := d.now()
	req := it.req
	if it.err != nil {
		d.refuse(it, "", it.err)
		return
	}
	if req.Retained {
		d.refuse(it, peekID(req.Body), errorf(CodeRetained, "", "a retained message is never executed; clear it with an empty retained publish"))
		return
	}
	if d.ctx.Err() != nil {
		d.refuse(it, peekID(req.Body), errorf(CodeFailed, "", "inspectd is stopping; not executed"))
		return
	}
	cfg := d.ctl.Config()
	rc := &cfg.Remote
	window := rc.DedupWindow.Std()
	a, err := d.authenticate(req, cfg)
	if err != nil {
		body := a.body
		if body == nil {
			body = req.Body // an envelope refused before its payload was read
		}
		d.refuse(it, peekID(body), err)
		return
	}
	// A value of the wrong type is placed in the command as a pushed
	// document's problems are; a Sparkplug command's body is built by
	// the edge node, where a line and column would mean nothing.
	place := func(err error) error {
		if req.Origin == OriginSparkplug {
			return err
		}
		// A command's own refusal of the envelope (trust-keys on a box
		// with no keys yet: signed by a key it does not install) is
		// placed in the envelope, as the dispatcher's refusals of it are.
		if e := (*Error)(nil); a.env != nil && errors.As(err, &e) && !e.placed && strings.HasPrefix(e.Field, "envelope.") {
			q := *e
			q.Field = strings.TrimPrefix(e.Field, "envelope.")
			return placeField(&q, req.Body, "envelope.")
		}
		return placeCommand(err, a.body)
	}
	id, err := requestID(a.body, req.ID)
	if err != nil {
		err = place(err)
		if cmd := d.cmds[req.Name]; cmd != nil {
			err = withUnknownFields(err, a.body, cmd.args())
		}
		d.refuse(it, peekID(a.body), err)
		return
	}
	log := d.log.With("command", req.Name, "id", id, "origin", req.Origin)
	if a.signer != "" {
		log = log.With("signer", a.signer)
	}

	// A request answered before is answered again, never run twice; one
	// still running gets the reply it will get.
	if e := d.store.lookup(req.Name, id, start, window); e != nil {
		if !e.Done {
			if d.attach(req.Name, id, it.done) {
				log.Info("remote command repeated while running; it will get the running command's reply")
				return
			}
			d.refuse(it, id, errorf(CodeBusy, "", "a request with this id is still running"))
			return
		}
		r, err := storedReply(e.Reply)
		if err != nil {
			d.refuse(it, id, errorf(CodeFailed, "", "a request with this id was answered at %s, but its stored reply is unreadable: %v", e.At.Format(time.RFC3339), err))
			return
		}
		if rc, ok := d.cmds[req.Name].(replayChecker); ok {
			if err := rc.checkReplay(&Env{Ctl: d.ctl, Log: log, Now: d.now, Name: req.Name, ID: id, Origin: req.Origin, d: d}, r); err != nil {
				d.refuse(it, id, err)
				return
			}
		}
		r.Data["duplicate"] = true
		log.Info("remote command repeated; answered again with the stored reply", "answered_at", e.At)
		it.done(r)
		return
	}

	// Signed: fresh and never seen before. The nonce is spent by every
	// request that gets this far, executed or refused.
	var nonceKey, nonce string
	var nonceExp time.Time
	if a.env != nil {
		skew := rc.MaxSkew.Std()
		ts := time.Unix(a.env.TS, 0)
		if off := start.Sub(ts); off > skew || off < -skew {
			what, side := "stale", "before"
			if off < 0 {
				what, side = "from the future", "ahead of"
			}
			// Named and placed as the envelope's other fields are
			// (envelope.ts at line 1, column 96): a bare "ts" read as a
			// field of the command's body.
			d.refuse(it, id, placeField(errorf(CodeUnauthorized, "ts", "%s: signed at %s, %s %s this box's clock (%s); remote.max_skew is %s: check both clocks and sign again",
				what, ts.UTC().Format(time.RFC3339), off.Round(time.Second).Abs(), side, start.UTC().Format(time.RFC3339), rc.MaxSkew), req.Body, "envelope."))
			return
		}
		if d.store.nonceSeen(a.env.Key, a.env.Nonce, start) {
			d.refuse(it, id, placeField(errorf(CodeUnauthorized, "nonce", "replayed: this nonce was used within the last %s; every signature needs a fresh one (inspectd sign makes one)", 2*rc.MaxSkew.Std()), req.Body, "envelope."))
			return
		}
		nonceKey, nonce, nonceExp = a.env.Key, a.env.Nonce, start.Add(2*skew)
	}
	spend := func() {
		if nonce != "" {
			if err := d.store.record(nonceKey, nonce, nonceExp, nil, start, window); err != nil {
				log.Error("remote: nonce not recorded", "error", err)
			}
		}
	}

	cmd := d.cmds[req.Name]
	if cmd == nil {
		spend()
		d.refuse(it, id, errorf(CodeUnknownCommand, "", "unknown command %q; known: %s", truncate(req.Name, 64), strings.Join(Names(), ", ")))
		return
	}
	env := &Env{Ctl: d.ctl, Log: log, Now: d.now, Name: req.Name, ID: id, Origin: req.Origin, Signer: a.signer, Envelope: a.env, Arrived: it.arrived, Backlog: req.Backlog, d: d}
	plan, err := cmd.Prepare(env, a.body)
	if err != nil {
		spend()
		d.refuse(it, id, place(err))
		return
	}
	e := &entry{Name: req.Name, ID: id, Origin: req.Origin, At: start}
	if err := d.store.record(nonceKey, nonce, nonceExp, e, start, window); err != nil {
		u := d.unrecordable(err)
		if u == nil {
			d.refuse(it, id, errorf(CodeFailed, "", "not executed: the request could not be recorded, so a repeat could run it twice: %v", err))
			return
		}
		if _, ok := cmd.(readOnly); ok && !plan.Background {
			// Answered all the same, unrecorded: a redelivered copy runs
			// again, which changes nothing. The failure was logged once
			// (unrecordable); the box is not uncontrollable for it.
			data, err := plan.Run(d.ctx)
			it.done(d.answer(env, data, err, start, false))
			return
		}
		d.refuse(it, id, errorf(CodeFailed, "", "not executed: the request could not be recorded in state_dir %s (%s): "+
			"a command that changes the box is run only once it is recorded, so that a redelivered copy is not run twice; %s", u.dir, u.why, u.advice()))
		return
	}
	d.recorded()
	it.release() // recorded: a crash from here on answers it "interrupted"
	if plan.Background {
		d.startJob(env, plan, it.done, start)
		return
	}
	data, err := plan.Run(d.ctx)
	it.done(d.finish(env, data, err, start))
	d.markSent(env.Name, env.ID)
}

// markSent records that a request's stored reply has been handed to its
// front end, so that a restart does not send it again.
func (d *Dispatcher) markSent(name, id string) {
	if err := d.store.markSent(name, id, d.now(), d.ctl.Config().Remote.DedupWindow.Std()); err != nil {
		d.log.Error("remote: a reply sent is not recorded as sent; a restart sends it again", "command", name, "id", id, "error", err)
	}
}

// finish builds, stores and logs a command's reply.
func (d *Dispatcher) finish(env *Env, data map[string]any, err error, start time.Time) Reply {
	return d.answer(env, data, err, start, true)
}

// answer builds and logs a command's reply, and with store stores it (a
// read-only command run unrecorded has nothing stored to finish).
func (d *Dispatcher) answer(env *Env, data map[string]any, err error, start time.Time, store bool) Reply {
	var r Reply
	if err != nil {
		r = errorReply(env.ID, err, data)
	} else {
		r = Reply{ID: env.ID, OK: true, Data: data}
		if r.Data == nil {
			r.Data = map[string]any{}
		}
	}
	now := d.now()
	if store {
		if serr := d.store.finish(env.Name, env.ID, r, now, d.ctl.Config().Remote.DedupWindow.Std()); serr != nil {
			env.Log.Error("remote: reply not recorded; a repeat of this request after a restart would be answered as interrupted", "error", serr)
		}
	}
	took := now.Sub(start).Round(time.Millisecond)
	if err != nil {
		env.Log.Warn("remote command failed", "error", err, "took", took)
	} else {
		env.Log.Info("remote command done", "took", took)
	}
	return r
}

// deliver hands the reply to the request and, marked as duplicates, to its
// repeats.
func deliver(r Reply, done []func(Reply)) {
	for i, f := range done {
		if i > 0 {
			r.Data = mergeData(r.Data, map[string]any{"duplicate": true})
		}
		f(r)
	}
}

// errorReply builds a failed reply: error, code and field.
func errorReply(id string, err error, data map[string]any) Reply {
	r := Reply{ID: id, Error: err.Error(), Data: map[string]any{}}
	for k, v := range data {
		r.Data[k] = v
	}
	var e *Error
	if errors.As(err, &e) {
		r.Data["code"] = e.Code
		if e.Field != "" {
			r.Data["field"] = e.Field
		}
	} else {
		r.Data["code"] = CodeFailed
	}
	return r
}

func mergeData(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// storedReply turns a stored reply back into a Reply.
func storedReply(raw json.RawMessage) (Reply, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return Reply{}, err
	}
	r := Reply{Data: map[string]any{}}
	r.ID, _ = m["id"].(string)
	r.OK, _ = m["ok"].(bool)
	r.Error, _ = m["error"].(string)
	for k, v := range m {
		if k != "id" && k != "ok" && k != "error" {
			r.Data[k] = v
		}
	}
	return r, nil
}

// CheckBody checks a command body the way the dispatcher will (one JSON
// object, no duplicate keys, an id of 1 to 128 characters) and returns its
// id; inspectd sign uses it to refuse a mistake before signing it.
func CheckBody(body []byte) (string, error) { return requestID(body, "") }

// requestID reads and checks the body's id. A front end that carries the
// id outside the body (fallback) may set Request.ID instead; both must then
// agree.
func requestID(body []byte, fallback string) (string, error) {
	if err := checkJSON(body); err != nil {
		return "", err
	}
	// The key spelt exactly: encoding/json would take "ID" for it, and the
	// command (decodeStrict) refuses "ID".
	raw, ok := jsonkeys.Lookup(body, "id")
	var id string
	switch {
	case !ok && fallback != "":
		id = fallback
	case !ok:
		return "", invalidf("id", "missing; every request needs an id of 1 to %d characters to match its reply", maxIDLen)
	default:
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", typef("id", "expected a string, got %s", strings.TrimSpace(truncate(string(raw), 40)))
		}
		if fallback != "" && fallback != id {
			return "", invalidf("id", "%q differs from the request's id %q", truncate(id, 40), truncate(fallback, 40))
		}
	}
	return id, checkID(id)
}

// trustKeys parses the trust keys of cfg, once per configuration.
func (d *Dispatcher) trustKeys(cfg *config.Config) (map[string]ed25519.PublicKey, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keysOf != cfg {
		d.keys, d.keysErr = cfg.Remote.Keys()
		d.keysOf = cfg
	}
	return d.keys, d.keysErr
}

// RefuseUnsigned returns why remote control refuses an unsigned command
// named command from origin (a *Error, code unauthorized), nil when it
// runs one: the rule every command the Dispatcher runs is held to, for a
// front end's command that does not go through it (Sparkplug's Node
// Control/Reboot).
func (d *Dispatcher) RefuseUnsigned(command, origin string) error {
	cfg := d.ctl.Config()
	keys, err := d.trustKeys(cfg)
	if err != nil {
		return errorf(CodeUnauthorized, "", "remote commands are off: %v", err)
	}
	return d.refuseUnsigned(cfg, keys, command, origin)
}

// refuseUnsigned is RefuseUnsigned with cfg's trust keys parsed.
func (d *Dispatcher) refuseUnsigned(cfg *config.Config, keys map[string]ed25519.PublicKey, command, origin string) error {
	switch {
	case len(keys) > 0 && origin == OriginSparkplug:
		instead := "there is no signed form of it: do it on the box"
		if _, ok := d.cmds[command]; ok {
			instead = fmt.Sprintf("send it signed on the JSON command topic (`inspectd sign --key FILE --command %s`)", truncate(command, 64))
		}
		return errorf(CodeUnauthorized, "", "unsigned: this box runs only commands signed by one of its trust keys (%s), and a Sparkplug write carries no signature; %s",
			strings.Join(sortedNames(keys), ", "), instead)
	case len(keys) > 0:
		if _, ok := d.cmds[command]; !ok {
			// Advice to sign it would cost a second round trip for an
			// unknown_command answer: say both at once.
			return errorf(CodeUnauthorized, "", "unsigned: this box runs only commands signed by one of its trust keys (%s); and %q is no command (known: %s)",
				strings.Join(sortedNames(keys), ", "), truncate(command, 64), strings.Join(Names(), ", "))
		}
		return errorf(CodeUnauthorized, "", "unsigned: this box runs only commands signed by one of its trust keys (%s); sign with `inspectd sign --key FILE --command %s`",
			strings.Join(sortedNames(keys), ", "), truncate(command, 64))
	case !cfg.Remote.AllowUnsigned && origin == OriginSparkplug:
		// Trust keys would not help: a Sparkplug write carries no signature.
		return errorf(CodeUnauthorized, "", "remote commands are off: no remote.trust_keys are configured and remote.allow_unsigned is false; "+
			"a Sparkplug write carries no signature, so it runs only with remote.allow_unsigned: true and no trust keys (a trusted network)")
	case !cfg.Remote.AllowUnsigned:
		return errorf(CodeUnauthorized, "", "remote commands are off: no remote.trust_keys are configured and remote.allow_unsigned is false; "+
			"add a public key from `inspectd keygen` to remote.trust_keys in the configuration file on the box, or set remote.allow_unsigned: true on a trusted network")
	}
	return nil
}

// OriginSparkplug is the Request.Origin of the Sparkplug edge node's
// commands (NCMD and DCMD writes), which carry no signature.
const OriginSparkplug = "sparkplug"

// authenticate unwraps and checks a signed envelope, or admits an unsigned
// body when the configuration allows it. The body of the returned auth is
// set whenever it could be read, for the reply's id.
func (d *Dispatcher) authenticate(req Request, cfg *config.Config) (auth, error) {
	keys, err := d.trustKeys(cfg)
	if err != nil {
		return auth{body: req.Body}, errorf(CodeUnauthorized, "", "remote commands are off: %v", err)
	}
	if !isEnvelope(req.Body) {
		if err := checkJSON(req.Body); err != nil {
			return auth{body: req.Body}, err // malformed says more than unsigned
		}
		return auth{body: req.Body}, d.refuseUnsigned(cfg, keys, req.Name, req.Origin)
	}
	env, payload, err := ParseEnvelope(req.Body)
	if err != nil {
		return auth{}, placeField(err, req.Body, "envelope.")
	}
	a := auth{body: payload, env: env}
	a.signer, err = d.checkEnvelope(env, payload, req, cfg, keys)
	return a, placeField(err, req.Body, "envelope.")
}

// checkEnvelope checks a parsed envelope against the topic it came on,
// this box and the trust keys, and returns the key that signed it ("" when
// there are no keys to check it with). Refusals name the envelope's field
// as it is written in the envelope (sig), for authenticate to place.
func (d *Dispatcher) checkEnvelope(env *Envelope, payload []byte, req Request, cfg *config.Config, keys map[string]ed25519.PublicKey) (string, error) {
	if env.Command != req.Name {
		return "", errorf(CodeUnauthorized, "command", "signed for command %q, but it came as %q: a signature is good for one command only", env.Command, truncate(req.Name, 64))
	}
	if dev := d.device(); !targetMatches(env.Target, dev, req.Origin) {
		return "", errorf(CodeUnauthorized, "target", "%s", targetRefusal(env.Target, dev, req.Origin))
	}
	if len(keys) == 0 {
		if !cfg.Remote.AllowUnsigned {
			// How to turn them on, as the unsigned refusal says: the
			// signer's public key goes into the file on the box.
			return "", errorf(CodeUnauthorized, "", "remote commands are off: no remote.trust_keys are configured to check the signature and remote.allow_unsigned is false; "+
				"add the public key of %q (the trust_keys line `inspectd keygen` printed) to remote.trust_keys in the configuration file on the box", env.Key)
		}
		return "", nil // not checked: there is nothing to check it with
	}
	pub, ok := keys[env.Key]
	if !ok {
		return "", errorf(CodeUnauthorized, "key", "%q is not one of this box's trust keys (%s)", env.Key, strings.Join(sortedNames(keys), ", "))
	}
	if err := env.Verify(pub, payload); err != nil {
		return "", errorf(CodeUnauthorized, "sig", "does not verify with trust key %q (%s): the payload, command, target, ts or nonce differ from what was signed, or another key signed it",
			env.Key, Fingerprint(pub))
	}
	return env.Key, nil
}

// targetRefusal says why an envelope's target does not fit the box and
// the topic a command came on, in the words of both: "it came from
// device" read as if a device had sent it, where the topic was this box's
// own.
func targetRefusal(target, dev, origin string) string {
	var came string
	switch {
	case origin == "device":
		came = fmt.Sprintf("the topic is box %q's (device/%s/cmd)", dev, dev)
	case origin == "fleet":
		came = fmt.Sprintf("it came on the fleet topic to box %q", dev)
	case strings.HasPrefix(origin, "group/"):
		came = fmt.Sprintf("it came on %s's topic to box %q", origin, dev)
	default:
		came = fmt.Sprintf("it came over %s to box %q", origin, dev)
	}
	what := fmt.Sprintf("%q", truncate(target, 64))
	if box, ok := strings.CutPrefix(target, "device/"); ok {
		what = fmt.Sprintf("box %q", truncate(box, 64))
	}
	return fmt.Sprintf("the envelope's target names %s while %s: a signed command runs only on the box, group or fleet its target names", what, came)
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
