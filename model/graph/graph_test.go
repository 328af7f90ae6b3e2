package graph

import (
	"os"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/modeltest"
)

func mobilenet(t testing.TB) *Model {
	t.Helper()
	m, err := ReadFile(modeltest.BackbonePath(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseMobileNet(t *testing.T) {
	m := mobilenet(t)
	if len(m.Inputs) != 1 || m.Tensors[m.Inputs[0]].Type != Uint8 {
		t.Fatalf("inputs %v", m.Inputs)
	}
	in := m.Tensors[m.Inputs[0]]
	if got := in.Shape; len(got) != 4 || got[1] != 224 || got[2] != 224 || got[3] != 3 {
		t.Fatalf("input shape %v", got)
	}
	taps, err := m.AutoTaps()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Conv2d_3_pointwise", "Conv2d_5_pointwise", "Conv2d_11_pointwise"}
	for i, ti := range taps {
		if !strings.Contains(m.Tensors[ti].Name, want[i]) {
			t.Errorf("auto tap %d = %s, want %s", i, m.Tensors[ti].Name, want[i])
		}
		if q := m.Tensors[ti].Quant; q == nil || q.Scale[0] < 0.02 || q.Scale[0] > 0.03 || q.ZeroPoint[0] != 0 {
			t.Errorf("tap %d quantization %+v", i, q)
		}
	}
	// Pruning to the taps drops the 7×7 layers and the classifier: about
	// 14% of the multiply-adds.
	frac := float64(m.Operations(m.Needed(taps))) / float64(m.Operations(nil))
	if frac < 0.8 || frac > 0.9 {
		t.Errorf("pruned multiply-add fraction %.3f", frac)
	}
}

func TestWithOutputsRoundTrip(t *testing.T) {
	m := mobilenet(t)
	taps, _ := m.AutoTaps()
	for _, prune := range []bool{false, true} {
		b, err := m.WithOutputs(taps, prune)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Parse(b)
		if err != nil {
			t.Fatalf("rewritten model does not parse: %v", err)
		}
		if len(r.Outputs) != 3 || int(r.Outputs[0]) != taps[0] || int(r.Outputs[2]) != taps[2] {
			t.Fatalf("outputs %v, want %v", r.Outputs, taps)
		}
		keep := m.Needed(taps)
		n := 0
		for _, k := range keep {
			if k {
				n++
			}
		}
		if prune && len(r.Operators) != n || !prune && len(r.Operators) != len(m.Operators) {
			t.Fatalf("prune=%v: %d operators", prune, len(r.Operators))
		}
		if prune {
			// The kept operators are the original ones, in order.
			j := 0
			for i, k := range keep {
				if !k {
					continue
				}
				if r.Operators[j].Code != m.Operators[i].Code || r.Operators[j].Outputs[0] != m.Operators[i].Outputs[0] {
					t.Fatalf("operator %d of the pruned model is not original operator %d", j, i)
				}
				j++
			}
		}
		if !prune {
			// Only the outputs field's offset changes inside the original bytes.
			diff := 0
			for i, v := range m.Bytes() {
				if b[i] != v {
					diff++
				}
			}
			if diff == 0 || diff > 4 {
				t.Errorf("outputs-only rewrite changed %d original bytes, want 1..4", diff)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	good, err := os.ReadFile(modeltest.BackbonePath(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"short", []byte("TFL"), "too short"},
		{"text", []byte("hello, this is not a model at all"), "not a TensorFlow Lite model"},
		{"truncated", good[:1000], "truncated"},
		{"bad root", append([]byte{0xff, 0xff, 0xff, 0x7f}, good[4:]...), "outside the file"},
	} {
		_, err := Parse(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := ReadFile("/nonexistent/model.tflite"); err == nil || !strings.Contains(err.Error(), "/nonexistent/model.tflite") {
		t.Errorf("missing file: %v", err)
	}
}

func TestTensorByNameSuggests(t *testing.T) {
	m := mobilenet(t)
	_, err := m.TensorByName("Conv2d_5_pointwise")
	if err == nil || !strings.Contains(err.Error(), `"MobilenetV1/MobilenetV1/Conv2d_5_pointwise/Relu6"`) {
		t.Fatalf("error %v does not suggest the full name", err)
	}
}

// FuzzParse: no input may crash the reader or the rewrite. The checked-in
// corpus (testdata/fuzz/FuzzParse) holds a small real model.
func FuzzParse(f *testing.F) {
	f.Add([]byte("TFL3"))
	f.Add([]byte{0x10, 0, 0, 0, 'T', 'F', 'L', '3', 0xff, 0xff, 0xff, 0xff, 4, 0, 8, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		for i := range m.Tensors {
			m.Stride(&m.Tensors[i])
		}
		m.AutoTaps()
		m.Operations(nil)
		if len(m.Tensors) > 0 && !m.Tensors[0].Constant {
			if nb, err := m.WithOutputs([]int{0}, true); err == nil {
				if _, err := Parse(nb); err != nil {
					t.Fatalf("rewrite of a valid model does not parse: %v", err)
				}
			}
		}
	})
}
