package remote

import (
	"context"

	"go.yaml.in/yaml/v3"

	"github.com/inspectd/inspectd/config"
)

// cmdConfigGet returns the configuration in force, every key included,
// with secrets (mqtt.password) shown as config.RedactedValue; pushed back
// unchanged they keep their value.
//
//	request: {"id": "g1"}                  or {"id": "g1", "format": "yaml"}
//	reply:   {"id": "g1", "ok": true, "config": {...}, "version": 7}
//	         or {..., "yaml": "device_id: box1\n..."}
type cmdConfigGet struct{}

func (cmdConfigGet) readOnly() {}

func (cmdConfigGet) Name() string { return "config-get" }

// configGetArgs is the request cmdConfigGet takes.
type configGetArgs struct {
	ID     string `json:"id"`
	Format string `json:"format"`
}

func (cmdConfigGet) args() any { return new(configGetArgs) }

func (cmdConfigGet) Prepare(env *Env, body []byte) (*Plan, error) {
	var a configGetArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	if a.Format != "" && a.Format != "json" && a.Format != "yaml" {
		return nil, invalidf("format", "%q is not json or yaml", truncate(a.Format, 20))
	}
	return &Plan{Run: func(context.Context) (map[string]any, error) {
		text, err := config.Marshal(env.Ctl.Config().Redacted())
		if err != nil {
			return nil, err
		}
		out := map[string]any{"version": env.d.store.configVersion().Current}
		if a.Format == "yaml" {
			out["yaml"] = string(text)
			return out, nil
		}
		// Through YAML so that keys, sizes and durations read as in the file.
		var doc map[string]any
		if err := yaml.Unmarshal(text, &doc); err != nil {
			return nil, err
		}
		out["config"] = doc
		return out, nil
	}}, nil
}
