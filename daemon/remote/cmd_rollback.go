package remote

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/inspectd/inspectd/config"
)

// cmdRollback goes back to the previous model (the one a refit, threshold
// change or rollback replaced) or the previous configuration file. Rolling
// back twice goes forward again. A configuration rollback keeps the trust
// keys in force: they change only through trust-keys. A config rollback
// while a push waits for config-confirm reverts that push now; otherwise
// one that changes the connection remote control arrives on needs confirm
// or force, as a push does.
//
//	request: {"id": "r1", "target": "model"}     or "config"
//	reply:   {"id": "r1", "ok": true, "target": "model", "model_id": "...", "previous_model_id": "..."}
//	         {"id": "r2", "ok": true, "target": "config", "changed": [...], "restarted": [...], "version": 6}
type cmdRollback struct{}

func (cmdRollback) Name() string { return "rollback" }

// rollbackRequest is the request cmdRollback takes.
type rollbackRequest struct {
	ID      string          `json:"id"`
	Target  string          `json:"target"`
	Confirm json.RawMessage `json:"confirm"`
	Force   bool            `json:"force"`
}

func (cmdRollback) args() any { return new(rollbackRequest) }

func (cmdRollback) Prepare(env *Env, body []byte) (*Plan, error) {
	var a rollbackRequest
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	confirm, err := parseConfirm(a.Confirm)
	if err != nil {
		return nil, err
	}
	if confirm > 0 && a.Force {
		return nil, invalidf("force", "give confirm (applied on probation) or force (applied for good), not both")
	}
	if a.Target != "config" && (confirm > 0 || a.Force) {
		return nil, invalidf("confirm", "confirm and force go with target config only")
	}
	switch a.Target {
	case "model":
		if err := env.refuseWhileRefit("rolling the model back now would race the refit's install"); err != nil {
			return nil, err
		}
		return &Plan{Run: func(ctx context.Context) (map[string]any, error) {
			prev := env.Ctl.ModelInfo().ID
			info, err := env.Ctl.RollbackModel(ctx)
			if err != nil {
				return nil, refusedKey(err, "model unchanged (%s): %v", prev, err)
			}
			return map[string]any{"target": "model", "model_id": info.ID, "previous_model_id": prev, "model": modelSummary(info)}, nil
		}}, nil
	case "config":
		return prepareConfigRollback(env, rollbackArgs{confirm: confirm, force: a.Force, guard: true})
	case "":
		return nil, invalidf("target", "missing; say \"model\" or \"config\"")
	}
	return nil, invalidf("target", "%q is not model or config", truncate(a.Target, 20))
}

// rollbackArgs are a config rollback's options: guard applies the rule of
// pushes (a change to the connection that carries remote control needs
// confirm or force) unless the rollback reverts a push waiting for
// config-confirm; the revert itself does not guard.
type rollbackArgs struct {
	confirm time.Duration
	force   bool
	guard   bool
}

func prepareConfigRollback(env *Env, ra rollbackArgs) (*Plan, error) {
	path := env.Ctl.ConfigPath()
	if path == "" {
		return nil, errorf(CodeFailed, "", "the daemon runs without a configuration file; there is nothing to roll back")
	}
	prev, err := config.LoadPrevious(path, env.d.rules...)
	if err != nil {
		return nil, previousRefused(path, err)
	}
	running := env.Ctl.Config()
	keysKept := !reflect.DeepEqual(prev.Remote.TrustKeys, running.Remote.TrustKeys) && len(prev.Remote.TrustKeys)+len(running.Remote.TrustKeys) > 0
	prev.Remote.TrustKeys = running.Clone().Remote.TrustKeys
	if err := prev.Validate(); err != nil {
		return nil, errorf(CodeFailed, "", "the previous configuration %s is not valid with the trust keys in force: %v", config.PreviousPath(path), err)
	}
	changed := config.Diff(running, prev)
	if err := checkConfigChange(env, running, prev, changed); err != nil {
		return nil, err
	}
	pending := env.d.store.pendingConfirm()
	switch {
	case pending != nil && ra.confirm > 0:
		return nil, invalidf("confirm", "this rollback reverts push %q, which waits for config-confirm: it goes back to the configuration before that push, with no confirm", pending.ID)
	case pending == nil && ra.guard && ra.confirm == 0 && !ra.force:
		if k := connectionChange(running, prev, changed); k != "" {
			return nil, invalidf("config."+k, "%s", connectionRefusal("roll back"))
		}
	}
	v := env.d.store.configVersion()
	run := func(ctx context.Context) (map[string]any, error) {
		out := map[string]any{"target": "config", "changed": nonNil(changed)}
		if keysKept {
			out["note"] = "the previous file had other trust keys; the ones in force are kept (change them with trust-keys)"
		}
		takeBack, err := carryTable(env, running, prev)
		if err != nil {
			return out, err
		}
		applied, err := env.Ctl.ApplyConfig(ctx, prev)
		if err != nil {
			takeBack()
			return out, errorf(CodeFailed, "", "not rolled back; the configuration in force is unchanged: %v", err)
		}
		if err := env.d.store.setConfigVersion(configVersion{Current: v.Previous, Previous: v.Current}, env.Now(), running.Remote.DedupWindow.Std()); err != nil {
			env.Log.Error("remote: configuration version not recorded", "error", err)
		}
		if pending != nil {
			// Rolled back by hand, or by the revert: nothing waits any more.
			if err := env.d.store.setPending(nil, env.Now(), running.Remote.DedupWindow.Std()); err != nil {
				env.Log.Error("remote: unconfirmed push not cleared from the request table", "error", err)
			}
			out["reverted"] = pending.ID
			if env.Name == "rollback" { // the revert at the deadline says its own reason
				env.d.setEnded(endedWait{ID: pending.ID, At: env.Now(), Why: fmt.Sprintf("it was rolled back by hand (rollback %q)", truncate(env.ID, 40))})
			}
		}
		out["restarted"], out["version"], out["applied"] = nonNil(applied.Restarted), v.Previous, true
		addNotes(out, applied.Notes...)
		return out, nil
	}
	if ra.confirm == 0 || len(changed) == 0 {
		return &Plan{Run: run}, nil
	}
	return &Plan{Run: func(ctx context.Context) (map[string]any, error) { return runPending(ctx, env, ra.confirm, run) }}, nil
}

// previousRefused is the refusal of a previous configuration file (.prev
// of path) that does not load with the rules of a push (a model.recipe the
// model cannot read included): named by its first problem's field, its
// messages naming the file.
func previousRefused(path string, err error) error {
	ps := config.Problems(err)
	if len(ps) == 0 {
		return errorf(CodeFailed, "", "%v", err)
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Error()
	}
	field := ""
	if f := cmp.Or(ps[0].Field, ps[0].Key); f != "" {
		field = "config." + fieldName(f)
	}
	return errorf(CodeFailed, field, "the previous configuration %s is refused, as a push of it would be: %s", config.PreviousPath(path), strings.Join(msgs, "; "))
}
