//go:build !linux

package atomicfile

// checkAttrs is a no-op where inode attributes cannot be read this way.
func checkAttrs(dir, path string) error { return nil }
