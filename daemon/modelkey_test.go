package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/config"
)

// TestModelFileThatIsNoModelNamesItsKey: a model file that is a folder,
// /dev/null or a file that is no model was refused by the start, a reload
// and a push (all openDetector) as "load model /x: not a regular file",
// naming no key, where config check said "model.path: /x is a folder: set
// model.path to a model file in it, such as …". Each now names the key
// that sets the path (model.path, or state_dir when the model lives
// there) and what it takes, in config check's words.
func TestModelFileThatIsNoModelNamesItsKey(t *testing.T) {
	wordsOnly(t)
	dir := t.TempDir()
	tiny := plainFile(t, dir, "tiny.safetensors", "abc")
	inState := t.TempDir() // a folder where state_dir's model file should be
	if err := os.Mkdir(filepath.Join(inState, "model.safetensors"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, state, key, want string
	}{
		{"a folder", dir, "", "model.path", dir + " is a folder: set model.path to a model file in it, such as " + filepath.Join(dir, "model.safetensors")},
		{"/dev/null", "/dev/null", "", "model.path", "/dev/null is a device, not a model file: set model.path to"},
		{"a 3-byte file", tiny, "", "model.path", tiny + " is not a model file inspectd can load (file is 3 bytes, too short for a safetensors header): set model.path to"},
		{"a folder in state_dir", "", inState, "state_dir", filepath.Join(inState, "model.safetensors") + " is a folder, where state_dir keeps its model file"},
	} {
		cfg := testDefaults(t)
		cfg.Model.Path = tc.path
		if tc.state != "" {
			cfg.StateDir = tc.state
		}
		for _, source := range []config.Source{config.SourceSynthetic, config.SourceFolder} {
			cfg.Capture.Source = source
			cfg.Capture.Folder.Path = dir
			mopts, err := ModelOptions(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			det, _, err := openDetector(context.Background(), cfg, mopts, RunOptions{Logger: testLogger(t), FitFrames: 12})
			if det != nil {
				det.Close()
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.key || !strings.HasPrefix(fe.Err.Error(), tc.want) {
				t.Errorf("%s (%s source): start, reload and push refuse it with %v, want %s: %s…", tc.name, source, err, tc.key, tc.want)
				continue
			}
			var check *Finding
			for _, f := range Preflight(cfg, testLogger(t)) {
				if f.Field == tc.key && f.Fatal && f.Msg == fe.Err.Error() {
					check = &f
				}
			}
			if check == nil {
				t.Errorf("%s (%s source): config check does not say %q under %s: %v", tc.name, source, fe.Err, tc.key, Preflight(cfg, testLogger(t)))
			}
		}
	}
}
