package daemon

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPushOfAFileThatIsNoModelIsRefusedAtItsCheck: a push whose
// model.path names a regular file that is no model (garbage, a JPEG, a
// model file cut short) passed the push's check, was saved, and was
// refused only by the apply's load: code failed, one more
// inspectd_reload_failures_total, the configuration file written and put
// back. It is now refused at the check, from the file's header, before
// anything is saved or applied: code invalid, field config.model.path,
// the load's words naming the file and what is wrong, no reload failure,
// the configuration file untouched (real mosquitto, real files).
func TestPushOfAFileThatIsNoModelIsRefusedAtItsCheck(t *testing.T) {
	wordsOnly(t)
	op, r, d, det := startModelPushRig(t, "cell52")
	data, err := os.ReadFile(filepath.Join(r.dir, "state", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(52, 52))
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	var photo bytes.Buffer
	if err := jpeg.Encode(&photo, image.NewGray(image.Rect(0, 0, 64, 48)), nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
		want string // what the refusal says is wrong
	}{
		{"garbage.safetensors", garbage, "out of bounds"},
		{"part.jpg", photo.Bytes(), "out of bounds"},
		{"cut.safetensors", data[:len(data)-1000], "the file is cut short"},
	} {
		path := plainFile(t, r.dir, c.name, string(c.data))
		cfgBefore, prevBefore := fileState(t, r.cfgPath), fileState(t, r.cfgPath+".prev")
		rep := op.reply("cell52", "config", `{"id":"`+c.name+`","config":{"model":{"path":"`+path+`"}}}`, 60*time.Second)
		t.Logf("push of %s: %v", c.name, rep)
		msg := fmt.Sprint(rep["error"])
		if rep["ok"] != false || rep["code"] != "invalid" || rep["field"] != "config.model.path" {
			t.Errorf("push of %s: %v, want it refused with code invalid, field config.model.path", c.name, rep)
		}
		for _, want := range []string{path + " is not a model file inspectd can load (", c.want} {
			if !strings.Contains(msg, want) {
				t.Errorf("push of %s: %q, want it to say %q", c.name, msg, want)
			}
		}
		if n := testutil.ToFloat64(d.metrics.ReloadFailures); n != 0 {
			t.Errorf("push of %s: inspectd_reload_failures_total %v, want 0: the push was refused before it was applied", c.name, n)
		}
		if got := fileState(t, r.cfgPath); got != cfgBefore {
			t.Errorf("push of %s: the configuration file was written (%s, was %s)", c.name, got, cfgBefore)
		}
		if got := fileState(t, r.cfgPath+".prev"); got != prevBefore {
			t.Errorf("push of %s: the previous configuration file was written (%s, was %s)", c.name, got, prevBefore)
		}
		if got := d.ModelInfo().ID; got != det.Info().ID || d.Config().Model.Path == path {
			t.Errorf("push of %s: model %s in force (model.path %s), want %s as before", c.name, got, d.Config().Model.Path, det.Info().ID)
		}
	}
}

// fileState is what says whether path was written: its size,
// modification time and contents ("absent" when there is no file).
func fileState(t *testing.T, path string) string {
	t.Helper()
	st, err := os.Stat(path)
	if os.IsNotExist(err) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("size %d modified %s sha256 %x", st.Size(), st.ModTime().Format(time.RFC3339Nano), sha256.Sum256(b))
}
