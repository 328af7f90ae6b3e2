package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestConfigCheckReadsAModelFileThatIsNoModelOnce: config check loaded the
// model file and, when the load refused it, read it again, all of it with
// its checksum (modelFileError), only to word the refusal. It now words it
// from the load's error (loadRefusal), as a start does: the file is opened
// once, and the finding says what the start says, under the same key.
func TestConfigCheckReadsAModelFileThatIsNoModelOnce(t *testing.T) {
	det := syntheticDetector(t)
	dir := t.TempDir()
	sound := filepath.Join(dir, "sound.safetensors")
	if err := det.Save(sound); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sound)
	if err != nil {
		t.Fatal(err)
	}
	tiny := filepath.Join(dir, "tiny.safetensors")
	if err := os.WriteFile(tiny, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.safetensors")
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 0xff // the last tensor's last byte: the checksum fails
	if err := os.WriteFile(corrupt, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{tiny, corrupt} {
		cfg := testDefaults(t)
		cfg.Model.Path = path
		opens := watchOpens(t, path)
		var found *Finding
		for _, f := range Preflight(cfg, testLogger(t)) {
			if f.Field == "model.path" && f.Fatal {
				found = &f
			}
		}
		if n := opens(); n != 1 {
			t.Errorf("config check of %s opened it %d times, want once (the load)", path, n)
		}
		mopts, err := ModelOptions(cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = openDetector(context.Background(), cfg, mopts, RunOptions{Logger: testLogger(t)})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "model.path" {
			t.Fatalf("start with %s: %v, want a model.path refusal", path, err)
		}
		if found == nil || found.Msg != fe.Err.Error() {
			t.Errorf("config check of %s: %v, want the start's words %q", path, found, fe.Err)
		}
	}
}
