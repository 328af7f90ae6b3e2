package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon/internal/statelock"
	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/remote"
	"github.com/inspectd/inspectd/model"
)

// operator is a SCADA-side MQTT client that sends commands and collects
// the replies of every box under the prefix.
type operator struct {
	t  *testing.T
	c  mqtt.Client
	mu sync.Mutex
	// replies by device, then by request id.
	replies map[string]map[string][]map[string]any
}

func newOperator(t *testing.T, url string) *operator {
	t.Helper()
	op := &operator{t: t, replies: map[string]map[string][]map[string]any{}}
	op.c = testbroker.Connect(t, mqtt.NewClientOptions().AddBroker(url).SetClientID("operator-"+strconv.Itoa(testbroker.FreePort(t))),
		testbroker.Sub{Topic: "inspectd/+/reply/+", QoS: 1, Handler: func(_ mqtt.Client, m mqtt.Message) {
			var r map[string]any
			if err := json.Unmarshal(m.Payload(), &r); err != nil {
				t.Errorf("reply %s: %v", m.Payload(), err)
				return
			}
			dev := strings.Split(m.Topic(), "/")[1]
			id, _ := r["id"].(string)
			op.mu.Lock()
			if op.replies[dev] == nil {
				op.replies[dev] = map[string][]map[string]any{}
			}
			op.replies[dev][id] = append(op.replies[dev][id], r)
			op.mu.Unlock()
		}})
	return op
}

func (op *operator) send(topic, payload string) {
	op.t.Helper()
	if tok := op.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		op.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func (op *operator) got(dev, id string) []map[string]any {
	op.mu.Lock()
	defer op.mu.Unlock()
	return append([]map[string]any(nil), op.replies[dev][id]...)
}

// awaitCommands waits until box dev answers commands: its command
// subscription is made on connect, after the daemon has started.
func (op *operator) awaitCommands(r *runningDaemon, dev string) {
	op.t.Helper()
	r.waitFor(dev+" remote commands", func() bool {
		op.send("inspectd/"+dev+"/cmd/status", `{"id":"hello"}`)
		time.Sleep(300 * time.Millisecond)
		return len(op.got(dev, "hello")) > 0
	})
}

// reply sends a command to one box and waits for its reply.
func (op *operator) reply(dev, cmd, payload string, timeout time.Duration) map[string]any {
	op.t.Helper()
	var req struct{ ID string }
	_ = json.Unmarshal([]byte(payload), &req)
	if req.ID == "" {
		req.ID = "raw-" + strconv.Itoa(len(payload))
	}
	op.send("inspectd/"+dev+"/cmd/"+cmd, payload)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r := op.got(dev, req.ID); len(r) > 0 {
			return r[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	op.t.Fatalf("no reply from %s to %s %s within %v", dev, cmd, payload, timeout)
	return nil
}

// remoteYAML is baseYAML on broker url with unsigned remote commands on.
func remoteYAML(url, deviceID, extra string) func(r *runningDaemon) string {
	return func(r *runningDaemon) string {
		y := strings.Replace(r.baseYAML(deviceID), "mqtt: {embedded_listen: 127.0.0.1:"+strconv.Itoa(r.port)+"}",
			"mqtt: {brokers: ["+url+"], max_reconnect_interval: 1s, username: line, password: s3cret-pw"+extra+"}", 1)
		return y + "remote: {allow_unsigned: true, max_payload: 64KiB}\n"
	}
}

// TestRemoteConfigPush: a valid push is applied, answered and still in
// force after a restart, and config-get shows it with the password
// redacted; invalid, non-JSON, oversize, duplicate-key and alias-bomb
// pushes are each refused precisely while inspection goes on.
func TestRemoteConfigPush(t *testing.T) {
	t.Parallel()
	op, r, d := startPushRig(t, "cell1", nil)
	r.moreInspections(2)

	rep := op.reply("cell1", "config", `{"id":"c1","config":{"mqtt":{"result_qos":1},"capture":{"synthetic":{"fps":15}}},"version":3}`, 60*time.Second)
	if rep["ok"] != true {
		t.Fatalf("valid push refused: %v", rep)
	}
	if c := d.Config(); c.MQTT.ResultQoS != 1 || c.Capture.Synthetic.FPS != 15 {
		t.Errorf("config in force after the push: result_qos %d fps %d", c.MQTT.ResultQoS, c.Capture.Synthetic.FPS)
	}
	onDisk, err := config.Load(r.cfgPath)
	if err != nil || onDisk.MQTT.ResultQoS != 1 {
		t.Errorf("config file after the push: %v result_qos %v", err, onDisk)
	}
	r.moreInspections(2)

	get := op.reply("cell1", "config-get", `{"id":"g1"}`, 30*time.Second)
	text, _ := json.Marshal(get)
	pw, _ := get["config"].(map[string]any)["mqtt"].(map[string]any)["password"].(string)
	if strings.Contains(string(text), "s3cret-pw") || pw != "<redacted>" {
		t.Errorf("config-get shows the password or no redaction (%q): %s", pw, text)
	}
	if !strings.Contains(string(text), `"result_qos":1`) {
		t.Errorf("config-get does not show the pushed setting: %s", text)
	}

	before := r.inspections()
	bomb := `a: &a [x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c]\n`
	for _, bad := range []struct{ name, payload, code string }{
		{"out of range", `{"id":"b1","config":{"model":{"features":5000}}}`, "invalid"},
		{"unknown key", `{"id":"b2","config":{"mqtt":{"retain":true}}}`, "invalid"},
		{"not JSON", `config please`, "invalid"},
		{"duplicate key", `{"id":"b4","config":{"mqtt":{"result_qos":0,"result_qos":1}}}`, "invalid"},
		{"alias bomb", `{"id":"b5","config":"` + bomb + `"}`, "invalid"},
		{"oversize", `{"id":"b6","config":{"device_id":"` + strings.Repeat("x", 70<<10) + `"}}`, "too_large"},
		// Refused as a file's would be (ConfigRules), not applied and
		// failed at the model's load.
		{"bad recipe", `{"id":"b7","config":{"model":{"recipe":"v9-fit-raw"}}}`, "invalid"},
	} {
		op.send("inspectd/cell1/cmd/config", bad.payload)
		var rep map[string]any
		r.waitFor("the refusal of "+bad.name, func() bool {
			op.mu.Lock()
			defer op.mu.Unlock()
			for _, rs := range op.replies["cell1"] {
				for _, x := range rs {
					if x["ok"] == false && x["code"] == bad.code && !seenRefusal(x) {
						rep = x
						x["_seen"] = true
						return true
					}
				}
			}
			return false
		})
		if rep["error"] == nil || rep["error"] == "" {
			t.Errorf("%s: refusal without a reason: %v", bad.name, rep)
		}
		if bad.name == "bad recipe" && rep["field"] != "config.model.recipe" {
			t.Errorf("%s: refusal names field %v, want config.model.recipe: %v", bad.name, rep["field"], rep)
		}
		t.Logf("%s: %v", bad.name, rep["error"])
	}
	r.moreInspections(3)
	if c := d.Config(); c.MQTT.ResultQoS != 1 || c.Model.Features != 16 {
		t.Errorf("a refused push changed the config in force: %+v", c.MQTT)
	}
	t.Logf("%d inspections while the refusals were handled", r.inspections()-before)

	// The pushed configuration is what the next start runs on.
	r.cancel()
	<-r.done
	r.done <- nil
	again, err := LoadConfig(r.cfgPath)
	if err != nil || again.MQTT.ResultQoS != 1 || again.Capture.Synthetic.FPS != 15 {
		t.Errorf("after a restart the config file holds %v (err %v)", again, err)
	}
}

func seenRefusal(x map[string]any) bool { return x["_seen"] == true }

// writePNGs renders n synthetic frames (normal, or all with defects) into
// dir as PNG files.
func writePNGs(t *testing.T, dir string, n int, seed uint64, defects bool) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := capture.SyntheticOptions{Width: 160, Height: 120, Seed: seed, NormalOnly: !defects}
	if defects {
		opts.DefectRate = 1
	}
	src, err := capture.NewSynthetic(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var f capture.Frame
		if err := src.Next(t.Context(), &f); err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dir, fmt.Sprintf("part%03d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(out, f.Image); err != nil {
			t.Fatal(err)
		}
		out.Close()
	}
}

// TestRemoteRefitAndRollback: a refit from a folder of normal images on
// the box changes the model id while inspection goes on; defective parts
// still score above the new threshold; rollback brings the old model back.
func TestRemoteRefitAndRollback(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("fits a model")
	}
	good := filepath.Join(t.TempDir(), "good")
	writePNGs(t, good, 48, 77, false)
	op, r, d := startPushRig(t, "cell1", nil)
	oldID := d.ModelInfo().ID
	before := r.inspections()
	// 48 images leave a handful held out: the threshold is rough, so the
	// false-alarm gate is loosened (its own tests are in daemon/remote).
	rep := op.reply("cell1", "refit", `{"id":"f1","folder":"`+good+`","max_false_alarm_rate":0.5}`, 3*time.Minute)
	if rep["ok"] != true {
		t.Fatalf("refit refused or failed: %v", rep)
	}
	newID := d.ModelInfo().ID
	if newID == oldID || rep["model_id"] != newID {
		t.Fatalf("model %s after the refit (reply %v), was %s", newID, rep["model_id"], oldID)
	}
	t.Logf("refit: %v; %d inspections during it", rep, r.inspections()-before)
	// The images the threshold rests on most, as fit prints them: the
	// folder's files, highest first, in threshold units.
	hs, _ := rep["threshold_highest"].([]any)
	if len(hs) != model.HighestImages {
		t.Errorf("refit reply threshold_highest %v, want the %d highest-scoring images", rep["threshold_highest"], model.HighestImages)
	}
	prev := math.Inf(1)
	for _, h := range hs {
		m, _ := h.(map[string]any)
		name, _ := m["image"].(string)
		score, _ := m["score"].(float64)
		if !strings.HasPrefix(name, good+string(filepath.Separator)) || !(score > 0) || score > prev {
			t.Errorf("refit reply threshold_highest %v: want files of %s with positive scores, highest first", hs, good)
		}
		prev = score
	}

	// The line's noise against its contrast, as fit prints it.
	if ln, _ := rep["line_noise"].(map[string]any); ln == nil || ln["images"] != float64(model.LineNoiseImages) || !(ln["noise"].(float64) >= 0) ||
		!(ln["contrast"].(float64) > 0) || ln["noisy"] == nil {
		t.Errorf("refit reply line_noise %v, want images %d, noise, contrast and noisy", rep["line_noise"], model.LineNoiseImages)
	}
	// The new model's summary (as status shows it) says it too.
	if m, _ := rep["model"].(map[string]any); m == nil || fmt.Sprint(m["line_noise"]) != fmt.Sprint(rep["line_noise"]) {
		t.Errorf("refit reply model %v: want its line_noise, the reply's %v", rep["model"], rep["line_noise"])
	}

	// Defective parts score above the new model's threshold.
	cfg := d.Config()
	mopts, err := ModelOptions(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	det, err := model.Load(cfg.ModelPath(), mopts)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	bad := filepath.Join(t.TempDir(), "bad")
	writePNGs(t, bad, 10, 991, true)
	flagged := 0
	files, _ := filepath.Glob(filepath.Join(bad, "*.png"))
	for _, f := range files {
		img := loadImage(t, f)
		res, err := det.Inspect(img)
		if err != nil {
			t.Fatal(err)
		}
		if res.Anomalous {
			flagged++
		}
	}
	if flagged < len(files)*8/10 {
		t.Errorf("the refitted model flags %d of %d defective parts", flagged, len(files))
	}
	t.Logf("refitted model flags %d of %d defective parts", flagged, len(files))

	rb := op.reply("cell1", "rollback", `{"id":"r1","target":"model"}`, time.Minute)
	if rb["ok"] != true || d.ModelInfo().ID != oldID {
		t.Fatalf("rollback: %v; model %s, want %s", rb, d.ModelInfo().ID, oldID)
	}
	r.moreInspections(2)
}

func loadImage(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestFleetConfigPush: three boxes on one broker; a push to fleet/cmd/config
// changes all three, each replying once on its own topic; a push to a
// group changes only the boxes in it.
func TestFleetConfigPush(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b.URL)
	boxes := map[string]*runningDaemon{}
	for _, dev := range []string{"box1", "box2", "box3"} {
		groups := ""
		if dev != "box3" {
			groups = ", groups: [line3]"
		}
		boxes[dev] = startDaemon(t, remoteYAML(b.URL, dev, groups))
	}
	for dev, r := range boxes {
		r.daemon()
		op.awaitCommands(r, dev)
	}
	op.send("inspectd/fleet/cmd/config", `{"id":"fleet-1","config":{"mqtt":{"result_max_rate":2}}}`)
	for dev, r := range boxes {
		r.waitFor(dev+"'s fleet reply", func() bool { return len(op.got(dev, "fleet-1")) > 0 })
		if got := r.daemon().Config().MQTT.ResultMaxRate; got != 2 {
			t.Errorf("%s: result_max_rate %v after the fleet push", dev, got)
		}
	}
	op.send("inspectd/group/line3/cmd/config", `{"id":"group-1","config":{"mqtt":{"result_max_rate":3}}}`)
	for _, dev := range []string{"box1", "box2"} {
		boxes[dev].waitFor(dev+"'s group reply", func() bool { return len(op.got(dev, "group-1")) > 0 })
		if got := boxes[dev].daemon().Config().MQTT.ResultMaxRate; got != 3 {
			t.Errorf("%s: result_max_rate %v after the group push", dev, got)
		}
	}
	time.Sleep(time.Second) // box3 must stay silent
	if n := len(op.got("box3", "group-1")); n != 0 || boxes["box3"].daemon().Config().MQTT.ResultMaxRate != 2 {
		t.Errorf("box3 (not in line3) answered the group push %d times", n)
	}
	for dev := range boxes {
		if n := len(op.got(dev, "fleet-1")); n != 1 {
			t.Errorf("%s replied %d times to the fleet push", dev, n)
		}
	}
}

// TestPushToUnreachableBrokerReverts: an operator moves a box to a broker
// address with a typo. Without "confirm" (or "force") the push is refused;
// with it, the box goes to the address, hears nothing there, and at the
// deadline comes back on the broker it came from by itself, says so on
// its config-revert topic and answers commands again (real mosquitto).
func TestPushToUnreachableBrokerReverts(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b.URL)
	reverts := make(chan []byte, 4)
	testbroker.Connect(t, mqtt.NewClientOptions().AddBroker(b.URL).SetClientID("revert-watch"),
		testbroker.Sub{Topic: "inspectd/+/config-revert", QoS: 1, Handler: func(_ mqtt.Client, m mqtt.Message) { reverts <- m.Payload() }})
	r := startDaemon(t, remoteYAML(b.URL, "cell7", ""))
	d := r.daemon()
	op.awaitCommands(r, "cell7")
	typo := "tcp://127.0.0.1:" + strconv.Itoa(testbroker.FreePort(t)) // nothing listens there
	push := `{"id":"%s","config":{"mqtt":{"brokers":["` + typo + `"]}}%s}`
	rep := op.reply("cell7", "config", fmt.Sprintf(push, "m1", ""), 30*time.Second)
	if rep["ok"] != false || rep["field"] != "config.mqtt.brokers" {
		t.Fatalf("a push moving the broker without confirm: %v", rep)
	}
	op.send("inspectd/cell7/cmd/config", fmt.Sprintf(push, "m2", `,"confirm":"5s"`))
	r.waitFor("the push to move the box", func() bool { return slices.Equal(d.Config().MQTT.Brokers, []string{typo}) })
	select {
	case ev := <-reverts:
		var e map[string]any
		if err := json.Unmarshal(ev, &e); err != nil || e["id"] != "m2" || e["reverted"] != true {
			t.Errorf("config-revert event %s (%v)", ev, err)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("no config-revert event within 90 s; log:\n%s", r.logs.String())
	}
	if got := d.Config().MQTT.Brokers; !slices.Equal(got, []string{b.URL}) {
		t.Errorf("brokers after the revert: %v", got)
	}
	if rep := op.reply("cell7", "status", `{"id":"s2"}`, 60*time.Second); rep["ok"] != true || rep["config_pending"] != nil {
		t.Errorf("status after the revert: %v", rep)
	}
	onDisk, err := LoadConfig(r.cfgPath)
	if err != nil || !slices.Equal(onDisk.MQTT.Brokers, []string{b.URL}) {
		t.Errorf("the file after the revert: %v (%v)", onDisk, err)
	}
}

// TestPendingPushRevertsAfterRestart: the box is stopped (a power cut)
// while a push that moved it to a dead broker and to another state_dir
// waits for config-confirm, and started again after the deadline: once it
// runs, it reverts the push, to the broker and the state_dir it came from
// (real mosquitto).
func TestPendingPushRevertsAfterRestart(t *testing.T) {
	t.Parallel()
	op, r, d := startPushRig(t, "cell8", nil)
	broker := d.Config().MQTT.Brokers
	typo := "tcp://127.0.0.1:" + strconv.Itoa(testbroker.FreePort(t))
	state, moved := d.Config().StateDir, filepath.Join(r.dir, "state2")
	op.send("inspectd/cell8/cmd/config", `{"id":"p1","config":{"state_dir":"`+moved+`","mqtt":{"brokers":["`+typo+`"]}},"confirm":"5s"}`)
	r.waitFor("the push to move the box", func() bool { return slices.Equal(d.Config().MQTT.Brokers, []string{typo}) })
	if _, err := os.Stat(filepath.Join(moved, remote.StateFile)); err != nil {
		t.Errorf("the request table did not follow state_dir: %v", err)
	}
	r.stop()
	time.Sleep(6 * time.Second) // past the deadline, stopped
	r.run()
	d = r.daemon()
	r.waitFor("the revert after the restart", func() bool {
		c := d.Config()
		return slices.Equal(c.MQTT.Brokers, broker) && c.StateDir == state
	})
	if rep := op.reply("cell8", "status", `{"id":"s2"}`, 60*time.Second); rep["ok"] != true || rep["config_pending"] != nil {
		t.Errorf("status after the revert: %v", rep)
	}
	if _, err := os.Stat(filepath.Join(state, remote.StateFile)); err != nil {
		t.Errorf("the request table did not come back with state_dir: %v", err)
	}
}

// TestUnstartablePushReverted: the box restarts on a pushed configuration
// that waits for config-confirm and cannot start (its embedded broker's
// port taken meanwhile): Run fails saying so, with the configuration
// before the push back in the file for the next start.
func TestUnstartablePushReverted(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	base := "device_id: cell6\nstate_dir: " + state + "\n" + syntheticLine + "\n" +
		"model: {features: 16, min_features: 16}\nhttp: {listen: \"\"}\nremote: {allow_unsigned: true}\n"
	good := base + "mqtt: {embedded_listen: 127.0.0.1:" + strconv.Itoa(testbroker.FreePort(t)) + "}\n"
	pushed := base + "mqtt: {embedded_listen: " + taken.Addr().String() + "}\n"
	cfgPath := filepath.Join(dir, "inspectd.yaml")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(config.PreviousPath(cfgPath), []byte(good), 0o600))
	must(os.WriteFile(cfgPath, []byte(pushed), 0o600))
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	table := fmt.Sprintf(`{"format":1,"requests":[],"nonces":{},"config_version":{"current":0,"previous":0},`+
		`"config_pending":{"id":"p6","origin":"device","deadline":%q,"before_sha256":%q,"after_sha256":%q}}`,
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339), sum(good), sum(pushed))
	must(os.WriteFile(filepath.Join(state, remote.StateFile), []byte(table), 0o600))

	cfg, err := LoadConfig(cfgPath)
	must(err)
	// As inspectd run calls it: the configuration loaded, and its file.
	err = Run(t.Context(), RunOptions{ConfigPath: cfgPath, Config: cfg, Print: io.Discard, FitFrames: 12,
		Logger: slog.New(slog.NewTextHandler(testWriter(t), nil))})
	if err == nil || !strings.Contains(err.Error(), `configuration push "p6"`) {
		t.Fatalf("Run on an unstartable pushed configuration: %v", err)
	}
	c, err := LoadConfig(cfgPath)
	if err != nil || c.MQTT.EmbeddedListen == taken.Addr().String() {
		t.Errorf("the file after the failed start: %v, %v", c, err)
	}
	// Recorded as the deadline's revert is (no trace was left): why the
	// wait ended, naming the start's error, and the config-revert event
	// for the next start to publish.
	if b, err := os.ReadFile(filepath.Join(state, remote.EndedFile)); err != nil || !strings.Contains(string(b), `"id":"p6"`) || !strings.Contains(string(b), taken.Addr().String()) {
		t.Errorf("why the wait ended not recorded: %s %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(state, remote.StateFile)); err != nil || !strings.Contains(string(b), `"config_revert_unpublished":{`) || strings.Contains(string(b), "config_pending") {
		t.Errorf("request table after the start's revert: %s %v", b, err)
	}
}

// The daemon says "remote commands subscribed" only when its configuration
// turns remote control on (a trial user read it on a box with remote
// control off).
func TestRemoteSubscribedLoggedOnlyWhenOn(t *testing.T) {
	det := syntheticDetector(t)
	for _, c := range []struct {
		remote string
		want   int
	}{{"", 0}, {"remote: {allow_unsigned: true}\n", 1}} {
		r := startDaemon(t, func(r *runningDaemon) string {
			r.withModel(det)
			return r.baseYAML("cell1") + c.remote
		})
		r.daemon() // the command topics are subscribed before the start is announced
		if n := strings.Count(r.logs.String(), "remote commands subscribed"); n != c.want {
			t.Errorf("configuration %q: %d lines saying remote commands are subscribed, want %d:\n%s", c.remote, n, c.want, r.logs.String())
		}
		r.stop()
	}
}

// Remote control turned on by a reload, and off by a push, is logged once
// when it takes effect: the lines came only with a new MQTT connection, so
// a box whose remote.* alone changed said nothing of taking commands (or
// of no longer taking them) until its connection was replaced.
func TestRemoteSwitchLoggedWhenItTakesEffect(t *testing.T) {
	det := syntheticDetector(t)
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		return r.baseYAML("cell1")
	})
	r.daemon()
	const on, off = "remote commands subscribed", "remote commands off"
	count := func(s string) int { return strings.Count(r.logs.String(), s) }
	reloads := func() int { return count("configuration reloaded") }
	if n := count(on); n != 0 {
		t.Fatalf("remote control off at start: %d lines saying commands are subscribed", n)
	}

	r.write(r.baseYAML("cell1") + "remote: {allow_unsigned: true}\n")
	r.hup()
	r.waitFor("the reload turning remote control on", func() bool { return reloads() == 1 })
	if n := count(on); n != 1 {
		t.Errorf("remote control turned on by a reload: %d lines saying commands are subscribed, want 1:\n%s", n, r.logs.String())
	}
	r.write(r.baseYAML("cell1") + "remote: {allow_unsigned: true}\nlog_level: debug\n")
	r.hup()
	r.waitFor("a reload leaving remote control on", func() bool { return reloads() == 2 })
	if n := count(on); n != 1 {
		t.Errorf("a reload that left remote control on: %d lines saying commands are subscribed, want still 1", n)
	}

	op := newOperator(t, "tcp://127.0.0.1:"+strconv.Itoa(r.port))
	op.awaitCommands(r, "cell1")
	if rep := op.reply("cell1", "config", `{"id":"off1","config":{"remote":{"allow_unsigned":false}},"force":true}`, 60*time.Second); rep["ok"] != true {
		t.Fatalf("push turning remote control off: %v", rep)
	}
	r.waitFor("the push to take effect", func() bool { return !r.daemon().Config().Remote.Enabled() })
	if n := count(off); n != 1 {
		t.Errorf("remote control turned off by a push: %d lines saying commands are off, want 1:\n%s", n, r.logs.String())
	}
	if n := count(on); n != 1 {
		t.Errorf("%d lines saying commands are subscribed after remote control went off, want still 1", n)
	}
}

// A push of state_dir that Apply refuses (the folder is another inspectd's,
// or inspectd would not start there) leaves nothing behind in the folder
// it tried: the request table carried there ahead of the change (so that a
// stop in between finds it) is taken back with the refusal; a folder in
// use keeps its own table, a folder the push created is gone (real
// mosquitto).
func TestRefusedStateDirPushLeavesNothing(t *testing.T) {
	op, r, d := startPushRig(t, "cell9", nil)
	state := d.Config().StateDir

	// Another inspectd's folder, with its own request table.
	inUse := filepath.Join(r.dir, "other")
	if err := os.MkdirAll(inUse, 0o755); err != nil {
		t.Fatal(err)
	}
	theirs := []byte(`{"format":1,"requests":[],"nonces":{},"config_version":{"current":7,"previous":6}}`)
	if err := os.WriteFile(filepath.Join(inUse, remote.StateFile), theirs, 0o600); err != nil {
		t.Fatal(err)
	}
	lock, err := statelock.Take(inUse)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	before := listDir(t, inUse)
	// An old modification time tells a file rewritten (even with the same
	// bytes, or put back) from one left alone.
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(inUse, remote.StateFile), old, old); err != nil {
		t.Fatal(err)
	}

	rep := op.reply("cell9", "config", `{"id":"s1","config":{"state_dir":"`+inUse+`"}}`, 60*time.Second)
	if rep["ok"] != false || !strings.Contains(fmt.Sprint(rep["error"]), "in use by another inspectd") {
		t.Fatalf("push onto a state_dir in use: %v", rep)
	}
	if got := listDir(t, inUse); !slices.Equal(got, before) {
		t.Errorf("the folder in use holds %q after the refusal, %q before", got, before)
	}
	if got, _ := os.ReadFile(filepath.Join(inUse, remote.StateFile)); string(got) != string(theirs) {
		t.Errorf("the other daemon's request table was overwritten:\n%s", got)
	}
	// Not even for a moment: the folder in use is refused before the
	// table is copied (a copy put back afterwards leaves a window in which
	// the other daemon reads ours).
	if fi, err := os.Stat(filepath.Join(inUse, remote.StateFile)); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("the other daemon's request table was rewritten (and put back): %v", err)
	}

	// A new folder under a path where inspectd cannot start: its model
	// path is a folder.
	fresh := filepath.Join(r.dir, "fresh", "state")
	rep = op.reply("cell9", "config", `{"id":"s2","config":{"state_dir":"`+fresh+`","model":{"path":"`+r.dir+`"}}}`, 60*time.Second)
	if rep["ok"] != false {
		t.Fatalf("push onto a state_dir with a folder for model: %v", rep)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "fresh")); !os.IsNotExist(err) {
		t.Errorf("the refused push left %q behind: %v %q", filepath.Join(r.dir, "fresh"), err, listDir(t, fresh))
	}
	// A folder that is there, empty, stays so.
	empty := filepath.Join(r.dir, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	rep = op.reply("cell9", "config", `{"id":"s3","config":{"state_dir":"`+empty+`","model":{"path":"`+r.dir+`"}}}`, 60*time.Second)
	if rep["ok"] != false {
		t.Fatalf("push onto an empty state_dir with a folder for model: %v", rep)
	}
	if got := listDir(t, empty); got != nil {
		t.Errorf("the refused push left %q in the empty folder", got)
	}

	// A reload refused the same way leaves nothing either.
	reloaded := filepath.Join(r.dir, "reloaded")
	y := strings.Replace(remoteYAML(d.Config().MQTT.Brokers[0], "cell9", "")(r), "state_dir: "+state, "state_dir: "+reloaded, 1)
	r.write(strings.Replace(y, "model: {features: 16,", "model: {path: "+r.dir+", features: 16,", 1))
	r.hup()
	r.waitFor("the refused reload", func() bool { return strings.Contains(r.logs.String(), "configuration not reloaded") }, &r.logs)
	if l := r.logs.String(); !strings.Contains(l[strings.Index(l, "configuration not reloaded"):], "err=\"model.path: "+r.dir+" is a folder") {
		t.Fatalf("the reload was refused for another reason than its model:\n%s", l)
	}
	if _, err := os.Stat(reloaded); !os.IsNotExist(err) {
		t.Errorf("the refused reload left %s behind: %v %q", reloaded, err, listDir(t, reloaded))
	}
	if c := d.Config(); c.StateDir != state {
		t.Errorf("state_dir %s after refused pushes, want %s", c.StateDir, state)
	}
	if _, err := os.Stat(filepath.Join(state, remote.StateFile)); err != nil {
		t.Errorf("the request table left the running state_dir: %v", err)
	}
}

// TestRefusedStateDirPushKeepsAnExistingFolder: a push onto a state_dir
// that was there already, refused late (the HTTP port taken), left what
// Apply had written there before the refusal (the model fitted for it,
// since the synthetic line fits one where none is); the folder is now as
// it was, its own files kept, what the change wrote removed (real
// mosquitto, real files).
func TestRefusedStateDirPushKeepsAnExistingFolder(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // a late refusal's undo: TestRefusedPushRemovesTheModelItFitted races it
	op, r, d := startPushRig(t, "cell10", nil)
	state := d.Config().StateDir

	existing := filepath.Join(r.dir, "existing")
	if err := os.MkdirAll(filepath.Join(existing, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(existing, "notes", "line3.txt"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	rep := op.reply("cell10", "config", `{"id":"e1","config":{"state_dir":"`+existing+`","http":{"listen":"`+busy.Addr().String()+`"}}}`, 120*time.Second)
	if rep["ok"] != false || !strings.Contains(fmt.Sprint(rep["error"]), "http.listen") {
		t.Fatalf("push onto a state_dir with the HTTP port taken: %v", rep)
	}
	if !strings.Contains(r.logs.String(), "model fitted and saved") {
		t.Fatalf("nothing was written before the refusal; the test proves nothing:\n%s", r.logs.String())
	}
	var got []string
	filepath.WalkDir(existing, func(p string, _ os.DirEntry, err error) error {
		if err == nil && p != existing {
			rel, _ := filepath.Rel(existing, p)
			got = append(got, rel)
		}
		return nil
	})
	if want := []string{"notes", filepath.Join("notes", "line3.txt")}; !slices.Equal(got, want) {
		t.Errorf("the existing folder holds %q after the refused push, %q before", got, want)
	}
	if c := d.Config(); c.StateDir != state {
		t.Errorf("state_dir %s after the refused push, want %s", c.StateDir, state)
	}
}

// listDir names the entries of dir; nil when it does not exist.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// plainFile writes content to a new file name in dir and returns its
// path: a file that is no model, or a plain file where a folder should be.
func plainFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStopEndsAPushThatFits: a push naming a model file that is not there
// fits one (the synthetic line), which can take minutes; a SIGTERM meanwhile
// must end the fit and the daemon at once, the push not applied (a stop
// used to wait for the whole fit: systemd kills a service that does not
// stop within its TimeoutStopSec).
func TestStopEndsAPushThatFits(t *testing.T) {
	t.Parallel()
	det := syntheticDetector(t)
	op, r, _ := startPushRig(t, "cell7", func(r *runningDaemon) {
		r.withModel(det)
		r.fitFrames = 100000 // minutes of fitting
	})
	missing := filepath.Join(r.dir, "elsewhere.safetensors")
	op.send("inspectd/cell7/cmd/config", `{"id":"fit1","config":{"model":{"path":"`+missing+`"}}}`)
	r.waitFor("the push's fit", func() bool { return strings.Contains(r.logs.String(), "no model yet: fitting") }, &r.logs)
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err != nil {
			t.Errorf("daemon ended with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("a stop during a push's fit still waits after 20 s; log:\n%s", r.logs.String())
	}
	if !strings.Contains(r.logs.String(), "inspectd is stopping; not applied") {
		t.Errorf("the push's end was not said; log:\n%s", r.logs.String())
	}
	c, err := config.Load(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.Path == missing {
		t.Errorf("the push cut short by the stop is in the configuration file: model.path %s", c.Model.Path)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the unfinished fit left %s: %v", missing, err)
	}
}

// startPushRig starts box dev on the synthetic line (remoteYAML) on a real
// mosquitto with an operator, and waits until it answers commands: the
// set-up of the tests of remote commands. set, when not nil, prepares r
// before the start (a model, fitFrames); the box fits its own model
// otherwise.
func startPushRig(t *testing.T, dev string, set func(r *runningDaemon)) (*operator, *runningDaemon, *Daemon) {
	t.Helper()
	b := testbroker.Start(t, testbroker.Options{})
	op := newOperator(t, b.URL)
	r := startDaemon(t, func(r *runningDaemon) string {
		if set != nil {
			set(r)
		}
		return remoteYAML(b.URL, dev, "")(r)
	})
	d := r.daemon()
	op.awaitCommands(r, dev)
	return op, r, d
}

// startModelPushRig is startPushRig with the synthetic detector as the
// box's model (state_dir/model.safetensors): the set-up of the tests of
// pushes naming a model file.
func startModelPushRig(t *testing.T, dev string) (*operator, *runningDaemon, *Daemon, *model.Detector) {
	t.Helper()
	det := syntheticDetector(t)
	op, r, d := startPushRig(t, dev, func(r *runningDaemon) { r.withModel(det) })
	return op, r, d, det
}

// modelPathInOwnFolder copies the model in force of a startModelPushRig
// daemon (dev its device) to <r.dir>/line/name, pushes model.path naming
// it, and puts the same model at its .prev, so that a test can then put
// what it likes at either, model.path being no longer inside state_dir.
// It returns the path and the model file's bytes.
func modelPathInOwnFolder(t *testing.T, op *operator, r *runningDaemon, dev, name string) (string, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, "state", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(r.dir, "line")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep := op.reply(dev, "config", `{"id":"path","config":{"model":{"path":"`+path+`"}}}`, 120*time.Second); rep["ok"] != true {
		t.Fatalf("push of model.path %s: %v", path, rep)
	}
	if err := os.WriteFile(PreviousModelPath(path), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// TestPushOfAMissingModelFileSaysItFitted: a push naming a model file that
// is not on the box fits one on the synthetic line, as a start does; the
// reply says so, naming the key and the file (it said only restarted:
// [model], and the operator believed the file named was loaded), also on
// probation beside the confirm note; a push naming a file that is there
// loads it without a note (real mosquitto, real files).
func TestPushOfAMissingModelFileSaysItFitted(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // the push's fit and rollback: TestRevertedPushRemovesTheModelItFitted races them
	op, r, d, det := startModelPushRig(t, "cell11")
	running := filepath.Join(r.dir, "state", "model.safetensors")

	missing := filepath.Join(r.dir, "line3.safetensors")
	rep := op.reply("cell11", "config", `{"id":"m1","config":{"model":{"path":"`+missing+`"}}}`, 120*time.Second)
	note, _ := rep["note"].(string)
	if rep["ok"] != true || rep["applied"] != true || fmt.Sprint(rep["restarted"]) != "[model]" {
		t.Fatalf("push of a missing model file: %v", rep)
	}
	for _, want := range []string{"model.path", missing, "no model file", "fitted on 12 normal synthetic frames"} {
		if !strings.Contains(note, want) {
			t.Errorf("reply's note %q lacks %q: %v", note, want, rep)
		}
	}
	if _, err := os.Stat(missing); err != nil || d.Config().Model.Path != missing {
		t.Errorf("the fitted model is not saved where model.path says (%v), or not in force (%s)", err, d.Config().Model.Path)
	}
	if !strings.Contains(r.logs.String(), "the model file it names is not on this box") {
		t.Errorf("the fit in place of the file is not in the log:\n%s", r.logs.String())
	}
	fitted := d.pipe.Load().Detector().Info().ID

	// The note's remedy (it gave none, and a file copied over the path is
	// not loaded before the next start): the operator's file copied to
	// the path's .prev and a model rollback put it in force.
	if !strings.Contains(note, "copy it to "+PreviousModelPath(missing)+" and send rollback with target model") {
		t.Errorf("reply's note %q does not say how to run the file named", note)
	}
	data, err := os.ReadFile(running)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(PreviousModelPath(missing), data, 0o600); err != nil {
		t.Fatal(err)
	}
	rep = op.reply("cell11", "config", `{"id":"m1-again","config":{"model":{"path":"`+missing+`"}}}`, 60*time.Second)
	if rep["ok"] != true || d.pipe.Load().Detector().Info().ID != fitted {
		t.Errorf("pushing the path again: %v, model %s, want the fitted %s still in force", rep, d.pipe.Load().Detector().Info().ID, fitted)
	}
	rep = op.reply("cell11", "rollback", `{"id":"m1-rollback","target":"model"}`, 60*time.Second)
	if rep["ok"] != true || rep["model_id"] != det.Info().ID || rep["previous_model_id"] != fitted {
		t.Errorf("rollback after copying the file to %s: %v, want model %s in force", PreviousModelPath(missing), rep, det.Info().ID)
	}
	if got := d.pipe.Load().Detector().Info().ID; got != det.Info().ID {
		t.Errorf("model %s in force after the rollback, want the operator's %s", got, det.Info().ID)
	}
	if got, err := os.ReadFile(missing); err != nil || string(got) != string(data) {
		t.Errorf("%s after the rollback is not the operator's file (%v)", missing, err)
	}

	// A file that is there loads, without a note.
	there := filepath.Join(r.dir, "copy.safetensors")
	if err := os.WriteFile(there, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rep = op.reply("cell11", "config", `{"id":"m2","config":{"model":{"path":"`+there+`"}}}`, 120*time.Second)
	if rep["ok"] != true || rep["note"] != nil {
		t.Errorf("push of a model file that is there: %v, want it applied without a note", rep)
	}
	if got := d.pipe.Load().Detector().Info().ID; got != det.Info().ID {
		t.Errorf("model %s in force after the push of %s, want its model %s", got, there, det.Info().ID)
	}

	// On probation the note says both: the fit and the confirm to send.
	other := filepath.Join(r.dir, "line4.safetensors")
	rep = op.reply("cell11", "config", `{"id":"m3","config":{"model":{"path":"`+other+`"}},"confirm":"5m"}`, 120*time.Second)
	note, _ = rep["note"].(string)
	t.Logf("reply on probation: %v", rep)
	if rep["ok"] != true || !strings.Contains(note, other) || !strings.Contains(note, "fitted on") || !strings.Contains(note, "send config-confirm before") {
		t.Errorf("push on probation of a missing model file: note %q: %v", note, rep)
	}
}

// TestDryRunOfAMissingModelFileSaysItWouldFit: a dry run naming a model
// file that is not on a synthetic box says, in its note, that applying it
// would fit a model there (it answered applied: false alone, and the
// operator learnt of the fit only from the real push), and fits nothing:
// no file written, the model and configuration in force unchanged (real
// mosquitto, real files).
func TestDryRunOfAMissingModelFileSaysItWouldFit(t *testing.T) {
	t.Parallel()
	op, r, d, det := startModelPushRig(t, "cell12")
	before := d.Config().Model.Path

	missing := filepath.Join(r.dir, "line3.safetensors")
	rep := op.reply("cell12", "config", `{"id":"d1","config":{"model":{"path":"`+missing+`"}},"dry_run":true}`, 60*time.Second)
	note, _ := rep["note"].(string)
	if rep["ok"] != true || rep["applied"] != false || rep["dry_run"] != true || fmt.Sprint(rep["changed"]) != "[model.path]" {
		t.Fatalf("dry run of a missing model file: %v", rep)
	}
	for _, want := range []string{"model.path", missing, "no model file", "would fit a new model on 12 normal synthetic frames"} {
		if !strings.Contains(note, want) {
			t.Errorf("dry run's note %q lacks %q: %v", note, want, rep)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dry run wrote %s (%v)", missing, err)
	}
	if strings.Contains(r.logs.String(), "no model yet: fitting") {
		t.Errorf("the dry run fitted a model:\n%s", r.logs.String())
	}
	if got := d.Config().Model.Path; got != before {
		t.Errorf("model.path %q in force after the dry run, want %q", got, before)
	}
	if got := d.pipe.Load().Detector().Info().ID; got != det.Info().ID {
		t.Errorf("model %s in force after the dry run, want %s", got, det.Info().ID)
	}

	// A file that is there: no note.
	rep = op.reply("cell12", "config", `{"id":"d2","config":{"model":{"path":"`+filepath.Join(r.dir, "state", "model.safetensors")+`"}},"dry_run":true}`, 60*time.Second)
	if rep["ok"] != true || rep["note"] != nil {
		t.Errorf("dry run naming a model file that is there: %v, want no note", rep)
	}
}

// TestPushOfAModelFileInAMissingFolderIsRefusedAtOnce: a push naming a
// missing model file in a folder that is not there, that is a plain file
// or under one, or that cannot be written, is refused before any fit,
// naming model.path and the folder (it fitted for seconds, then failed to
// save; under a file it named neither), and the running model and
// configuration stay; a dry run of it says it would be refused (real
// mosquitto, real files).
func TestPushOfAModelFileInAMissingFolderIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	wordsOnly(t) // dry run and push: TestDryRunOfAMissingModelFileSaysItWouldFit races them
	op, r, d, det := startModelPushRig(t, "cell13")
	before := d.Config().Model.Path

	// A plain file where the folder should be is refused with the same
	// words (it named neither model.path nor the folder), and so is a
	// folder that cannot be written, where there is one that refuses even
	// root, which may run these tests and writes any other.
	file := plainFile(t, r.dir, "file.txt", "not a folder")
	dirs := []string{filepath.Join(r.dir, "no-such-folder"), filepath.Join(r.dir, "a", "b"), file, filepath.Join(file, "sub")}
	if dir := unwritableFolder(); dir != "" {
		dirs = append(dirs, dir)
	} else {
		t.Log("no folder here refuses a new file to this user: a folder that cannot be written is not tried")
	}
	for i, dir := range dirs {
		path := filepath.Join(dir, "line3.safetensors")
		for _, dry := range []bool{true, false} {
			id := fmt.Sprintf("f%d-%v", i, dry)
			rep := op.reply("cell13", "config", fmt.Sprintf(`{"id":%q,"config":{"model":{"path":%q}},"dry_run":%v}`, id, path, dry), 60*time.Second)
			msg := fmt.Sprint(rep["error"])
			t.Logf("%s: %v", id, rep)
			if rep["ok"] != false || rep["applied"] != false || !strings.Contains(msg, "model.path") || !strings.Contains(msg, "folder "+dir) {
				t.Errorf("push (dry_run %v) of a model file in %s: %v, want it refused naming model.path and the folder", dry, dir, rep)
			}
		}
	}
	if strings.Contains(r.logs.String(), "no model yet: fitting") {
		t.Errorf("a model was fitted before the push was refused:\n%s", r.logs.String())
	}
	if got := d.Config().Model.Path; got != before {
		t.Errorf("model.path %q in force after the refused pushes, want %q", got, before)
	}
	if got := d.pipe.Load().Detector().Info().ID; got != det.Info().ID {
		t.Errorf("model %s in force after the refused pushes, want %s", got, det.Info().ID)
	}
}

// TestRefusedPushRemovesTheModelItFitted: a push naming a model file that
// is not on the box, refused after its fit (it also asks for an HTTP port
// in use), left the model it fitted there, and a later push or start
// naming the file loaded it as the operator's, without the note that says
// it was fitted; the file the push created is now removed. A file that was
// there before a refused push stays (real mosquitto, real files).
func TestRefusedPushRemovesTheModelItFitted(t *testing.T) {
	t.Parallel()
	op, r, d, det := startModelPushRig(t, "cell14")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	push := func(id, path string) map[string]any {
		t.Helper()
		rep := op.reply("cell14", "config", fmt.Sprintf(`{"id":%q,"config":{"model":{"path":%q},"http":{"listen":%q}}}`, id, path, taken.Addr().String()), 120*time.Second)
		t.Logf("%s: %v", id, rep)
		if rep["ok"] != false || rep["applied"] != false || !strings.Contains(fmt.Sprint(rep["error"]), "not applied; the previous configuration is in force") {
			t.Errorf("push %s of model.path %s with http.listen on a port in use: %v, want it refused", id, path, rep)
		}
		return rep
	}

	missing := filepath.Join(r.dir, "line3.safetensors")
	if rep := push("p1", missing); !strings.Contains(fmt.Sprint(rep["error"]), "(the model this change fitted at "+missing+" is removed)") {
		t.Errorf("the refusal does not say the model it fitted is removed: %v", rep["error"])
	}
	if !strings.Contains(r.logs.String(), "model fitted and saved") {
		t.Fatalf("the push was refused before its fit, not after:\n%s", r.logs.String())
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused push left the model it fitted at %s (%v)", missing, err)
	}

	// A file that was there stays, whatever the push did.
	there := filepath.Join(r.dir, "copy.safetensors")
	data, err := os.ReadFile(filepath.Join(r.dir, "state", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(there, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep := push("p2", there); strings.Contains(fmt.Sprint(rep["error"]), "fitted") {
		t.Errorf("the refusal of a push that fitted nothing speaks of a fit: %v", rep["error"])
	}
	if got, err := os.ReadFile(there); err != nil || string(got) != string(data) {
		t.Errorf("the refused push of a model file that was there removed or changed it (%v)", err)
	}

	if got := d.Config().Model.Path; got != "" {
		t.Errorf("model.path %q in force after the refused pushes, want the state folder's", got)
	}
	if got := d.pipe.Load().Detector().Info().ID; got != det.Info().ID {
		t.Errorf("model %s in force after the refused pushes, want %s", got, det.Info().ID)
	}
}

// TestRevertedPushRemovesTheModelItFitted: a push on probation naming a
// model file that is not on the synthetic box fits one there; reverted (no
// config-confirm by its deadline, or a rollback with target config) it
// left that model there, and a later push or start naming the file loaded
// it as the operator's, without the note that says it was fitted. The
// revert now removes it, as a refused push does. A file that was there
// before the push stays, and so does the fitted one once the operator's
// file was put in its place (the note's remedy: copy to PATH.prev and
// rollback with target model) (real mosquitto, real files).
func TestRevertedPushRemovesTheModelItFitted(t *testing.T) {
	t.Parallel()
	op, r, d, det := startModelPushRig(t, "cell15")
	missing := filepath.Join(r.dir, "line3.safetensors")
	push := func(id, path, confirm string) {
		t.Helper()
		rep := op.reply("cell15", "config", fmt.Sprintf(`{"id":%q,"config":{"model":{"path":%q}},"confirm":%q}`, id, path, confirm), 120*time.Second)
		t.Logf("%s: %v", id, rep)
		if rep["ok"] != true || rep["applied"] != true || d.Config().Model.Path != path {
			t.Fatalf("push %s of model.path %s on probation: %v", id, path, rep)
		}
	}
	reverted := func(id string) {
		t.Helper()
		rep := op.reply("cell15", "rollback", fmt.Sprintf(`{"id":%q,"target":"config"}`, id), 60*time.Second)
		if rep["ok"] != true || rep["reverted"] == nil || d.Config().Model.Path != "" {
			t.Fatalf("rollback %s of the push on probation: %v", id, rep)
		}
	}
	gone := func(how string) {
		t.Helper()
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the push reverted %s left the model it fitted at %s (%v)", how, missing, err)
		}
		if got := d.pipe.Load().Detector().Info().ID; got != det.Info().ID {
			t.Errorf("model %s in force after the push reverted %s, want %s", got, how, det.Info().ID)
		}
	}

	// No config-confirm by the deadline.
	push("p1", missing, "5s")
	if _, err := os.Stat(missing); err != nil {
		t.Fatalf("the push did not fit a model at %s: %v", missing, err)
	}
	r.waitFor("the revert at the deadline", func() bool {
		return strings.Contains(r.logs.String(), "configuration push not confirmed in time; the previous configuration is in force again")
	}, &r.logs)
	gone("at its deadline")
	if !strings.Contains(r.logs.String(), "configuration change undone: the model it fitted in place of the missing file is removed") {
		t.Errorf("the removal is not in the log:\n%s", r.logs.String())
	}

	// Reverted by hand.
	push("p2", missing, "5m")
	reverted("p2-back")
	gone("by rollback")

	// A file that was there before the push stays.
	data, err := os.ReadFile(filepath.Join(r.dir, "state", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	there := filepath.Join(r.dir, "copy.safetensors")
	if err := os.WriteFile(there, data, 0o600); err != nil {
		t.Fatal(err)
	}
	push("p3", there, "5m")
	reverted("p3-back")
	if got, err := os.ReadFile(there); err != nil || string(got) != string(data) {
		t.Errorf("the reverted push of a model file that was there removed or changed it (%v)", err)
	}

	// The operator's file put in place of the fitted one stays.
	push("p4", missing, "5m")
	if err := os.WriteFile(PreviousModelPath(missing), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep := op.reply("cell15", "rollback", `{"id":"p4-model","target":"model"}`, 60*time.Second); rep["ok"] != true {
		t.Fatalf("rollback with target model: %v", rep)
	}
	reverted("p4-back")
	if got, err := os.ReadFile(missing); err != nil || string(got) != string(data) {
		t.Errorf("the reverted push removed or changed the operator's file put in place of the fitted one at %s (%v)", missing, err)
	}
}

// TestStopDuringTheFirstFit: a SIGTERM while the start fits its first
// model ends Run without an error (it said "context canceled" and the
// process exited 1: systemd marked a unit stopped on purpose as failed),
// says so in one line, and leaves no model file behind.
func TestStopDuringTheFirstFit(t *testing.T) {
	r := startDaemon(t, func(r *runningDaemon) string {
		r.fitFrames = 100000 // minutes of fitting
		return r.baseYAML("cell1")
	})
	r.waitFor("the first fit", func() bool { return strings.Contains(r.logs.String(), "no model yet: fitting") }, &r.logs)
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err != nil {
			t.Errorf("Run ended with %v, want nil for a stop during the fit", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("a stop during the first fit still waits after 20 s; log:\n%s", r.logs.String())
	}
	if !strings.Contains(r.logs.String(), "stopped during the start") {
		t.Errorf("the stop during the start was not said; log:\n%s", r.logs.String())
	}
	if _, err := os.Stat(filepath.Join(r.dir, "state", "model.safetensors")); !os.IsNotExist(err) {
		t.Errorf("the unfinished fit left a model file: %v", err)
	}
}

// TestSIGHUPOfAnEditedFileEndsAPushsWait: a push waits for
// config-confirm; the file is edited on the box and reloaded with SIGHUP.
// The wait ends then, in one log line, not at the next command that
// looked at it (hours later on a quiet box).
func TestSIGHUPOfAnEditedFileEndsAPushsWait(t *testing.T) {
	op, r, d := startPushRig(t, "cell9", nil)
	if rep := op.reply("cell9", "config", `{"id":"p1","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`, 30*time.Second); rep["ok"] != true {
		t.Fatalf("push on probation: %v", rep)
	}
	const ended = "it no longer waits for config-confirm"
	edited, err := LoadConfig(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	edited.MQTT.ResultQoS = 2
	if err := config.Save(r.cfgPath, edited); err != nil {
		t.Fatal(err)
	}
	r.hup()
	r.waitFor("the push's wait to end at the SIGHUP", func() bool { return strings.Count(r.logs.String(), ended) == 1 }, &r.logs)
	if q := d.Config().MQTT.ResultQoS; q != 2 {
		t.Errorf("result_qos %d after the reload, want the edited 2", q)
	}
}

// TestSIGHUPOfThePreviousFileUndoesAPush: the file a push replaced, put
// back on the box (cp cfg.yaml.prev cfg.yaml) and reloaded, undoes the
// push: its wait ends at the SIGHUP, logged, and a config-confirm is then
// refused saying why (it was answered ok, for a push no longer in force).
// A SIGHUP of a file that does not load leaves the next push in force and
// waiting, said at the reload.
func TestSIGHUPOfThePreviousFileUndoesAPush(t *testing.T) {
	op, r, d := startPushRig(t, "cell9", nil)
	if rep := op.reply("cell9", "config", `{"id":"p1","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`, 30*time.Second); rep["ok"] != true {
		t.Fatalf("push on probation: %v", rep)
	}
	old, err := os.ReadFile(config.PreviousPath(r.cfgPath))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.cfgPath, old, 0o600); err != nil {
		t.Fatal(err)
	}
	r.hup()
	r.waitFor("the push's wait to end at the SIGHUP", func() bool { return strings.Contains(r.logs.String(), "the push is undone") }, &r.logs)
	if q := d.Config().MQTT.ResultQoS; q == 1 {
		t.Errorf("result_qos %d after the reload of the previous file", q)
	}
	if rep := op.reply("cell9", "config-confirm", `{"id":"k1"}`, 30*time.Second); rep["ok"] != false || !strings.Contains(fmt.Sprint(rep["error"]), "put back on the box") {
		t.Errorf("a confirm of the undone push: %v", rep)
	}

	if rep := op.reply("cell9", "config", `{"id":"p2","config":{"mqtt":{"result_qos":1}},"confirm":"1h"}`, 30*time.Second); rep["ok"] != true {
		t.Fatalf("second push on probation: %v", rep)
	}
	if err := os.WriteFile(r.cfgPath, []byte("mqtt: {result_qos: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.hup()
	r.waitFor("the failed reload's word on the wait", func() bool {
		return strings.Contains(r.logs.String(), "still waits for config-confirm, but the file on disk does not load")
	}, &r.logs)
	if st := op.reply("cell9", "status", `{"id":"s1"}`, 30*time.Second); st["config_pending"] == nil {
		t.Errorf("status after the failed reload: %v", st)
	}
}
