package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/config"
)

// runConfigCLI runs inspectd in-process and returns its exit status and streams.
func runConfigCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestConfigDefaults(t *testing.T) {
	code, out, errs := runConfigCLI("config", "defaults")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if out != string(config.DefaultYAML()) {
		t.Error("output is not config.DefaultYAML()")
	}
	c, err := config.Parse([]byte(out), "defaults")
	if err != nil || !reflect.DeepEqual(c, config.Default()) {
		t.Errorf("printed defaults parse to %+v, %v", c, err)
	}
	if code, _, _ := runConfigCLI("config", "defaults", "extra"); code != 2 {
		t.Errorf("extra argument: exit %d; want 2", code)
	}
}

// config check's summary says what registration is configured to do.
func TestConfigCheckAlign(t *testing.T) {
	for body, want := range map[string]string{
		"capture: {align: {mode: rigid}}\n":                                     "; registration rigid within 0.25 of the frame and 20°, confidence floor learned at fit;",
		"capture: {align: {mode: turn, max_shift: 0.1, min_confidence: 0.5}}\n": "; registration turn within 0.1 of the frame, confidence ≥ 0.5;",
		"capture: {align: {mode: 'off'}}\n":                                     "seed 1; free-run\n",
	} {
		path := filepath.Join(t.TempDir(), "inspectd.yaml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runConfigCLI("config", "check", "--here=false", path)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", body, code, out, errs, want)
		}
	}
}

func TestConfigCheckValid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inspectd.yaml")
	if err := os.WriteFile(path, []byte("device_id: cam-1\ncapture: {source: folder, folder: {path: /data, loop: true}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runConfigCLI("config", "check", "--here=false", path)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		path + ": ok\n",
		"  device:   cam-1\n",
		"  capture:  folder /data (looped); free-run\n",
		"  mqtt:     embedded broker on 127.0.0.1:1883 as inspectd-cam-1; topics inspectd/cam-1/..., results QoS 0\n",
		"  http:     127.0.0.1:9100\n",
		"  model:    /var/lib/inspectd/model.safetensors, recipe auto (judged on 20% held-out images; ensembles tried), d ≤ 100 (min 32), memory auto (25% of available memory), threshold 0.99 quantile × 1.1 of the training images' leave-one-out scores; backbone bundled (MobileNet v1 or v2), " + halfTheCores() + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestConfigCheckExample(t *testing.T) {
	const path = "../../systemd/inspectd.example.yaml"
	code, out, errs := runConfigCLI("config", "check", "--here=false", path)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "capture:  camera /dev/video0 1280x720 at 30 fps (MJPEG, YUYV)") ||
		!strings.Contains(out, "user inspectd (password set)") || strings.Contains(out, "change-me") {
		t.Errorf("summary:\n%s", out)
	}
}

func TestConfigCheckInvalid(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("mqtt:\n  brokrs: []\nmodel:\n  features: 5000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runConfigCLI("config", "check", bad)
	// Both at once: the unknown key hid the value out of range until the
	// file was checked again.
	want := "config " + bad + `: line 2: unknown key "brokrs" in section "mqtt" (did you mean "brokers"?)` + "\n" +
		"config " + bad + ": line 4: model.features: 5000 is out of range 1..2048\n" +
		"inspectd config check: " + bad + " is not valid\n"
	if code != 1 || errs != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1, stderr:\n%s", code, errs, want)
	}

	if err := os.WriteFile(bad, []byte("model:\n  features: 5000\n  threads: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runConfigCLI("config", "check", "--here=false", good, bad, filepath.Join(dir, "missing.yaml"))
	if code != 1 {
		t.Errorf("exit %d; want 1", code)
	}
	if !strings.HasPrefix(out, good+": ok\n") {
		t.Errorf("stdout %q lacks the good file", out)
	}
	for _, want := range []string{
		"config " + bad + ": line 2: model.features: 5000 is out of range 1..2048\n",
		"config " + bad + ": line 3: model.threads: -1 is out of range 0..64\n",
		"missing.yaml: no such file or directory\n",
		"inspectd config check: 2 of 3 files are not valid: " + bad + ", " + filepath.Join(dir, "missing.yaml") + "\n",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}

	if code, _, errs := runConfigCLI("config", "check"); code != 2 || !strings.Contains(errs, "name a configuration file") {
		t.Errorf("no file: exit %d, stderr %q", code, errs)
	}
}

// A recipe name the model cannot read is refused by config check, naming
// the key, its line and what is expected; a good one passes.
func TestConfigCheckRecipe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.yaml")
	for _, c := range []struct {
		recipe string
		ok     bool
	}{{"v2-squash-std-z", true}, {"plain", true}, {"v9-fit-raw", false}, {"v1-fit-zz", false}} {
		if err := os.WriteFile(path, []byte("model: {recipe: "+c.recipe+"}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runConfigCLI("config", "check", path)
		if c.ok != (code == 0) || (!c.ok && !strings.Contains(errs, "config "+path+": line 1: model.recipe: ")) {
			t.Errorf("recipe %s: exit %d, stderr %q", c.recipe, code, errs)
		}
	}
}

// TestConfigCheckHere: by default config check also tries what the file
// names on this machine, naming the key of each thing `inspectd run`
// would stop on; what only needs saying (a model the synthetic demo fits
// at start) is not a failure.
func TestConfigCheckHere(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	demo := write("demo.yaml", "state_dir: "+state+"\n")
	code, out, errs := runConfigCLI("config", "check", demo)
	if code != 0 {
		t.Fatalf("synthetic source without a model: exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"state_dir: " + state + " does not exist yet", "fits one on normal synthetic frames at start"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	folder := write("folder.yaml", "state_dir: "+dir+"\ncapture: {source: folder, folder: {path: "+filepath.Join(dir, "nope")+"}}\n")
	code, _, errs = runConfigCLI("config", "check", folder)
	for _, want := range []string{
		folder + ": capture.folder.path: stat " + filepath.Join(dir, "nope") + ": no such file or directory",
		folder + ": model.path: no model at " + filepath.Join(dir, "model.safetensors") + ": fit one first",
		"inspectd config check: " + folder + " is valid but cannot run on this machine as it is",
	} {
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("exit %d; stderr lacks %q:\n%s", code, want, errs)
		}
	}

	// A watched folder that is not there yet is waited for (a share
	// mounted after the start): a warning, not a refusal.
	watched := write("watched.yaml", "state_dir: "+dir+"\ncapture: {source: folder, folder: {path: "+filepath.Join(dir, "nope")+", watch: true}}\n")
	_, out, errs = runConfigCLI("config", "check", watched)
	if all := out + errs; !strings.Contains(all, "capture.folder.path: stat "+filepath.Join(dir, "nope")+": no such file or directory (a watched folder is waited for") ||
		strings.Contains(all, "cannot run on this machine") && strings.Contains(all, "capture.folder.path: stat "+filepath.Join(dir, "nope")+": no such file or directory: create") {
		t.Errorf("a watched folder not there yet:\n%s", all)
	}

	// A file source that is there but is not an image run can read
	// (empty, text) is as fatal as a missing one.
	for _, body := range []string{"", "not an image"} {
		img := write("frame.jpg", body)
		file := write("file.yaml", "state_dir: "+dir+"\ncapture: {source: file, file: {path: "+img+"}}\n")
		code, _, errs = runConfigCLI("config", "check", file)
		if want := file + ": capture.file.path: "; code != 1 || !strings.Contains(errs, want) || !strings.Contains(errs, "set capture.file.path to a JPEG, PNG") {
			t.Errorf("file source of %d bytes that is no image: exit %d; stderr lacks %q:\n%s", len(body), code, want, errs)
		}
	}

	// Relative paths are named with the folder they resolved against; a
	// folder given as the model is refused naming a file to give instead.
	wd, _ := os.Getwd()
	rel := write("rel.yaml", "state_dir: "+dir+"\ncapture: {source: folder, folder: {path: testdata-nope}}\nmodel: {path: "+dir+"}\n")
	code, out, errs = runConfigCLI("config", "check", rel)
	for _, want := range []string{"capture.folder.path: testdata-nope is relative: taken from the working directory " + wd + " as " + filepath.Join(wd, "testdata-nope"),
		rel + ": model.path: " + dir + " is a folder: set model.path to a model file in it, such as " + filepath.Join(dir, "model.safetensors")} {
		if code != 1 || !strings.Contains(out+errs, want) {
			t.Errorf("exit %d; output lacks %q:\n%s%s", code, want, out, errs)
		}
	}

	bad := write("model.safetensors", "not a model")
	corrupt := write("corrupt.yaml", "state_dir: "+dir+"\nmodel: {path: "+bad+"}\n")
	code, _, errs = runConfigCLI("config", "check", corrupt)
	if code != 1 || !strings.Contains(errs, corrupt+": model.path: ") || !strings.Contains(errs, bad) {
		t.Errorf("corrupt model file: exit %d, stderr:\n%s", code, errs)
	}
	if code, _, errs := runConfigCLI("config", "check", corrupt, "--here=false"); code != 0 {
		t.Errorf("--here=false (after the file) checks only the file: exit %d, stderr:\n%s", code, errs)
	}

	// A state_dir that cannot be created (root may write almost anywhere,
	// but not into /proc), and a backbone that is not a TFLite file.
	procState := write("proc.yaml", "state_dir: /proc/inspectd-check-test/state\n")
	code, _, errs = runConfigCLI("config", "check", procState)
	if code != 1 || !strings.Contains(errs, procState+": state_dir: /proc/inspectd-check-test/state does not exist and cannot be created") {
		t.Errorf("uncreatable state_dir: exit %d, stderr:\n%s", code, errs)
	}
	garbage := write("garbage.tflite", strings.Repeat("not a flatbuffer ", 300))
	bb := write("backbone.yaml", "state_dir: "+dir+"\nmodel: {backbone: "+garbage+"}\n")
	code, _, errs = runConfigCLI("config", "check", bb)
	if code != 1 || !strings.Contains(errs, bb+": model.backbone: ") || !strings.Contains(errs, garbage) {
		t.Errorf("garbage backbone: exit %d, stderr:\n%s", code, errs)
	}
}

// TestConfigCheckNoOKWhenItCannotRun: a valid file that cannot run on this
// machine is not announced with a plain "ok" (a trial user read the "ok"
// and stopped before the problems that followed): its first line says the
// file is valid but cannot run here, and the run ends failing; a file that
// passes both says ok.
func TestConfigCheckNoOKWhenItCannotRun(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "folder.yaml")
	body := "state_dir: " + dir + "\ncapture: {source: folder, folder: {path: " + filepath.Join(dir, "nope") + "}}\n"
	if err := os.WriteFile(folder, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runConfigCLI("config", "check", folder)
	if strings.Contains(out, folder+": ok") {
		t.Errorf("a file that cannot run here is announced ok:\n%s", out)
	}
	if want := folder + ": the file is valid, but it cannot run on this machine as it is (2 problems)\n"; !strings.HasPrefix(out, want) {
		t.Errorf("stdout does not start with %q:\n%s", want, out)
	}
	if want := "inspectd config check: " + folder + " is valid but cannot run on this machine as it is\n"; code != 1 || !strings.HasSuffix(errs, want) {
		t.Errorf("exit %d, stderr does not end with %q:\n%s", code, want, errs)
	}

	demo := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(demo, []byte("state_dir: "+filepath.Join(dir, "state")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runConfigCLI("config", "check", demo); code != 0 || !strings.HasPrefix(out, demo+": ok\n") {
		t.Errorf("a file that runs here: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// A trial: a camera that is not there (a mistyped by-id path) passed as a
// plain "ok" (inspectd starts and waits for it: exit 0, but a warning on
// the first line), and a model the synthetic demo fits at start into a
// folder it cannot write passed too (the run failed after the whole fit).
func TestConfigCheckWarnsAndModelFolder(t *testing.T) {
	dir := t.TempDir()
	cam := filepath.Join(dir, "cam.yaml")
	if err := os.WriteFile(cam, []byte("state_dir: "+dir+"\nmodel: {path: "+filepath.Join(dir, "m.safetensors")+"}\ncapture: {source: camera, camera: {device: "+filepath.Join(dir, "video7")+"}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runConfigCLI("config", "check", cam) // no model either: that one is fatal
	if !strings.Contains(out, "    warning: capture.camera.device: stat "+filepath.Join(dir, "video7")) {
		t.Errorf("absent camera: exit %d, stdout:\n%s", code, out)
	}
	if got, want := verdictLine("c.yaml", 0, 1, 0), "c.yaml: valid, and inspectd can start here, but it will not inspect until the 1 warning below is mended"; got != want {
		t.Errorf("first line with a warning alone: %q, want %q", got, want)
	}
	if got := verdictLine("c.yaml", 0, 0, 0); got != "c.yaml: ok" {
		t.Errorf("first line with nothing found: %q", got)
	}
	if got := verdictLine("c.yaml", 2, 1, 0); !strings.Contains(got, "cannot run on this machine as it is (2 problems)") {
		t.Errorf("first line with problems and a warning: %q", got)
	}
	demo := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(demo, []byte("state_dir: "+dir+"\nmodel: {path: "+filepath.Join(dir, "nope", "m.safetensors")+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runConfigCLI("config", "check", demo)
	if code != 1 || !strings.Contains(out, "cannot run on this machine") || !strings.Contains(errs, "model.path: no model file at "+filepath.Join(dir, "nope", "m.safetensors")+", and the model inspectd would fit") ||
		!strings.Contains(errs, "folder "+filepath.Join(dir, "nope")+" does not exist") {
		t.Errorf("model folder missing: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	// The service's layout: the model named in a state_dir that inspectd
	// creates at start (a reviewer: refused as unwritable).
	state := filepath.Join(dir, "state")
	svc := filepath.Join(dir, "svc.yaml")
	if err := os.WriteFile(svc, []byte("state_dir: "+state+"\nmodel: {path: "+filepath.Join(state, "model.safetensors")+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runConfigCLI("config", "check", svc); code != 0 || !strings.HasPrefix(out, svc+": ok\n") {
		t.Errorf("model in a state_dir to be created: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// halfTheCores is what config check says of model.threads: 0 here.
func halfTheCores() string {
	if n := runtime.GOMAXPROCS(0) / 2; n > 1 {
		return fmt.Sprintf("%d threads (half the cores)", n)
	}
	return "1 thread (half the cores)"
}

// A command group without its subcommand names the subcommands; an
// unknown word is still unknown.
func TestCommandGroupNamesSubcommands(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"config"}, 2, "inspectd config: give a subcommand: check, defaults"},
		{[]string{"config", "--help"}, 0, "give a subcommand: check, defaults"},
		{[]string{"capture"}, 2, "encode, export, list, set, snapshot"},
		{[]string{"config", "chek"}, 2, `unknown command "config chek"`},
		{[]string{"konfig"}, 2, `unknown command "konfig"`},
	} {
		code, _, stderr := runCaptureCmd(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("inspectd %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
	}
}

// A backbone that does not load hid the model's own problem: config check
// stopped there, so a missing model was neither reported nor counted, and
// whoever mended the backbone met it only at the next check. Each is
// reported and counted; a model file that is there is said to be
// unchecked, not counted.
func TestConfigCheckCountsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	frames := filepath.Join(dir, "frames")
	if err := os.MkdirAll(frames, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage.tflite", strings.Repeat("not a flatbuffer ", 300))
	model := filepath.Join(dir, "model.safetensors")
	for _, bb := range []string{garbage, filepath.Join(dir, "missing.tflite")} {
		cfg := write("check.yaml", "state_dir: "+dir+"\ncapture: {source: folder, folder: {path: "+frames+"}}\nmodel: {backbone: "+bb+"}\n")
		code, out, errs := runConfigCLI("config", "check", cfg)
		if want := cfg + ": the file is valid, but it cannot run on this machine as it is (2 problems)\n"; code != 1 || !strings.HasPrefix(out, want) {
			t.Errorf("backbone %s and no model: exit %d, stdout does not start with %q:\n%s", bb, code, want, out)
		}
		for _, want := range []string{cfg + ": model.backbone: ", cfg + ": model.path: no model at " + model} {
			if !strings.Contains(errs, want) {
				t.Errorf("backbone %s and no model: stderr lacks %q:\n%s", bb, want, errs)
			}
		}
	}
	write("model.safetensors", "not a model either")
	cfg := write("check.yaml", "state_dir: "+dir+"\ncapture: {source: folder, folder: {path: "+frames+"}}\nmodel: {backbone: "+garbage+"}\n")
	code, out, errs := runConfigCLI("config", "check", cfg)
	if want := "(1 problem)\n"; code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "model.path: "+model+" is there; not loaded") {
		t.Errorf("backbone garbage, a model file: exit %d, stdout lacks %q or the unchecked model:\n%s\nstderr:\n%s", code, want, out, errs)
	}
}

// TestConfigCheckNamesTheFieldThatCannotBeUsed: a value valid on its own
// that this machine cannot use (a memory fraction that leaves 0 bytes) is
// filed under its own key, not under model.backbone.
func TestConfigCheckNamesTheFieldThatCannotBeUsed(t *testing.T) {
	dir := t.TempDir()
	frames := filepath.Join(dir, "frames")
	if err := os.MkdirAll(frames, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "check.yaml")
	body := "state_dir: " + dir + "\ncapture: {source: folder, folder: {path: " + frames + "}}\nmodel: {memory_fraction: 0.000000000001}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runConfigCLI("config", "check", cfg)
	if want := cfg + ": model.memory_budget: resolved to 0 bytes"; code != 1 || !strings.Contains(errs, want) || strings.Contains(errs, "model.backbone") {
		t.Errorf("exit %d, stderr lacks %q or files it under model.backbone:\n%s", code, want, errs)
	}
	// A model file there is not loaded, for that key's sake, not the
	// backbone's.
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), []byte("a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, out, errs := runConfigCLI("config", "check", cfg)
	if want := "not loaded, as it loads only once model.memory_budget is mended"; !strings.Contains(out+errs, want) {
		t.Errorf("the model's line does not name model.memory_budget (%q):\n%s%s", want, out, errs)
	}
}

// TestConfigCheckListsABadRecipeWithTheOthers: a model.recipe the model
// cannot read was reported only once the rest of the file was valid, at
// the next run, and without its line; it is listed in file order among the
// file's other problems, with its line. A recipe name config itself
// refuses (a space in it) is said once.
func TestConfigCheckListsABadRecipeWithTheOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.yaml")
	body := "model:\n  features: 5000\n  recipe: v9-fit-raw\nmqtt:\n  brokrs: []\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runConfigCLI("config", "check", "--here=false", path)
	want := "config " + path + `: line 5: unknown key "brokrs" in section "mqtt" (did you mean "brokers"?)` + "\n" +
		"config " + path + ": line 2: model.features: 5000 is out of range 1..2048\n" +
		"config " + path + `: line 3: model.recipe: "v9-fit-raw": unknown backbone "v9" (want e.g. plain`
	if code != 1 || !strings.HasPrefix(errs, want) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1, stderr starting:\n%s", code, errs, want)
	}

	if err := os.WriteFile(path, []byte("model:\n  recipe: v1 fit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runConfigCLI("config", "check", "--here=false", path); code != 1 || strings.Count(errs, "model.recipe") != 1 ||
		!strings.Contains(errs, `line 2: model.recipe: "v1 fit": want auto, fixed or a recipe's name`) {
		t.Errorf("a recipe config refuses itself: exit %d, stderr:\n%s", code, errs)
	}
}

// TestRunListsABadRecipeWithItsLine: `inspectd run` reads the file with
// the same rules as config check: a bad recipe stops it at the file, with
// its line, before anything starts.
func TestRunListsABadRecipeWithItsLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.yaml")
	body := "state_dir: " + filepath.Join(dir, "state") + "\nhttp: {listen: \"\"}\nmodel:\n  recipe: v1-fit-zz\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runConfigCLI("run", "--config", path)
	if want := "config " + path + `: line 4: model.recipe: "v1-fit-zz": unknown part "zz"`; code != 1 || !strings.Contains(errs, want) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, errs, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Error("state_dir was created: the run started before the file was refused")
	}
	// eval, bench and model info read the file by the same rule (they
	// named the recipe later, without its line).
	for _, args := range [][]string{{"eval", "--data", dir}, {"bench"}, {"model", "info", "--config", path, filepath.Join(dir, "m.safetensors")}} {
		if args[0] != "model" {
			args = append(args, "--config", path)
		}
		code, _, errs := runConfigCLI(args...)
		if want := "line 4: model.recipe:"; code == 0 || !strings.Contains(errs, want) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant %q", args, code, errs, want)
		}
	}
}

// TestConfigCheckWarnsOfAContextScaleWithoutZScore: model.context_pool
// set with model.position_zscore false passed as "ok", and the fit left
// the context scale out without a word. It is a warning (the daemon runs,
// as the README says the scale is left out), on the first line and under
// the summary with the line of the setting that decides it; a named recipe
// spells out its own scoring and is not warned of.
func TestConfigCheckWarnsOfAContextScaleWithoutZScore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	for _, c := range []struct {
		body, want string
	}{
		{"device_id: a\nmodel:\n  position_zscore: false\n", "  warning: line 3: model.context_pool: 6 is left out of the fit: the context scale needs model.position_zscore, which is false"},
		{"device_id: a\nmodel:\n  recipe: fixed\n  context_pool: 4\n  position_zscore: false\n", "  warning: line 4: model.context_pool: 4 is left out of the fit"},
		{"device_id: a\nmodel:\n  position_zscore: false\n  context_pool: 0\n", ""},
		{"device_id: a\nmodel:\n  position_zscore: false\n  recipe: v1-fit-std-raw\n", ""},
	} {
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runConfigCLI("config", "check", "--here=false", path)
		first, _, _ := strings.Cut(out, "\n")
		switch {
		case code != 0:
			t.Errorf("%q: exit %d, stderr %q", c.body, code, errs)
		case c.want == "" && (first != path+": ok" || strings.Contains(out, "warning")):
			t.Errorf("%q: stdout:\n%s\nwant ok and no warning", c.body, out)
		case c.want != "" && (first != path+": valid, but 1 setting below does not act as written" || !strings.Contains(out, c.want)):
			t.Errorf("%q: stdout:\n%s\nwant the first line to say so and %q", c.body, out, c.want)
		}
	}
}

// TestConfigCheckSparkplugTopics: with mqtt.profile sparkplug the summary
// listed the JSON result topics, where no result goes; it names the
// Sparkplug namespace of the node and the device (and the JSON topics only
// for what they still carry), and with both, both.
func TestConfigCheckSparkplugTopics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sp.yaml")
	const base = "device_id: cell1\nmqtt: {brokers: [\"tcp://10.0.0.5:1883\"], profile: %s}\nsparkplug: {group_id: Plant 1, edge_node_id: line3}\n"
	for _, c := range []struct {
		profile   string
		want, not []string
	}{
		{"sparkplug", []string{
			"; Sparkplug B node spBv1.0/Plant 1/N*/line3, device spBv1.0/Plant 1/D*/line3/cell1, as inspectd-cell1-sparkplug;",
			"; inspectd/cell1/... carries status, info, triggers and commands only\n"},
			[]string{"results QoS"}},
		{"both", []string{
			"; topics inspectd/cell1/..., results QoS 0; Sparkplug B node spBv1.0/Plant 1/N*/line3, device spBv1.0/Plant 1/D*/line3/cell1, as inspectd-cell1-sparkplug\n"},
			[]string{"commands only"}},
		{"json", []string{"; topics inspectd/cell1/..., results QoS 0\n"}, []string{"spBv1.0"}},
	} {
		if err := os.WriteFile(path, []byte(fmt.Sprintf(base, c.profile)), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runConfigCLI("config", "check", "--here=false", path)
		if code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", c.profile, code, errs)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: summary lacks %q:\n%s", c.profile, w, out)
			}
		}
		for _, n := range c.not {
			if strings.Contains(out, n) {
				t.Errorf("%s: summary has %q:\n%s", c.profile, n, out)
			}
		}
	}
}

// TestConfigCheckMQTTTLS: a trial's config check said ok (exit 0) for an
// mqtt.tls.ca that run refuses (a folder), and said nothing of mqtt.tls
// with only plain brokers, where it is not used. The first is now a
// problem naming the key and the file (exit 1), the second a warning
// naming mqtt.tls and the brokers (exit 0).
func TestConfigCheckMQTTTLS(t *testing.T) {
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	if err := os.Mkdir(pki, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	state := "state_dir: " + filepath.Join(dir, "state") + "\n"

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(state+"mqtt:\n  brokers: [\"ssl://127.0.0.1:8883\"]\n  tls: {ca: "+pki+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runConfigCLI("config", "check", bad)
	if want := bad + ": mqtt.tls.ca: " + pki + ": is a directory; expected a PEM file"; code != 1 || strings.Contains(out, bad+": ok") || !strings.Contains(errs, want) {
		t.Errorf("CA folder: exit %d, want 1 and %q; stdout:\n%s\nstderr:\n%s", code, want, out, errs)
	}

	// With plain brokers only mqtt.tls is not used, and its files are not
	// read (run does not read them either): a warning, even for an empty CA
	// file (it stopped run, a trial's box moved off ssl:// with a stale
	// CA).
	unused := filepath.Join(dir, "unused.yaml")
	if err := os.WriteFile(unused, []byte(state+"mqtt:\n  brokers: [\"tcp://127.0.0.1:1883\"]\n  tls:\n    insecure_skip_verify: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runConfigCLI("config", "check", unused)
	first, _, _ := strings.Cut(out, "\n")
	if want := "  warning: line 4: mqtt.tls: insecure_skip_verify set, but inspectd connects only to mqtt.brokers tcp://127.0.0.1:1883, none of which uses TLS"; code != 0 ||
		first != unused+": valid, but 1 setting below does not act as written" || !strings.Contains(out, want) {
		t.Errorf("TLS with a plain broker: exit %d, want 0, the first line to say so and %q; stdout:\n%s\nstderr:\n%s", code, want, out, errs)
	}
	if err := os.WriteFile(unused, []byte(state+"mqtt:\n  brokers: [\"tcp://127.0.0.1:1883\"]\n  tls: {ca: "+ca+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runConfigCLI("config", "check", unused); code != 0 || strings.Contains(errs, "holds no PEM certificate") || !strings.Contains(out, "none of which uses TLS") {
		t.Errorf("empty CA with a plain broker: exit %d, want 0 and the warning alone; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}
