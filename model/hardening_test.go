package model

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
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
	sameFitPath(t)
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
		{"inverse covariance", &det.scales[0].state.InvCov[0]},
		{"mean", &det.scales[0].state.Mean[len(det.scales[0].state.Mean)-1]},
		{"z-score spread", &det.scales[0].zInvStd[len(det.scales[0].zInvStd)/2]},
		{"context inverse covariance", &det.scales[1].state.InvCov[0]},
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
// that does not exist), naming the minimum and the way out.
func TestFitTooFewImages(t *testing.T) {
	opts := testOptions(t)
	opts.Backbone.Path = filepath.Join(t.TempDir(), "no-backbone.tflite")
	opts.PositionZScore = true
	for _, n := range []int{0, 1, 2} {
		_, _, err := Fit(context.Background(), opts, textures(n), nil)
		if !errors.Is(err, ErrTooFewImages) {
			t.Fatalf("%d images: %v, want ErrTooFewImages", n, err)
		}
		for _, want := range []string{fmt.Sprintf("%d given", n), "needs at least 3", "leave one out", "z-score and the context scale 20",
			"recipe search 40", "Add images of good parts"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%d images: %q lacks %q", n, err, want)
			}
		}
	}
	// At the minimum, the count check passes and the fit reaches the
	// backbone (which is missing here).
	if _, _, err := Fit(context.Background(), opts, textures(3), nil); err == nil || errors.Is(err, ErrTooFewImages) {
		t.Errorf("3 images: %v, want the backbone error", err)
	}
	if got := opts.MinImages(); got != 3 {
		t.Errorf("MinImages = %d, want 3", got)
	}
}

// A real fit at the minimum works: 3 images, each scored leave one out for
// the threshold.
func TestFitAtMinimum(t *testing.T) {
	opts := testOptions(t)
	det, rep, err := Fit(context.Background(), opts, textures(opts.MinImages()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if rep.Images != 3 || rep.ThresholdImages != 3 || !(det.Info().ImageThreshold > 0) {
		t.Fatalf("report %+v", rep)
	}
}

// A frame under MinFrameSide on a side is not judged: Inspect returns
// ErrFrameTooSmall naming its size (a trial: single-pixel PNGs, a uniform
// patch once scaled up, scored 0.79× the threshold and passed as good).
// A frame of MinFrameSide on each side is inspected.
func TestTinyFrameNotJudged(t *testing.T) {
	opts := testOptions(t)
	det, _, err := Fit(context.Background(), opts, textures(opts.MinImages()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	for _, sz := range []image.Point{{1, 1}, {2, 2}, {MinFrameSide - 1, 400}, {400, MinFrameSide - 1}} {
		r, err := det.Inspect(image.NewGray(image.Rect(0, 0, sz.X, sz.Y)))
		if !errors.Is(err, ErrFrameTooSmall) || !strings.Contains(err.Error(), fmt.Sprintf("%dx%d", sz.X, sz.Y)) {
			t.Errorf("%v frame: %v, %v; want ErrFrameTooSmall naming its size", sz, r, err)
		}
	}
	if _, err := det.Inspect(image.NewGray(image.Rect(0, 0, MinFrameSide, MinFrameSide))); err != nil {
		t.Errorf("%dx%d frame: %v", MinFrameSide, MinFrameSide, err)
	}
}
