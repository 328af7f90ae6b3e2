package model

// Throwaway experiment harness (to be removed): caches raw tap outputs per
// preprocessing and sweeps PaDiM variants on them.

import (
	"encoding/gob"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"image/png"

	"github.com/inspectd/inspectd/model/render"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"

	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/dataset"
	"github.com/inspectd/inspectd/model/metrics"
	"github.com/inspectd/inspectd/model/modeltest"
	"github.com/inspectd/inspectd/model/padim"
)

type xImage struct {
	Path   string
	Label  string
	Mask   string
	W, H   int
	Region backbone.Region
	Taps   [][]byte
}

type xCache struct {
	Taps  []backbone.Tap
	Train []xImage
	Test  []xImage
}

type xPre struct {
	Resize string
	Photo  string // none, std
	Flip   bool
	Taps   string // comma-separated conv numbers, "" = default
}

func (p xPre) key() string {
	return fmt.Sprintf("%s_%s_%v_%s", p.Resize, p.Photo, p.Flip, strings.ReplaceAll(p.Taps, ",", "-"))
}

// photometric standardizes a gray image: mean 128, std target.
func photometric(img image.Image, mode string) image.Image {
	if mode == "none" || mode == "" {
		return img
	}
	b := img.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	var s, ss float64
	n := float64(b.Dx() * b.Dy())
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, gg, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			v := (0.299*float64(r) + 0.587*float64(gg) + 0.114*float64(bb)) / 257
			g.Pix[y*g.Stride+x] = uint8(min(max(v+0.5, 0), 255))
			s += v
			ss += v * v
		}
	}
	mean := s / n
	std := math.Sqrt(max(ss/n-mean*mean, 1e-6))
	var target float64
	var fixStd bool
	switch mode {
	case "std":
		target, fixStd = 40, true
	case "std20":
		target, fixStd = 20, true
	case "std60":
		target, fixStd = 60, true
	case "mean":
	}
	for i, p := range g.Pix {
		v := float64(p) - mean
		if fixStd {
			v *= target / std
		}
		g.Pix[i] = uint8(min(max(128+v+0.5, 0), 255))
	}
	return g
}

func xBuild(t *testing.T, dir string, pre xPre) *xCache {
	cdir := "/tmp/inspectd-exp"
	os.MkdirAll(cdir, 0o755)
	file := filepath.Join(cdir, pre.key()+".gob")
	if f, err := os.Open(file); err == nil {
		defer f.Close()
		var c xCache
		if err := gob.NewDecoder(f).Decode(&c); err == nil {
			return &c
		}
	}
	set, err := dataset.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	var taps []string
	if pre.Taps != "" {
		for _, n := range strings.Split(pre.Taps, ",") {
			taps = append(taps, "MobilenetV1/MobilenetV1/Conv2d_"+n+"_pointwise/Relu6")
		}
	}
	bb, err := backbone.Open(backbone.Options{Path: modeltest.BackbonePath(t), Threads: 2, Taps: taps,
		Preprocess: backbone.Preprocess{Resize: backbone.ResizeMode(pre.Resize)}})
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	c := &xCache{Taps: slices.Clone(bb.Taps())}
	one := func(it dataset.Item) xImage {
		img, err := dataset.Load(it.Path)
		if err != nil {
			t.Fatal(err)
		}
		img = photometric(img, pre.Photo)
		b := img.Bounds()
		_, reg, err := bb.Extract(img)
		if err != nil {
			t.Fatal(err)
		}
		x := xImage{Path: it.Path, Label: it.Label, Mask: it.MaskPath, W: b.Dx(), H: b.Dy(), Region: reg}
		for i := range c.Taps {
			x.Taps = append(x.Taps, slices.Clone(bb.RawTap(i)))
		}
		return x
	}
	start := time.Now()
	for _, it := range set.Train {
		c.Train = append(c.Train, one(it))
	}
	for _, it := range set.Test {
		c.Test = append(c.Test, one(it))
	}
	t.Logf("cache %s built in %s", pre.key(), time.Since(start))
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := gob.NewEncoder(f).Encode(c); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return c
}

type xVar struct {
	Name   string
	Taps   []int // indices into cache taps
	D      int
	Seed   uint64
	Eps    float64
	Sigma  float64
	Gauss  string // pos, global
	Post   string // none, median, zpos, zimg
	Train  int    // 0: all
	Pool   int
	Window int // global: pool positions within windows? unused
}

type xRes struct {
	Image, Pixel, PRO float64
	Per               map[string]float64
	PixPer            map[string]float64
	Secs              float64
}

func (r xRes) String() string {
	var per []string
	for _, k := range []string{"blowhole", "break", "crack", "fray", "uneven"} {
		if v, ok := r.Per[k]; ok {
			per = append(per, fmt.Sprintf("%s %.3f/%.3f", k[:3], v, r.PixPer[k]))
		}
	}
	return fmt.Sprintf("img %.4f pix %.4f pro %.4f | %s | %.0fs", r.Image, r.Pixel, r.PRO, strings.Join(per, " "), r.Secs)
}

type xEnv struct {
	c      *xCache
	shapes []padim.TapShape
	luts   [][256]float32
	fm     []padim.FeatureMap
	masks  map[string][]uint8
}

func newXEnv(t *testing.T, c *xCache) *xEnv {
	e := &xEnv{c: c, masks: map[string][]uint8{}}
	for _, tp := range c.Taps {
		e.shapes = append(e.shapes, padim.TapShape{H: tp.H, W: tp.W, C: tp.C})
		var l [256]float32
		for v := range l {
			l[v] = float32(tp.Scale * float64(v-tp.Zero))
		}
		e.luts = append(e.luts, l)
		e.fm = append(e.fm, padim.FeatureMap{H: tp.H, W: tp.W, C: tp.C, Data: make([]float32, tp.H*tp.W*tp.C)})
	}
	for _, x := range c.Test {
		m, err := dataset.LoadMask(x.Mask, x.W, x.H, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.masks[x.Path] = m
	}
	return e
}

func (e *xEnv) embed(emb *padim.Embedder, taps []int, x *xImage, dst []float32) {
	var maps []padim.FeatureMap
	for _, ti := range taps {
		f := e.fm[ti]
		l := &e.luts[ti]
		for j, v := range x.Taps[ti] {
			f.Data[j] = l[v]
		}
		maps = append(maps, f)
	}
	if err := emb.Embed(dst, maps); err != nil {
		panic(err)
	}
}

// globalGauss is one Gaussian over all positions (inside the region).
type globalGauss struct {
	d    int
	mean []float64
	linv *mat.TriDense // inverse Cholesky factor (lower)
}

func (e *xEnv) run(t *testing.T, v xVar) xRes {
	start := time.Now()
	if v.Taps == nil {
		v.Taps = []int{0, 1, 2}
	}
	if v.D == 0 {
		v.D = 100
	}
	if v.Eps == 0 {
		v.Eps = 0.01
	}
	if v.Gauss == "" {
		v.Gauss = "pos"
	}
	var shapes []padim.TapShape
	for _, ti := range v.Taps {
		shapes = append(shapes, e.shapes[ti])
	}
	tot := 0
	for _, s := range shapes {
		tot += s.C
	}
	emb, err := padim.NewEmbedder(padim.EmbedderOptions{Taps: shapes, D: min(v.D, tot), Seed: v.Seed + 1, Pool: v.Pool})
	if err != nil {
		t.Fatal(err)
	}
	d := emb.D()
	P := emb.Positions()
	gw, gh := emb.GridW(), emb.GridH()
	vec := make([]float32, emb.Len())
	train := e.c.Train
	if v.Train > 0 && v.Train < len(train) {
		var tr []xImage
		for i := 0; i < v.Train; i++ {
			tr = append(tr, train[i*len(train)/v.Train])
		}
		train = tr
	}
	fitIdx, holdIdx := splitHoldout(len(train), 0.1)
	dist := make([]float32, P)
	var score func(x *xImage)
	switch v.Gauss {
	case "pos":
		acc, err := padim.NewAccumulator(padim.AccumulatorOptions{GridH: gh, GridW: gw, D: d})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range fitIdx {
			e.embed(emb, v.Taps, &train[i], vec)
			acc.Add(vec)
		}
		st, err := acc.Finalize(padim.FinalizeOptions{Eps: v.Eps})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := padim.NewScorer(st, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		score = func(x *xImage) {
			e.embed(emb, v.Taps, x, vec)
			sc.Score(dist, vec)
		}
	case "global":
		sum := make([]float64, d)
		cov := mat.NewSymDense(d, nil)
		xs := mat.NewDense(P, d, nil)
		n := 0
		for _, i := range fitIdx {
			e.embed(emb, v.Taps, &train[i], vec)
			for j, f := range vec {
				xs.RawMatrix().Data[j] = float64(f)
			}
			for p := 0; p < P; p++ {
				for k := 0; k < d; k++ {
					sum[k] += float64(vec[p*d+k])
				}
			}
			blas64.Syrk(blas.Trans, 1, xs.RawMatrix(), 1, cov.RawSymmetric())
			n += P
		}
		mean := make([]float64, d)
		for k := range mean {
			mean[k] = sum[k] / float64(n)
		}
		for i := 0; i < d; i++ {
			for j := i; j < d; j++ {
				cov.SetSym(i, j, (cov.At(i, j)-float64(n)*mean[i]*mean[j])/float64(n-1)+func() float64 {
					if i == j {
						return v.Eps
					}
					return 0
				}())
			}
		}
		var ch mat.Cholesky
		if !ch.Factorize(cov) {
			t.Fatal("global cov not PD")
		}
		var L mat.TriDense
		ch.LTo(&L)
		var Li mat.TriDense
		if err := Li.InverseTri(&L); err != nil {
			t.Fatal(err)
		}
		y := mat.NewDense(P, d, nil)
		score = func(x *xImage) {
			e.embed(emb, v.Taps, x, vec)
			raw := xs.RawMatrix().Data
			for p := 0; p < P; p++ {
				for k := 0; k < d; k++ {
					raw[p*d+k] = float64(vec[p*d+k]) - mean[k]
				}
			}
			// y = X Liᵀ
			y.Mul(xs, Li.T())
			yr := y.RawMatrix().Data
			for p := 0; p < P; p++ {
				var s float64
				for _, q := range yr[p*d : p*d+d] {
					s += q * q
				}
				dist[p] = float32(math.Sqrt(s))
			}
		}
	default:
		t.Fatalf("gauss %q", v.Gauss)
	}
	// Post-processing statistics from held-out normal images.
	var mu, sd []float32
	if v.Post == "zpos" {
		mu, sd = make([]float32, P), make([]float32, P)
		var s, ss = make([]float64, P), make([]float64, P)
		for _, i := range holdIdx {
			score(&train[i])
			for p, q := range dist {
				s[p] += float64(q)
				ss[p] += float64(q) * float64(q)
			}
		}
		n := float64(len(holdIdx))
		for p := range mu {
			m := s[p] / n
			mu[p] = float32(m)
			sd[p] = float32(math.Sqrt(max(ss[p]/n-m*m, 0)) + 0.1*m)
		}
	}
	pix := metrics.NewPixels()
	pixBy := map[string]*metrics.Pixels{}
	dump := os.Getenv("INSPECTD_EXP_DUMP")
	var scores []float64
	var labels []string
	var amap []float32
	sorted := make([]float32, 0, P)
	for i := range e.c.Test {
		x := &e.c.Test[i]
		score(x)
		reg := x.Region
		switch v.Post {
		case "median", "zimg":
			x0, x1 := int(reg.X0*float64(gw)), int(math.Ceil(reg.X1*float64(gw)))
			y0, y1 := int(reg.Y0*float64(gh)), int(math.Ceil(reg.Y1*float64(gh)))
			vv := sorted[:0]
			for y := y0; y < min(y1, gh); y++ {
				vv = append(vv, dist[y*gw+x0:y*gw+min(x1, gw)]...)
			}
			slices.Sort(vv)
			med := vv[len(vv)/2]
			for p := range dist {
				dist[p] -= med
			}
		case "zpos":
			for p := range dist {
				dist[p] = (dist[p] - mu[p]) / sd[p]
			}
		}
		m, err := padim.NewAnomalyMap(padim.AnomalyMapOptions{GridW: gw, GridH: gh, OutW: x.W, OutH: x.H, Sigma: v.Sigma,
			Region: padim.Rect{X0: reg.X0, Y0: reg.Y0, X1: reg.X1, Y1: reg.Y1}})
		if err != nil {
			t.Fatal(err)
		}
		if cap(amap) < x.W*x.H {
			amap = make([]float32, x.W*x.H)
		}
		amap = amap[:x.W*x.H]
		s, err := m.Render(amap, dist)
		if err != nil {
			t.Fatal(err)
		}
		if err := pix.Add(amap, e.masks[x.Path], x.W, x.H); err != nil {
			t.Fatal(err)
		}
		if pixBy[x.Label] == nil {
			pixBy[x.Label] = metrics.NewPixels()
		}
		pixBy[x.Label].Add(amap, e.masks[x.Path], x.W, x.H)
		if dump != "" && i%12 == 0 {
			img, _ := dataset.Load(x.Path)
			over := render.Overlay(nil, img, amap, x.W, x.H, 8)
			panel := render.Panel(img, over, render.Mask(e.masks[x.Path], x.W, x.H))
			os.MkdirAll(dump, 0o755)
			f, _ := os.Create(filepath.Join(dump, fmt.Sprintf("%s_%03d_%.1f.png", x.Label, i, s)))
			png.Encode(f, panel)
			f.Close()
		}
		scores = append(scores, float64(s))
		labels = append(labels, x.Label)
	}
	r := xRes{Per: map[string]float64{}}
	lab := func(only string) ([]float64, []bool) {
		var s []float64
		var l []bool
		for i, lb := range labels {
			if only != "" && lb != "good" && lb != only {
				continue
			}
			s = append(s, scores[i])
			l = append(l, lb != "good")
		}
		return s, l
	}
	s, l := lab("")
	r.Image, _ = metrics.AUROC(s, l)
	for _, k := range []string{"blowhole", "break", "crack", "fray", "uneven"} {
		s, l := lab(k)
		r.Per[k], _ = metrics.AUROC(s, l)
	}
	r.Pixel, _ = pix.AUROC()
	r.PixPer = map[string]float64{}
	for k, p := range pixBy {
		if k != "good" {
			// pool the label's pixels with the good images' pixels? use own
			r.PixPer[k], _ = p.AUROC()
		}
	}
	r.PRO, _ = pix.PRO(0.3)
	r.Secs = time.Since(start).Seconds()
	return r
}

func TestExperiment(t *testing.T) {
	dir := os.Getenv("INSPECTD_EXPERIMENT")
	if dir == "" {
		t.Skip("INSPECTD_EXPERIMENT not set")
	}
	pres := strings.Split(os.Getenv("INSPECTD_EXP_PRE"), ";")
	vars := strings.Split(os.Getenv("INSPECTD_EXP_VARS"), ";")
	for _, ps := range pres {
		f := strings.Split(ps, ",")
		pre := xPre{Resize: f[0], Photo: f[1]}
		if len(f) > 2 {
			pre.Taps = strings.Join(f[2:], ",")
		}
		c := xBuild(t, dir, pre)
		e := newXEnv(t, c)
		for _, vs := range vars {
			v := parseXVar(t, vs)
			r := e.run(t, v)
			fmt.Printf("%-28s %-40s %s\n", pre.key(), vs, r)
		}
	}
}

// parseXVar reads k=v pairs separated by spaces.
func parseXVar(t *testing.T, s string) xVar {
	v := xVar{Sigma: 4, Post: "none"}
	for _, kv := range strings.Fields(s) {
		k, val, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "d":
			_, err = fmt.Sscan(val, &v.D)
		case "taps":
			for _, c := range val {
				v.Taps = append(v.Taps, int(c-'a'))
			}
		case "sigma":
			_, err = fmt.Sscan(val, &v.Sigma)
		case "eps":
			_, err = fmt.Sscan(val, &v.Eps)
		case "gauss":
			v.Gauss = val
		case "post":
			v.Post = val
		case "train":
			_, err = fmt.Sscan(val, &v.Train)
		case "seed":
			_, err = fmt.Sscan(val, &v.Seed)
		case "pool":
			_, err = fmt.Sscan(val, &v.Pool)
		default:
			t.Fatalf("unknown key %q", k)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return v
}
