package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A data set whose train/good was there but held no image (its images
// copied elsewhere) was refused with "train/good holds no … images",
// which did not say whether the folder was empty or held files of another
// kind or a folder too deep. Scan now says what it holds.
func TestScanSaysWhatAnImagelessTrainGoodHolds(t *testing.T) {
	for name, tc := range map[string]struct {
		files   []string
		folders []string
		want    string
	}{
		"empty":   {want: "holds no images: it is empty"},
		"files":   {files: []string{"a.txt", "b.raw", "c"}, want: "holds no images: 3 files, none an image (.jpg .jpeg .png .bmp .tif .tiff .gif)"},
		"hidden":  {files: []string{".~tmp1.png"}, want: "holds no images: 1 file named like an image but hidden (a name that starts with a dot is a temporary file's, left out)"},
		"folders": {files: []string{"notes.txt"}, folders: []string{"cam1", "cam2"}, want: "holds no images: 1 file, none an image (.jpg .jpeg .png .bmp .tif .tiff .gif); 2 sub-folders (images go in the folder itself, not below it)"},
	} {
		dir := filepath.Join(t.TempDir(), name)
		good := filepath.Join(dir, "train", "good")
		if err := os.MkdirAll(good, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range tc.files {
			if err := os.WriteFile(filepath.Join(good, f), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range tc.folders {
			if err := os.Mkdir(filepath.Join(good, f), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// An image of the data set's own folder changes nothing.
		if err := os.WriteFile(filepath.Join(dir, "stray.png"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Scan(dir)
		var ni *NoImagesError
		if !errors.As(err, &ni) || ni.Dir != good {
			t.Errorf("%s: Scan: %v, want a *NoImagesError naming %s", name, err, good)
			continue
		}
		if want := "data set " + dir + ": " + good + " " + tc.want; err.Error() != want {
			t.Errorf("%s: Scan:\n %v\nwant\n %s", name, err, want)
		}
	}
}
