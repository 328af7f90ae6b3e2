// Package modeltest finds the files that tests and benchmarks across
// inspectd share: the default backbone fetched by `make deps`, the sample
// images in the go-tflite module, and the magnetic tile data set beside the
// checkout (present in CI, absent in a user's clone).
package modeltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Backbone is the default backbone's file name.
const Backbone = "mobilenet_quant_v1_224.tflite"

// root walks up from the working directory to the module root.
func root(tb testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("module root (go.mod) not found")
		}
		dir = parent
	}
}

// ShareDir is where `make deps` put the default backbone.
func ShareDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("INSPECTD_SHARE")
	if dir == "" {
		dir = filepath.Join(root(tb), "build", "share", "inspectd")
	}
	if _, err := os.Stat(filepath.Join(dir, Backbone)); err != nil {
		tb.Fatalf("default backbone missing in %s: run 'make deps' first", dir)
	}
	return dir
}

// BackbonePath is the default backbone file.
func BackbonePath(tb testing.TB) string { return filepath.Join(ShareDir(tb), Backbone) }

// GoTFLiteDir is the go-tflite module's folder in the module cache, which
// holds sample images and models.
func GoTFLiteDir(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/mattn/go-tflite").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		tb.Fatalf("go-tflite module not found (run 'make deps'): %v", err)
	}
	return dir
}

// MagneticTile is ../shared/data/magnetic_tile, or skips the test when the
// data set is not beside the checkout.
func MagneticTile(tb testing.TB) string {
	tb.Helper()
	return DataSet(tb, "magnetic_tile")
}

// DataSet is the data set name (magnetic_tile, screw, transistor,
// kolektorsdd) in $INSPECTD_DATA, or else in ../shared/data beside the
// checkout; the test is skipped when it is in neither.
func DataSet(tb testing.TB, name string) string {
	tb.Helper()
	if dir, ok := FindDataSet(tb, name); ok {
		return dir
	}
	tb.Skipf("%s data set not found in $INSPECTD_DATA or beside the checkout (../shared/data/%s)", name, name)
	return ""
}

// FindDataSet is DataSet for callers that fall back on something else:
// false when the data set is not there.
func FindDataSet(tb testing.TB, name string) (string, bool) {
	tb.Helper()
	for _, base := range []string{os.Getenv("INSPECTD_DATA"), filepath.Join(root(tb), "..", "shared", "data")} {
		if base == "" {
			continue
		}
		dir := filepath.Join(base, name)
		if _, err := os.Stat(filepath.Join(dir, "train", "good")); err == nil {
			return dir, true
		}
	}
	return "", false
}
