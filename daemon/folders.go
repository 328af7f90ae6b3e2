package daemon

// FolderUnwritable says why dir, a folder that is there, refused a new file
// (err, the error of creating one), and what mends the folder itself (""
// when nothing does: another folder is the remedy), in the words config
// check and the daemon use, so that fit and eval say the same of the same
// folder: a read-only file system, a user without permission, or a kernel
// file system such as /proc that takes no new files (whose "no such file
// or directory" is no reason for a folder that is there).
func FolderUnwritable(dir string, err error) (why, mend string) {
	return unwritable(dir, err)
}
