package backbone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"time"
)

// A probe tries one candidate in a child process: XNNPACK can crash the
// process on a model it dislikes (TFLite 2.9 with both QS8 and QU8 flags on
// a uint8 model does), and a crash there must only rule the candidate out.
// The parent writes a probeRequest as JSON to the child's stdin; the child
// (ServeProbe) opens the original model and the candidate, compares their
// taps on a few synthetic frames, times both interleaved, and writes one
// probeResult as a JSON line to stdout.

// probeRequest is what the parent asks a probe child.
type probeRequest struct {
	Path       string     `json:"path"`
	Taps       []string   `json:"taps"`
	NoPrune    bool       `json:"no_prune,omitempty"`
	Threads    int        `json:"threads"`
	Optimize   string     `json:"optimize"`
	Preprocess Preprocess `json:"preprocess"`
	Frames     int        `json:"frames"`
}

// probeResult is what a child reports about one candidate.
type probeResult struct {
	Variant     string    `json:"variant"`
	Accelerator string    `json:"accelerator,omitempty"`
	Error       string    `json:"error,omitempty"`
	Ms          float64   `json:"ms_per_frame,omitempty"`
	BuiltinMs   float64   `json:"builtin_ms_per_frame,omitempty"`
	Cosine      []float64 `json:"cosine,omitempty"`
	// transient marks failures that say nothing about the candidate (the
	// probe could not start or timed out): such a measurement is not
	// cached.
	transient bool
}

// minCosine is the worst tap's agreement.
func (r probeResult) minCosine() float64 {
	m := math.Inf(1)
	for _, c := range r.Cosine {
		m = min(m, c)
	}
	if len(r.Cosine) == 0 {
		return 0
	}
	return m
}

// probeTimeout bounds one child: opening both models, three frames each
// and the timed frames on a slow 2-core box take a few seconds.
const probeTimeout = 2 * time.Minute

// ServeProbe serves one probe: it reads the request from r, runs it and
// writes the result as one JSON line to w. Failures of the candidate are
// part of the result; an error means the request itself was unusable.
// Diagnostics go to log.
func ServeProbe(r io.Reader, w io.Writer, log *slog.Logger) error {
	var req probeRequest
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("probe request: %w", err)
	}
	res := runProbe(req, log)
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

func runProbe(req probeRequest, log *slog.Logger) probeResult {
	res := probeResult{Variant: req.Optimize}
	fail := func(format string, a ...any) probeResult {
		res.Error = fmt.Sprintf(format, a...)
		return res
	}
	switch req.Optimize {
	case OptimizeInt8, OptimizeFloat:
	default:
		return fail("probe: optimize %q: want int8 or float", req.Optimize)
	}
	base := Options{Path: req.Path, Taps: req.Taps, NoPrune: req.NoPrune, Threads: req.Threads, Preprocess: req.Preprocess, Logger: log}
	ref, err := Open(base)
	if err != nil {
		return fail("%v", err)
	}
	defer ref.Close()
	co := base
	co.Optimize = req.Optimize
	cand, err := Open(co)
	if err != nil {
		return fail("%v", err)
	}
	defer cand.Close()
	res.Variant, res.Accelerator = cand.Variant(), cand.Accelerator()
	if cand.Accelerator() != "xnnpack" {
		return fail("XNNPACK did not take the %s model (the delegate could not be applied)", cand.Variant())
	}
	if res.Cosine, err = Agreement(ref, cand); err != nil {
		return fail("%v", err)
	}
	frames := max(req.Frames, 1)
	var tr, tc time.Duration
	for i := 0; i < frames+1; i++ {
		s := time.Now()
		if err := ref.Invoke(); err != nil {
			return fail("%v", err)
		}
		m := time.Now()
		if err := cand.Invoke(); err != nil {
			return fail("%v", err)
		}
		if i > 0 { // the first invoke of each warms caches and threads
			tr += m.Sub(s)
			tc += time.Since(m)
		}
	}
	res.BuiltinMs = float64(tr.Microseconds()) / 1e3 / float64(frames)
	res.Ms = float64(tc.Microseconds()) / 1e3 / float64(frames)
	return res
}

// Agreement runs fixed synthetic frames (probeImages) through a reference
// backbone and a candidate with the same taps and returns, per tap, the
// worst cosine similarity of their features.
func Agreement(ref, cand *Backbone) ([]float64, error) {
	w, h := ref.InputSize()
	cos := make([]float64, len(ref.Taps()))
	for i := range cos {
		cos[i] = 1
	}
	for _, img := range probeImages(w, h) {
		c, err := compareTaps(ref, cand, img)
		if err != nil {
			return nil, err
		}
		for i := range cos {
			cos[i] = min(cos[i], c[i])
		}
	}
	return cos, nil
}

// compareTaps runs one image through both backbones and returns the cosine
// similarity of each tap's features.
func compareTaps(a, b *Backbone, img image.Image) ([]float64, error) {
	fa, _, err := a.Extract(img)
	if err != nil {
		return nil, err
	}
	ref := make([][]float32, len(fa))
	for i := range fa {
		ref[i] = append([]float32(nil), fa[i].Data...)
	}
	fb, _, err := b.Extract(img)
	if err != nil {
		return nil, err
	}
	if len(fb) != len(ref) {
		return nil, fmt.Errorf("candidate has %d taps, original %d", len(fb), len(ref))
	}
	out := make([]float64, len(ref))
	for i := range ref {
		out[i] = Cosine(ref[i], fb[i].Data)
	}
	return out, nil
}

// Cosine is the cosine similarity of two feature vectors; two all-zero
// vectors agree (1), one all-zero vector does not (0).
func Cosine(a, b []float32) float64 {
	if len(a) != len(b) {
		return 0
	}
	var dot, na, nb float64
	for i, v := range a {
		w := float64(b[i])
		dot += float64(v) * w
		na += float64(v) * float64(v)
		nb += w * w
	}
	switch {
	case na == 0 && nb == 0:
		return 1
	case na == 0 || nb == 0:
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// probeImages are fixed synthetic frames with the textures inspection
// images have (smooth shading, fine grain, edges), so that every layer sees
// realistic activations.
func probeImages(w, h int) []image.Image {
	rng := rand.New(rand.NewPCG(1, 2))
	grain := image.NewGray(image.Rect(0, 0, w, h))
	shade := image.NewRGBA(image.Rect(0, 0, w, h))
	edges := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			g := 110 + 40*math.Sin(9*fx)*math.Cos(7*fy) + 20*rng.NormFloat64()
			grain.SetGray(x, y, color.Gray{Y: clamp8(g)})
			shade.SetRGBA(x, y, color.RGBA{clamp8(255 * fx), clamp8(255 * fy), clamp8(128 + 100*math.Sin(20*fx*fy)), 255})
			v := 40.0
			if (x/16+y/16)%2 == 0 {
				v = 200
			}
			if (x-w/2)*(x-w/2)+(y-h/3)*(y-h/3) < w*h/40 {
				v = 90 + 10*rng.NormFloat64()
			}
			edges.SetRGBA(x, y, color.RGBA{clamp8(v), clamp8(v * 0.8), clamp8(v * 0.6), 255})
		}
	}
	return []image.Image{grain, shade, edges}
}

func clamp8(v float64) uint8 { return uint8(math.Max(0, math.Min(255, math.Round(v)))) }

// probe runs one candidate in a child process and never fails: whatever
// goes wrong (a crash, a hang, garbage on stdout) becomes the result's
// Error.
func (b *Backbone) probe(c candidate, path string, frames int) (res probeResult) {
	res = probeResult{Variant: c.name}
	taps := make([]string, len(b.taps))
	for i, t := range b.taps {
		taps[i] = t.Name
	}
	req, err := json.Marshal(probeRequest{Path: path, Taps: taps, NoPrune: b.opts.NoPrune, Threads: max(b.opts.Threads, 1),
		Optimize: c.mode, Preprocess: b.opts.Preprocess, Frames: frames})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	argv := b.opts.ProbeCommand
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), inProbe+"=1")
	cmd.Stdin = bytes.NewReader(req)
	var stdout, stderr tailBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		res.Error, res.transient = fmt.Sprintf("probe timed out after %s", probeTimeout), true
		return res
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		res.Error, res.transient = fmt.Sprintf("probe could not start: %v", err), true
		return res
	}
	if err != nil {
		res.Error = fmt.Sprintf("probe process failed (%v)", err)
		if l := stderr.last(); l != "" {
			res.Error += ": " + l
		}
		return res
	}
	line := stdout.last()
	var got probeResult
	if err := json.Unmarshal([]byte(line), &got); err != nil || got.Variant == "" {
		res.Error = fmt.Sprintf("probe wrote no result (last line of its output: %q)", line)
		return res
	}
	return got
}

// tailBuffer keeps the last 64 KiB written to it: enough for a result line
// or the end of a crash message, bounded whatever the child prints.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	const keep = 64 << 10
	t.b = append(t.b, p...)
	if len(t.b) > keep {
		t.b = append(t.b[:0], t.b[len(t.b)-keep:]...)
	}
	return len(p), nil
}

// last is the last non-empty line ("" when nothing was written).
func (t *tailBuffer) last() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// errNoProbe says auto cannot try XNNPACK without a child process.
var errNoProbe = errors.New("no probe command (Options.ProbeCommand): XNNPACK candidates were not tried, since a crash would take the process down")
