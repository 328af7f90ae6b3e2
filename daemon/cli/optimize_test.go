package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/graph"
	"github.com/inspectd/inspectd/model/modeltest"
)

func runOptimize(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestModelOptimize(t *testing.T) {
	if testing.Short() {
		t.Skip("fits or loads models for the command's words and files, no concurrency of its own: the full run checks it, the race run skips it")
	}
	in := modeltest.BackbonePath(t)
	dir := t.TempDir()
	for _, c := range []struct {
		flag, form string
		typ        graph.TensorType
		summary    string
	}{
		{"--int8", "int8", graph.Int8, "weight channels kept exactly"},
		{"--float", "float32", graph.Float32, "operators given the ReLU clamp"},
	} {
		out := filepath.Join(dir, c.form+".tflite")
		code, stdout, stderr := runOptimize(t, "", "model", "optimize", "--threads", "1", c.flag, in, out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.flag, code, stderr)
		}
		if !strings.Contains(stdout, "("+c.form+", ") || !strings.Contains(stdout, c.summary) || strings.Count(stdout, "Relu6 0.99") != 3 {
			t.Errorf("%s: output\n%s", c.flag, stdout)
		}
		m, err := graph.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if typ := m.Tensors[m.Inputs[0]].Type; typ != c.typ {
			t.Errorf("%s: input is %s", c.flag, typ)
		}
		if c.form == "int8" {
			code, _, stderr = runOptimize(t, "", "model", "optimize", out, filepath.Join(dir, "again.tflite"))
			if code != 1 || !strings.Contains(stderr, "nothing to rewrite") {
				t.Errorf("optimizing an int8 model again: exit %d, %s", code, stderr)
			}
		}
	}
	for _, args := range [][]string{
		{"--int8", "--float", in, "x"},
		{in},
		{in, in},
	} {
		if code, _, stderr := runOptimize(t, "", append([]string{"model", "optimize"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "again.tflite")); err == nil {
		t.Error("a failed optimization wrote its output")
	}
}

// The hidden probe command speaks backbone's probe protocol: a JSON
// request on stdin, one JSON result line on stdout.
func TestModelProbe(t *testing.T) {
	req, _ := json.Marshal(map[string]any{"path": modeltest.BackbonePath(t), "taps": []string{}, "threads": 1, "optimize": "int8", "frames": 1})
	code, stdout, stderr := runOptimize(t, string(req), "model", "probe")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Variant, Accelerator, Error string
		Ms                          float64   `json:"ms_per_frame"`
		Cosine                      []float64 `json:"cosine"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("result %q: %v", stdout, err)
	}
	if res.Variant != "int8-xnnpack" || res.Accelerator != "xnnpack" || res.Error != "" || res.Ms <= 0 || len(res.Cosine) != 3 {
		t.Fatalf("result %+v", res)
	}
	for _, c := range res.Cosine {
		if c < 0.99 {
			t.Errorf("cosine %v", res.Cosine)
		}
	}
	if code, _, _ := runOptimize(t, "{broken", "model", "probe"); code != 1 {
		t.Errorf("broken request: exit %d, want 1", code)
	}
}
