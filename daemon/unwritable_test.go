package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestUnwritableFolderAdviceFitsTheCase: a folder that is there but cannot
// be written was refused with "folder /sys cannot be written (permission
// denied); create the folder for the user that runs inspectd…" (it is
// there: creating it is no advice), and /proc with "cannot be written (no
// such file or directory)", a reason that reads as a missing folder. The
// advice now fits the case, for model.path's folder and for state_dir
// alike: a folder that is there is made writable for the user inspectd
// runs as, or another is chosen; a read-only or kernel file system is said
// to be one; "create" is said only of a folder that is missing.
func TestUnwritableFolderAdviceFitsTheCase(t *testing.T) {
	for _, dir := range []string{"/sys", "/proc"} {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() || tryWrite(dir) == nil {
			t.Logf("%s is not here a folder that refuses a new file to this user: not tried", dir)
			continue
		}
		cfg := testDefaults(t)
		cfg.Model.Path = filepath.Join(dir, "line3.safetensors")
		var fe *FieldError
		if !errors.As(modelFolderError(cfg), &fe) {
			t.Fatalf("model.path in %s: %v, want it refused", dir, modelFolderError(cfg))
		}
		state := filepath.Join(dir, "st")
		var se *FieldError
		if !errors.As(StateDirError(state), &se) || se.Field != "state_dir" {
			t.Fatalf("state_dir %s: %v, want it refused", state, StateDirError(state))
		}
		for _, f := range Preflight(cfg, testLogger(t)) {
			if f.Field == "model.path" && f.Msg != fe.Err.Error() {
				t.Errorf("config check says %q, the start %q", f.Msg, fe.Err)
			}
		}
		cfg.StateDir = state
		for _, msg := range []string{fe.Err.Error(), se.Err.Error(), findings(Preflight(cfg, testLogger(t)), "state_dir")} {
			t.Log(msg)
			if !strings.Contains(msg, "folder "+dir+" cannot be written") {
				t.Errorf("%q does not say that folder %s cannot be written", msg, dir)
			}
			for _, bad := range []string{"create the folder", "create it", "cannot be written (no such file or directory)", "is not writable (no such file or directory)"} {
				if strings.Contains(msg, bad) {
					t.Errorf("%q says %q of %s, a folder that is there", msg, bad, dir)
				}
			}
		}
	}

	// A folder that is missing is still to be created.
	cfg := testDefaults(t)
	cfg.Model.Path = filepath.Join(t.TempDir(), "no-such-folder", "line3.safetensors")
	if err := modelFolderError(cfg); err == nil || !strings.Contains(err.Error(), "does not exist; create the folder") {
		t.Errorf("model.path in a missing folder: %v, want it to be created", err)
	}

	// The reasons a folder that is there refuses a file, each with its
	// advice.
	for _, tc := range []struct {
		err        error
		why, mend  string
		notMending bool
	}{
		{&os.PathError{Op: "open", Path: "/srv/x/.inspectd-check-1", Err: syscall.EACCES}, "folder /srv/x cannot be written by the user inspectd runs as (permission denied)", "make it writable for that user", false},
		{&os.PathError{Op: "open", Path: "/srv/x/.inspectd-check-1", Err: syscall.EROFS}, "folder /srv/x cannot be written: it is on a read-only file system", "", true},
		{&os.PathError{Op: "open", Path: "/srv/x/.inspectd-check-1", Err: syscall.ENOENT}, "folder /srv/x cannot be written: it takes no new files", "", true},
	} {
		why, mend := unwritableAs("/srv/x", tc.err, false)
		if !strings.HasPrefix(why, tc.why) || !strings.HasPrefix(mend, tc.mend) || (mend == "") != tc.notMending {
			t.Errorf("%v: %q, %q; want %q…, %q…", tc.err, why, mend, tc.why, tc.mend)
		}
	}
}

// TestUnwritableAsRootSaysNoChownHelps: root denied a new file in /sys was
// told "cannot be written by the user inspectd runs as (permission
// denied); make it writable for that user (chown, chmod)", which no chown
// or chmod does for a kernel file system. Root is now told that not even
// root can write there, with no mend of the folder: another folder is the
// remedy. A user other than root is still told to make it writable.
func TestUnwritableAsRootSaysNoChownHelps(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EACCES, syscall.EPERM} {
		err := &os.PathError{Op: "open", Path: "/sys/.inspectd-check-1", Err: errno}
		why, mend := unwritableAs("/sys", err, true)
		if !strings.Contains(why, "not even by root") || !strings.Contains(why, "a kernel or read-only file system") || mend != "" {
			t.Errorf("root, %v: %q, %q; want not even root, no mend", errno, why, mend)
		}
		if strings.Contains(why+mend, "chown") || strings.Contains(why+mend, "the user inspectd runs as") {
			t.Errorf("root, %v: %q, %q advises a user's rights", errno, why, mend)
		}
		if why, mend := unwritableAs("/sys", err, false); !strings.Contains(why, "by the user inspectd runs as") || !strings.Contains(mend, "chown, chmod") {
			t.Errorf("not root, %v: %q, %q; want the user's rights mended", errno, why, mend)
		}
	}
	// What the process says as itself, through state_dir's check.
	if dir := unwritableFolder(); dir != "" && os.Geteuid() == 0 {
		msg := StateDirError(filepath.Join(dir, "st")).Error()
		if strings.Contains(msg, "chown") || !strings.Contains(msg, "not even by root") {
			t.Errorf("state_dir %s/st as root: %q, want not even root and no chown", dir, msg)
		}
	}
}

// findings joins the messages of the findings under field.
func findings(fs []Finding, field string) string {
	var out []string
	for _, f := range fs {
		if f.Field == field {
			out = append(out, f.Msg)
		}
	}
	return strings.Join(out, "; ")
}
