package padim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const testSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func testModel(t testing.TB) *Model {
	t.Helper()
	g := newFeatureGen(2*3, 4, 11)
	s, _ := fitState(t, g, 2, 3, 4, 12)
	return &Model{
		State:    *s,
		Channels: []int32{0, 3, 5, 9},
		Meta: Metadata{
			Pool: 1, Eps: DefaultEps, ImageThreshold: 12.5, PixelThreshold: 11,
			BackboneSHA256: testSHA,
			Taps:           []string{"a/b/Conv2d_3", "a/b/Conv2d_5"},
			TapShapes:      []TapShape{{H: 2, W: 3, C: 6}, {H: 1, W: 2, C: 4}},
			Preprocessing:  `{"resize":"letterbox","size":224}`,
			FitDate:        time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC),
			Images:         12,
			Seed:           42,
			Extra:          map[string]string{"note": "line 3 <cam>"},
		},
		Tensors: map[string]Tensor{"map_mean": {Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}}},
	}
}

func testFile(t testing.TB) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Save(path, testModel(t)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b
}

func TestSaveLoadRoundTrip(t *testing.T) {
	want := testModel(t)
	path, raw := testFile(t)
	hl := binary.LittleEndian.Uint64(raw)
	if (8+hl)%64 != 0 {
		t.Errorf("data starts at %d, not 64-byte aligned", 8+hl)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d entries, the temp file was left behind", len(ents))
	}
	m, err := Load(path, LoadOptions{Expect: Expect{BackboneSHA256: strings.ToUpper(testSHA), Taps: want.Meta.Taps}, MaxStateBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if m.FileBytes() != int64(len(raw)) || m.Path() != path {
		t.Errorf("size %d path %s", m.FileBytes(), m.Path())
	}
	if m.State.GridH != 2 || m.State.GridW != 3 || m.State.D != 4 ||
		!slices.Equal(m.State.Mean, want.State.Mean) || !slices.Equal(m.State.InvCov, want.State.InvCov) ||
		!slices.Equal(m.Channels, want.Channels) {
		t.Fatal("state differs after the round trip")
	}
	md, wd := m.Meta, want.Meta
	if !md.FitDate.Equal(wd.FitDate) || md.Eps != wd.Eps || md.ImageThreshold != wd.ImageThreshold ||
		md.PixelThreshold != wd.PixelThreshold || md.Pool != 1 || md.Images != 12 || md.Seed != 42 ||
		md.BackboneSHA256 != testSHA || !slices.Equal(md.Taps, wd.Taps) || !slices.Equal(md.TapShapes, wd.TapShapes) ||
		md.Preprocessing != wd.Preprocessing || md.Extra["note"] != "line 3 <cam>" || len(md.Extra) != 1 {
		t.Fatalf("metadata differs: %+v", md)
	}
	if x := m.Tensors["map_mean"]; !slices.Equal(x.Shape, []int{2, 2}) || !slices.Equal(x.Data, []float32{1, 2, 3, 4}) {
		t.Fatalf("extra tensor %+v", x)
	}
	// The big tensors alias the mapping: no copy.
	if !inMapping(m) {
		t.Error("inverse covariance is not in the mapping")
	}
	// Scoring works straight from the mapping.
	sc, err := NewScorer(&m.State, 2)
	if err != nil {
		t.Fatal(err)
	}
	dist := make([]float32, 6)
	if err := sc.Score(dist, slices.Clone(want.State.Mean)); err != nil || dist[0] != 0 {
		t.Fatalf("score at the mean: %v %v", dist, err)
	}
	sc.Close()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Overwrite in place is atomic too.
	if err := Save(path, want); err != nil {
		t.Fatal(err)
	}
}

// A file with members: each comes back with its own state, metadata and
// tensors, in the mapping; the main model keeps only its own; a reader
// that does not know members would see the main model with extra keys.
func TestMembersRoundTrip(t *testing.T) {
	main, m1, m2 := testModel(t), testModel(t), testModel(t)
	m1.Meta.ImageThreshold, m1.Meta.Extra = 3.5, map[string]string{"recipe": "v2"}
	m2.State.Mean = slices.Clone(m2.State.Mean)
	m2.State.Mean[0] += 1
	m2.Meta.Taps = []string{"x", "y"}
	main.Members = []*Model{m1, m2}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Save(path, main); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path, LoadOptions{MaxStateBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.Members) != 2 || len(m.Tensors) != 1 || len(m.Meta.Extra) != 1 || m.Meta.ImageThreshold != 12.5 {
		t.Fatalf("main model: %d members, tensors %v, extra %v, threshold %g", len(m.Members), slices.Collect(maps.Keys(m.Tensors)), m.Meta.Extra, m.Meta.ImageThreshold)
	}
	a, b := m.Members[0], m.Members[1]
	if a.Meta.ImageThreshold != 3.5 || a.Meta.Extra["recipe"] != "v2" || len(a.Meta.Extra) != 1 || !slices.Equal(a.Channels, m1.Channels) {
		t.Errorf("member 1: %+v", a.Meta)
	}
	if !slices.Equal(b.State.Mean, m2.State.Mean) || !slices.Equal(b.Meta.Taps, []string{"x", "y"}) || b.Tensors["map_mean"].Data[3] != 4 {
		t.Errorf("member 2: state or taps differ: %v", b.Meta.Taps)
	}
	if a.mapped != nil || !inMappingOf(m, b.State.InvCov) {
		t.Error("a member's tensors are not in the file's mapping")
	}
	if _, err := Load(path, LoadOptions{MaxStateBytes: StateBytes(6, 4) * 2}); err == nil || !strings.Contains(err.Error(), "and its 2 member(s)") {
		t.Errorf("budget for two of three states: %v", err)
	}
	raw, _ := os.ReadFile(path)
	// A reader from before members takes every member tensor for an extra
	// tensor, which it accepts only in F32 (an inspectd so old then loads
	// the main model; checked by hand with such a build).
	lay, err := parseHeader(raw[8:8+int(binary.LittleEndian.Uint64(raw))], int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for i, ml := range lay.members {
		for name, e := range ml.entries {
			if e.Dtype != "F32" {
				t.Errorf("member %d's tensor %s is %s: a reader without members refuses the file", i+1, name, e.Dtype)
			}
		}
	}
	for _, c := range []struct{ from, to, want string }{
		{`"members":"2"`, `"members":"1"`, `belongs to member 2, but the file declares 1 member(s)`},
		{`"members":"2"`, `"members":"9"`, `want an integer in 1..8`},
		{`"member1.grid_h":"2"`, `"member1.grid_h":"x"`, `member 1: metadata grid_h="x"`},
	} {
		b := bytes.Replace(raw, []byte(c.from), []byte(c.to), 1)
		if bytes.Equal(b, raw) {
			t.Fatalf("%s not in the header", c.from)
		}
		if _, err := decode(resign(b), LoadOptions{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s → %s: %v, want %q", c.from, c.to, err, c.want)
		}
	}
	main.Members = []*Model{{State: m1.State, Channels: m1.Channels, Meta: m1.Meta, Members: []*Model{m2}}}
	if err := Save(path, main); err == nil || !strings.Contains(err.Error(), "member 1 has members of its own") {
		t.Errorf("nested members saved: %v", err)
	}
	main.Members, main.Meta.Extra = nil, map[string]string{"member1.d": "4"}
	if err := Save(path, main); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("a member's key in the main model's extra metadata saved: %v", err)
	}
}

func inMappingOf(m *Model, v []float32) bool {
	p := uintptr(unsafePointer(&v[0]))
	b := uintptr(unsafePointer(&m.mapped[0]))
	return p >= b && p < b+uintptr(len(m.mapped))
}

func inMapping(m *Model) bool {
	p := uintptr(unsafePointer(&m.State.InvCov[0]))
	b := uintptr(unsafePointer(&m.mapped[0]))
	return p >= b && p < b+uintptr(len(m.mapped))
}

func TestLoadRefuses(t *testing.T) {
	path, raw := testFile(t)
	for _, tc := range []struct {
		opts LoadOptions
		want string
	}{
		{LoadOptions{Expect: Expect{BackboneSHA256: strings.Repeat("f", 64)}}, "backbone in use is ffff"},
		{LoadOptions{Expect: Expect{Taps: []string{"a/b/Conv2d_3"}}}, "configured with taps"},
		{LoadOptions{MaxStateBytes: 100}, "over the memory budget of 100 bytes"},
	} {
		_, err := Load(path, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%+v: %v, want %q and the path", tc.opts, err, tc.want)
		}
		if budget := tc.opts.MaxStateBytes > 0; errors.Is(err, ErrOverBudget) != budget {
			t.Errorf("%+v: errors.Is(%v, ErrOverBudget) = %v, want %v", tc.opts, err, !budget, budget)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none"), LoadOptions{}); err == nil {
		t.Error("missing file loaded")
	}
	if _, err := Load(t.TempDir(), LoadOptions{}); err == nil {
		t.Error("directory loaded")
	}
	hl := int(binary.LittleEndian.Uint64(raw))
	hdr := string(raw[8 : 8+hl])
	// Rewrites of the header that keep it parseable, to reach each check.
	edit := func(old, new string) []byte {
		if !strings.Contains(hdr, old) {
			t.Fatalf("header lacks %q: %s", old, hdr)
		}
		h := strings.Replace(hdr, old, new, 1)
		h = strings.TrimRight(h, " ")
		h += strings.Repeat(" ", max(0, hl-len(h)))
		out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		out = append(out, h...)
		return append(out, raw[8+hl:]...)
	}
	flip := slices.Clone(raw)
	flip[len(flip)-3] ^= 1
	flipHdr := slices.Clone(raw)
	flipHdr[8+strings.Index(hdr, "12.5")] = '7'
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"truncated length", raw[:5], "too short"},
		{"huge header length", append(binary.LittleEndian.AppendUint64(nil, 1<<40), raw[8:]...), "out of bounds"},
		{"truncated data", raw[:len(raw)-4], "cut short"},
		{"trailing bytes", append(slices.Clone(raw), 0, 0, 0, 0), "tensors cover"},
		{"not json", append(binary.LittleEndian.AppendUint64(nil, 4), "nope"...), "not a JSON object"},
		{"data bit flip", flip, "checksum mismatch"},
		{"metadata byte changed", flipHdr, "checksum mismatch"},
		{"dtype", edit(`"dtype":"I32"`, `"dtype":"U8"`), `want F32 or I32`},
		{"shape", edit(`"shape":[4]`, `"shape":[5]`), "data_offsets span"},
		{"version", edit(`"format_version":"1"`, `"format_version":"9"`), "this build reads version 1"},
		{"grid", edit(`"grid_h":"2"`, `"grid_h":"3"`), `tensor "`},
		{"eps", edit(`"eps":"0.01"`, `"eps":"-1"`), "eps=-1"},
		{"sha", edit(`"backbone_sha256":"0123`, `"backbone_sha256":"X123`), "backbone_sha256"},
		{"taps", edit(`"taps":"[`, `"taps":"{`), "metadata taps"},
		{"date", edit(`"fit_date":"2025`, `"fit_date":"x025`), "fit_date"},
		{"missing", edit(`"images":`, `"imagez":`), `lacks "images"`},
		{"checksum form", edit(`"checksum":"crc32c:`, `"checksum":"crc32x:`), "metadata checksum"},
		{"no metadata", edit(`"__metadata__"`, `"__metadata_x"`), "no __metadata__"},
		{"channel range", resign(edit(`"tap_shapes":"[[2,3,6],[1,2,4]]"`, `"tap_shapes":"[[2,3,6],[1,2,3]]"`)), "out of range 0..8"},
		{"resigned grid", resign(edit(`"grid_h":"2"`, `"grid_h":"3"`)), `tensor "`},
		{"extra field", edit(`"dtype":"I32"`, `"dtype":"I32","x":1`), `tensor "channels"`},
	} {
		_, err := decode(tc.b, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestSaveRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		edit func(*Model)
		want string
	}{
		{"sha", func(m *Model) { m.Meta.BackboneSHA256 = "abc" }, "backbone_sha256"},
		{"channels", func(m *Model) { m.Channels = m.Channels[:2] }, "channel indices"},
		{"taps", func(m *Model) { m.Meta.Taps = nil }, "taps"},
		{"preprocessing", func(m *Model) { m.Meta.Preprocessing = "{" }, "preprocessing"},
		{"date", func(m *Model) { m.Meta.FitDate = time.Time{} }, "fit_date"},
		{"reserved extra", func(m *Model) { m.Meta.Extra = map[string]string{"d": "1"} }, "reserved"},
		{"reserved tensor", func(m *Model) { m.Tensors = map[string]Tensor{"mean": {}} }, "reserved"},
		{"tensor shape", func(m *Model) { m.Tensors = map[string]Tensor{"x": {Shape: []int{3}, Data: []float32{1}}} }, "holds 3 values"},
		{"channel order", func(m *Model) { m.Channels = []int32{3, 0, 5, 9} }, "not ascending"},
		{"state", func(m *Model) { m.State.InvCov = m.State.InvCov[1:] }, "inverse covariance"},
		{"NaN", func(m *Model) { m.State.InvCov[7] = float32(math.NaN()) }, `tensor "inv_cov" holds NaN at index 7`},
		{"Inf tensor", func(m *Model) {
			m.Tensors = map[string]Tensor{"x": {Shape: []int{2}, Data: []float32{1, float32(math.Inf(1))}}}
		}, `tensor "x" holds +Inf at index 1`},
	} {
		m := testModel(t)
		tc.edit(m)
		path := filepath.Join(dir, tc.name)
		err := Save(path, m)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed saves left %d files", len(ents))
	}
	if err := Save(filepath.Join(dir, "no/such/dir/m"), testModel(t)); err == nil {
		t.Error("saved into a missing directory")
	}
	// A crash's leftover (tens of MB for a real model) goes with the next
	// save once it is an hour old.
	stale := filepath.Join(dir, ".m.safetensors.tmp-42")
	os.WriteFile(stale, []byte("half a model"), 0o644)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	if err := Save(filepath.Join(dir, "m.safetensors"), testModel(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale temporary file kept")
	}
}

// resign recomputes the checksum of an edited file, to reach the checks
// behind it.
func resign(b []byte) []byte {
	b = slices.Clone(b)
	hl := int(binary.LittleEndian.Uint64(b))
	i := bytes.Index(b[8:8+hl], []byte(checksumPrefix)) + len(checksumPrefix)
	copy(b[8+i:], "00000000")
	crc := crc32.Update(0, castagnoli, b[8:])
	copy(b[8+i:], fmt.Sprintf("%08x", crc))
	return b
}

// FuzzDecode feeds the reader arbitrary files: it must refuse them with an
// error, never panic, and whatever it accepts must be self-consistent.
func FuzzDecode(f *testing.F) {
	_, raw := testFile(f)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add(raw[:100])
	for _, i := range []int{3, 9, 40, len(raw) / 2, len(raw) - 1} {
		b := slices.Clone(raw)
		b[i] ^= 0x5a
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(append(binary.LittleEndian.AppendUint64(nil, 2), "{}"...))
	withMembers := testModel(f)
	withMembers.Members = []*Model{testModel(f)}
	path := filepath.Join(f.TempDir(), "members.safetensors")
	if err := Save(path, withMembers); err != nil {
		f.Fatal(err)
	}
	if b, err := os.ReadFile(path); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b, LoadOptions{})
		if err != nil {
			return
		}
		if err := m.State.Validate(); err != nil {
			t.Fatalf("accepted an invalid state: %v", err)
		}
		if len(m.Channels) != m.State.D {
			t.Fatalf("%d channels for d=%d accepted", len(m.Channels), m.State.D)
		}
		floats := [][]float32{m.State.Mean, m.State.InvCov}
		for _, x := range m.Tensors {
			floats = append(floats, x.Data)
		}
		for _, mm := range m.Members {
			if err := mm.State.Validate(); err != nil || len(mm.Channels) != mm.State.D || len(mm.Members) > 0 {
				t.Fatalf("accepted an invalid member: %v (%d channels for d=%d)", err, len(mm.Channels), mm.State.D)
			}
			floats = append(floats, mm.State.Mean, mm.State.InvCov)
			for _, x := range mm.Tensors {
				floats = append(floats, x.Data)
			}
		}
		for _, v := range floats {
			if i := FirstNonFinite(v); i >= 0 {
				t.Fatalf("accepted a non-finite value %v", v[i])
			}
		}
	})
}

// setFloat writes v into the i-th float32 of a tensor of a model file and
// recomputes the checksum, as a corrupting tool would.
func setFloat(t *testing.T, raw []byte, tensor string, i int, v float32) []byte {
	t.Helper()
	lay, err := parseHeader(raw[8:8+int(binary.LittleEndian.Uint64(raw))], int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := lay.entries[tensor]
	if !ok {
		t.Fatalf("no tensor %q", tensor)
	}
	b := slices.Clone(raw)
	binary.LittleEndian.PutUint32(b[lay.dataStart+e.DataOffsets[0]+int64(4*i):], math.Float32bits(v))
	return resign(b)
}

// A NaN or Inf in any float tensor (the inverse covariances, the means, a
// tensor added by a caller) is refused at load, naming the tensor and the
// first bad index, although the checksum matches.
func TestLoadRefusesNonFinite(t *testing.T) {
	_, raw := testFile(t)
	if _, err := decode(raw, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	nan := float32(math.NaN())
	for _, tc := range []struct {
		tensor string
		i      int
		v      float32
		want   string
	}{
		{TensorInvCov, 13, nan, `tensor "inv_cov" holds NaN at index 13 ([1 3] of shape [6 10])`},
		{TensorInvCov, 0, float32(math.Inf(1)), `tensor "inv_cov" holds +Inf at index 0`},
		{TensorMean, 23, float32(math.Inf(-1)), `tensor "mean" holds -Inf at index 23 ([5 3] of shape [6 4])`},
		{"map_mean", 2, nan, `tensor "map_mean" holds NaN at index 2 ([1 0] of shape [2 2])`},
	} {
		_, err := decode(setFloat(t, raw, tc.tensor, tc.i, tc.v), LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s[%d] = %v: %v, want %q", tc.tensor, tc.i, tc.v, err, tc.want)
		}
	}
	// Through the file path too, and the error names the file.
	path := filepath.Join(t.TempDir(), "nan.safetensors")
	if err := os.WriteFile(path, setFloat(t, raw, TensorInvCov, 5, nan), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, LoadOptions{}); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"inv_cov" holds NaN`) {
		t.Errorf("Load: %v", err)
	}
}

func TestFirstNonFinite(t *testing.T) {
	for _, tc := range []struct {
		v    []float32
		want int
	}{
		{nil, -1},
		{[]float32{0, -1, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32}, -1},
		{[]float32{1, float32(math.NaN())}, 1},
		{[]float32{float32(math.Inf(-1)), float32(math.NaN())}, 0},
		{[]float32{2, 3, math.Float32frombits(0xffc00001)}, 2}, // a negative NaN with payload
	} {
		if got := FirstNonFinite(tc.v); got != tc.want {
			t.Errorf("FirstNonFinite(%v) = %d, want %d", tc.v, got, tc.want)
		}
	}
	// Across block boundaries and lengths: the first bad value wins.
	bads := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7f800001)}
	for _, n := range []int{1, 3, 4, 255, 256, 257, 1000, 1027} {
		for _, at := range []int{0, n / 3, n - 1} {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(i) * -1e30 // large finite values of both signs
			}
			v[at] = bads[(n+at)%len(bads)]
			if at+1 < n {
				v[n-1] = bads[0]
			}
			if got := FirstNonFinite(v); got != at {
				t.Errorf("n=%d, bad at %d: got %d", n, at, got)
			}
			v[at], v[n-1] = 0, 0
			if got := FirstNonFinite(v); got != -1 {
				t.Errorf("n=%d all finite: got %d", n, got)
			}
		}
	}
}

// A model file cut short (copied while it was written) gets the same
// words on every load, naming the file, its size and the size its header
// wants: the check went through the header's tensors in map order, so a
// dry run and the push of one file named different tensors.
func TestLoadCutShortSameWords(t *testing.T) {
	m := testModel(t)
	for _, name := range []string{"dist_mean", "dist_inv_std", "context_dist_mean", "context_dist_inv_std", "context_mean"} {
		m.Tensors[name] = Tensor{Shape: []int{64}, Data: make([]float32, 64)}
	}
	full := filepath.Join(t.TempDir(), "full.safetensors")
	if err := Save(full, m); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	hl := int(binary.LittleEndian.Uint64(raw))
	// Cut where at least two tensors lie wholly beyond the end.
	n := 8 + hl + (len(raw)-8-hl)*6/10
	path := filepath.Join(t.TempDir(), "cut.safetensors")
	if err := os.WriteFile(path, raw[:n], 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("file is %d bytes, the header's tensors need %d: the file is cut short", n, len(raw))
	var first string
	for i := range 20 {
		_, err := Load(path, LoadOptions{})
		if err == nil {
			t.Fatal("a cut file loaded")
		}
		if i == 0 {
			first = err.Error()
			if !strings.Contains(first, path) || !strings.Contains(first, want) {
				t.Fatalf("cut file: %q, want the path %s and %q", first, path, want)
			}
			continue
		}
		if err.Error() != first {
			t.Fatalf("load %d of the same cut file: %q, then %q", i+1, first, err)
		}
	}
	t.Log(first)
}
