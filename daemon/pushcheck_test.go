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
	t.Parallel()
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

// TestPushOfAModelFileOverItsBudgetIsRefusedAtItsCheck: a push naming
// another model file, with other keys, whose scoring state is over the
// model.memory_budget it sets passed the push's check and was refused by
// the apply's load: code failed, one more inspectd_reload_failures_total,
// the configuration file saved and put back, where a budget below the
// model in force is refused at the check, code invalid. It is now refused
// at the check, from the file's header, in the load's words (naming the
// file, the state it needs, the budget and what to do), code invalid,
// field config.model.memory_budget, its dry run alike, before anything is
// saved or applied (real mosquitto, real files).
func TestPushOfAModelFileOverItsBudgetIsRefusedAtItsCheck(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	op, r, d, det := startModelPushRig(t, "cell53")
	data, err := os.ReadFile(filepath.Join(r.dir, "state", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	other := plainFile(t, r.dir, "other.safetensors", string(data))
	const budget = 2 << 20 // a budget takes 1 MiB at least
	if s := det.Info().StateBytes; s <= budget {
		t.Fatalf("test model state %d bytes is not over the %d-byte budget", s, budget)
	}
	push := fmt.Sprintf(`{"model":{"path":"%s","memory_budget":"%d"},"mqtt":{"result_qos":1}}`, other, budget)
	cfgBefore, prevBefore := fileState(t, r.cfgPath), fileState(t, r.cfgPath+".prev")
	words := map[bool]string{}
	for _, dry := range []bool{true, false} {
		rep := op.reply("cell53", "config", fmt.Sprintf(`{"id":"over-%v","config":%s,"dry_run":%v}`, dry, push, dry), 60*time.Second)
		t.Logf("push (dry_run %v): %v", dry, rep)
		msg := fmt.Sprint(rep["error"])
		if rep["ok"] != false || rep["code"] != "invalid" || rep["field"] != "config.model.memory_budget" {
			t.Errorf("push (dry_run %v) of %s: %v, want it refused with code invalid, field config.model.memory_budget", dry, push, rep)
		}
		for _, want := range []string{"model.memory_budget: load model " + other + ": scoring state needs ", fmt.Sprintf("over the memory budget of %d bytes", budget), "fit the model here"} {
			if !strings.Contains(msg, want) {
				t.Errorf("push (dry_run %v): %q, want it to say %q", dry, msg, want)
			}
		}
		_, words[dry], _ = strings.Cut(msg, ": model.memory_budget: ")
	}
	if words[true] == "" || words[true] != words[false] {
		t.Errorf("the dry run says %q, the push %q; want the same words", words[true], words[false])
	}
	if n := testutil.ToFloat64(d.metrics.ReloadFailures); n != 0 {
		t.Errorf("inspectd_reload_failures_total %v, want 0: the push was refused before it was applied", n)
	}
	if got := fileState(t, r.cfgPath); got != cfgBefore {
		t.Errorf("the configuration file was written (%s, was %s)", got, cfgBefore)
	}
	if got := fileState(t, r.cfgPath+".prev"); got != prevBefore {
		t.Errorf("the previous configuration file was written (%s, was %s)", got, prevBefore)
	}
	if c := d.Config(); c.Model.Path == other || c.MQTT.ResultQoS == 1 {
		t.Errorf("model.path %s, mqtt.result_qos %d in force after the refused push", c.Model.Path, c.MQTT.ResultQoS)
	}
}
