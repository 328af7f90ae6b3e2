package backbone

import (
	"bytes"
	"image"
	"image/png"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/modeltest"
)

func loadPNG(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func open(t testing.TB, o Options) *Backbone {
	t.Helper()
	if o.Path == "" && o.Bytes == nil {
		o.Path = modeltest.BackbonePath(t)
	}
	if o.Threads == 0 {
		o.Threads = 2
	}
	b, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestAutoTapsMatchDesign(t *testing.T) {
	b := open(t, Options{})
	want := []string{
		"MobilenetV1/MobilenetV1/Conv2d_3_pointwise/Relu6",
		"MobilenetV1/MobilenetV1/Conv2d_5_pointwise/Relu6",
		"MobilenetV1/MobilenetV1/Conv2d_11_pointwise/Relu6",
	}
	shapes := [][3]int{{56, 56, 128}, {28, 28, 256}, {14, 14, 512}}
	for i, tp := range b.Taps() {
		if tp.Name != want[i] || [3]int{tp.H, tp.W, tp.C} != shapes[i] || tp.Stride != 4<<i {
			t.Errorf("tap %d = %+v, want %s %v stride %d", i, tp, want[i], shapes[i], 4<<i)
		}
	}
}

// The classifier kept as an extra output must label go-tflite's sample
// peacock as a peacock through our own preprocessing.
func TestPeacockTop1(t *testing.T) {
	dir := filepath.Join(modeltest.GoTFLiteDir(t), "_example", "label_image")
	b := open(t, Options{Extra: []string{"MobilenetV1/Predictions/Softmax"}})
	if _, _, err := b.Extract(loadPNG(t, filepath.Join(dir, "peacock.png"))); err != nil {
		t.Fatal(err)
	}
	probs, typ := b.Extra(0)
	if typ != "UInt8" || len(probs) != 1001 {
		t.Fatalf("classifier output %s ×%d", typ, len(probs))
	}
	best := 0
	for i, p := range probs {
		if p > probs[best] {
			best = i
		}
	}
	labels, err := os.ReadFile(filepath.Join(dir, "labels.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(string(labels), "\n")[best]
	if got != "peacock" {
		t.Fatalf("top-1 = %q (%d, p=%d/255), want peacock", got, best, probs[best])
	}
}

// Pruning must not change a single bit of any tap.
func TestPrunedTapsBitIdentical(t *testing.T) {
	img := loadPNG(t, filepath.Join(modeltest.GoTFLiteDir(t), "_example", "label_image", "peacock.png"))
	pruned := open(t, Options{})
	full := open(t, Options{NoPrune: true})
	for _, b := range []*Backbone{pruned, full} {
		if _, _, err := b.Extract(img); err != nil {
			t.Fatal(err)
		}
	}
	if n1, n2 := len(pruned.Taps()), len(full.Taps()); n1 != 3 || n2 != 3 {
		t.Fatalf("taps %d %d", n1, n2)
	}
	for i := range pruned.Taps() {
		a, c := pruned.RawTap(i), full.RawTap(i)
		if !bytes.Equal(a, c) {
			t.Errorf("tap %d differs between pruned and unpruned model", i)
		}
		nonzero := 0
		for _, v := range a {
			if v != 0 {
				nonzero++
			}
		}
		if nonzero < len(a)/20 {
			t.Errorf("tap %d is almost all zero (%d of %d): features not computed", i, nonzero, len(a))
		}
	}
	keep := pruned.Graph().Needed([]int{17})
	dropped := 0
	for _, k := range keep {
		if !k {
			dropped++
		}
	}
	if dropped == 0 {
		t.Error("pruning dropped no operator")
	}
}

func TestFeaturesDequantized(t *testing.T) {
	b := open(t, Options{})
	img := image.NewGray(image.Rect(0, 0, 300, 120))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	fm, reg, err := b.Extract(img)
	if err != nil {
		t.Fatal(err)
	}
	if reg != (Region{0, 0, 1, 1}) {
		t.Errorf("squash region %+v", reg)
	}
	raw := b.RawTap(0)
	tp := b.Taps()[0]
	for i := 0; i < len(raw); i += 97 {
		want := float32(tp.Scale * float64(int(raw[i])-tp.Zero))
		if fm[0].Data[i] != want {
			t.Fatalf("value %d = %v, want %v", i, fm[0].Data[i], want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(modeltest.BackbonePath(t))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corrupt := append([]byte(nil), good...)
	for i := 8; i < 4096; i += 3 {
		corrupt[i] ^= 0x5a
	}
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"missing", Options{Path: filepath.Join(dir, "nope.tflite")}, "no such file"},
		{"empty", Options{Path: write("empty.tflite", nil)}, "empty file"},
		{"text", Options{Path: write("text.tflite", []byte("this is a config file, not a model\n"))}, "not a TensorFlow Lite model"},
		{"truncated", Options{Path: write("trunc.tflite", good[:len(good)/3])}, "truncated"},
		{"corrupt", Options{Path: write("corrupt.tflite", corrupt)}, "corrupt"},
		{"tap", Options{Taps: []string{"MobilenetV1/Conv2d_3_pointwise"}}, `closest: "MobilenetV1/MobilenetV1/Conv2d_3_pointwise/Relu6"`},
		{"weights-tap", Options{Taps: []string{"MobilenetV1/Logits/Conv2d_1c_1x1/weights_quant/FakeQuantWithMinMaxVars"}}, "constant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			if o.Path == "" {
				o.Path = modeltest.BackbonePath(t)
			}
			b, err := Open(o)
			if err == nil {
				b.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			if c.o.Path != "" && !strings.Contains(err.Error(), c.o.Path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func deeplab(t testing.TB) string {
	return filepath.Join(modeltest.GoTFLiteDir(t), "_example", "segment", "deeplabv3_257_mv_gpu.tflite")
}

// A float model runs on XNNPACK and agrees with the builtin kernels.
func TestXNNPACKFloatModel(t *testing.T) {
	img := loadPNG(t, filepath.Join(modeltest.GoTFLiteDir(t), "_example", "label_image", "peacock.png"))
	cpu := open(t, Options{Path: deeplab(t), Preprocess: Preprocess{Mean: [3]float32{127.5, 127.5, 127.5}, Std: [3]float32{127.5, 127.5, 127.5}}})
	xnn := open(t, Options{Path: deeplab(t), XNNPACK: true, Preprocess: Preprocess{Mean: [3]float32{127.5, 127.5, 127.5}, Std: [3]float32{127.5, 127.5, 127.5}}})
	if cpu.Accelerator() != "cpu" || xnn.Accelerator() != "xnnpack" {
		t.Fatalf("accelerators %s, %s", cpu.Accelerator(), xnn.Accelerator())
	}
	compareFeatures(t, cpu, xnn, img)
}

func compareFeatures(t *testing.T, a, b *Backbone, img image.Image) {
	t.Helper()
	fa, _, err := a.Extract(img)
	if err != nil {
		t.Fatal(err)
	}
	fb, _, err := b.Extract(img)
	if err != nil {
		t.Fatal(err)
	}
	for i := range fa {
		var dot, na, nb float64
		for j, v := range fa[i].Data {
			w := fb[i].Data[j]
			dot += float64(v) * float64(w)
			na += float64(v) * float64(v)
			nb += float64(w) * float64(w)
		}
		if cos := dot / (sqrt(na)*sqrt(nb) + 1e-30); cos < 0.999 {
			t.Errorf("tap %d: cosine similarity %.5f between runs", i, cos)
		}
	}
}

func sqrt(x float64) float64 {
	z := x / 2
	for i := 0; i < 60 && z > 0; i++ {
		z = (z + x/z) / 2
	}
	return z
}

const plugin = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensorflow/lite/c/c_api_experimental.h"

// A delegate plugin of the kind the TFLite GPU delegate and libedgetpu are:
// it wraps XNNPACK and records the options it was given.
TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n, void (*report)(const char*)) {
  TfLiteXNNPackDelegateOptions o = TfLiteXNNPackDelegateOptionsDefault();
  const char* marker = NULL;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(keys[i], "num_threads") == 0) o.num_threads = atoi(values[i]);
    if (strcmp(keys[i], "marker") == 0) marker = values[i];
    if (strcmp(keys[i], "fail") == 0) { report("asked to fail"); return NULL; }
  }
  if (marker) { FILE* f = fopen(marker, "w"); if (f) { fprintf(f, "threads=%d\n", o.num_threads); fclose(f); } }
  return TfLiteXNNPackDelegateCreate(&o);
}
void tflite_plugin_destroy_delegate(TfLiteDelegate* d) { TfLiteXNNPackDelegateDelete(d); }
`

func buildPlugin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "plugin.c")
	if err := os.WriteFile(src, []byte(plugin), 0o644); err != nil {
		t.Fatal(err)
	}
	share := modeltest.ShareDir(t)
	build := filepath.Dir(filepath.Dir(share)) // build/share/inspectd → build
	lib := filepath.Join(dir, "libxnnplugin.so")
	cmd := exec.Command("gcc", "-shared", "-fPIC", "-o", lib, src, "-I"+filepath.Join(build, "include"),
		"-L"+filepath.Join(build, "lib", "inspectd"), "-ltensorflowlite_c", "-Wl,-rpath,"+filepath.Join(build, "lib", "inspectd"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compile plugin: %v\n%s", err, out)
	}
	return lib
}

func TestDelegatePlugin(t *testing.T) {
	lib := buildPlugin(t)
	img := loadPNG(t, filepath.Join(modeltest.GoTFLiteDir(t), "_example", "label_image", "peacock.png"))
	marker := filepath.Join(t.TempDir(), "marker")
	pre := Preprocess{Mean: [3]float32{127.5, 127.5, 127.5}, Std: [3]float32{127.5, 127.5, 127.5}}
	cpu := open(t, Options{Path: deeplab(t), Preprocess: pre})
	plug := open(t, Options{Path: deeplab(t), Preprocess: pre,
		Delegate: DelegateOptions{Library: lib, Required: true, Options: map[string]string{"num_threads": "2", "marker": marker}}})
	if plug.Accelerator() != lib {
		t.Fatalf("accelerator %q, want the plugin", plug.Accelerator())
	}
	got, err := os.ReadFile(marker)
	if err != nil || string(got) != "threads=2\n" {
		t.Fatalf("plugin did not receive its options: %q %v", got, err)
	}
	compareFeatures(t, cpu, plug, img)

	t.Run("missing falls back", func(t *testing.T) {
		var logs bytes.Buffer
		b := open(t, Options{Delegate: DelegateOptions{Library: filepath.Join(t.TempDir(), "libnone.so")},
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if b.Accelerator() != "cpu" {
			t.Fatalf("accelerator %q", b.Accelerator())
		}
		if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "running on the CPU") {
			t.Fatalf("want one fallback log line, got %q", logs.String())
		}
	})
	t.Run("failing plugin required", func(t *testing.T) {
		_, err := Open(Options{Path: modeltest.BackbonePath(t), Delegate: DelegateOptions{Library: lib, Required: true, Options: map[string]string{"fail": "1"}}})
		if err == nil || !strings.Contains(err.Error(), lib) {
			t.Fatalf("want an error naming the plugin, got %v", err)
		}
	})
}

// TestReopenDoesNotLeak: opening and closing the backbone again and again
// (every reload, refit and configuration push does) keeps the resident set
// flat. go-tflite's own loader kept a C copy of every model it was given:
// 8–9 MB per reload, 60 reloads about half a gigabyte.
func TestReopenDoesNotLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("opens the backbone 60 times")
	}
	path := modeltest.BackbonePath(t)
	open := func() {
		b, err := Open(Options{Path: path, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	open() // warm-up: one-time allocations of the runtime and TensorFlow Lite
	open()
	before := residentBytes(t)
	const n = 60
	for range n {
		open()
	}
	grew := residentBytes(t) - before
	t.Logf("resident set grew %.1f MB over %d opens", float64(grew)/1e6, n)
	if grew > 40e6 { // a leaked copy per open would be > 240 MB
		t.Errorf("resident set grew %.1f MB over %d opens of the backbone", float64(grew)/1e6, n)
	}
}

func residentBytes(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}
