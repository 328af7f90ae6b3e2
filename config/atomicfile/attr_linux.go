package atomicfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// Inode flags of linux/fs.h, which golang.org/x/sys/unix does not name.
const (
	fsImmutableFL = 0x00000010
	fsAppendFL    = 0x00000020
)

// checkAttrs returns an *AttrError when dir, or the regular file at path
// that the write would replace, is append-only or immutable, and nil
// otherwise, or where the flags cannot be read (a file system without the
// ioctl: ENOTTY, EOPNOTSUPP, EINVAL; a folder or file it may not open).
// An append-only folder takes the temporary file but neither the rename
// nor its removal: each refused write left one there, a model's tens of
// megabytes, that not even root could remove without chattr -a. A rename
// over an immutable or append-only file fails the same way.
func checkAttrs(dir, path string) error {
	if err := attrError(dir, true, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC); err != nil {
		return err
	}
	if st, err := os.Lstat(path); err == nil && st.Mode().IsRegular() {
		// O_NONBLOCK and O_NOFOLLOW: what is there may have changed
		// since the Lstat, and a named pipe must not hold the write.
		return attrError(path, false, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	}
	return nil
}

// attrError opens path with flags and reads its inode flags.
func attrError(path string, folder bool, flags int) error {
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return nil
	}
	switch {
	case fl&fsImmutableFL != 0:
		return &AttrError{Path: path, Folder: folder, Attr: "immutable", Flag: "i"}
	case fl&fsAppendFL != 0:
		return &AttrError{Path: path, Folder: folder, Attr: "append-only", Flag: "a"}
	}
	return nil
}
