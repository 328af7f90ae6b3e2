package daemon

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/daemon/internal/testbroker"
	"github.com/inspectd/inspectd/daemon/internal/testproc"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// readImageTag returns the inspection tag of a published mask (PNG, iTXt
// chunk ImageTagKey) or heatmap (JPEG, comment segment), failing the test
// when the image has none or its chunks are malformed.
func readImageTag(t *testing.T, data []byte) imageTag {
	t.Helper()
	var text []byte
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		for at := 8; at+12 <= len(data); {
			n := int(binary.BigEndian.Uint32(data[at:]))
			if at+12+n > len(data) {
				t.Fatalf("PNG chunk at %d runs past the end", at)
			}
			typ, body := string(data[at+4:at+8]), data[at+8:at+8+n]
			if crc32.ChecksumIEEE(data[at+4:at+8+n]) != binary.BigEndian.Uint32(data[at+8+n:]) {
				t.Fatalf("PNG chunk %s: bad CRC", typ)
			}
			if k := ImageTagKey + "\x00\x00\x00\x00\x00"; typ == "iTXt" && bytes.HasPrefix(body, []byte(k)) {
				text = body[len(k):]
			}
			at += 12 + n
		}
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8}):
		for at := 2; at+4 <= len(data) && data[at] == 0xFF && data[at+1] != 0xDA; {
			n := int(binary.BigEndian.Uint16(data[at+2:]))
			if data[at+1] == 0xFE {
				text = data[at+4 : at+2+n]
			}
			at += 2 + n
		}
	default:
		t.Fatalf("neither a PNG nor a JPEG: % x", data[:min(len(data), 8)])
	}
	if text == nil {
		t.Fatal("image carries no inspection tag")
	}
	var tag imageTag
	if err := json.Unmarshal(text, &tag); err != nil {
		t.Fatalf("tag %q: %v", text, err)
	}
	return tag
}

// A published mask and heatmap say which inspection they show (a PNG text
// chunk, a JPEG comment), stay images every decoder reads, and count the
// tag against the payload limit.
func TestImagesCarryTheirInspection(t *testing.T) {
	h := mqttpub.Header{Seq: 42, BootID: "b-1", FrameTime: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), TriggerID: "part-7", File: "Teil_ä.jpg"}
	tag := tagOf(&h)
	// A name that is not UTF-8 carries its bytes, as the result does.
	raw := h
	raw.SetFile("p\xff.jpg")
	if s := string(tagOf(&raw)); !strings.Contains(s, `"file_bytes":"cP8uanBn"`) {
		t.Errorf("tag of a non-UTF-8 name: %s", s)
	}
	m := image.NewGray(image.Rect(0, 0, 64, 48))
	for i := range m.Pix {
		if i%7 == 0 {
			m.Pix[i] = 255
		}
	}
	var e imageEncoder
	b, err := e.mask(m, 0, 0, tag)
	if err != nil {
		t.Fatal(err)
	}
	got, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("tagged mask does not decode: %v", err)
	}
	if g, ok := got.(*image.Gray); !ok || !bytes.Equal(g.Pix, m.Pix) {
		t.Error("tagged mask decodes to other pixels")
	}
	if tg := readImageTag(t, b); tg.Seq != 42 || tg.BootID != "b-1" || tg.TriggerID != "part-7" || tg.File != "Teil_ä.jpg" || !tg.FrameTime.Equal(h.FrameTime) {
		t.Errorf("mask tag %+v, want the inspection's %+v", tg, h)
	}
	size := len(b)

	frame := image.NewRGBA(image.Rect(0, 0, 64, 48))
	amap := make([]float32, 64*48)
	amap[100] = 20
	j, err := e.heatmap(frame, amap, 64, 48, 10, 0, 0, tag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jpeg.Decode(bytes.NewReader(j)); err != nil {
		t.Fatalf("tagged heatmap does not decode: %v", err)
	}
	if tg := readImageTag(t, j); tg.Seq != 42 || tg.File != "Teil_ä.jpg" {
		t.Errorf("heatmap tag %+v", tg)
	}

	// The limit holds for the tagged bytes.
	for _, limit := range []int{size - 1, size, size + 1} {
		b, err := e.mask(m, 0, limit, tag)
		if err == nil && len(b) > limit {
			t.Errorf("limit %d: a mask of %d bytes", limit, len(b))
		}
		if err != nil && !strings.Contains(err.Error(), "payload limit") {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
	if _, err := e.mask(m, 0, size, tag); err != nil {
		t.Errorf("a limit of the tagged mask's own size refused it: %v", err)
	}
}

// /heatmap.jpg carries the tag of the inspection it shows, as the heatmap
// published on MQTT does (it carried none: a picture fetched over HTTP
// could not be matched to its result), and follows the next inspection.
func TestHTTPHeatmapCarriesItsInspection(t *testing.T) {
	t.Parallel()
	frames := filepath.Join(t.TempDir(), "frames")
	if err := os.MkdirAll(frames, 0o755); err != nil {
		t.Fatal(err)
	}
	r := startFolderDaemon(t, frames, "watch", true)
	url := r.httpURL()
	var mu sync.Mutex
	results := map[string]mqttpub.Result{} // by file
	testbroker.Connect(t, mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:"+strconv.Itoa(r.port)).SetClientID("heatmap-test"),
		testbroker.Sub{Topic: "inspectd/cell1/result", QoS: 1, Handler: func(_ mqtt.Client, m mqtt.Message) {
			var res mqttpub.Result
			if err := json.Unmarshal(m.Payload(), &res); err == nil {
				mu.Lock()
				results[res.File] = res
				mu.Unlock()
			}
		}})

	for i, name := range []string{"first.png", "second.png"} {
		// Written aside and moved in: the folder source reads whole files.
		writePNGs(t, filepath.Join(frames, "new"), 1, uint64(11+i), false)
		if err := os.Rename(filepath.Join(frames, "new", "part000.png"), filepath.Join(frames, name)); err != nil {
			t.Fatal(err)
		}
		var res mqttpub.Result
		r.waitFor("the result of "+name, func() bool {
			mu.Lock()
			defer mu.Unlock()
			var ok bool
			res, ok = results[name]
			return ok
		})
		var body []byte
		r.waitFor("/heatmap.jpg of "+name, func() bool {
			resp, err := http.Get(url + "/heatmap.jpg")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			body, err = io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK {
				return false
			}
			// Not yet tagged (old code) is a failure, not a wait.
			return readImageTag(t, body).File == name
		})
		if _, err := jpeg.Decode(bytes.NewReader(body)); err != nil {
			t.Fatalf("tagged /heatmap.jpg does not decode: %v", err)
		}
		tag := readImageTag(t, body)
		if tag.Seq != res.Seq || tag.BootID != res.BootID || tag.BootID == "" || !tag.FrameTime.Equal(res.FrameTime) || tag.TriggerID != res.TriggerID {
			t.Errorf("/heatmap.jpg of %s tagged %+v, its result says seq %d boot %q frame time %v trigger %q",
				name, tag, res.Seq, res.BootID, res.FrameTime, res.TriggerID)
		}
		time.Sleep(httpEvery + 100*time.Millisecond) // the next file refreshes the picture
	}
}

// The heatmap's limit counts the tag's comment segment: a limit of the
// tagged heatmap's own size takes it as it is, one byte less gets a
// smaller one (a lower quality) that still fits with its tag, and a limit
// no quality or size meets is refused.
func TestHeatmapLimitCountsTheTag(t *testing.T) {
	h := mqttpub.Header{Seq: 7, BootID: "b-2", FrameTime: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), File: "part.png"}
	tag := tagOf(&h)
	frame := image.NewRGBA(image.Rect(0, 0, 160, 120))
	for i := range frame.Pix {
		frame.Pix[i] = uint8(i * 7)
	}
	amap := make([]float32, 160*120)
	for i := range amap {
		amap[i] = float32(i % 23)
	}
	var e imageEncoder
	full, err := e.heatmap(frame, amap, 160, 120, 10, 0, 0, tag)
	if err != nil {
		t.Fatal(err)
	}
	full = bytes.Clone(full)
	n := len(full)

	at, err := e.heatmap(frame, amap, 160, 120, 10, 0, n, tag)
	if err != nil || !bytes.Equal(at, full) {
		t.Errorf("limit %d, the tagged heatmap's size: %d bytes, %v; want the same %d bytes", n, len(at), err, n)
	}
	below, err := e.heatmap(frame, amap, 160, 120, 10, 0, n-1, tag)
	if err != nil {
		t.Fatalf("limit %d: %v", n-1, err)
	}
	if len(below) > n-1 {
		t.Errorf("limit %d: a heatmap of %d bytes", n-1, len(below))
	}
	if _, err := jpeg.Decode(bytes.NewReader(below)); err != nil {
		t.Errorf("limit %d: the smaller heatmap does not decode: %v", n-1, err)
	}
	if tg := readImageTag(t, below); tg.Seq != 7 || tg.File != "part.png" {
		t.Errorf("limit %d: the smaller heatmap's tag %+v", n-1, tg)
	}
	if b, err := e.heatmap(frame, amap, 160, 120, 10, 0, len(tag)+100, tag); err == nil || !strings.Contains(err.Error(), "payload limit") {
		t.Errorf("a limit no heatmap meets: %d bytes, %v", len(b), err)
	}
}

// TestMaskShrinksToFitTheLimit: a mask whose PNG does not fit the payload
// limit at the best compression is halved until it does (it was refused:
// with mqtt.max_payload 16KiB a 4000×3000 line published no mask at all),
// the defect kept by the max-pool; below minMaskSide it is refused as too
// large.
func TestMaskShrinksToFitTheLimit(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("PNG encoding alone, no goroutines: 5 s, 139 s under -race (make test's race run is -short)")
	}
	m := image.NewGray(image.Rect(0, 0, 1200, 900))
	seed := uint32(1)
	for i := range m.Pix { // speckle: a mask that compresses badly
		seed = seed*1664525 + 1013904223
		if seed>>28 == 0 {
			m.Pix[i] = 255
		}
	}
	tag := tagOf(&mqttpub.Header{Seq: 3, BootID: "b-3"})
	var e imageEncoder
	full, err := e.mask(m, 0, 0, tag)
	if err != nil {
		t.Fatal(err)
	}
	limit := len(full) / 3
	b, err := e.mask(m, 0, limit, tag)
	if err != nil {
		t.Fatalf("limit %d (a third of the mask's %d bytes): %v", limit, len(full), err)
	}
	if len(b) > limit {
		t.Errorf("limit %d: a mask of %d bytes", limit, len(b))
	}
	got, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if w, h := got.Bounds().Dx(), got.Bounds().Dy(); w >= 1200 || w*900 != h*1200 {
		t.Errorf("the shrunk mask is %d×%d; want smaller than 1200×900, same aspect", w, h)
	}
	if tg := readImageTag(t, b); tg.Seq != 3 {
		t.Errorf("the shrunk mask's tag %+v", tg)
	}
	_, err = e.mask(m, 0, len(tag)+60, tag)
	var tl *tooLargeError
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), "payload limit") {
		t.Errorf("a limit no mask meets: %v; want a tooLargeError", err)
	}
}

// TestImageFailureLoggedOncePerKind: an image over the payload limit is
// so part after part, each time of another size: logged once per kind
// (two lines per part before, the mask's and the heatmap's alternating),
// counted every time.
func TestImageFailureLoggedOncePerKind(t *testing.T) {
	var lb testproc.LogBuffer
	p := &Pipeline{log: slog.New(slog.NewTextHandler(&lb, nil))}
	for i := range 5 {
		p.sendImage("mask", uint64(i), nil, &tooLargeError{fmt.Sprintf("mask PNG of %d bytes exceeds", 20000+i)}, nil)
		p.sendImage("heatmap", uint64(i), nil, &tooLargeError{fmt.Sprintf("heatmap JPEG of %d bytes exceeds", 30000+i)}, nil)
	}
	if m, h := lb.Count("image not published", "kind=mask"), lb.Count("image not published", "kind=heatmap"); m != 1 || h != 1 {
		t.Errorf("%d mask and %d heatmap lines for five parts over the limit, want 1 and 1\n%s", m, h, &lb)
	}
	p.sendImage("mask", 9, nil, errors.New("encode mask: broken"), nil)
	if got := lb.Count("image not published", "kind=mask"); got != 2 {
		t.Errorf("another cause of the mask's: %d lines, want 2", got)
	}
}

// TestHeatmapShrinksPastThreeSizes: a large frame's heatmap is halved
// until it fits (it stopped after three sizes: a 4000 px frame's at
// 1000 px, where 500 px would have fit, and every heatmap was skipped).
func TestHeatmapShrinksPastThreeSizes(t *testing.T) {
	frame := image.NewRGBA(image.Rect(0, 0, 2048, 1536))
	seed := uint32(7)
	for i := range frame.Pix { // noise: a picture that compresses badly
		seed = seed*1664525 + 1013904223
		frame.Pix[i] = uint8(seed >> 24)
	}
	amap := make([]float32, 2048*1536)
	var e imageEncoder
	tag := tagOf(&mqttpub.Header{Seq: 5})
	small, err := e.heatmap(frame, amap, 2048, 1536, 10, 200, 0, tag)
	if err != nil {
		t.Fatal(err)
	}
	limit := len(small) + 200 // what a heatmap of about 200 px takes: five halvings from 2048
	b, err := e.heatmap(frame, amap, 2048, 1536, 10, 0, limit, tag)
	if err != nil {
		t.Fatalf("limit %d: %v", limit, err)
	}
	if len(b) > limit {
		t.Errorf("limit %d: %d bytes", limit, len(b))
	}
}
