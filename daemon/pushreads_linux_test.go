package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestPushReadsANewModelFileOnce: a real push naming a new model file
// opened it twice, reading all its bytes and checking its checksum both
// times: once for the refusals a dry run also gives (PlanConfig), then
// again to load it (ApplyConfig). It is now opened once, by the load, which
// refuses a file that is no model in the same words and field as the dry
// run. A push of a regular file that is no model (too short, or failing
// its checksum) opened it twice: the load refused it, then it was read
// again, all of it, only to word the refusal; it is now worded from the
// load's error, one open (real mosquitto, real files; the opens are
// counted by inotify, so that nothing in the daemon is there for the
// test). Since a file whose header is no model's is refused at the
// push's check, before anything is saved (code invalid, no reload
// failure: TestPushOfAFileThatIsNoModelIsRefusedAtItsCheck), the check
// opens the file to read its header alone, neither mapped nor
// checksummed: a push of a model file opens it twice, the header's read
// and the load, which alone reads it whole; a file refused at its header
// is opened once.
func TestPushReadsANewModelFileOnce(t *testing.T) {
	t.Parallel()
	op, r, d, det := startModelPushRig(t, "cell31")
	data, err := os.ReadFile(filepath.Join(r.dir, "state", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	there := filepath.Join(r.dir, "copy.safetensors")
	if err := os.WriteFile(there, data, 0o600); err != nil {
		t.Fatal(err)
	}
	opens := watchOpens(t, there)
	rep := op.reply("cell31", "config", `{"id":"once","config":{"model":{"path":"`+there+`"}}}`, 120*time.Second)
	if rep["ok"] != true || rep["applied"] != true || d.Config().Model.Path != there {
		t.Fatalf("push of a model file that is there: %v, model.path %s in force", rep, d.Config().Model.Path)
	}
	if got := d.pipe.Load().Detector().Info().ID; got != det.Info().ID {
		t.Errorf("model %s in force after the push of %s, want its model %s", got, there, det.Info().ID)
	}
	if n := opens(); n != 2 {
		t.Errorf("the push opened %s %d times, want twice (the check's header, the load)", there, n)
	}

	// A file that is no model is still refused by the push as the dry run
	// refuses it: the same words after each one's lead, the same field.
	// The push's load refused it, then read it again, all of it with its
	// checksum, only to word the refusal: the 3-byte file is now refused
	// from its header at the check (code invalid), one open; the file
	// that fails its checksum is opened for its header, then read whole
	// once (the push's load, the dry run's read), code failed.
	tiny := filepath.Join(r.dir, "tiny.safetensors")
	if err := os.WriteFile(tiny, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(r.dir, "corrupt.safetensors")
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 0xff // the last tensor's last byte: the checksum fails
	if err := os.WriteFile(corrupt, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path, want, code string
		opens                  int
	}{
		{"a 3-byte model file", tiny, "too short for a safetensors header", "invalid", 1},
		{"a model file with a byte changed", corrupt, "checksum", "failed", 2},
	} {
		words := map[bool]string{}
		for _, dry := range []bool{true, false} {
			opens := watchOpens(t, c.path)
			rep := op.reply("cell31", "config", fmt.Sprintf(`{"id":"%s-%v","config":{"model":{"path":"%s"}},"dry_run":%v}`, filepath.Base(c.path), dry, c.path, dry), 60*time.Second)
			msg := fmt.Sprint(rep["error"])
			if rep["ok"] != false || rep["code"] != c.code || rep["field"] != "config.model.path" {
				t.Errorf("push (dry_run %v) of %s: %v, want it refused with code %s, field config.model.path", dry, c.name, rep, c.code)
			}
			for _, want := range []string{c.path + " is not a model file inspectd can load (", c.want} {
				if !strings.Contains(msg, want) {
					t.Errorf("push (dry_run %v) of %s: %q, want it to say %q", dry, c.name, msg, want)
				}
			}
			_, words[dry], _ = strings.Cut(msg, ": model.path: ")
			if n := opens(); n != c.opens {
				t.Errorf("push (dry_run %v) of %s opened it %d times, want %d", dry, c.name, n, c.opens)
			}
		}
		if words[true] == "" || words[true] != words[false] {
			t.Errorf("%s: the dry run says %q, the push %q; want the same words", c.name, words[true], words[false])
		}
	}
	if d.Config().Model.Path != there {
		t.Errorf("model.path %s in force after the refused pushes, want %s", d.Config().Model.Path, there)
	}
}

// watchOpens counts, with inotify, the opens of path from now on; the
// function it returns says how many so far.
func watchOpens(t *testing.T, path string) func() int {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skipf("no inotify here: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	// The closes are watched too: inotify merges an event with the one
	// before it when both are alike and unread, so two opens in a row
	// would count as one.
	if _, err := syscall.InotifyAddWatch(fd, path, syscall.IN_OPEN|syscall.IN_CLOSE); err != nil {
		t.Fatalf("watch %s: %v", path, err)
	}
	n := 0
	buf := make([]byte, 64*(syscall.SizeofInotifyEvent+syscall.NAME_MAX+1))
	return func() int {
		for {
			k, err := syscall.Read(fd, buf)
			if errors.Is(err, syscall.EAGAIN) {
				return n
			}
			if err != nil {
				t.Fatalf("read inotify events of %s: %v", path, err)
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= k; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				if ev.Mask&syscall.IN_OPEN != 0 {
					n++
				}
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}
