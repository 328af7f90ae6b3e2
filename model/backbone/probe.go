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
	"slices"
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

// probeRequest is what the parent asks a probe child: Optimize names one
// candidate to check (agreement with the original, a first timing), or is
// "race" to time the original and every mode in Race interleaved.
type probeRequest struct {
	Path       string     `json:"path"`
	Taps       []string   `json:"taps"`
	NoPrune    bool       `json:"no_prune,omitempty"`
	Threads    int        `json:"threads"`
	Optimize   string     `json:"optimize"`
	Race       []string   `json:"race,omitempty"`
	Preprocess Preprocess `json:"preprocess"`
	Frames     int        `json:"frames"`
	Rounds     int        `json:"rounds,omitempty"`
}

// raceMode is probeRequest.Optimize for the interleaved timing of all
// candidates that passed their own probe.
const raceMode = "race"

// probeResult is what a child reports about one candidate, or, for a
// race, about all of them (Race, by variant; BuiltinMs is the original's).
type probeResult struct {
	Variant     string    `json:"variant"`
	Accelerator string    `json:"accelerator,omitempty"`
	Error       string    `json:"error,omitempty"`
	Ms          float64   `json:"ms_per_frame,omitempty"`
	BuiltinMs   float64   `json:"builtin_ms_per_frame,omitempty"`
	Cosine      []float64 `json:"cosine,omitempty"`
	// RoundMs and BuiltinRoundMs are the medians of each round of frames.
	RoundMs        []float64 `json:"round_ms,omitempty"`
	BuiltinRoundMs []float64 `json:"builtin_round_ms,omitempty"`
	// Race holds each raced candidate's timing.
	Race map[string]probeResult `json:"race,omitempty"`
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
	modes := []string{req.Optimize}
	switch req.Optimize {
	case OptimizeInt8, OptimizeFloat:
	case raceMode:
		modes = req.Race
		for _, m := range modes {
			if m != OptimizeInt8 && m != OptimizeFloat {
				return fail("probe: race %q: want int8 or float", m)
			}
		}
	default:
		return fail("probe: optimize %q: want int8, float or race", req.Optimize)
	}
	base := Options{Path: req.Path, Taps: req.Taps, NoPrune: req.NoPrune, Threads: req.Threads, Preprocess: req.Preprocess, Logger: log}
	ref, err := Open(base)
	if err != nil {
		return fail("%v", err)
	}
	defer ref.Close()
	runs := []*Backbone{ref}
	for _, m := range modes {
		co := base
		co.Optimize = m
		cand, err := Open(co)
		if err != nil {
			return fail("%v", err)
		}
		defer cand.Close()
		if cand.Accelerator() != "xnnpack" {
			return fail("XNNPACK did not take the %s model (the delegate could not be applied)", cand.Variant())
		}
		runs = append(runs, cand)
	}
	if req.Optimize != raceMode {
		res.Variant, res.Accelerator = runs[1].Variant(), runs[1].Accelerator()
		if res.Cosine, err = Agreement(ref, runs[1]); err != nil {
			return fail("%v", err)
		}
		if req.Frames == 0 {
			return res // agreement only: the race times the candidates
		}
	}
	rounds, err := timeInterleaved(runs, max(req.Frames, 1), max(req.Rounds, 1))
	if err != nil {
		return fail("%v", err)
	}
	res.BuiltinMs, res.BuiltinRoundMs = median(concat(rounds[0])), roundMedians(rounds[0])
	if req.Optimize != raceMode {
		res.Ms, res.RoundMs = median(concat(rounds[1])), roundMedians(rounds[1])
		return res
	}
	res.Race = map[string]probeResult{}
	for i, b := range runs[1:] {
		res.Race[b.Variant()] = probeResult{Variant: b.Variant(), Accelerator: b.Accelerator(), Ms: median(concat(rounds[i+1])), RoundMs: roundMedians(rounds[i+1])}
	}
	return res
}

// timeInterleaved times frames×rounds invokes of each backbone, taking
// turns frame by frame (a, b, c, a, b, c, ...) so that whatever else loads
// the machine loads them all alike. Each backbone's first invoke warms its
// caches and threads and is not counted. It returns, per backbone and
// round, the milliseconds of each invoke.
func timeInterleaved(runs []*Backbone, frames, rounds int) ([][][]float64, error) {
	out := make([][][]float64, len(runs))
	for i := range out {
		out[i] = make([][]float64, rounds)
	}
	for _, b := range runs {
		if err := b.Invoke(); err != nil {
			return nil, err
		}
	}
	for r := range rounds {
		for range frames {
			for i, b := range runs {
				s := time.Now()
				if err := b.Invoke(); err != nil {
					return nil, err
				}
				out[i][r] = append(out[i][r], float64(time.Since(s).Microseconds())/1e3)
			}
		}
	}
	return out, nil
}

func concat(rounds [][]float64) []float64 {
	var all []float64
	for _, r := range rounds {
		all = append(all, r...)
	}
	return all
}

func roundMedians(rounds [][]float64) []float64 {
	out := make([]float64, len(rounds))
	for i, r := range rounds {
		out[i] = median(r)
	}
	return out
}

// median of v (0 when empty); v is reordered.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
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
func (b *Backbone) probe(c candidate, path string) (res probeResult) {
	return b.runChild(probeRequest{Path: path, Optimize: c.mode}, c.name)
}

// race times the original and the candidates in one child, interleaved
// (timeInterleaved), over probeRounds rounds.
func (b *Backbone) race(cs []candidate, path string) probeResult {
	req := probeRequest{Path: path, Optimize: raceMode, Frames: probeFrames, Rounds: probeRounds}
	for _, c := range cs {
		req.Race = append(req.Race, c.mode)
	}
	return b.runChild(req, raceMode)
}

// runChild runs one probe request in a child process; it never fails:
// whatever goes wrong (a crash, a hang, garbage on stdout) becomes the
// result's Error.
func (b *Backbone) runChild(r probeRequest, name string) (res probeResult) {
	res = probeResult{Variant: name}
	taps := make([]string, len(b.taps))
	for i, t := range b.taps {
		taps[i] = t.Name
	}
	r.Taps, r.NoPrune, r.Threads, r.Preprocess = taps, b.opts.NoPrune, max(b.opts.Threads, 1), b.opts.Preprocess
	req, err := json.Marshal(r)
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
