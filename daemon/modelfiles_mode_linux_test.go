package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// dirEvent is one inotify event of a folder's: what happened, to which
// name, and the cookie that pairs a rename's two halves.
type dirEvent struct {
	mask   uint32
	cookie uint32
	name   string
}

// watchDir records, with inotify, what happens to the files in dir from
// now on; the function it returns gives the events so far.
func watchDir(t *testing.T, dir string) func() []dirEvent {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skipf("no inotify here: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	const mask = syscall.IN_CREATE | syscall.IN_MODIFY | syscall.IN_ATTRIB | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO
	if _, err := syscall.InotifyAddWatch(fd, dir, mask); err != nil {
		t.Fatalf("watch %s: %v", dir, err)
	}
	var evs []dirEvent
	buf := make([]byte, 64*(syscall.SizeofInotifyEvent+syscall.NAME_MAX+1))
	return func() []dirEvent {
		for {
			k, err := syscall.Read(fd, buf)
			if errors.Is(err, syscall.EAGAIN) {
				return evs
			}
			if err != nil {
				t.Fatalf("read inotify events of %s: %v", dir, err)
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= k; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
				for len(name) > 0 && name[len(name)-1] == 0 {
					name = name[:len(name)-1]
				}
				evs = append(evs, dirEvent{ev.Mask, ev.Cookie, string(name)})
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}

// SaveModelFile over a 0600 model file saved the whole model to a file of
// 0644 beside it and changed its mode only then: readable by all for a
// moment. The save's file now takes the kept mode (and owner) while it is
// empty: no file in the folder has its permissions or owner changed once
// a byte was written to it (a rename carries the file's history to its
// new name), and the model file ends 0600 with no other file beside it.
func TestSaveModelFileGivesTheModeBeforeTheBytes(t *testing.T) {
	det := syntheticDetector(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := det.Save(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	events := watchDir(t, dir)
	if err := SaveModelFile(det, path); err != nil {
		t.Fatal(err)
	}
	changedAfterBytes(t, events(), path)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("model file %v (%v), want mode 0600", st.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%s holds %v, want the model file alone", dir, entries)
	}
}

// changedAfterBytes fails t for each file of the model file at path's
// (its name, or a temporary file's that holds it) that had its
// permissions or owner changed, in events, after bytes were written to it
// (a rename carries the file's history to its new name): it was readable
// as it was, more widely than path, for a moment.
func changedAfterBytes(t *testing.T, events []dirEvent, path string) {
	t.Helper()
	written := map[string]bool{} // names that hold bytes written since the watch began
	moving := map[uint32]bool{}  // a rename's written flag, by cookie
	for _, ev := range events {
		if !strings.Contains(ev.name, filepath.Base(path)) {
			continue
		}
		switch {
		case ev.mask&syscall.IN_MODIFY != 0:
			written[ev.name] = true
		case ev.mask&syscall.IN_ATTRIB != 0 && written[ev.name]:
			t.Errorf("%s had its permissions or owner changed after bytes were written to it: it was readable more widely than %s for a moment", ev.name, path)
		case ev.mask&syscall.IN_MOVED_FROM != 0:
			moving[ev.cookie] = written[ev.name]
			delete(written, ev.name)
		case ev.mask&syscall.IN_MOVED_TO != 0:
			written[ev.name] = moving[ev.cookie]
		}
	}
}

// The threshold command and a model rollback saved the new model file and
// the model in force (kept as .prev) 0644, and gave them the model file's
// 0600 only once whole (keepModelMode): both were readable by all for a
// moment. They are saved with it from the start now (keptModelOptions),
// and the files end 0600.
func TestModelCommandsGiveTheModeBeforeTheBytes(t *testing.T) {
	_, r, d, _ := startModelPushRig(t, "cell64")
	dir := filepath.Join(r.dir, "state")
	path := filepath.Join(dir, "model.safetensors")
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	events := watchDir(t, dir)
	th, px := d.ModelInfo().ImageThreshold, d.ModelInfo().PixelThreshold
	if _, err := d.SetThresholds(context.Background(), 2*th, px); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RollbackModel(context.Background()); err != nil {
		t.Fatal(err)
	}
	changedAfterBytes(t, events(), path)
	for _, p := range []string{path, PreviousModelPath(path)} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v (%v), want mode 0600", p, st.Mode(), err)
		}
	}
}

// A refit saves its new model 0600 (it cannot know the mode it will take);
// installed where model.path holds no file, it is Save's own 0644, as
// README says of a new model file, and so is the kept model in force.
func TestInstallOfAPrivateFileWhereThereIsNoneIs0644(t *testing.T) {
	det := syntheticDetector(t)
	dir := t.TempDir()
	src, dst := filepath.Join(dir, ".refit-model.safetensors"), filepath.Join(dir, "m.safetensors")
	if err := det.SaveWith(src, keptModelOptions(src+".none")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, 0o600); err != nil {
		t.Fatal(err)
	}
	inForce, err := saveInForce(dst, det.SaveWith)
	if err != nil {
		t.Fatal(err)
	}
	if err := installModelFile(src, dst, inForce); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dst, PreviousModelPath(dst)} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v (%v), want 0644", filepath.Base(p), st.Mode(), err)
		}
	}
}
