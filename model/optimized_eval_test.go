package model

import (
	"context"
	"math"
	"testing"

	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/dataset"
	"github.com/inspectd/inspectd/model/metrics"
	"github.com/inspectd/inspectd/model/modeltest"
)

// The int8 rewrite that XNNPACK runs must not change what the detector
// finds: image and pixel AUROC on real tiles move by less than 0.005
// against the original uint8 model on TFLite's builtin kernels.
func TestOptimizedBackboneKeepsAUROC(t *testing.T) {
	tiles := modeltest.MagneticTile(t)
	if testing.Short() {
		t.Skip("fits two models on real images")
	}
	set, err := dataset.Scan(tiles)
	if err != nil {
		t.Fatal(err)
	}
	var train pathsSource
	for i := 0; i < 120; i++ {
		train = append(train, set.Train[i*len(set.Train)/120].Path)
	}
	var test []dataset.Item
	for i := 0; i < 160; i++ {
		test = append(test, set.Test[i*len(set.Test)/160])
	}
	auroc := func(optimize string) (img, pix float64) {
		opts := Options{Backbone: backbone.Options{Path: modeltest.BackbonePath(t), Threads: 2, Optimize: optimize,
			Taps:       []string{"MobilenetV1/MobilenetV1/Conv2d_3_pointwise/Relu6", "MobilenetV1/MobilenetV1/Conv2d_5_pointwise/Relu6", "MobilenetV1/MobilenetV1/Conv2d_9_pointwise/Relu6"},
			Preprocess: backbone.Preprocess{Resize: backbone.ResizeFit}}, Features: 100, Sigma: 4, Standardize: true}
		det, _, err := Fit(context.Background(), opts, train, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer det.Close()
		if want := map[string]string{"off": backbone.VariantBuiltin, "int8": backbone.VariantInt8}[optimize]; det.Backbone().Variant() != want {
			t.Fatalf("optimize %s runs %s", optimize, det.Backbone().Variant())
		}
		pixels := metrics.NewPixels()
		var scores []float64
		var labels []bool
		var mask []uint8
		for _, it := range test {
			im, err := dataset.Load(it.Path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := det.Inspect(im)
			if err != nil {
				t.Fatal(err)
			}
			if mask, err = dataset.LoadMask(it.MaskPath, r.W, r.H, mask); err != nil {
				t.Fatal(err)
			}
			if err := pixels.Add(r.Map, mask, r.W, r.H); err != nil {
				t.Fatal(err)
			}
			scores = append(scores, r.Score)
			labels = append(labels, it.Anomalous())
		}
		if img, err = metrics.AUROC(scores, labels); err != nil {
			t.Fatal(err)
		}
		if pix, err = pixels.AUROC(); err != nil {
			t.Fatal(err)
		}
		return img, pix
	}
	refImg, refPix := auroc("off")
	optImg, optPix := auroc("int8")
	t.Logf("builtin uint8: image %.4f pixel %.4f; int8 XNNPACK: image %.4f pixel %.4f", refImg, refPix, optImg, optPix)
	if math.Abs(optImg-refImg) >= 0.005 || math.Abs(optPix-refPix) >= 0.005 {
		t.Errorf("int8 backbone changes AUROC: image %.4f → %.4f, pixel %.4f → %.4f", refImg, optImg, refPix, optPix)
	}
}
