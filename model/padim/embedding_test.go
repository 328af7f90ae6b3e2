package padim

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// tapValue encodes tap, position and channel so a test can tell where an
// embedding value came from.
func tapValue(tap, y, x, c int) float32 { return float32(tap*10000 + y*1000 + x*10 + c) }

func makeMaps(shapes []TapShape) []FeatureMap {
	maps := make([]FeatureMap, len(shapes))
	for t, s := range shapes {
		m := FeatureMap{H: s.H, W: s.W, C: s.C, Data: make([]float32, s.H*s.W*s.C)}
		for y := range s.H {
			for x := range s.W {
				for c := range s.C {
					m.Data[(y*s.W+x)*s.C+c] = tapValue(t, y, x, c)
				}
			}
		}
		maps[t] = m
	}
	return maps
}

func TestEmbedderNearestUpsampling(t *testing.T) {
	shapes := []TapShape{{H: 4, W: 6, C: 3}, {H: 2, W: 3, C: 4}, {H: 1, W: 1, C: 2}}
	// Channels 1 (tap 0 ch 1), 3 and 6 (tap 1 ch 0 and 3), 8 (tap 2 ch 1),
	// given out of order: the embedder sorts them.
	e, err := NewEmbedder(EmbedderOptions{Taps: shapes, Channels: []int32{8, 3, 1, 6}})
	if err != nil {
		t.Fatal(err)
	}
	if e.GridH() != 4 || e.GridW() != 6 || e.D() != 4 {
		t.Fatalf("grid %dx%d d=%d, want 4x6 d=4", e.GridH(), e.GridW(), e.D())
	}
	if got := e.Channels(); !slices.Equal(got, []int32{1, 3, 6, 8}) {
		t.Fatalf("channels %v", got)
	}
	dst := make([]float32, e.Len())
	if err := e.Embed(dst, makeMaps(shapes)); err != nil {
		t.Fatal(err)
	}
	for y := range 4 {
		for x := range 6 {
			want := []float32{tapValue(0, y, x, 1), tapValue(1, y/2, x/2, 0), tapValue(1, y/2, x/2, 3), tapValue(2, 0, 0, 1)}
			got := dst[(y*6+x)*4 : (y*6+x)*4+4]
			if !slices.Equal(got, want) {
				t.Fatalf("(y=%d, x=%d): got %v, want %v", y, x, got, want)
			}
		}
	}
}

func TestEmbedderFinestTapNotFirst(t *testing.T) {
	shapes := []TapShape{{H: 2, W: 2, C: 1}, {H: 4, W: 4, C: 1}}
	e, err := NewEmbedder(EmbedderOptions{Taps: shapes, D: 2})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, e.Len())
	if err := e.Embed(dst, makeMaps(shapes)); err != nil {
		t.Fatal(err)
	}
	// Position (3, 1): tap 0 at (1, 0), tap 1 at (3, 1).
	got := dst[(3*4+1)*2 : (3*4+1)*2+2]
	if want := []float32{tapValue(0, 1, 0, 0), tapValue(1, 3, 1, 0)}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestEmbedderSeededSubset(t *testing.T) {
	shapes := []TapShape{{H: 56, W: 56, C: 128}, {H: 28, W: 28, C: 256}, {H: 14, W: 14, C: 512}}
	a, err := NewEmbedder(EmbedderOptions{Taps: shapes, D: 100, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewEmbedder(EmbedderOptions{Taps: shapes, D: 100, Seed: 1})
	c, _ := NewEmbedder(EmbedderOptions{Taps: shapes, D: 100, Seed: 2})
	if !slices.Equal(a.Channels(), b.Channels()) {
		t.Fatal("same seed gave different channels")
	}
	if slices.Equal(a.Channels(), c.Channels()) {
		t.Fatal("different seeds gave the same channels")
	}
	ch := a.Channels()
	if len(ch) != 100 || !slices.IsSorted(ch) || len(slices.Compact(slices.Clone(ch))) != 100 || ch[99] >= 896 {
		t.Fatalf("bad channel set %v", ch)
	}
	// Reloading from the stored channels reproduces the embedder.
	r, err := NewEmbedder(EmbedderOptions{Taps: shapes, Channels: ch})
	if err != nil || !slices.Equal(r.Channels(), ch) {
		t.Fatalf("reload: %v %v", err, r.Channels())
	}
}

func TestEmbedderPool(t *testing.T) {
	shapes := []TapShape{{H: 5, W: 4, C: 2}}
	e, err := NewEmbedder(EmbedderOptions{Taps: shapes, D: 2, Pool: 2})
	if err != nil {
		t.Fatal(err)
	}
	if e.GridH() != 2 || e.GridW() != 2 {
		t.Fatalf("pooled grid %dx%d, want 2x2", e.GridH(), e.GridW())
	}
	dst := make([]float32, e.Len())
	if err := e.Embed(dst, makeMaps(shapes)); err != nil {
		t.Fatal(err)
	}
	for gy := range 2 {
		for gx := range 2 {
			for c := range 2 {
				var want float32
				for dy := range 2 {
					for dx := range 2 {
						want += tapValue(0, 2*gy+dy, 2*gx+dx, c)
					}
				}
				want /= 4
				if got := dst[(gy*2+gx)*2+c]; got != want {
					t.Fatalf("(%d,%d,%d): got %v, want %v", gy, gx, c, got, want)
				}
			}
		}
	}
}

func TestEmbedderErrors(t *testing.T) {
	shapes := []TapShape{{H: 4, W: 4, C: 3}, {H: 2, W: 2, C: 3}}
	for _, tc := range []struct {
		opts EmbedderOptions
		want string
	}{
		{EmbedderOptions{}, "no taps"},
		{EmbedderOptions{Taps: shapes, D: 7}, "want 1..6"},
		{EmbedderOptions{Taps: shapes, D: 0}, "want 1..6"},
		{EmbedderOptions{Taps: shapes, Channels: []int32{1, 6}}, "out of range"},
		{EmbedderOptions{Taps: shapes, Channels: []int32{2, 2}}, "repeated"},
		{EmbedderOptions{Taps: []TapShape{{4, 2, 1}, {2, 4, 1}}, D: 1}, "larger than the finest"},
		{EmbedderOptions{Taps: []TapShape{{0, 2, 1}}, D: 1}, "want positive"},
		{EmbedderOptions{Taps: shapes, D: 2, Pool: 5}, "leaves no positions"},
	} {
		if _, err := NewEmbedder(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.opts, err, tc.want)
		}
	}
	e, _ := NewEmbedder(EmbedderOptions{Taps: shapes, D: 3})
	maps := makeMaps(shapes)
	if err := e.Embed(make([]float32, 5), maps); err == nil {
		t.Error("short destination accepted")
	}
	if err := e.Embed(make([]float32, e.Len()), maps[:1]); err == nil {
		t.Error("missing tap accepted")
	}
	maps[1].C = 4
	if err := e.Embed(make([]float32, e.Len()), maps); err == nil || !strings.Contains(err.Error(), "tap 1") {
		t.Errorf("wrong tap shape: %v", err)
	}
}

func TestEmbedNoAllocs(t *testing.T) {
	shapes := []TapShape{{H: 56, W: 56, C: 128}, {H: 28, W: 28, C: 256}, {H: 14, W: 14, C: 512}}
	for _, pool := range []int{1, 2, 6, 8} {
		e, err := NewEmbedder(EmbedderOptions{Taps: shapes, D: 100, Seed: 3, Pool: pool})
		if err != nil {
			t.Fatal(err)
		}
		maps := makeMaps(shapes)
		dst := make([]float32, e.Len())
		if n := testing.AllocsPerRun(5, func() { _ = e.Embed(dst, maps) }); n != 0 {
			t.Errorf("pool %d: %v allocs per Embed", pool, n)
		}
	}
}

// Pooling at each tap's own resolution, weighting each tap position by the
// finest-grid positions it stands for, gives the same embedding as pooling
// the finest-grid one, for cells aligned with the coarser taps or not.
func TestEmbedderPoolAtTapResolution(t *testing.T) {
	mobilenet := []TapShape{{H: 56, W: 56, C: 8}, {H: 28, W: 28, C: 8}, {H: 14, W: 14, C: 8}}
	for _, c := range []struct {
		shapes []TapShape
		pool   int
	}{
		{mobilenet, 8},
		{mobilenet, 6}, // one and a half 14×14 positions per cell
		{mobilenet, 7},
		{mobilenet, 2}, // half a 14×14 position
		{[]TapShape{{H: 12, W: 9, C: 6}, {H: 6, W: 3, C: 6}}, 3},
		{[]TapShape{{H: 12, W: 12, C: 6}, {H: 6, W: 6, C: 6}}, 4},
		{[]TapShape{{H: 13, W: 11, C: 6}, {H: 5, W: 4, C: 6}}, 3}, // uneven nearest mapping
	} {
		full, err := NewEmbedder(EmbedderOptions{Taps: c.shapes, D: 10, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		pooled, err := NewEmbedder(EmbedderOptions{Taps: c.shapes, Channels: full.Channels(), Pool: c.pool})
		if err != nil {
			t.Fatal(err)
		}
		maps := makeMaps(c.shapes)
		f := make([]float32, full.Len())
		if err := full.Embed(f, maps); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, pooled.Len())
		poolGrid(want, f, full.GridH(), full.GridW(), 10, c.pool)
		got := make([]float32, pooled.Len())
		if err := pooled.Embed(got, maps); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
				t.Fatalf("%v pool %d: value %d is %v, want %v", c.shapes, c.pool, i, got[i], want[i])
			}
		}
	}
}

// poolGrid averages k×k blocks of an h×w grid of d-vectors (src[p*d+c])
// into dst, an (h/k)×(w/k) grid, leaving out rows and columns beyond the
// last whole block: the reference for the Embedder's pooling.
func poolGrid(dst, src []float32, h, w, d, k int) {
	gh, gw := h/k, w/k
	inv := 1 / float32(k*k)
	for gy := range gh {
		for gx := range gw {
			o := dst[(gy*gw+gx)*d : (gy*gw+gx+1)*d]
			clear(o)
			for dy := range k {
				for dx := range k {
					p := (gy*k+dy)*w + gx*k + dx
					v := src[p*d : p*d+d]
					for c := range o {
						o[c] += v[c]
					}
				}
			}
			for c := range o {
				o[c] *= inv
			}
		}
	}
}
