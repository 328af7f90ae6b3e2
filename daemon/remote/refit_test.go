package remote

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/capture"
)

// phases lists the phases of the refit events in order, without repeats.
func phases(evs []event) []string {
	var out []string
	for _, e := range evs {
		var p struct{ Phase string }
		json.Unmarshal(e.payload, &p)
		if len(out) == 0 || out[len(out)-1] != p.Phase {
			out = append(out, p.Phase)
		}
	}
	return out
}

func TestRefitLiveWhileCommandsFlow(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	old := r.ctl.ModelInfo().ID
	gate := r.ctl.holdFrames()

	refit := r.submit("refit", "device", []byte(`{"id":"f1","count":20,"validate":4}`))
	// While it waits for frames, quick commands flow and the refit's
	// neighbours are refused, saying why.
	r.waitJob()
	st := r.do("status", `{"id":"s1"}`)
	if p, ok := st.Data["refit"].(Progress); !st.OK || !ok || p.ID != "f1" || p.Phase != "collecting" || p.Total != 24 {
		t.Errorf("status during the refit: %+v", st)
	}
	mustFail(t, r.do("refit", `{"id":"f2","count":20}`), CodeBusy, `a refit is already running (id "f1", collecting`)
	mustFail(t, r.do("threshold", `{"id":"t1","image":3}`), CodeBusy, `a refit is running (id "f1"`, "would be replaced by the refitted model's")
	mustFail(t, r.do("rollback", `{"id":"r1","target":"model"}`), CodeBusy, "would race the refit's install")
	mustFail(t, r.do("config", `{"id":"c1","config":{"model":{"blur_sigma":2},"capture":{"rotate":90}}}`), CodeBusy,
		"changing capture.rotate, model.blur_sigma would change its frames or the model it replaces")
	if rep := r.do("config", `{"id":"c2","config":{"mqtt":{"result_qos":1}}}`); !rep.OK {
		t.Errorf("an mqtt change during a refit: %+v", rep)
	}
	// A repeat of the running refit waits for its reply.
	dup := r.submit("refit", "device", []byte(`{"id":"f1","count":20,"validate":4}`))
	close(gate)

	rep := r.wait(refit)
	if !rep.OK {
		t.Fatalf("refit: %+v", rep)
	}
	again := r.wait(dup)
	if !again.OK || again.Data["duplicate"] != true || again.Data["model_id"] != rep.Data["model_id"] {
		t.Errorf("repeated refit: %+v", again)
	}
	newID := r.ctl.ModelInfo().ID
	if newID == old || rep.Data["model_id"] != newID || rep.Data["previous_model_id"] != old || r.ctl.installs.Load() != 1 {
		t.Errorf("model %s → %s, reply %+v, %d installs", old, newID, rep.Data, r.ctl.installs.Load())
	}
	// The fit reads each frame more than once (its Gaussians, then the
	// leave-one-out scores): the live frames are kept, not taken again,
	// and the folder that kept them is gone.
	if n := r.ctl.frames.Load(); n != 24 {
		t.Errorf("%d live frames taken, want 20 to fit and 4 to validate", n)
	}
	if _, err := os.Stat(filepath.Join(r.ctl.dir, refitFramesName)); !os.IsNotExist(err) {
		t.Errorf("the live frames' folder is left behind: %v", err)
	}
	v := rep.Data["validation"].(map[string]any)
	if v["frames"] != 4 || v["false_alarm_rate"].(float64) > 0.1 || rep.Data["images"].(int) != 20 || rep.Data["threshold_images"].(int) != 20 {
		t.Errorf("figures: %+v", rep.Data)
	}
	evs := r.events.named("refit")
	if got := strings.Join(phases(evs), ","); got != "collecting,fitting,validating,installing,done" {
		t.Errorf("refit phases %s", got)
	}
	var final map[string]any
	json.Unmarshal(evs[len(evs)-1].payload, &final)
	if final["model_id"] != newID || evs[len(evs)-1].qos != 1 {
		t.Errorf("final refit event %v (QoS %d)", final, evs[len(evs)-1].qos)
	}
	if _, err := os.Stat(filepath.Join(r.ctl.dir, refitTempName)); !os.IsNotExist(err) {
		t.Error("the refit's temporary model file is left")
	}

	// Rollback brings the old model back, and goes forward again.
	if rb := r.do("rollback", `{"id":"r2","target":"model"}`); !rb.OK || r.ctl.ModelInfo().ID != old {
		t.Errorf("rollback: %+v", rb)
	}
	if rb := r.do("rollback", `{"id":"r3","target":"model"}`); !rb.OK || r.ctl.ModelInfo().ID != newID {
		t.Errorf("second rollback: %+v", rb)
	}
}

func TestRefitCancel(t *testing.T) {
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	old := r.ctl.ModelInfo().ID
	gate := r.ctl.holdFrames()
	refit := r.submit("refit", "device", []byte(`{"id":"f1","count":50}`))
	r.waitJob()
	gate <- struct{}{} // one frame in
	c := r.do("refit-cancel", `{"id":"x1"}`)
	if !c.OK || c.Data["cancelled"] != "f1" || c.Data["model_id"] != old {
		t.Errorf("refit-cancel: %+v", c)
	}
	rep := r.wait(refit)
	mustFail(t, rep, CodeCancelled, `cancelled (refit-cancel "x1")`, "the model in force ("+old+") stays")
	if r.ctl.installs.Load() != 0 || r.ctl.ModelInfo().ID != old {
		t.Error("a cancelled refit installed a model")
	}
	if p := phases(r.events.named("refit")); p[len(p)-1] != "cancelled" {
		t.Errorf("phases %v", p)
	}
	lastRefitErrorIsTheReplys(t, r, rep)
	// Shutting down cancels too, and says so.
	refit = r.submit("refit", "device", []byte(`{"id":"f2","count":50}`))
	r.waitJob()
	r.d.Close(t.Context())
	rep = r.wait(refit)
	mustFail(t, rep, CodeCancelled, "inspectd is stopping")
	lastRefitErrorIsTheReplys(t, r, rep)
}

// lastRefitErrorIsTheReplys: the last refit progress message of a
// cancelled refit said the bare error, without the reply's "cancelled
// (refit-cancel ...)" before it (TestRefitCancel checks it).
func lastRefitErrorIsTheReplys(t *testing.T, r *rig, rep Reply) {
	t.Helper()
	evs := r.events.named("refit")
	var last map[string]any
	if err := json.Unmarshal(evs[len(evs)-1].payload, &last); err != nil {
		t.Fatal(err)
	}
	if last["phase"] != "cancelled" || last["error"] != rep.Error {
		t.Errorf("last refit progress %v, reply error %q: they differ", last, rep.Error)
	}
}

func TestRefitRejectedOnFalseAlarms(t *testing.T) {
	if testing.Short() {
		t.Skip("a second real fit; the live refit test covers the job's concurrency in -short runs")
	}
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	old := r.ctl.ModelInfo().ID
	r.ctl.mu.Lock()
	r.ctl.defectiveAfter = 20 // the line changes right after the fit's frames
	r.ctl.mu.Unlock()
	rep := r.do("refit", `{"id":"f1","count":20,"validate":4}`)
	mustFail(t, rep, CodeFailed, "refit rejected: 4 of 4 validation frames (100.0%) score above the new threshold", "the model in force ("+old+") stays")
	if v := rep.Data["validation"].(map[string]any); v["false_alarms"] != 4 {
		t.Errorf("validation figures %v", v)
	}
	if r.ctl.installs.Load() != 0 || r.ctl.ModelInfo().ID != old {
		t.Error("a rejected refit installed its model")
	}
}

// pngBomb is a 69-byte PNG whose header declares w×h pixels.
func pngBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		c := append([]byte(typ), data...)
		b.Write(c)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(c))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// writeFrames renders n normal frames into dir as PNG files.
func writeFrames(t *testing.T, dir string, n int) {
	t.Helper()
	src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 160, Height: 120, Seed: 11, NormalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o755)
	for i := range n {
		var f capture.Frame
		if err := src.Next(t.Context(), &f); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		png.Encode(&b, f.Image)
		if err := os.WriteFile(filepath.Join(dir, "good_"+string(rune('a'+i/26))+string(rune('a'+i%26))+".png"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRefitFromFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("a real fit on 30 files; the live refit test covers the job's concurrency in -short runs")
	}
	r := newRig(t, unsigned)
	r.ctl.setModel(t)
	old := r.ctl.ModelInfo().ID
	dir := t.TempDir()
	good := filepath.Join(dir, "train", "good") // the MVTec AD layout
	writeFrames(t, good, 30)
	for name, data := range map[string][]byte{
		"bomb.png":    pngBomb(200000, 200000),
		"broken.jpg":  []byte("not a JPEG at all"),
		".hidden.png": pngBomb(1, 1),
		"notes.txt":   []byte("operator notes"),
	} {
		os.WriteFile(filepath.Join(good, name), data, 0o644)
	}
	// A file cut short: its header reads as an image, its body does not
	// decode (a new user's trial: it failed the whole refit). Named to be
	// picked for validation. And a thumbnail, under model.MinFrameSide,
	// picked to fit on (a review: it failed the refit too).
	whole, err := os.ReadFile(filepath.Join(good, "good_aa.png"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(good, "good_zz_cut.png"), whole[:100], 0o644)
	var thumb bytes.Buffer
	png.Encode(&thumb, image.NewGray(image.Rect(0, 0, 4, 4)))
	os.WriteFile(filepath.Join(good, "good_ak_thumb.png"), thumb.Bytes(), 0o644)
	rep := r.do("refit", `{"id":"f1","folder":"`+dir+`"}`)
	if !rep.OK {
		t.Fatalf("folder refit: %+v", rep)
	}
	reasons := strings.Join(rep.Data["skipped_reasons"].([]string), ";")
	if rep.Data["skipped"] != 4 || !strings.Contains(reasons, "bomb.png: 200000x200000 pixels, over the limit") || !strings.Contains(reasons, "good_zz_cut.png: ") ||
		!strings.Contains(reasons, "good_ak_thumb.png: frame too small to inspect: 4x4") {
		t.Errorf("skipped: %v %v", rep.Data["skipped"], rep.Data["skipped_reasons"])
	}
	// 31 images by their headers (the thumbnail is told by its header):
	// 6 to validate, 25 to fit; the one cut short left out of the first.
	if v := rep.Data["validation"].(map[string]any); v["frames"] != 5 || rep.Data["images"].(int) != 25 || rep.Data["threshold_images"].(int) != 25 {
		t.Errorf("split: validation %v, images %v", rep.Data["validation"], rep.Data["images"])
	}
	if r.ctl.ModelInfo().ID == old || r.ctl.frames.Load() != 0 || rep.Data["source"] != "folder "+good {
		t.Errorf("model %s (was %s), %d live frames, source %v", r.ctl.ModelInfo().ID, old, r.ctl.frames.Load(), rep.Data["source"])
	}
	evs := r.events.named("refit")
	if p := phases(evs); strings.Join(p, ",") != "fitting,validating,installing,done" {
		t.Errorf("phases %v", p)
	}
	// Progress never goes back (the final event carries the figures).
	last := -1.0
	for _, e := range evs[:len(evs)-1] {
		var p Progress
		json.Unmarshal(e.payload, &p)
		if p.Percent < last {
			t.Errorf("progress went back: %g%% after %g%% (%s)", p.Percent, last, p.Phase)
		}
		last = p.Percent
	}
}

func TestRefitBoundsCheckedBeforeAnything(t *testing.T) {
	r := newRig(t, "remote: {allow_unsigned: true, max_refit_frames: 40}\n")
	r.ctl.setModel(t)
	many := t.TempDir()
	for i := range 501 {
		os.WriteFile(filepath.Join(many, "f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26%26))+".txt"), nil, 0o644)
	}
	small := t.TempDir()
	writeFrames(t, small, 5)
	bombs := t.TempDir()
	os.WriteFile(filepath.Join(bombs, "a.png"), pngBomb(100000, 100000), 0o644)
	for _, tc := range []struct{ body, field, part string }{
		{`{"id":"b1","count":2}`, "count", "2 is out of range 3..40 (remote.max_refit_frames)"},
		{`{"id":"b2","count":41}`, "count", "41 is out of range 3..40"},
		{`{"id":"b3","count":30,"validate":20}`, "validate", "30 fit frames and 20 validation frames are 50, over remote.max_refit_frames (40)"},
		{`{"id":"b4","interval":"1h"}`, "interval", `"1h" is not a duration from 0s to 10m0s`},
		{`{"id":"b5","interval":"soon"}`, "interval", "is not a duration"},
		{`{"id":"b7","features":5000}`, "features", "5000 is out of range 1..2048"},
		{`{"id":"b8","count":20,"features":2048}`, "features", "d = 2048 needs 24.5 GiB of scoring state on the 56x56 patch grid, over model.memory_budget (64.0 MiB) (the largest that fits is 101)"},
		{`{"id":"b9","max_false_alarm_rate":1.5}`, "max_false_alarm_rate", "1.5 is out of range 0..1"},
		{`{"id":"b10","folder":"good-parts"}`, "folder", "is not an absolute path"},
		{`{"id":"b11","folder":"/nonexistent/good"}`, "folder", "no such file or directory"},
		{`{"id":"b12","folder":"` + many + `"}`, "folder", "holds more than 500 entries; put the images for the refit in a folder of their own"},
		{`{"id":"b13","folder":"` + small + `","count":5}`, "count", "5 images asked for, but the folder's 5 images leave 4 after the 1 validation images"},
		{`{"id":"b14","folder":"` + bombs + `"}`, "folder", "holds no usable images (JPEG, PNG, BMP, TIFF or GIF); 1 skipped: a.png: 100000x100000 pixels, over the limit"},
	} {
		rep := r.do("refit", tc.body)
		mustFail(t, rep, CodeInvalid, tc.part)
		if field(rep) != tc.field {
			t.Errorf("%s: field %q, want %q", tc.body, field(rep), tc.field)
		}
	}
	count, interval := 200, "10m"
	if _, err := checkRefit(&refitArgs{Count: &count, Interval: interval}, 1000); err == nil || !strings.Contains(err.Error(), "220 frames 10m0s apart span 36h30m0s; a refit may span at most 24h0m0s") {
		t.Errorf("a refit spanning 36 hours: %v", err)
	}
	r.mem.Store(100 << 20)
	mustFail(t, r.do("refit", `{"id":"m1","count":20}`), CodeFailed, "not started: the fit needs about", "and 100.0 MiB is available (test)")
	if r.ctl.frames.Load() != 0 || r.d.runningJob() != nil {
		t.Error("a refused refit took frames or started")
	}
}

// While fitting, a refit's progress follows the fit's own steps (the fit
// reads its images several times: a new user saw 18% for the whole recipe
// search, then an ETA of 255 s a second before the end); otherwise the
// frames taken.
func TestRefitJobShare(t *testing.T) {
	for _, c := range []struct {
		phase                                   string
		frames, total, count, fitDone, fitTotal int
		want                                    float64
	}{
		{"collecting", 10, 60, 50, 10, 400, 10.0 / 60},
		{"fitting", 50, 60, 50, 0, 400, 0},
		{"fitting", 50, 60, 50, 200, 400, 50.0 / 60 / 2},
		{"fitting", 50, 60, 50, 400, 400, 50.0 / 60},
		{"fitting", 50, 60, 50, 0, 0, 50.0 / 60}, // no fit steps yet
		{"validating", 55, 60, 50, 400, 400, 55.0 / 60},
	} {
		if got := jobShare(c.phase, c.frames, c.total, c.count, c.fitDone, c.fitTotal); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%+v: %g, want %g", c, got, c.want)
		}
	}
}

// Thumbnails are told by their headers, before the fit and validation
// images are picked (a trial: five good images and six thumbnails, the
// thumbnails taking every validation pick, failed the refit).
func TestRefitFolderThumbnailsLeftOutBeforeThePick(t *testing.T) {
	dir := t.TempDir()
	writeFrames(t, dir, 5)
	var thumb bytes.Buffer
	png.Encode(&thumb, image.NewGray(image.Rect(0, 0, 4, 4)))
	for i := range 6 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("t%d.png", i)), thumb.Bytes(), 0o644)
	}
	f, err := listFolder(dir, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.paths) != 5 || f.skipped != 6 || !strings.Contains(strings.Join(f.reasons, ";"), "t0.png: frame too small to inspect: 4x4") {
		t.Fatalf("listed %d, skipped %d: %v", len(f.paths), f.skipped, f.reasons)
	}
	f.pick(4, 1)
	if err := f.admit(); err != nil {
		t.Fatal(err)
	}
	if len(f.fit) != 4 || len(f.val) != 1 {
		t.Errorf("fit %v, validate %v", f.fit, f.val)
	}
}

// TestRemoveStaleRefitFileDanglingLink: what a killed refit left at its
// frames' name is removed at the next start, a link whose folder is gone
// too (it used to stay, and the next live refit's MkdirAll failed on it).
func TestRemoveStaleRefitFileDanglingLink(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, refitFramesName)
	if err := os.Symlink(filepath.Join(dir, "gone"), p); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	removeStaleRefitFile(dir, infoFunc(func(msg string, _ ...any) { fmt.Fprintln(&log, msg) }))
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("the dangling link at %s is left: %v", refitFramesName, err)
	}
	if !strings.Contains(log.String(), "removed the live frames of an interrupted refit") {
		t.Errorf("log: %q", log.String())
	}
}

type infoFunc func(string, ...any)

func (f infoFunc) Info(msg string, args ...any) { f(msg, args...) }
