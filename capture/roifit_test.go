package capture

import (
	"context"
	"errors"
	"image"
	"path/filepath"
	"strings"
	"testing"
)

// A folder's file that the region of interest does not fit in is a
// ROIMisfitError naming the file, its size and the region, its frame read
// (name, time), and the next call goes on with the next file: each file
// has its own size. It was an error that retrying cannot fix, which a
// consumer took for the end of the source.
func TestTransformFolderFileTheROIDoesNotFit(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]image.Point{"a.png": {160, 120}, "b.png": {64, 48}, "c.png": {160, 120}} {
		if err := writeFile(filepath.Join(dir, name), encodePNG(t, testImage(size.X, size.Y))); err != nil {
			t.Fatal(err)
		}
	}
	fl, err := NewFolder(FolderOptions{Dir: dir, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewTransform(fl, TransformOptions{ROI: image.Rect(8, 8, 136, 104)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var f Frame
	if err := src.Next(ctx, &f); err != nil || f.Name != "a.png" || f.Image.Bounds().Dx() != 128 {
		t.Fatalf("a.png: %v, %s %v", err, f.Name, f.Image.Bounds())
	}
	err = src.Next(ctx, &f)
	var me *ROIMisfitError
	if !errors.As(err, &me) || me.Name != "b.png" || me.Size != image.Pt(64, 48) || f.Name != "b.png" || f.Time.IsZero() || Temporary(err) {
		t.Fatalf("b.png: err %v, frame %q at %v; want a ROIMisfitError for b.png at 64x48, its frame named", err, f.Name, f.Time)
	}
	for _, want := range []string{"b.png", "64x48", "roi x=8 y=8 128x96"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := src.Next(ctx, &f); err != nil || f.Name != "c.png" {
		t.Fatalf("c.png after b.png: %v, %s", err, f.Name)
	}
	if err := src.Next(ctx, &f); !errors.Is(err, ErrEOF) {
		t.Errorf("after the last file: %v, want ErrEOF", err)
	}
}

// A region of interest to the edge that does not fit says so as
// configured, not with a width that is not one.
func TestROIMisfitToTheEdge(t *testing.T) {
	e := &ROIMisfitError{Name: "x.png", ROI: image.Rect(200, 0, ToEdge, ToEdge), Size: image.Pt(64, 48)}
	if got := e.Error(); !strings.Contains(got, "roi x=200 y=0 width to the edge height to the edge") || !strings.Contains(got, "64x48") {
		t.Errorf("error %q", got)
	}
}

// A single file whose image the region of interest does not fit in is
// refused when the Transform is made, naming the file, its size and the
// region: every frame of it would be refused.
func TestTransformFileTheROIDoesNotFit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "part.png")
	if err := writeFile(path, encodePNG(t, testImage(64, 48))); err != nil {
		t.Fatal(err)
	}
	fl, err := NewFile(FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewTransform(fl, TransformOptions{ROI: image.Rect(8, 8, 136, 104)})
	if err == nil {
		t.Fatal("a file the roi does not fit in was taken")
	}
	for _, want := range []string{path, "64x48", "roi x=8 y=8 128x96"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := NewTransform(fl, TransformOptions{ROI: image.Rect(8, 8, 40, ToEdge)}); err != nil {
		t.Errorf("a roi that fits: %v", err)
	}
}
