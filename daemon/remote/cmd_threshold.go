package remote

import (
	"context"

	"github.com/inspectd/inspectd/model"
)

// cmdThreshold sets the image and pixel thresholds of the model in force,
// persisted in its model file; refused (invalid) while the configuration
// sets model.threshold.value, which every model load applies.
//
//	request: {"id": "t1", "image": 17.5, "pixel": 15}   (pixel ≤ image; default: the
//	         model's pixel/image ratio in force, 0.75 after a fit)
//	reply:   {"id": "t1", "ok": true, "model_id": "...", "image_threshold": 17.5,
//	          "pixel_threshold": 15, "previous": {"image_threshold": ..., "pixel_threshold": ...}}
type cmdThreshold struct{}

func (cmdThreshold) Name() string { return "threshold" }

// thresholdArgs is the request cmdThreshold takes.
type thresholdArgs struct {
	ID    string   `json:"id"`
	Image *float64 `json:"image"`
	Pixel *float64 `json:"pixel"`
}

func (cmdThreshold) args() any { return new(thresholdArgs) }

func (cmdThreshold) Prepare(env *Env, body []byte) (*Plan, error) {
	var a thresholdArgs
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	if a.Image == nil {
		return nil, invalidf("image", "missing; give the image-score threshold, a number above 0")
	}
	checks := []struct {
		name string
		v    *float64
	}{{"image", a.Image}, {"pixel", a.Pixel}}
	for _, f := range checks {
		if f.v == nil {
			continue
		}
		if err := model.CheckThreshold(f.name, *f.v); err != nil {
			return nil, invalidf(f.name, "%v", err)
		}
	}
	if a.Pixel != nil {
		if err := model.CheckPixelThreshold(*a.Image, *a.Pixel); err != nil {
			return nil, invalidf("pixel", "%v", err)
		}
	}
	if v := env.Ctl.Config().Model.Threshold.Value; v > 0 && *a.Image != v {
		// Refused by design, not a failure: every model load applies the
		// configured value, so the next start or reload would undo this
		// one without a word. As a refusal it is not stored either: the
		// same id runs once the configuration allows it.
		return nil, invalidf("image", "%g cannot be set while the configuration sets model.threshold.value (%g), which every model load applies: it would be undone at the next start or reload; push model.threshold.value instead (or 0 there, then this command)", *a.Image, v)
	}
	if err := env.refuseWhileRefit("a threshold set now would be replaced by the refitted model's"); err != nil {
		return nil, err
	}
	if env.Ctl.ModelInfo().ID == "" {
		return nil, errorf(CodeFailed, "", "no model is loaded")
	}
	return &Plan{Run: func(ctx context.Context) (map[string]any, error) {
		prev := env.Ctl.ModelInfo()
		pixel := pixelFor(*a.Image, a.Pixel, prev)
		info, err := env.Ctl.SetThresholds(ctx, *a.Image, pixel)
		if err != nil {
			// A refusal of what is at model.path or its .prev, or of its
			// folder, names the key in field, as a push's does.
			return nil, refusedKey(err, "thresholds unchanged: %v", err)
		}
		return map[string]any{"model_id": info.ID, "image_threshold": info.ImageThreshold, "pixel_threshold": info.PixelThreshold,
			"previous": map[string]any{"image_threshold": prev.ImageThreshold, "pixel_threshold": prev.PixelThreshold}}, nil
	}}, nil
}

// pixelFor is the pixel threshold of a threshold command: the one given,
// else the image threshold at the model's own ratio of pixel to image
// threshold, so that the masks keep their reach relative to the verdict.
func pixelFor(image float64, pixel *float64, prev model.Info) float64 {
	if pixel != nil {
		return *pixel
	}
	if prev.ImageThreshold > 0 && prev.PixelThreshold > 0 {
		return image * prev.PixelThreshold / prev.ImageThreshold
	}
	return image
}
