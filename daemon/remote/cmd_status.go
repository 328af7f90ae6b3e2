package remote

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/inspectd/inspectd/model"
)

// cmdStatus reports uptime, the model in force and its figures, the
// inspection rate, queue depths, the last error and a refit in progress.
//
//	request: {"id": "s1"}
//	reply:   {"id": "s1", "ok": true, "device_id": "box1", "uptime_s": 3600,
//	          "model": {...}, "inspections": 130000, "inspections_per_s": 36.2,
//	          "queues": {...}, "last_error": "...", "health": {...},
//	          "refit": null or its progress, "config_version": 7,
//	          "config_pending": {"id": "c9", "revert_at": "..."} while a push waits for config-confirm}
type cmdStatus struct{}

func (cmdStatus) readOnly() {}

func (cmdStatus) Name() string { return "status" }

// statusArgs is the request cmdStatus takes.
type statusArgs struct {
	ID string `json:"id"`
}

func (cmdStatus) args() any { return new(statusArgs) }

func (cmdStatus) Prepare(env *Env, body []byte) (*Plan, error) {
	var a statusArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	return &Plan{Run: func(context.Context) (map[string]any, error) {
		st := env.Ctl.Status()
		out := map[string]any{
			"device_id":         env.d.device(),
			"model":             modelSummary(env.Ctl.ModelInfo()),
			"inspections":       st.Inspections,
			"inspections_per_s": round3(st.InspectionsPerSecond),
			"queues":            st.Queues,
			"health":            st.Health,
			"config_version":    env.d.store.configVersion().Current,
			"refit":             nil,
		}
		if !st.Started.IsZero() {
			out["uptime_s"] = math.Round(env.Now().Sub(st.Started).Seconds())
		}
		if st.LastError != "" {
			out["last_error"] = st.LastError
			out["last_error_at"] = st.LastErrorAt.UTC().Format(time.RFC3339)
		}
		if p := env.d.settlePending(false); p != nil {
			pending := p.describe()
			if note := env.d.waitNote(p); note != "" {
				pending["note"] = note
			}
			out["config_pending"] = pending
		}
		if j := env.running(); j != nil {
			out["refit"] = j.snapshot()
		}
		return out, nil
	}}, nil
}

// modelSummary is a model's identity and figures as replies show them.
func modelSummary(info model.Info) map[string]any {
	if info.ID == "" {
		return nil
	}
	m := map[string]any{
		"id":               info.ID,
		"image_threshold":  info.ImageThreshold,
		"pixel_threshold":  info.PixelThreshold,
		"features":         info.Features,
		"grid":             fmt.Sprintf("%dx%d", info.GridH, info.GridW),
		"images":           info.Images,
		"recipe":           info.Recipe,
		"threshold_images": info.ThresholdImages,
		"fitted":           info.Fitted,
		"state_bytes":      info.StateBytes,
		"precision":        info.Precision,
		"backbone_sha256":  info.BackboneSHA256,
	}
	if info.HeldOut > 0 {
		m["held_out"] = info.HeldOut // files from before leave-one-out thresholds
	}
	if info.RecipeChoice != "" {
		m["recipe_choice"] = info.RecipeChoice
	}
	if len(info.Members) > 0 {
		// An ensemble: each member's own recipe, threshold (its unit in
		// the mean map), backbone and state.
		var ms []map[string]any
		for _, mi := range info.Members {
			ms = append(ms, map[string]any{"recipe": mi.Recipe, "image_threshold": mi.ImageThreshold,
				"backbone_sha256": mi.BackboneSHA256, "features": mi.Features, "state_bytes": mi.StateBytes})
		}
		m["members"] = ms
	}
	if info.RecipeFigures != nil {
		m["recipe_figures"] = info.RecipeFigures
	}
	if info.LineNoise != nil {
		m["line_noise"] = info.LineNoise
	}
	if info.ContextPool > 0 {
		m["context_pool"] = info.ContextPool
		m["context_features"] = info.ContextFeatures
	}
	return m
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
