package model

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/padim"
)

// corruptFloat sets the i-th float32 of a tensor in a model file to v and
// recomputes the file's CRC-32C (over the header with the checksum's eight
// digits zeroed, then the data), so that the file passes the checksum: the
// NaN model of ../shared/cases/README.md (reload/).
func corruptFloat(t *testing.T, path, tensor string, i int, v float32) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hl := int(binary.LittleEndian.Uint64(raw))
	hdr := raw[8 : 8+hl]
	var entries map[string]struct {
		Offsets [2]int `json:"data_offsets"`
	}
	if err := json.Unmarshal(hdr, &entries); err != nil {
		t.Fatal(err)
	}
	e, ok := entries[tensor]
	if !ok {
		t.Fatalf("model file has no tensor %q", tensor)
	}
	binary.LittleEndian.PutUint32(raw[8+hl+e.Offsets[0]+4*i:], math.Float32bits(v))
	at := bytes.Index(hdr, []byte(`"checksum":"crc32c:`)) + len(`"checksum":"crc32c:`)
	copy(hdr[at:], "00000000")
	copy(hdr[at:], fmt.Sprintf("%08x", crc32.Checksum(raw[8:], crc32.MakeTable(crc32.Castagnoli))))
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A model file with NaN or Inf in a float tensor is refused at load,
// naming the file, the tensor and the index, although its checksum
// matches; so is one whose threshold is 0. And Inspect refuses to judge a
// frame whose distances are not finite.
func TestNonFiniteModel(t *testing.T) {
	opts := contextOptions(t, 8)
	det, _, _, path := fitAndSave(t, opts)
	t.Run("inspect", func(t *testing.T) { testInspectNonFinite(t, det) })
	if ld, err := Load(path, opts); err != nil {
		t.Fatal(err)
	} else {
		ld.Close()
	}
	orig, _ := os.ReadFile(path)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		tensor string
		i      int
		v      float32
	}{
		{padim.TensorInvCov, 4321, nan}, // the field case
		{padim.TensorMean, 7, inf},
		{tensorDistInvStd, 100, nan},
		{tensorContextInvCov, 3, float32(math.Inf(-1))},
		{tensorContextDistMean, 0, nan},
	} {
		t.Run(c.tensor, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.safetensors")
			if err := os.WriteFile(bad, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			corruptFloat(t, bad, c.tensor, c.i, c.v)
			_, err := Load(bad, opts)
			want := fmt.Sprintf("tensor %q holds %v at index %d", c.tensor, c.v, c.i)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), bad) {
				t.Fatalf("want an error naming the file and %q, got %v", want, err)
			}
		})
	}

	for _, key := range []string{"image", "pixel"} {
		t.Run(key+" threshold 0", func(t *testing.T) {
			pm, err := padim.Load(path, padim.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer pm.Close()
			m := *pm
			if key == "image" {
				m.Meta.ImageThreshold = 0
			} else {
				m.Meta.PixelThreshold = 0
			}
			bad := filepath.Join(t.TempDir(), "zero.safetensors")
			if err := padim.Save(bad, &m); err != nil {
				t.Fatal(err)
			}
			_, err = Load(bad, opts)
			if err == nil || !strings.Contains(err.Error(), key+"_threshold=0") || !strings.Contains(err.Error(), bad) {
				t.Fatalf("want an error naming %s_threshold and the file, got %v", key, err)
			}
		})
	}
}

// testInspectNonFinite: NaN or Inf in the inverse covariances, the means,
// the z-score statistics or the context scale reaches the scores, and a
// NaN image score would compare below the threshold as ok: Inspect must
// return ErrNonFinite instead.
func testInspectNonFinite(t *testing.T, det *Detector) {
	img := texture(77, false)
	if _, err := det.Inspect(img); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		v    *float32
	}{
		{"inverse covariance", &det.state.InvCov[0]},
		{"mean", &det.state.Mean[len(det.state.Mean)-1]},
		{"z-score spread", &det.zInvStd[len(det.zInvStd)/2]},
		{"context inverse covariance", &det.ctx.state.InvCov[0]},
	} {
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
			old := *c.v
			*c.v = bad
			r, err := det.Inspect(img)
			*c.v = old
			if !errors.Is(err, ErrNonFinite) || r != nil {
				t.Errorf("%s = %v: Inspect gave %v (result %v); want ErrNonFinite", c.name, bad, err, r != nil)
			}
		}
	}
	// And it recovers: the next good frame is judged as before.
	if r, err := det.Inspect(img); err != nil || math.IsNaN(r.Score) {
		t.Fatalf("after the bad frames: %v", err)
	}
}

// Fit refuses too few images before it touches the backbone (here: one
// that does not exist), naming the real minimum for its settings and the
// ways out. 3..9 images used to fail after the whole fit with "quantile:
// no scores".
func TestFitTooFewImages(t *testing.T) {
	opts := testOptions(t)
	opts.Backbone.Path = filepath.Join(t.TempDir(), "no-backbone.tflite")
	opts.PositionZScore = true
	for _, n := range []int{0, 1, 2, 5, 9} {
		_, _, err := Fit(context.Background(), opts, textures(n), nil)
		if !errors.Is(err, ErrTooFewImages) {
			t.Fatalf("%d images: %v, want ErrTooFewImages", n, err)
		}
		for _, want := range []string{fmt.Sprintf("%d given", n), "holdout 0.1", "every 10th image", "at least 10 (9 fitted, 1 held out)",
			"z-score and the context scale need 20 held out (200 images)", "model.threshold.value", "then 3 suffice",
			"raise model.threshold.holdout (at 0.5, 5 suffice)"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%d images: %q lacks %q", n, err, want)
			}
		}
	}
	o := opts
	o.Threshold.Explicit = 2.5
	for _, n := range []int{1, 2} {
		_, _, err := Fit(context.Background(), o, textures(n), nil)
		if !errors.Is(err, ErrTooFewImages) || !strings.Contains(err.Error(), "needs at least 3 (model.threshold.value is set") {
			t.Errorf("%d images with an explicit threshold: %v", n, err)
		}
	}
	o = opts
	o.Holdout = 0.5
	if _, _, err := Fit(context.Background(), o, textures(4), nil); !errors.Is(err, ErrTooFewImages) ||
		!strings.Contains(err.Error(), "every 2nd image held out) that takes at least 5 (3 fitted, 2 held out)") ||
		strings.Contains(err.Error(), "raise model.threshold.holdout") {
		t.Errorf("4 images at hold-out 0.5: %v", err)
	}
	// At the minimum, the count check passes and the fit reaches the
	// backbone (which is missing here).
	for _, c := range []struct {
		o Options
		n int
	}{{opts, 10}, {o, 5}} {
		if _, _, err := Fit(context.Background(), c.o, textures(c.n), nil); err == nil || errors.Is(err, ErrTooFewImages) {
			t.Errorf("%d images at hold-out %g: %v, want the backbone error", c.n, c.o.Holdout, err)
		}
	}
	for _, c := range []struct {
		frac     float64
		explicit float64
		want     int
	}{{0.1, 0, 10}, {0.5, 0, 5}, {0.25, 0, 4}, {0.9, 0, 5}, {0.01, 0, 100}, {0.1, 3, 3}, {0, 0, 10}, {1e-300, 0, 1e12}} {
		o := Options{Holdout: c.frac}
		o.Threshold.Explicit = c.explicit
		if got := o.MinImages(); got != c.want {
			t.Errorf("MinImages at hold-out %g, explicit %g = %d, want %d", c.frac, c.explicit, got, c.want)
		}
	}
	// holdoutCounts, which the minimum is computed with, counts what
	// splitHoldout does.
	for _, frac := range []float64{0.05, 0.1, 0.25, 0.3, 0.5, 0.9} {
		for n := range 120 {
			fit, hold := splitHoldout(n, frac)
			if f, h := holdoutCounts(n, frac); f != len(fit) || h != len(hold) {
				t.Fatalf("%d images at %g: holdoutCounts %d/%d, splitHoldout %d/%d", n, frac, f, h, len(fit), len(hold))
			}
		}
	}
}

// A real fit at the minimum works: 10 images at the default hold-out.
func TestFitAtMinimum(t *testing.T) {
	opts := testOptions(t)
	det, rep, err := Fit(context.Background(), opts, textures(opts.MinImages()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if rep.Images != 9 || rep.HeldOut != 1 {
		t.Fatalf("report %+v", rep)
	}
}
