package cli

import (
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model/dataset"
)

func TestCaptureExportWritesMVTecLayout(t *testing.T) {
	out := filepath.Join(t.TempDir(), "synth")
	code, stdout, stderr := runCaptureCmd(t, "capture", "export", "--out", out, "--train", "4", "--test", "12",
		"--width", "64", "--height", "48", "--defect-rate", "0.6", "--seed", "3", "--gray")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "wrote 4 training and 12 test frames") {
		t.Errorf("stdout %q", stdout)
	}
	set, err := dataset.Scan(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Train) != 4 || len(set.Test) != 12 {
		t.Fatalf("scanned %d train and %d test images, want 4 and 12", len(set.Train), len(set.Test))
	}
	defects := 0
	for _, it := range set.Test {
		img := decodeFile(t, it.Path)
		if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 48 {
			t.Errorf("%s is %v, want 64x48", it.Path, b)
		}
		if _, ok := img.ColorModel().Convert(color.White).(color.Gray); !ok {
			t.Errorf("%s is %T, want gray with --gray", it.Path, img)
		}
		if !it.Anomalous() {
			continue
		}
		defects++
		if it.MaskPath == "" {
			t.Errorf("%s (%s) has no ground-truth mask", it.Path, it.Label)
			continue
		}
		m, err := dataset.LoadMask(it.MaskPath, 64, 48, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range m {
			n += int(v)
		}
		if n == 0 {
			t.Errorf("%s: mask is empty for a %s defect", it.MaskPath, it.Label)
		}
	}
	if defects == 0 || defects == 12 {
		t.Errorf("%d of 12 test frames are defects at rate 0.6", defects)
	}

	// A folder with content is never overwritten.
	code, _, stderr = runCaptureCmd(t, "capture", "export", "--out", out, "--train", "4", "--test", "1")
	if code != 1 || !strings.Contains(stderr, "not empty") {
		t.Errorf("re-export into a full folder: exit %d, %q", code, stderr)
	}
}

func TestCaptureExportUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"capture", "export"},
		{"capture", "export", "--out", dir, "--train", "2"},
		{"capture", "export", "--out", dir, "--defect-rate", "1.5"},
		{"capture", "export", "--out", dir, "extra"},
	} {
		code, _, stderr := runCaptureCmd(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("usage errors wrote %d entries", len(ents))
	}
}
