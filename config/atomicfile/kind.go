package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FileKind names the kind of a file that is neither regular nor a folder,
// as a refusal words it: "a device", "a named pipe", "a socket", or "not a
// regular file". It lives here, in a package that config, capture and
// model all import, so that a model file, an image, a configuration file
// and a file about to be written are refused in the same words.
func FileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

// ReplaceRefusal says, in words that follow path ("is a named pipe", "is
// a link to a device", "is a link to /proc/self/fd/1, a process's open
// file"), what is at path that a file written elsewhere and renamed into
// place (Write) would wrongly replace, or "" (nothing there, a regular
// file, a folder, a link to a file or to nothing). A link is followed only
// to tell what it was meant to write into: a device, pipe or socket, or a
// process's open files (/proc/…, /dev/fd/…: /dev/stdout), whose link the
// rename replaced (fit --out /dev/stdout as root; eval --json and capture
// snapshot --out alike).
func ReplaceRefusal(path string) string {
	st, err := os.Lstat(path)
	if err != nil || st.Mode().IsRegular() || st.IsDir() {
		return ""
	}
	if st.Mode()&os.ModeSymlink == 0 {
		return "is " + FileKind(st.Mode())
	}
	p := path
	for range 40 { // the kernel's bound on the links in one path
		to, err := os.Readlink(p)
		if err != nil {
			break
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(p), to)
		}
		to = filepath.Clean(to)
		for _, fds := range []string{"/proc", "/dev/fd"} {
			if to == fds || strings.HasPrefix(to, fds+"/") {
				return "is a link to " + to + ", a process's open file"
			}
		}
		p = to
	}
	if t, err := os.Stat(path); err == nil && !t.Mode().IsRegular() && !t.IsDir() {
		return "is a link to " + FileKind(t.Mode())
	}
	return ""
}
