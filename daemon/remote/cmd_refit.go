package remote

import (
	"fmt"
	"math"
	"time"

	"github.com/inspectd/inspectd/model/padim"
)

// Refit defaults and bounds.
const (
	// DefaultRefitFrames is the frames a live refit fits on when count is
	// not given: all are fitted and each scored leave one out for the
	// threshold; the recipe search (model.recipe auto) holds a fifth of
	// them out to judge its candidates.
	DefaultRefitFrames = 200
	// DefaultMaxFalseAlarmRate is the share of validation frames the new
	// model may flag before it is rejected.
	DefaultMaxFalseAlarmRate = 0.1
	// maxRefitInterval bounds the pause between two collected frames.
	maxRefitInterval = 10 * time.Minute
	// maxRefitSpan bounds how long a live collection may take.
	maxRefitSpan = 24 * time.Hour
	// defaultFineGrid is the patch grid of the bundled backbone (stride 4 at
	// 224 pixels), for sizing when no model is loaded.
	defaultFineGrid = 56
	// fitOverhead is what a fit needs besides its sums and states: the
	// backbone's interpreter and buffers, an image in flight.
	fitOverhead = 96 << 20
)

// cmdRefit fits a new model on the box: on frames collected from the live
// source (count, with an optional interval between frames so that the set
// spans time) or on the images of a folder on the box, in the background
// while inspection goes on with the model in force. The new model is checked
// on further frames the fit never saw (validate): its false-alarm rate on
// them must be at most max_false_alarm_rate. Then it is written
// atomically, the previous model kept for rollback, and swapped in between
// two frames. Progress goes to <prefix>/<device_id>/refit; the reply comes
// when it is done, failed or cancelled (refit-cancel), and a refit that
// does not finish leaves the model in force.
//
//	request: {"id": "f1", "count": 200, "interval": "2s", "validate": 20,
//	          "max_false_alarm_rate": 0.1, "features": 100}
//	         {"id": "f2", "folder": "/srv/good-parts"}
//	reply:   {"id": "f1", "ok": true, "model_id": "...", "previous_model_id": "...",
//	          "image_threshold": 17.3, "validation": {"frames": 20, "false_alarms": 0, ...}, ...}
type cmdRefit struct{}

func (cmdRefit) Name() string { return "refit" }

type refitArgs struct {
	ID                string   `json:"id"`
	Count             *int     `json:"count"`
	Interval          string   `json:"interval"`
	Folder            string   `json:"folder"`
	Validate          *int     `json:"validate"`
	MaxFalseAlarmRate *float64 `json:"max_false_alarm_rate"`
	Features          *int     `json:"features"`
}

// refitPlan is a refit's checked parameters.
type refitPlan struct {
	count, validate int
	interval        time.Duration
	folder          *folderImages // nil: live frames
	maxFAR          float64
	features        int // 0: the configuration's
}

func (cmdRefit) args() any { return new(refitArgs) }

func (cmdRefit) Prepare(env *Env, body []byte) (_ *Plan, err error) {
	var a refitArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	if j := env.running(); j != nil {
		return nil, errorf(CodeBusy, "", "a refit is already running (id %q, %s); wait for its reply or send refit-cancel", j.id, j.snapshot().describe())
	}
	cfg := env.Ctl.Config()
	var p *refitPlan
	defer func() {
		// A folder refit refused once its folder is listed (at its own
		// check, or at a later one: the model target, the memory budget,
		// the memory left) logs the files it skipped, as a refit that runs
		// logs them: the reply names only the first few, and they are what
		// the operator must mend. One that runs logs them in its job.
		if err != nil && p != nil && p.folder != nil {
			p.folder.logSkipped(env.Log)
		}
	}()
	p, err = checkRefit(&a, cfg.Remote.MaxRefitFrames)
	if err != nil {
		return nil, err
	}
	// Before the fit, not only at its install: a folder or a named pipe
	// at the model path was refused only after the whole fit (seconds to
	// minutes of a core). The install checks again.
	if err := env.Ctl.CheckModelTarget(); err != nil {
		return nil, refusedKey(err, "not started: %v", err)
	}
	opts, err := env.Ctl.FitOptions()
	if err != nil {
		return nil, errorf(CodeFailed, "", "cannot fit with the configuration in force: %v", err)
	}
	// Sized before anything is allocated: the state must fit the budget
	// and the fit (float64 sums: twice the state) the memory left.
	info := env.Ctl.ModelInfo()
	gh, gw := defaultFineGrid, defaultFineGrid
	if info.GridH > 0 {
		gh, gw = info.GridH*max(info.Pool, 1), info.GridW*max(info.Pool, 1)
	}
	maxD := opts.Features
	if p.features > 0 {
		maxD = p.features
		if b := padim.StateBytes(gh*gw, p.features); opts.MemoryBudget > 0 && b > opts.MemoryBudget {
			hint := ""
			if s, err := padim.ChooseSize(gh, gw, 1, p.features, opts.MemoryBudget); err == nil && s.Pool == 1 {
				hint = fmt.Sprintf(" (the largest that fits is %d)", s.D)
			}
			return nil, invalidf("features", "d = %d needs %s of scoring state on the %dx%d patch grid, over model.memory_budget (%s)%s",
				p.features, human(b), gh, gw, human(opts.MemoryBudget), hint)
		}
	}
	budget := opts.MemoryBudget
	if budget <= 0 {
		budget = math.MaxInt64
	}
	size, err := padim.ChooseSize(gh, gw, max(1, min(opts.MinFeatures, maxD)), max(1, maxD), budget)
	if err != nil {
		return nil, errorf(CodeFailed, "", "the model does not fit model.memory_budget: %v", err)
	}
	state := size.Bytes
	if opts.ContextPool > 1 {
		cells := (gh / opts.ContextPool) * (gw / opts.ContextPool)
		state += padim.StateBytes(cells, max(opts.ContextFeatures, 1))
	}
	need := 3*state + fitOverhead
	mem, err := env.d.available()
	if err != nil {
		return nil, errorf(CodeFailed, "", "cannot check the memory a refit needs: %v", err)
	}
	if need > mem.Bytes {
		return nil, errorf(CodeFailed, "", "not started: the fit needs about %s (a %s model state, its sums at twice that, the new state, the backbone) and %s is available (%s)",
			human(need), human(state), human(mem.Bytes), mem.Source)
	}
	if p.features > 0 {
		opts.Features = p.features
		opts.MinFeatures = min(opts.MinFeatures, p.features)
	}
	r := &refit{env: env, p: p, opts: opts, started: env.Now(), dir: env.d.dir()}
	return &Plan{Background: true, Run: r.run}, nil
}

// checkRefit bounds a refit's parameters before anything is read. A
// folder it refuses once listed comes back with the refusal, as a plan
// whose folder holds the files skipped, for the caller to log them.
func checkRefit(a *refitArgs, maxFrames int) (*refitPlan, error) {
	p := &refitPlan{maxFAR: DefaultMaxFalseAlarmRate}
	if a.Interval != "" {
		d, err := time.ParseDuration(a.Interval)
		if err != nil || d < 0 || d > maxRefitInterval {
			return nil, invalidf("interval", "%q is not a duration from 0s to %s, like \"2s\"", truncate(a.Interval, 20), maxRefitInterval)
		}
		p.interval = d
	}
	if a.MaxFalseAlarmRate != nil {
		if f := *a.MaxFalseAlarmRate; !(f >= 0 && f <= 1) {
			return nil, invalidf("max_false_alarm_rate", "%g is out of range 0..1", f)
		}
		p.maxFAR = *a.MaxFalseAlarmRate
	}
	if a.Features != nil {
		if f := *a.Features; f < 1 || f > 2048 {
			return nil, invalidf("features", "%d is out of range 1..2048", f)
		}
		p.features = *a.Features
	}
	if a.Count != nil && (*a.Count < 3 || *a.Count > maxFrames) {
		return nil, invalidf("count", "%d is out of range 3..%d (remote.max_refit_frames)", *a.Count, maxFrames)
	}
	if a.Validate != nil && (*a.Validate < 1 || *a.Validate > maxFrames) {
		return nil, invalidf("validate", "%d is out of range 1..%d (remote.max_refit_frames)", *a.Validate, maxFrames)
	}
	if a.Folder != "" {
		f, err := listFolder(a.Folder, maxFrames)
		if err != nil {
			if f == nil {
				return nil, err
			}
			return &refitPlan{folder: f}, err
		}
		p.folder = f
		n := len(f.paths)
		switch {
		case a.Validate != nil:
			p.validate = *a.Validate
		default:
			p.validate = max(n/10, min(10, n/5))
		}
		p.count = n - p.validate
		if a.Count != nil {
			if *a.Count > p.count {
				return p, invalidf("count", "%d images asked for, but the folder's %d images leave %d after the %d validation images", *a.Count, n, p.count, p.validate)
			}
			p.count = *a.Count
		} else if n > maxFrames {
			return p, invalidf("folder", "%s holds %d images, more than remote.max_refit_frames (%d); give count to use part of them", f.dir, n, maxFrames)
		}
		if p.count < 3 || p.validate < 1 {
			skipped := ""
			if f.skipped > 0 {
				skipped = fmt.Sprintf(" (%d other file(s) skipped, the log names each: a 'file skipped' line a file)", f.skipped)
			}
			return p, invalidf("folder", "%s holds %d usable image(s)%s; a refit needs at least 3 to fit and 1 to check the model on", f.dir, n, skipped)
		}
		f.pick(p.count, p.validate)
		return p, nil
	}
	p.count = DefaultRefitFrames
	if a.Count != nil {
		p.count = *a.Count
	}
	p.validate = max(10, p.count/10)
	if a.Validate != nil {
		p.validate = *a.Validate
	}
	if total := p.count + p.validate; total > maxFrames {
		return nil, invalidf("validate", "%d fit frames and %d validation frames are %d, over remote.max_refit_frames (%d)", p.count, p.validate, total, maxFrames)
	}
	if span := time.Duration(p.count+p.validate-1) * p.interval; span > maxRefitSpan {
		return nil, invalidf("interval", "%d frames %s apart span %s; a refit may span at most %s", p.count+p.validate, p.interval, span, maxRefitSpan)
	}
	return p, nil
}
