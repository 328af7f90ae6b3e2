package model

import (
	"encoding/json"
	"image"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// legacyFile is one model file in testdata written by the code before
// detectors became lists of scales (commit 2ed04e2), with the scores it
// gave then.
type legacyFile struct {
	Name   string             `json:"name"`
	Scores map[string]float64 `json:"scores"`
	Info   Info               `json:"info"`
}

// Model files written before the scale refactor load and score exactly as
// they did: one without the z-score or a context scale, one with both
// (patch grid pooled 4x by the memory budget, context cells of 14).
func TestLegacyModelFiles(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "legacy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var files []legacyFile
	if err := json.Unmarshal(b, &files); err != nil {
		t.Fatal(err)
	}
	uneven, _ := unevenTexture(6000)
	imgs := map[string]image.Image{"good": texture(1000, false), "blob": texture(1001, true), "uneven": uneven}
	for _, f := range files {
		t.Run(f.Name, func(t *testing.T) {
			opts := testOptions(t)
			opts.PositionZScore, opts.ContextPool = true, 6 // the file decides, not the options
			d, err := Load(filepath.Join("testdata", f.Name+".safetensors"), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got, want := d.Info(), f.Info
			if got.GridH != want.GridH || got.Pool != want.Pool || got.Features != want.Features || got.PositionZScore != want.PositionZScore ||
				got.ContextPool != want.ContextPool || got.ContextFeatures != want.ContextFeatures || got.ContextWeight != want.ContextWeight ||
				got.ImageThreshold != want.ImageThreshold || got.StateBytes != want.StateBytes || got.ID != want.ID {
				t.Errorf("info %+v, want %+v", got, want)
			}
			for name, w := range f.Scores {
				r, err := d.Inspect(imgs[name])
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(r.Score-w) > 1e-5*w {
					t.Errorf("%s scores %.6f, %.6f when the file was written", name, r.Score, w)
				}
			}
		})
	}
}
