package capture

import (
	"image"
	"os"
	"path/filepath"
)

// flat is a colour frame's image of any kind as plain RGBA.
func flat(img image.Image) *image.RGBA { return Flatten(nil, img).(*image.RGBA) }

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// mkLink makes link point at target, creating link's folder.
func mkLink(target, link string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	return os.Symlink(target, link)
}
