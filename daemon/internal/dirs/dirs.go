// Package dirs helps a change that creates a folder undo it when the
// change is refused.
package dirs

import (
	"os"
	"path/filepath"
	"strings"
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

// RemoveEmpty removes dir and then each parent of it up to and including
// top (what FirstMissing returned before the folders were made), each
// only while it is empty: a refused change takes back the folders it made
// without removing anything someone else put there meanwhile (another
// inspectd that took the folder). top must be dir or one of its parents;
// otherwise only dir is tried.
func RemoveEmpty(dir, top string) {
	dir, top = filepath.Clean(dir), filepath.Clean(top)
	for p := dir; ; p = filepath.Dir(p) {
		if os.Remove(p) != nil || p == top || filepath.Dir(p) == p {
			return
		}
		if rel, err := filepath.Rel(top, filepath.Dir(p)); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return
		}
	}
}
