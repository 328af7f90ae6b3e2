// Package dirs helps a change that creates a folder undo it when the
// change is refused.
package dirs

import (
	"os"
	"path/filepath"
)

// FirstMissing returns the outermost folder of dir's path that does not
// exist (what os.MkdirAll(dir) would create first; removing it removes
// all that MkdirAll created), or "" when dir exists or its path cannot
// be looked at.
func FirstMissing(dir string) string {
	dir = filepath.Clean(dir)
	missing := ""
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			return missing
		} else if !os.IsNotExist(err) {
			return ""
		}
		missing = p
		if filepath.Dir(p) == p {
			return missing
		}
	}
}
