package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/model/dataset"
	"github.com/inspectd/inspectd/model/padim"
)

// PreviousModelPath is where the model file in force before the last
// install, threshold change or rollback is kept.
func PreviousModelPath(modelPath string) string { return modelPath + ".prev" }

// installModelFile makes the complete file at src the model at dst and
// keeps the model in force as PreviousModelPath(dst): inForce, the file
// saveInForce wrote. Each step is one atomic rename, so a process killed
// at any point leaves a complete model at dst: the old one or the new one,
// never a mix or nothing. inForce is renamed over .prev only once the new
// model is in place: .prev was overwritten first, so that an install that
// then failed (dst could not be replaced) lost the rollback point, the
// model in force kept as .prev as well. Where .prev cannot be replaced
// (immutable), what dst held is put back (held, a hard link of it made
// first), or dst removed where it held nothing: the new model stayed at
// dst, which a restart loaded though the command was answered failed. A
// failed install leaves dst and .prev as they were, and no temporary file.
//
// The new model and the kept one take the permissions of the model file at
// dst (keepModelMode), as a configuration push keeps its file's: both were
// written 0644 by the save, so that an operator's 0444 or 0640 model file
// became 0644 at the first threshold command or refit.
func installModelFile(src, dst, inForce string) error {
	if err := keepModelMode(dst, src, inForce); err != nil {
		removeTemp(inForce)
		return err
	}
	if _, ok := modelFileMode(dst); !ok {
		// A new model file is Save's own 0644, whatever src was saved
		// with (a refit's, 0600 until it knows the mode it takes).
		if err := os.Chmod(src, 0o644); err != nil {
			removeTemp(inForce)
			return fmt.Errorf("install model %s: %w", dst, err)
		}
	}
	held, was, err := holdModelPath(dst)
	if err != nil {
		removeTemp(inForce)
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		removeTemp(inForce)
		removeTemp(held)
		return fmt.Errorf("install model %s: %w", dst, err)
	}
	if err := os.Rename(inForce, PreviousModelPath(dst)); err != nil {
		err = fmt.Errorf("keep the replaced model as %s: %w", PreviousModelPath(dst), err)
		var perr error
		switch {
		case held != "":
			perr = os.Rename(held, dst)
		case !was:
			perr = os.Remove(dst)
		default:
			// No hold could be made: the model in force, which dst
			// held unless it was changed since the start.
			perr = os.Rename(inForce, dst)
		}
		removeTemp(inForce)
		return putBack(err, perr, held, dst)
	}
	removeTemp(held)
	return syncDir(filepath.Dir(dst))
}

// modelFileMode is the permissions of the model file at dst (a link to it
// followed), and false where dst holds no regular file (nothing, a
// dangling link): the files written there then keep the save's own.
func modelFileMode(dst string) (fs.FileMode, bool) {
	st, err := os.Stat(dst)
	if err != nil || !st.Mode().IsRegular() {
		return 0, false
	}
	return st.Mode().Perm(), true
}

// modelFileOwner is the owner and group of the model file at dst (a link
// to it followed), and false where dst holds no regular file.
func modelFileOwner(dst string) (uid, gid int, ok bool) {
	st, err := os.Stat(dst)
	if err != nil || !st.Mode().IsRegular() {
		return 0, 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(sys.Uid), int(sys.Gid), true
}

// keepModelOwner gives f, a file this process wrote that takes the place
// of the model file at dst (or keeps its bytes), dst's owner and group,
// where the process may: as root, both; otherwise the group alone, when
// it is one of the process's groups (the owner stays the process's). A
// file the save wrote was the process's own, so that a 0640 root:staff
// model file became root:root at a fit over it or a threshold command,
// unreadable by the group it was shared with. A chown refused to a user
// that is not root is no error: the file keeps the mode alone. Nothing
// where dst holds no file.
func keepModelOwner(dst, f string) error {
	uid, gid, ok := modelFileOwner(dst)
	if !ok {
		return nil
	}
	st, err := os.Lstat(f)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || (int(sys.Uid) == uid && int(sys.Gid) == gid) {
		return nil
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(f, uid, gid); err != nil {
			return fmt.Errorf("give the model file %s's owner and group (%d:%d) to %s: %w", dst, uid, gid, f, err)
		}
		return nil
	}
	if int(sys.Gid) != gid && inGroup(gid) {
		_ = os.Lchown(f, -1, gid) // refused (a file system without groups): the mode alone is kept
	}
	return nil
}

// inGroup reports whether gid is the process's group or one of its
// supplementary groups: a user that is not root may give its files those.
func inGroup(gid int) bool {
	if os.Getegid() == gid {
		return true
	}
	groups, err := os.Getgroups()
	if err != nil {
		return false
	}
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

// SaveModelFile saves det at path as `inspectd fit` writes its model:
// atomically, a file that path holds replaced with the permissions of that
// file (modelFileMode), and its owner and group where they may be given
// (keepModelOwner), as the threshold, refit and rollback commands keep
// them (keepModelMode): Save alone writes 0644, so that an operator's 0444
// or 0640 model file became 0644 at a fit over it. The save's temporary
// file takes them while it is empty (atomicfile.WriteWith): the model was
// saved whole to a file of 0644 beside path and changed only then, so that
// a model meant to be 0600 was readable by all for a moment, and a fit
// killed in between left that file, which nothing removed. A new file is
// Save's own.
func SaveModelFile(det *model.Detector, path string) error {
	return det.SaveWith(path, keptModelOptions(path))
}

// keptModelOptions is how a file that takes the place of the model file
// at dst, or keeps the bytes it replaces (.prev), is saved
// (model.Detector.SaveWith): with dst's permissions (modelFileMode), and
// its owner and group where they may be given (keepModelOwner), from the
// moment its temporary file is created, before a byte is written to it;
// Save's own 0644 where dst holds no regular file. The threshold command
// and a rollback saved their files 0644 and changed them only once whole
// (keepModelMode), so that a model meant to be 0600 was readable by all
// for a moment.
func keptModelOptions(dst string) atomicfile.Options {
	perm, ok := modelFileMode(dst)
	if !ok {
		return atomicfile.Options{Perm: 0o644}
	}
	return atomicfile.Options{Perm: perm, Prepare: func(f *os.File) error {
		return keepModelOwner(dst, f.Name())
	}}
}

// removeStaleModelFiles removes the temporary files beside the model file
// at path that a kill or a power cut left (atomicfile.RemoveStale): a
// threshold command's, a refit's install's or a rollback's (tempName), and
// a save's, tens of megabytes each, which nothing else removed where no
// model was saved at path again.
//
// A copy of a replaced model (tempName's "prev", "held") is not removed: a
// kill between an install's renames leaves the model that path held
// before in it alone (a rollback's .prev was to be it). Each is named
// in a warning, with what to do; what a save to it cut short left is
// removed as a save's.
func removeStaleModelFiles(path string, log *slog.Logger) {
	n := atomicfile.RemoveStale(path)
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+keptMark
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		k := filepath.Join(dir, name)
		st, err := os.Lstat(k)
		switch {
		case err != nil || !st.Mode().IsRegular():
		case strings.HasPrefix(name, "."+prefix) && atomicfile.IsTemp(name):
			// A save into a copy ("..NAME.kept-prev-….tmp-…"), cut
			// short: the copy was never made, and this is no model.
			if time.Since(st.ModTime()) > atomicfile.StaleAfter && os.Remove(k) == nil {
				n++
			}
		case strings.HasPrefix(name, prefix) && !atomicfile.IsTemp(name):
			log.Warn("an interrupted model install left a copy of the model it replaced: to run it, move it to the prev file and send rollback with target model; remove it otherwise",
				"model", path, "file", k, "bytes", st.Size(), "modified", st.ModTime().UTC().Format(time.RFC3339), "prev", PreviousModelPath(path))
		}
	}
	if n > 0 {
		log.Info("removed temporary model files an interrupted save left", "model", path, "files", n)
	}
}

// keepModelMode gives files, the new model file and the kept model in
// force (temporary files of this command's, "" is none), the permissions
// of the model file at dst (modelFileMode), which they replace or keep:
// the new one takes dst's place, and the model in force, which .prev
// keeps, is the one dst held, as a configuration's .prev takes the mode
// of the file whose bytes it keeps; and its owner and group where the
// process may give them (keepModelOwner). Nothing where dst holds no
// file.
func keepModelMode(dst string, files ...string) error {
	perm, ok := modelFileMode(dst)
	if !ok {
		return nil
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		// The owner first: a chown may clear mode bits.
		if err := keepModelOwner(dst, f); err != nil {
			return err
		}
		if st, err := os.Lstat(f); err == nil && st.Mode().Perm() == perm {
			continue // saved so (keptModelOptions): changed, it was readable as it was for a moment
		}
		if err := os.Chmod(f, perm); err != nil {
			return fmt.Errorf("give the model file %s's permissions (%v) to %s: %w", dst, perm, f, err)
		}
	}
	return nil
}

// holdModelPath makes a hard link of what is at dst (a file, or a link,
// not followed) beside it, for installModelFile to put back should .prev
// not be replaced, and returns its path, and whether dst holds anything.
// No byte is copied. Where the file system makes no hard link of it, a
// link is made anew; a file is not held ("", true): the model in force is
// put back in its place.
func holdModelPath(dst string) (held string, was bool, err error) {
	st, err := os.Lstat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("model %s: %w", dst, err)
	}
	held = tempName(dst, "held")
	err = os.Link(dst, held)
	if err != nil && st.Mode()&os.ModeSymlink != 0 {
		var to string
		if to, err = os.Readlink(dst); err == nil {
			err = os.Symlink(to, held)
		}
	}
	if err != nil {
		removeTemp(held)
		return "", true, nil
	}
	return held, true, nil
}

// putBack is err, an install's failure after the new model was renamed
// over dst, with what became of the put-back (perr: the rename of held,
// or of the model in force, over dst, or the removal of dst) where it
// failed too (*putBackError).
func putBack(err, perr error, held, dst string) error {
	if perr == nil {
		return err
	}
	return &putBackError{err: err, perr: perr, held: held, dst: dst}
}

// putBackError is an install's failure after which what dst held could
// not be put back: the new model stays there.
type putBackError struct {
	err, perr error
	held, dst string
}

func (e *putBackError) Error() string { return e.err.Error() + "; " + e.what() }
func (e *putBackError) Unwrap() error { return e.err }

// what says that the new model stays at dst, and why.
func (e *putBackError) what() string {
	if e.held != "" {
		return fmt.Sprintf("the new model stays at %s, which could not be put back as it was (it is %s): %v", e.dst, e.held, e.perr)
	}
	return fmt.Sprintf("the new model stays at %s, which could not be put back as it was: %v", e.dst, e.perr)
}

// saveInForce saves the model in force (save writes it to the path it is
// given) to a temporary file beside dst, and returns its path: the file to
// be kept as .prev, so that a rollback brings back the model the command
// replaced. It is saved from memory, not a copy or a hard link of what is
// at dst, which need not be that model: a link at dst to its own .prev
// was hard-linked, so that .prev became a link to itself and the previous
// model was lost; a link to another model file kept that one, which the
// next rollback loaded; a hard link of .prev at dst left the kept file
// behind (a rename of one link of a file over another does nothing); a
// file moved aside or a dangling link kept nothing, .prev an older file.
//
// It is saved as a file that keeps dst's bytes is (keptModelOptions).
func saveInForce(dst string, save func(path string, opts atomicfile.Options) error) (string, error) {
	tmp := tempName(dst, "prev")
	if err := save(tmp, keptModelOptions(dst)); err != nil {
		removeTemp(tmp)
		return "", fmt.Errorf("keep the model in force as %s: %w", PreviousModelPath(dst), err)
	}
	return tmp, nil
}

// modelFilesError words err, a threshold command's, a refit's install's
// or a model rollback's failure to write cfg's model folder for want of
// permission (or a read-only file system), as a *FieldError naming the
// key that sets the path (modelKey), the folder or the file, why, and that
// the model in force stays; other errors come back as they are. They
// answered the OS's words, naming a temporary file ("save model
// …/.model.safetensors.new-…: open …/..model.safetensors.new-…tmp-…:
// permission denied").
func modelFilesError(cfg *config.Config, err error) error {
	if err == nil || !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		return err
	}
	path := cfg.ModelPath()
	dir, prev := filepath.Dir(path), PreviousModelPath(path)
	why := err.Error()
	if errno := syscall.Errno(0); errors.As(err, &errno) {
		why = errno.Error() // the paths, temporary files among them, are said below
	}
	// EPERM, unlike EACCES, is no matter of modes or owners (root meets
	// it too): "make it writable for the user inspectd runs as" was wrong.
	eperm := errors.Is(err, syscall.EPERM)
	var msg string
	var le *os.LinkError
	switch {
	case errors.As(err, &le) && le.Op == "rename" && le.Old == prev:
		// A rollback's move of .prev over model.path: either may be
		// the one that cannot be replaced.
		mend := "make both replaceable for the user inspectd runs as"
		if eperm {
			mend = "look for an immutable or append-only attribute on either (lsattr shows it, chattr -i or -a clears it), or another user's file in a sticky folder"
		}
		msg = fmt.Sprintf("%s cannot be moved over %s (%s); the model in force stays, and so do both files: %s", prev, path, why, mend)
	case errors.As(err, &le) && le.Op == "rename" && le.New == prev:
		// An install's keep of the model in force: not the folder's
		// fault, which took the temporary files.
		mend := "make it replaceable for the user inspectd runs as, or "
		if eperm {
			mend = notPermitted
		}
		msg = fmt.Sprintf("%s cannot be replaced (%s); the model in force stays, and so do %s and %s: %smove it aside (inspectd keeps the model it replaces there, for a rollback)", prev, why, path, prev, mend)
	case errors.As(err, &le) && le.Op == "rename" && le.New == path:
		mend := "make the file and folder " + dir + " writable for the user inspectd runs as, or "
		if eperm {
			mend = notPermitted
		}
		msg = fmt.Sprintf("%s cannot be replaced (%s); the model in force stays, and so does %s: %spush model.path naming a file in a folder it can write", path, why, PreviousModelPath(path), mend)
	default:
		mend := "make the folder writable for the user inspectd runs as, or "
		switch {
		case errors.Is(err, syscall.EROFS):
			mend = "" // no chown or chmod mends a read-only file system
		case eperm:
			mend = notPermitted
		}
		// atomicfile read the folder's attribute: say which, and what
		// clears it, rather than what to look for.
		if ae := (*atomicfile.AttrError)(nil); errors.As(err, &ae) && ae.Folder {
			mend = fmt.Sprintf("it is %s (chattr +%s; chattr -%s %s clears it), or ", ae.Attr, ae.Flag, ae.Flag, ae.Path)
		}
		msg = fmt.Sprintf("folder %s cannot be written (%s), where the model file %s and the previous model %s are written; the model in force stays: %spush model.path naming a file in a folder it can write", dir, why, path, PreviousModelPath(path), mend)
	}
	if pb := (*putBackError)(nil); errors.As(err, &pb) {
		msg += "; but " + pb.what()
	}
	return &FieldError{Field: modelKey(cfg), Err: errors.New(msg)}
}

// notPermitted is modelFilesError's advice for EPERM: an immutable or
// append-only attribute (or, for a user other than root, a sticky folder
// and another owner), which no chmod mends.
const notPermitted = "look for an immutable or append-only attribute (lsattr shows it, chattr -i or -a clears it) or another user's file in a sticky folder, or "

// removeTemp removes the temporary file tmp ("" is none).
func removeTemp(tmp string) {
	if tmp != "" {
		_ = os.Remove(tmp)
	}
}

// modelTargetError says why a threshold command, a refit's install or a
// model rollback cannot write a model file over cfg's model path, as a
// *FieldError naming the key that sets the path (modelKey), or nil: what is
// there is a folder, a device, a named pipe or a socket
// (model.CheckSaveTarget, the check 'inspectd fit --out' makes). Each
// installs its file with a rename over the path, which put a regular file
// in place of a pipe or a device (/dev/null as root), the replaced one
// kept as the .prev a rollback would load, and failed on a folder only
// after the new model was written beside it, in the copy's words
// ("copy_file_range: is a directory"), leaving that file there. A link is
// not followed by the rename, which replaces it; the model it led to was
// read to be kept as .prev: a link to a named pipe held the command in the
// pipe's open (and the command queue behind it) until a writer came, then
// kept an empty .prev, the previous model lost; a link to a folder failed
// in the copy's words. The model in force is kept now (saveInForce), yet a
// link whose target is there and is not a regular file is still refused
// (linkTargetError): it is no model file, as 'inspectd fit --out' says.
func modelTargetError(cfg *config.Config) error {
	if err := linkTargetError(cfg); err != nil {
		return err
	}
	return targetError(cfg, cfg.ModelPath(), "move it aside (a threshold command then writes the model in force there), or push model.path naming a model file")
}

// installTargetError is modelTargetError, and its check of the model
// path's .prev (PreviousModelPath), for a threshold command and a refit's
// install (installModelFile): the model it replaces is renamed over
// .prev, which failed on a folder in the rename's words after the new
// model was written, and put a regular file in place of a named pipe or a
// device, which are not inspectd's. A rollback loads .prev, and
// refuses what is not a model file there as it loads it.
func installTargetError(cfg *config.Config) error {
	if err := modelTargetError(cfg); err != nil {
		return err
	}
	return targetError(cfg, PreviousModelPath(cfg.ModelPath()), "move it aside (inspectd keeps the model it replaces there, for a rollback)")
}

// targetError is the refusal of what is at path, cfg's model path or its
// .prev, when a model file cannot be renamed over it, ending with what
// mends it, or nil. It says that the model in force stays.
func targetError(cfg *config.Config, path, mend string) error {
	if model.CheckSaveTarget(path) == nil {
		return nil
	}
	st, err := os.Lstat(path)
	if err != nil {
		return nil // gone since: the rename creates the file
	}
	what, why := "a folder", "a model file cannot be written in its place"
	switch {
	case st.Mode()&os.ModeSymlink != 0:
		// Refused for what it leads to (model.ReplaceRefusal): a link at
		// .prev to a named pipe was said to be "not a regular file",
		// naming neither the link nor the pipe.
		what, why = linkedKind(path), "writing the model there would put a regular file in its place"
	case !st.IsDir():
		what, why = model.FileKind(st.Mode()), "writing the model there would put a regular file in its place"
	}
	return &FieldError{Field: modelKey(cfg), Err: fmt.Errorf("%s is %s, not a model file: %s; the model in force stays: %s", path, what, why, mend)}
}

// linkedKind words what the link at path leads to, as a refusal of it
// says it after "is": "a link to /x/thepipe, a named pipe", as
// linkTargetError says it of a link at model.path, or
// model.ReplaceRefusal's words ("a link to /proc/self/fd/1, a process's
// open file").
func linkedKind(path string) string {
	to, err := filepath.EvalSymlinks(path) // where a chain of links ends: "a link to /x/hop, a named pipe" called a link a pipe
	st, serr := os.Stat(path)
	if err != nil || serr != nil || st.Mode().IsRegular() || st.IsDir() {
		if why := model.ReplaceRefusal(path); why != "" {
			return strings.TrimPrefix(why, "is ")
		}
		return "a link"
	}
	return "a link to " + to + ", " + model.FileKind(st.Mode())
}

// linkTargetError is modelTargetError's refusal of a link at cfg's model
// path that leads to what is there and is not a regular file, or round in
// a loop (naming its links, dataset.BrokenLink), or nil (no link, a
// dangling one, one that leads to a regular file).
func linkTargetError(cfg *config.Config) error {
	path := cfg.ModelPath()
	if st, err := os.Lstat(path); err != nil || st.Mode()&os.ModeSymlink == 0 {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		// A link that leads round in a loop answered the raw "stat …: too
		// many levels of symbolic links", and a refit with one was
		// accepted, fitted, and failed only at its install.
		if ll := (*dataset.LinkLoopError)(nil); errors.As(dataset.BrokenLink(path), &ll) {
			return &FieldError{Field: modelKey(cfg), Err: fmt.Errorf("%w, not a model file; the model in force stays: move the link aside (a threshold command then writes the model in force there), or push model.path naming a model file", ll)}
		}
		return nil // dangling: the model in force is saved from memory
	}
	if st.Mode().IsRegular() {
		return nil
	}
	to, err := filepath.EvalSymlinks(path) // where a chain of links ends: "a link to /x/hop, a named pipe" called a link a pipe
	if err != nil {
		return nil
	}
	what := "a folder"
	if !st.IsDir() {
		what = model.FileKind(st.Mode())
	}
	return &FieldError{Field: modelKey(cfg), Err: fmt.Errorf("%s is a link to %s, %s, not a model file; the model in force stays: move the link aside (a threshold command then writes the model in force there), or push model.path naming a model file", path, to, what)}
}

// noPreviousModelError is a model rollback's refusal when there is no
// previous model file at prev (PreviousModelPath), or only a link to what
// is not there: it answered the raw "stat ….prev: no such file or
// directory", which said neither that nothing changed nor what keeps a
// previous model. A link at prev that leads round in a loop is refused
// too, naming its links (dataset.BrokenLink): it answered the raw "stat
// ….prev: too many levels of symbolic links". nil when prev leads to a
// file (what it is, Load says).
func noPreviousModelError(prev string) error {
	_, err := os.Stat(prev)
	if ll := (*dataset.LinkLoopError)(nil); err != nil && errors.As(dataset.BrokenLink(prev), &ll) {
		return fmt.Errorf("previous model: %w, not a model file; the model in force stays: move the link aside, or copy the model file to roll back to there", ll)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	what := "there is no file at " + prev
	if to, err := os.Readlink(prev); err == nil {
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(prev), to)
		}
		what = prev + " is a link to " + to + ", which is not there"
	}
	return fmt.Errorf("no previous model to roll back to: %s; the model in force stays (a refit or a threshold command keeps the model it replaces as %s, and a rollback the one it replaces; to run a model file of yours, copy it there first)", what, prev)
}

// swapWithPrevious makes PreviousModelPath(dst) the model at dst and the
// model in force, saved to inForce (saveInForce), the previous one (a
// rollback; a second one goes forward again), again one atomic rename at
// a time. Both take the permissions of the model file at dst, and its
// owner and group where they may be given (keepModelMode), as a configuration's rollback keeps its file's and
// gives its .prev the mode of the file whose bytes it keeps: the saved
// model in force came to .prev 0644, and .prev's own mode to dst.
func swapWithPrevious(dst, inForce string) error {
	prev := PreviousModelPath(dst)
	if _, err := os.Stat(prev); err != nil {
		removeTemp(inForce)
		return fmt.Errorf("no previous model to roll back to (%s): %w", prev, err)
	}
	if err := keepModelMode(dst, inForce); err != nil {
		removeTemp(inForce)
		return err
	}
	// .prev's bytes take dst's place, with dst's permissions: changed in
	// place before the rename, put back if it fails. A .prev that is not
	// a regular file (a link: its target is not inspectd's) is left as it
	// is, and so is one whose mode cannot be changed (immutable, which the
	// rename then refuses in its own words).
	restore := func() {}
	if perm, ok := modelFileMode(dst); ok {
		if st, err := os.Lstat(prev); err == nil && st.Mode().IsRegular() {
			// Its owner and group too, where they may be given
			// (keepModelOwner), first: a chown may clear mode bits.
			// One refused is left as it is, as its mode is.
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && keepModelOwner(dst, prev) == nil {
				restore = func() { _ = os.Lchown(prev, int(sys.Uid), int(sys.Gid)) }
			}
			if st.Mode().Perm() != perm && os.Chmod(prev, perm) == nil {
				owner := restore
				restore = func() {
					owner()
					_ = os.Chmod(prev, st.Mode().Perm())
				}
			}
		}
	}
	if err := os.Rename(prev, dst); err != nil {
		restore() // .prev stays as it was
		removeTemp(inForce)
		return fmt.Errorf("roll back model %s: %w", dst, err)
	}
	if err := os.Rename(inForce, prev); err != nil {
		// Not removed: the model replaced is in no other file now.
		return fmt.Errorf("keep the replaced model as %s (it is at %s): %w", prev, inForce, err)
	}
	return syncDir(filepath.Dir(dst))
}

// tempName is a new name for a temporary file beside path, kind saying
// what it holds. A new model ("new") is atomicfile.TempPath's, which
// removeStaleModelFiles removes once stale ("."+name+".new-…" was not,
// nor what a save to it cut short left): a command cut short there
// failed, and the model in force is whole at path. The model path held
// before ("prev", "held") is keptName's, which nothing removes: an install
// cut short between its renames leaves the replaced model in that file
// alone.
func tempName(path, kind string) string {
	if kind == "new" {
		return atomicfile.TempPath(path, kind)
	}
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+keptMark+kind+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
}

// keptMark is in the name of a temporary copy of the model a command
// replaces (tempName's "prev" and "held").
const keptMark = ".kept-"

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// modelFolderError says why the folder of cfg's model file cannot hold it,
// as a *FieldError naming the key (model.path, or state_dir) and the
// folder, or nil: a folder that is a file or lies under one (the file can
// be neither loaded nor saved there, whatever the source), or, where the
// file is missing and a model would be fitted on synthetic frames and
// saved in its place, a folder that does not exist or cannot be written
// (the save failed only after the whole fit, seconds to minutes). A start,
// a reload, a push, its dry run and config check all refuse with it, so
// that each says the same. The folder is not created (nor does a start
// create it), except state_dir, which start and Apply create before the
// model is opened and Preflight checks on its own: it is left out here.
func modelFolderError(cfg *config.Config) error {
	path := cfg.ModelPath()
	if ll := LinkLoopAt(path); ll != nil {
		// The folder is fine: "folder … cannot be reached (… too many
		// levels of symbolic links)" blamed it for a link that loops.
		return &FieldError{Field: modelKey(cfg), Err: linkLoopRefusal(path, ll, "mend the link, or set model.path to a model file elsewhere")}
	}
	dir := filepath.Dir(path)
	if filepath.Clean(dir) == filepath.Clean(cfg.StateDir) {
		return nil
	}
	why := ""
	switch _, err := os.Stat(path); {
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		// Stat fails on the way to the file, not on the file: a file
		// where a folder should be (ENOTDIR), a folder that cannot be
		// searched.
		why = fmt.Sprintf("folder %s cannot be reached (%v); set model.path to a file in a folder inspectd can read", dir, err)
		if file := fileInPath(dir); file == dir {
			why = fmt.Sprintf("folder %s is a file, not a folder; set model.path to a file in a folder, or move %s aside", dir, file)
		} else if file != "" {
			why = fmt.Sprintf("folder %s is not a folder: %s is a file; set model.path to a file in a folder, or move %s aside", dir, file, file)
		}
		return &FieldError{Field: modelKey(cfg), Err: fmt.Errorf("model file %s cannot be there: %s", path, why)}
	case cfg.Capture.Source != config.SourceSynthetic:
		return nil // nothing is fitted: noModelError says the file is missing
	}
	mend := ""
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		why = "folder " + dir + " does not exist"
		mend = "create the folder for the user that runs inspectd, or name a file in a folder it can write"
	} else if err := tryWrite(dir); err != nil {
		// The folder is there: "create it" is no advice (unwritable).
		var m string
		why, m = unwritable(dir, err)
		mend = mends(m, "name a file in a folder inspectd can write")
	}
	if why == "" {
		return nil
	}
	return &FieldError{Field: modelKey(cfg), Err: fmt.Errorf("no model file at %s, and the model inspectd would fit on synthetic frames in its place could not be saved: %s; %s", path, why, mend)}
}

// LinkLoopAt names the link that keeps path from being reached when the
// system says only "too many levels of symbolic links" of it: path itself
// a link that leads round in a loop (or to a target through a folder that
// does, dataset.BrokenLink), or else the nearest folder of path's that is
// such a link. nil when path can be looked at, or fails for another
// reason.
func LinkLoopAt(path string) *dataset.LinkLoopError {
	if _, err := os.Stat(path); !errors.Is(err, syscall.ELOOP) {
		return nil
	}
	for p := path; ; p = filepath.Dir(p) {
		if ll := (*dataset.LinkLoopError)(nil); errors.As(dataset.BrokenLink(p), &ll) {
			return ll
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// linkLoopRefusal words LinkLoopAt's ll for the model file at path: the
// link it is, or the folder on its way that loops, then mend ("": none).
func linkLoopRefusal(path string, ll *dataset.LinkLoopError, mend string) error {
	if mend != "" {
		mend = ": " + mend
	}
	if ll.Path != path {
		return fmt.Errorf("model file %s cannot be reached: %w%s", path, ll, mend)
	}
	return fmt.Errorf("model file: %w, not a model file%s", ll, mend)
}

// ModelLinkLoopError is LinkLoopAt's refusal of the model file at path
// for a command given it (model info, bench --model), or nil: the raw
// "stat …: too many levels of symbolic links" named no link.
func ModelLinkLoopError(path string) error {
	if ll := LinkLoopAt(path); ll != nil {
		return linkLoopRefusal(path, ll, "")
	}
	return nil
}

// fileInPath is the nearest of dir and the folders above it that is there,
// when it is not a folder ("" otherwise).
func fileInPath(dir string) string {
	for p := dir; ; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil {
			if st.IsDir() {
				return ""
			}
			return p
		}
		if p == filepath.Dir(p) {
			return ""
		}
	}
}

// modelFileError says why the file at cfg's model path, which is there, is
// not a model file a start, a reload or a push can load, as a *FieldError
// naming the key that sets the path (modelKey) and what it expects: a
// folder, a device or other file that is not a regular one, or (header
// true) a file whose header does not read as a model file inspectd wrote
// or whose checksum fails. nil when the file is missing (noModelError and
// modelFolderError say that) or reads as a model. The header is read with
// padim.Load, which checks the format and the checksum without building a
// detector (no backbone, no scorer), so that a dry run can check what the
// push would load without loading it.
func modelFileError(cfg *config.Config, header bool) error {
	return modelFileErrorUnder(cfg, header, 0)
}

// modelFileErrorUnder is modelFileError that also refuses (header true) a
// model file whose scoring state exceeds budget (model.Options'
// MemoryBudget; 0: no bound) as the load refuses it: under
// model.memory_budget, in the load's words (budgetError), a file that is
// no model being refused as such first, as openDetector does. The sizes
// come from the header (padim.Load, model.CheckStateBudget): no detector
// is built. A dry run checks with it what the push's load would refuse.
func modelFileErrorUnder(cfg *config.Config, header bool, budget int64) error {
	path := cfg.ModelPath()
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	key := modelKey(cfg)
	// The state folder's file is named by state_dir: its remedy is the
	// file, not the key.
	remedy := "set model.path to a model file inspectd fitted"
	if key == "state_dir" {
		remedy = "move it aside, or set model.path to a model file inspectd fitted"
	}
	switch {
	case st.IsDir() && key == "model.path":
		// config check's words, which name a file to give instead.
		return &FieldError{Field: key, Err: fmt.Errorf("%s is a folder: set model.path to a model file in it, such as %s", path, filepath.Join(path, "model.safetensors"))}
	case st.IsDir():
		return &FieldError{Field: key, Err: fmt.Errorf("%s is a folder, where state_dir keeps its model file: %s", path, remedy)}
	case !st.Mode().IsRegular():
		return &FieldError{Field: key, Err: fmt.Errorf("%s is %s, not a model file: %s", path, model.FileKind(st.Mode()), remedy)}
	case !header:
		return nil
	}
	pm, err := padim.Load(path, padim.LoadOptions{MaxStateBytes: budget})
	if errors.Is(err, padim.ErrOverBudget) {
		// Refused from the header, before the checksum was read: the load
		// refuses a file that is no model as such first.
		if ferr := modelFileErrorUnder(cfg, true, 0); ferr != nil {
			return ferr
		}
		return budgetError(cfg.Model, err)
	}
	if err != nil {
		return notLoadableError(cfg, err)
	}
	defer pm.Close()
	return budgetError(cfg.Model, model.CheckStateBudget(path, pm, budget))
}

// notLoadableError is the refusal of cfg's model file, which padim.Load
// refused with err (a file that does not read as a model, one whose
// checksum fails), as a *FieldError naming the key that sets the path
// (modelKey): a dry run (modelFileErrorUnder) and the push's load
// (loadRefusal) word it alike.
func notLoadableError(cfg *config.Config, err error) error {
	path, key := cfg.ModelPath(), modelKey(cfg)
	// The state folder's file is named by state_dir: its remedy is the
	// file, not the key.
	remedy := "set model.path to a model file inspectd fitted"
	if key == "state_dir" {
		remedy = "move it aside, or set model.path to a model file inspectd fitted"
	}
	if le := (*padim.LoadError)(nil); errors.As(err, &le) {
		err = le.Err // its "load model PATH:" says the path again
	}
	return &FieldError{Field: key, Err: fmt.Errorf("%s is not a model file inspectd can load (%v): %s, or fit one there with 'inspectd fit --data DIR --out %s'", path, err, remedy, path)}
}

// loadRefusal words a start's, a reload's or a push's refused load of
// cfg's model file (model.Load's err, not nil) from the load's own error:
// a file that does not read as a model or fails its checksum in
// modelFileError's words and key, without reading it again (it was read a
// second time, all of it, only to word the refusal); what was put in the
// file's place after the load's Stat by what it is; a file over
// model.memory_budget under that key (budgetError), unless it is no model
// either, which only a second read with no budget tells (the load judged
// the budget from the header, before the checksum), as a dry run reads
// it. A refusal of a sound file (the detector could not be built from it)
// comes back as it is.
func loadRefusal(cfg *config.Config, err error) error {
	var le *padim.LoadError
	var nm *padim.NotModelFileError
	switch {
	case errors.As(err, &nm):
		if ferr := modelFileError(cfg, false); ferr != nil {
			return ferr
		}
	case !errors.As(err, &le), errors.Is(err, fs.ErrNotExist):
		// Built from a sound file, or gone since its Stat: as it is.
	case errors.Is(err, padim.ErrOverBudget):
		if ferr := modelFileError(cfg, true); ferr != nil {
			return ferr
		}
	default:
		return notLoadableError(cfg, err)
	}
	return budgetError(cfg.Model, err)
}

// StateDirError says why dir cannot be inspectd's state folder on this
// box, as a *FieldError naming state_dir, or nil: it is a plain file or
// lies under one, it cannot be written, or it is missing and the nearest
// folder above it cannot be written (a start and a change of state_dir
// create it). It creates and changes nothing, so that a dry run says what
// the push would be refused for without making the folder.
func StateDirError(dir string) error {
	fail := func(format string, a ...any) error {
		return &FieldError{Field: "state_dir", Err: fmt.Errorf(format, a...)}
	}
	switch st, err := os.Stat(dir); {
	case err == nil && !st.IsDir():
		return fail("%s is a file, not a folder: set state_dir to a folder, or move %s aside", dir, dir)
	case err == nil:
		if err := tryWrite(dir); err != nil {
			why, mend := unwritable(dir, err)
			return fail("%s: %s; %s", dir, why, mends(mend, "set state_dir to another folder"))
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		if file := fileInPath(dir); file != "" {
			return fail("%s cannot be created: %s is a file, not a folder; set state_dir to a folder, or move %s aside", dir, file, file)
		}
		return fail("%s cannot be reached (%v): set state_dir to a folder inspectd can use", dir, err)
	}
	parent := filepath.Dir(dir)
	for {
		if _, err := os.Stat(parent); err == nil || parent == filepath.Dir(parent) {
			break
		}
		parent = filepath.Dir(parent)
	}
	// Named by its whole path: a relative state_dir in a working folder
	// that takes no folder was "folder . is append-only".
	if a, err := filepath.Abs(parent); err == nil {
		parent = a
	}
	if err := tryWrite(parent); err != nil {
		why, mend := unwritable(parent, err)
		return fail("%s does not exist and cannot be created: %s; %s", dir, why, mends(mend, "set state_dir to another folder"))
	}
	return nil
}

// unwritable says why dir, a folder that is there, refused a new file
// (err, tryWrite's), and what mends the folder itself ("" when nothing
// does: another folder is the remedy), in words that fit the case: "create
// the folder" is no advice for one that is there, nor is "no such file or
// directory" a reason for one that is (a kernel file system, /proc).
func unwritable(dir string, err error) (why, mend string) {
	return unwritableAs(dir, err, os.Geteuid() == 0)
}

// unwritableAs is unwritable for a process that runs as root or not: root
// denied a write is no matter of ownership or mode bits (a kernel file
// system such as /sys, or a read-only one), so chown or chmod is no advice
// there, and another folder is the only remedy. A folder that is
// immutable or append-only (chattr +i, +a), which refuses root and all
// with "operation not permitted", is named so, with what clears it, as
// atomicfile.CheckFolder words it for a file written there: a folder
// made in an immutable one (fit --out D/new/m.safetensors) was said to be
// on "a kernel or read-only file system".
func unwritableAs(dir string, err error, root bool) (why, mend string) {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the test file's random name is no help
	}
	var ae *atomicfile.AttrError
	if errors.Is(err, syscall.EPERM) && errors.As(atomicfile.CheckFolder(dir), &ae) {
		what := "nothing can be made in it"
		if ae.Flag == "a" {
			what = "what is made in it can be neither renamed nor removed"
		}
		// EPERM, not err: tryWrite's own *AttrError would say it all twice.
		return fmt.Sprintf("folder %s is %s (chattr +%s): %s: %v", dir, ae.Attr, ae.Flag, what, syscall.EPERM),
			fmt.Sprintf("chattr -%s %s clears it", ae.Flag, dir)
	}
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Sprintf("folder %s cannot be written: it is on a read-only file system", dir), ""
	case errors.Is(err, fs.ErrPermission) && root:
		return fmt.Sprintf("folder %s cannot be written, not even by root, which inspectd runs as (%v): it is a kernel or read-only file system", dir, err), ""
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("folder %s cannot be written by the user inspectd runs as (%v)", dir, err), "make it writable for that user (chown, chmod)"
	}
	return fmt.Sprintf("folder %s cannot be written: it takes no new files (creating one fails: %v)", dir, err), ""
}

// mends joins what mends a folder, when anything does, to the other
// remedy.
func mends(mend, other string) string {
	if mend == "" {
		return other
	}
	return mend + ", or " + other
}
