package remote

import (
	"context"
	"reflect"

	"github.com/inspectd/inspectd/config"
)

// cmdRollback goes back to the previous model (the one a refit, threshold
// change or rollback replaced) or the previous configuration file. Rolling
// back twice goes forward again. A configuration rollback keeps the trust
// keys in force: they change only through trust-keys. A config rollback
// while a push waits for config-confirm reverts that push now.
//
//	request: {"id": "r1", "target": "model"}     or "config"
//	reply:   {"id": "r1", "ok": true, "target": "model", "model_id": "...", "previous_model_id": "..."}
//	         {"id": "r2", "ok": true, "target": "config", "changed": [...], "restarted": [...], "version": 6}
type cmdRollback struct{}

func (cmdRollback) Name() string { return "rollback" }

func (cmdRollback) Prepare(env *Env, body []byte) (*Plan, error) {
	var a struct {
		ID     string `json:"id"`
		Target string `json:"target"`
	}
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
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
				return nil, errorf(CodeFailed, "", "model unchanged (%s): %v", prev, err)
			}
			return map[string]any{"target": "model", "model_id": info.ID, "previous_model_id": prev, "model": modelSummary(info)}, nil
		}}, nil
	case "config":
		return prepareConfigRollback(env)
	case "":
		return nil, invalidf("target", "missing; say \"model\" or \"config\"")
	}
	return nil, invalidf("target", "%q is not model or config", truncate(a.Target, 20))
}

func prepareConfigRollback(env *Env) (*Plan, error) {
	path := env.Ctl.ConfigPath()
	if path == "" {
		return nil, errorf(CodeFailed, "", "the daemon runs without a configuration file; there is nothing to roll back")
	}
	prev, err := config.LoadPrevious(path)
	if err != nil {
		return nil, errorf(CodeFailed, "", "%v", err)
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
	v := env.d.store.configVersion()
	return &Plan{Run: func(ctx context.Context) (map[string]any, error) {
		out := map[string]any{"target": "config", "changed": nonNil(changed)}
		if keysKept {
			out["note"] = "the previous file had other trust keys; the ones in force are kept (change them with trust-keys)"
		}
		restarted, err := env.Ctl.ApplyConfig(ctx, prev)
		if err != nil {
			return out, errorf(CodeFailed, "", "not rolled back; the configuration in force is unchanged: %v", err)
		}
		if err := env.d.store.setConfigVersion(configVersion{Current: v.Previous, Previous: v.Current}, env.Now(), running.Remote.DedupWindow.Std()); err != nil {
			env.Log.Error("remote: configuration version not recorded", "error", err)
		}
		if p := env.d.store.pendingConfirm(); p != nil {
			// Rolled back by hand, or by the revert: nothing waits any more.
			if err := env.d.store.setPending(nil, env.Now(), running.Remote.DedupWindow.Std()); err != nil {
				env.Log.Error("remote: unconfirmed push not cleared from the request table", "error", err)
			}
			out["reverted"] = p.ID
		}
		out["restarted"], out["version"] = nonNil(restarted), v.Previous
		return out, nil
	}}, nil
}
