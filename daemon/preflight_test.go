package daemon

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/model"
)

// config check loads the model to see that it loads, not to time the
// backbone's variants: with optimize auto on a fresh state folder that
// took 6 s and logged INFO lines among its output (a trial).
func TestPreflightLoadsWithoutTiming(t *testing.T) {
	det := syntheticDetector(t)
	cfg := testDefaults(t)
	cfg.Model.Path = filepath.Join(t.TempDir(), "m.safetensors")
	cfg.Model.Optimize = "auto"
	if err := det.Save(cfg.Model.Path); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var loads bool
	for _, f := range Preflight(cfg, slog.New(slog.NewTextHandler(&logs, nil))) {
		if f.Fatal {
			t.Errorf("fatal finding: %s", f)
		}
		loads = loads || (f.Field == "model.path" && strings.Contains(f.Msg, " loads: "))
	}
	if !loads || strings.Contains(logs.String(), "backbone") {
		t.Errorf("model loads: %v; log:\n%s", loads, logs.String())
	}
}

// A model refused for its size is sound: config check and the start file
// it under model.memory_budget and say what to change, not "fit one" under
// model.path (a new user's trial: the advice to refit a model inspectd had
// fitted itself).
func TestModelOverBudgetNamesTheBudget(t *testing.T) {
	det := syntheticDetector(t)
	cfg := testDefaults(t)
	cfg.Model.Path = filepath.Join(t.TempDir(), "m.safetensors")
	if err := det.Save(cfg.Model.Path); err != nil {
		t.Fatal(err)
	}
	cfg.Model.MemoryBudget = config.FixedMemoryBudget(config.Size(det.Info().StateBytes / 2))
	var found bool
	for _, f := range Preflight(cfg, testLogger(t)) {
		if f.Field == "model.path" && f.Fatal {
			t.Errorf("filed under model.path: %s", f)
		}
		if f.Field == "model.memory_budget" {
			found = f.Fatal && strings.Contains(f.Msg, "over the memory budget") && strings.Contains(f.Msg, "raise model.memory_budget")
			if !found {
				t.Errorf("finding: %s", f)
			}
		}
	}
	if !found {
		t.Error("config check does not name model.memory_budget")
	}
	mopts, err := ModelOptions(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = openDetector(context.Background(), cfg, mopts, RunOptions{Logger: testLogger(t)})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "model.memory_budget" || !errors.Is(err, model.ErrOverBudget) {
		t.Errorf("start: %v, want a model.memory_budget error wrapping model.ErrOverBudget", err)
	}
}

// A start that fails because state_dir is a file says so once; it does
// not claim a configuration push was reverted (a trial: an ERROR line
// "configuration push waiting for config-confirm does not start;
// reverted" with push="", though nothing had been pushed).
func TestStateDirFileNoRevertClaim(t *testing.T) {
	dir := t.TempDir()
	state := plainFile(t, dir, "state", "not a folder")
	cfgPath := filepath.Join(dir, "inspectd.yaml")
	if err := os.WriteFile(cfgPath, []byte("state_dir: "+state+"\nhttp: {listen: \"\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	err := Run(context.Background(), RunOptions{ConfigPath: cfgPath, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil || !strings.Contains(err.Error(), "state_dir: "+state) {
		t.Fatalf("Run: %v, want the state_dir error", err)
	}
	if strings.Contains(logs.String(), "revert") || strings.Contains(logs.String(), "level=ERROR") || strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("log claims a revert:\n%s", logs.String())
	}
}

// The configuration's least ROI side is the model's least frame side
// (config may not import model, so the number is written twice).
func TestMinROISideIsMinFrameSide(t *testing.T) {
	if config.MinROISide != model.MinFrameSide {
		t.Errorf("config.MinROISide %d, model.MinFrameSide %d", config.MinROISide, model.MinFrameSide)
	}
}

// TestMQTTTLSFilesNamedByKey: mqtt.tls files that the start refuses (a
// folder, an empty file or a missing one as the CA, a key that is not the
// certificate's) passed config check, and the start named mqttpub's field
// (CAFile), not the key. Both now name the key, the file and what it
// should hold; good files pass.
func TestMQTTTLSFilesNamedByKey(t *testing.T) {
	t.Parallel()
	wordsOnly(t)
	dir := t.TempDir()
	certs, err := testbroker.GenerateCerts(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name      string
		tls       config.TLS
		field     string // "" for no finding
		file, why string
	}{
		{"ca folder", config.TLS{CA: filepath.Join(dir, "pki")}, "mqtt.tls.ca", filepath.Join(dir, "pki"), "is a directory"},
		{"ca empty", config.TLS{CA: empty}, "mqtt.tls.ca", empty, "holds no PEM certificate"},
		{"ca missing", config.TLS{CA: missing}, "mqtt.tls.ca", missing, "no such file"},
		{"key of another", config.TLS{CA: certs.CAFile, Cert: certs.ClientCertFile, Key: certs.ServerKeyFile}, "mqtt.tls.key", certs.ServerKeyFile, "does not match"},
		{"cert missing", config.TLS{Cert: missing, Key: certs.ClientKeyFile}, "mqtt.tls.cert", missing, "no such file"},
		{"cert empty", config.TLS{Cert: empty, Key: certs.ClientKeyFile}, "mqtt.tls.cert", empty, "PEM"},
		{"key missing", config.TLS{Cert: certs.ClientCertFile, Key: missing}, "mqtt.tls.key", missing, "no such file"},
		{"good", config.TLS{CA: certs.CAFile, Cert: certs.ClientCertFile, Key: certs.ClientKeyFile}, "", "", ""},
	} {
		cfg := testDefaults(t)
		cfg.MQTT.Brokers = []string{"ssl://127.0.0.1:8883"}
		cfg.MQTT.TLS = tc.tls
		var found []Finding
		for _, f := range Preflight(cfg, testLogger(t)) {
			if strings.HasPrefix(f.Field, "mqtt") {
				found = append(found, f)
			}
		}
		switch {
		case tc.field == "" && len(found) != 0:
			t.Errorf("%s: findings %v, want none", tc.name, found)
		case tc.field != "" && (len(found) != 1 || !found[0].Fatal || found[0].Field != tc.field ||
			!strings.Contains(found[0].Msg, tc.file) || !strings.Contains(found[0].Msg, tc.why) || !strings.Contains(found[0].Msg, "expected")):
			t.Errorf("%s: findings %v, want one problem on %s naming %s, %q and what is expected", tc.name, found, tc.field, tc.file, tc.why)
		}
	}

	// With plain brokers only, mqtt.tls is not used (config check warns
	// so): a stale file it names stopped the start all the same.
	cfg := testDefaults(t)
	cfg.MQTT.Brokers = []string{"tcp://127.0.0.1:1883"}
	cfg.MQTT.TLS = config.TLS{CA: filepath.Join(dir, "pki")}
	for _, f := range Preflight(cfg, testLogger(t)) {
		if strings.HasPrefix(f.Field, "mqtt.tls") && f.Fatal {
			t.Errorf("plain brokers: a problem on an unused mqtt.tls file: %v", f)
		}
	}
	if o := tlsOptions(&cfg.MQTT); o != (mqttpub.TLSOptions{}) {
		t.Errorf("plain brokers: TLS options %+v handed to the connections, which read their files; want none", o)
	}

	// The start says it with the same words, before it connects.
	r := startDaemon(t, func(r *runningDaemon) string {
		return strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {brokers: [\"ssl://127.0.0.1:8883\"], tls: {ca: "+filepath.Join(dir, "pki")+"}, ", 1)
	})
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err == nil || !strings.Contains(err.Error(), "mqtt.tls.ca: "+filepath.Join(dir, "pki")+": is a directory") || strings.Contains(err.Error(), "CAFile") {
			t.Errorf("start: %v, want it to name mqtt.tls.ca and the folder", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the daemon did not stop on its CA folder")
	}
}

// TestReloadRefusesBadTLSFile: a SIGHUP to a file whose mqtt.tls.ca the
// connection would refuse is refused with the start's words, before the
// running connection is touched (it was closed, the new one failed on
// "mqtt TLS CAFile" and the old one was opened again).
func TestReloadRefusesBadTLSFile(t *testing.T) {
	r := startDaemon(t, nil)
	r.daemon()
	r.waitFor("connected", func() bool { return strings.Contains(r.logs.String(), "mqtt connected") }, &r.logs)
	ca := filepath.Join(r.dir, "pki")
	if err := os.Mkdir(ca, 0o755); err != nil {
		t.Fatal(err)
	}
	r.write(strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {brokers: [\"ssl://127.0.0.1:8883\"], tls: {ca: "+ca+"}, ", 1))
	mark := len(r.logs.String())
	r.hup()
	r.waitFor("the reload refused", func() bool { return testutil.ToFloat64(r.daemon().metrics.ReloadFailures) == 1 })
	after := r.logs.String()[mark:]
	if !strings.Contains(after, "configuration not reloaded") || !strings.Contains(after, "mqtt.tls.ca: "+ca+": is a directory") {
		t.Errorf("the refusal does not name mqtt.tls.ca and %s:\n%s", ca, after)
	}
	for _, s := range []string{"mqtt closed", "mqtt connecting", "mqtt connection lost", "offline", "embedded MQTT broker stopped", "CAFile"} {
		if strings.Contains(after, s) {
			t.Errorf("the refused reload touched the running connection (%q):\n%s", s, after)
		}
	}
	if got := r.daemon().Config().MQTT.Brokers; len(got) != 0 {
		t.Errorf("brokers %v after the refused reload, want the running embedded one", got)
	}
	if st := r.daemon().Status(); !strings.Contains(st.LastError, "configuration not reloaded") {
		t.Errorf("status last_error %q after the refused reload, want it named", st.LastError)
	}
	r.moreInspections(2)
	// The good file back: status no longer reports the refusal (an
	// operator read it as a box still failing).
	r.write(r.baseYAML("cell1"))
	mark = len(r.logs.String())
	r.hup()
	r.waitFor("the good file reloaded", func() bool { return strings.Contains(r.logs.String()[mark:], "configuration unchanged") }, &r.logs)
	if st := r.daemon().Status(); st.LastError != "" {
		t.Errorf("status last_error %q after the good file was reloaded, want none", st.LastError)
	}
}

// TestMQTTTLSDamagedPEMNamedByKey: `config check` (Preflight, CheckMQTTTLS)
// said "holds no PEM certificate" of a CA or client certificate whose PEM
// body is not valid base64; it now says so, naming the key and the file.
func TestMQTTTLSDamagedPEMNamedByKey(t *testing.T) {
	dir := t.TempDir()
	certs, err := testbroker.GenerateCerts(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	damage := func(src string) string {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		lines[2] = "*" + lines[2][1:]
		out := filepath.Join(dir, "damaged-"+filepath.Base(src))
		if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		return out
	}
	badCA, badCert := damage(certs.CAFile), damage(certs.ClientCertFile)
	for _, tc := range []struct {
		tls         config.TLS
		field, file string
	}{
		{config.TLS{CA: badCA}, "mqtt.tls.ca", badCA},
		{config.TLS{CA: certs.CAFile, Cert: badCert, Key: certs.ClientKeyFile}, "mqtt.tls.cert", badCert},
	} {
		cfg := testDefaults(t)
		cfg.MQTT.Brokers = []string{"ssl://127.0.0.1:8883"}
		cfg.MQTT.TLS = tc.tls
		var found []Finding
		for _, f := range Preflight(cfg, testLogger(t)) {
			if strings.HasPrefix(f.Field, "mqtt") {
				found = append(found, f)
			}
		}
		if len(found) != 1 || !found[0].Fatal || found[0].Field != tc.field || !strings.Contains(found[0].Msg, tc.file+": the body of its PEM block") ||
			!strings.Contains(found[0].Msg, "not valid base64 at line 3") || strings.Contains(found[0].Msg, "no PEM") {
			t.Errorf("%s %s: findings %v, want one naming the file and its body not valid base64", tc.field, tc.file, found)
		}
	}
}

// A file source whose image capture.roi does not fit in stops run at
// start (every frame would be refused), yet config check said ok (a
// trial: a 64x48 file with a 96x96 roi). It is now a problem under
// capture.roi naming the file, its size and the roi; a roi exactly the
// image's size, or reaching its edge, is no problem.
func TestPreflightFileSourceROIMisfit(t *testing.T) {
	img := filepath.Join(t.TempDir(), "frame.png")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, image.NewGray(image.Rect(0, 0, 64, 48))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		roi  config.ROI
		want string // "" when it fits
	}{
		{config.ROI{X: 16, Y: 16, Width: 96, Height: 96}, "roi x=16 y=16 96x96 does not fit in the 64x48 image of file " + img},
		{config.ROI{X: 64, Y: 0}, "roi x=64 y=0 width to the edge height to the edge does not fit in the 64x48 image of file " + img},
		{config.ROI{Width: 64, Height: 48}, ""},
		{config.ROI{X: 48, Y: 32}, ""},
	} {
		cfg := testDefaults(t)
		cfg.Capture.Source = config.SourceFile
		cfg.Capture.File.Path = img
		cfg.Capture.ROI = tc.roi
		var got *Finding
		for _, fd := range Preflight(cfg, testLogger(t)) {
			if fd.Field == "capture.roi" {
				got = &fd
			}
		}
		switch {
		case tc.want == "" && got != nil:
			t.Errorf("roi %+v fits the 64x48 image: %s", tc.roi, got)
		case tc.want != "" && (got == nil || !got.Fatal || !strings.Contains(got.Msg, tc.want)):
			t.Errorf("roi %+v: finding %v, want a problem saying %q", tc.roi, got, tc.want)
		}
		// The start refuses what config check refuses, and only that.
		src, _, _, err := OpenSource(cfg, testLogger(t))
		if src != nil {
			_ = src.Close()
		}
		if (err != nil) != (tc.want != "") {
			t.Errorf("roi %+v: start's source: %v, config check's finding: %v", tc.roi, err, got)
		}
	}
}

// unwritableFolder is a folder that refuses a new file even to root, which
// may run these tests and writes any folder whatever its permissions: the
// kernel's /sys and /proc take no file that is not theirs. "" when neither
// does here.
func unwritableFolder() string {
	for _, dir := range []string{"/sys", "/proc"} {
		if st, err := os.Stat(dir); err == nil && st.IsDir() && tryWrite(dir) != nil {
			return dir
		}
	}
	return ""
}

// TestModelFolderThatCannotBeWritten: a missing model file on the synthetic
// line, in a folder that is there but cannot be written, is refused by
// config check and by the start (and a reload, a push: openDetector) in
// the same words, naming model.path and the folder, before any fit.
// config check ran a write test of its own and said it otherwise
// ("… could not be saved there: open /sys/.inspectd-check-…: permission
// denied"), without the folder's name as the daemon gives it; the refusal
// had no test, as root writes a folder without write permission.
func TestModelFolderThatCannotBeWritten(t *testing.T) {
	dir := unwritableFolder()
	if dir == "" {
		t.Skip("neither /sys nor /proc is here a folder that refuses a new file to this user: no folder to test the refusal on")
	}
	cfg := testDefaults(t)
	cfg.Model.Path = filepath.Join(dir, "line3.safetensors")
	if cfg.Capture.Source != config.SourceSynthetic {
		t.Fatalf("default source %s, want synthetic", cfg.Capture.Source)
	}
	var check *Finding
	for _, f := range Preflight(cfg, testLogger(t)) {
		if f.Field == "model.path" {
			check = &f
		}
	}
	if check == nil || !check.Fatal || !strings.Contains(check.Msg, "folder "+dir+" cannot be written") {
		t.Fatalf("config check: %v, want a fatal model.path finding naming the folder %s", check, dir)
	}

	mopts, err := ModelOptions(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	det, _, err := openDetector(context.Background(), cfg, mopts, RunOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), FitFrames: 12})
	if det != nil {
		det.Close()
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "model.path" || fe.Err.Error() != check.Msg {
		t.Errorf("start: %v, want model.path refused in config check's words %q", err, check.Msg)
	}
	if strings.Contains(logs.String(), "fitting") {
		t.Errorf("a model was fitted before the refusal:\n%s", logs.String())
	}
}

// TestPreflightCameraByIDName: a capture.camera.device given as the bare
// name of a /dev/v4l/by-id link, which the camera opens as
// /dev/v4l/by-id/NAME, was looked up by config check in the working
// directory, so a camera that is there was warned of as missing (and a
// file of that name in the working directory silenced the warning); it is
// now looked up where the camera opens it, and the warning names that
// path. A device given as a path is looked up as given (/dev/null: a
// character device, the kind a camera's node is; a regular file is
// warned of, TestPreflightCameraThatIsNoDevice).
func TestPreflightCameraByIDName(t *testing.T) {
	const name = "usb-Acme_Line_Camera_0001-video-index0"
	wd := t.TempDir()
	t.Chdir(wd)
	node := "/dev/null"
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	find := func(device string) *Finding {
		cfg := testDefaults(t)
		cfg.Capture.Source = config.SourceCamera
		cfg.Capture.Camera.Device = device
		for _, fd := range Preflight(cfg, testLogger(t)) {
			if fd.Field == "capture.camera.device" {
				return &fd
			}
		}
		return nil
	}
	if _, err := os.Stat(capture.DevicePath(name)); err == nil {
		t.Skipf("%s is on this machine", capture.DevicePath(name))
	}
	if got := find(name); got == nil || !got.Warn || !strings.Contains(got.Msg, "/dev/v4l/by-id/"+name) {
		t.Errorf("camera %s (a file of that name in the working directory, no such by-id link): finding %v, want a warning naming /dev/v4l/by-id/%s", name, got, name)
	}
	if got := find(node); got != nil {
		t.Errorf("camera %s, which is there: %v", node, got)
	}
}

// TestPreflightCameraThatIsNoDevice: a capture.camera.device that is a
// regular file (an image meant for capture.file.path), a folder or a named
// pipe was "present" to config check, which said ok, while inspectd
// started and retried it for ever ("not a V4L2 device"). It is a warning
// now, as a camera that is not there is, naming what is there.
func TestPreflightCameraThatIsNoDevice(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "frame.png")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for dev, kind := range map[string]string{file: "a regular file", dir: "a folder"} {
		cfg := testDefaults(t)
		cfg.Capture.Source = config.SourceCamera
		cfg.Capture.Camera.Device = dev
		var got *Finding
		for _, fd := range Preflight(cfg, testLogger(t)) {
			if fd.Field == "capture.camera.device" {
				got = &fd
			}
		}
		if want := dev + " is " + kind + ", not a V4L2 device: inspectd starts, but retries it without ever inspecting"; got == nil || !got.Warn || got.Fatal || !strings.Contains(got.Msg, want) {
			t.Errorf("camera %s: finding %v, want a warning saying %q", dev, got, want)
		}
	}
}
