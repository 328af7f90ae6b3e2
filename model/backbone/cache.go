package backbone

/*
#include "tensorflow/lite/c/c_api.h"
*/
import "C"

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/model/optimize"
)

// CacheFile is the file in Options.StateDir that remembers "auto"'s choice
// per model, thread count and CPU. Deleting it makes the next start
// measure again.
const CacheFile = "backbone-variants.json"

// probeFrames and probeRounds: the race times rounds of frames per
// candidate, taking turns with the others, and keeps the medians.
const (
	probeFrames = 4
	probeRounds = 5
)

// maxRoundSpread is how far apart (max/min) the rounds of one candidate's
// speed relative to the builtin kernels may be before the measurement is
// taken as disturbed (another process loading the CPU) and not cached.
const maxRoundSpread = 2.0

// liveFactor is how far below the cached measurement the live median
// latency may fall before the variants are measured again.
const liveFactor = 2.0

// cacheFile is CacheFile's content.
type cacheFile struct {
	Entries map[string]cacheEntry `json:"entries"`
}

// cacheEntry is one measured choice.
type cacheEntry struct {
	Variant  string    `json:"variant"`
	Measured time.Time `json:"measured"`
	// Ms is the chosen variant's median milliseconds per frame when
	// measured: a live latency far from it means the measurement no longer
	// holds (or never did) and is repeated.
	Ms float64 `json:"ms_per_frame,omitempty"`
	// Results are the probes behind the choice, for whoever reads the file.
	Results []probeResult `json:"results,omitempty"`
}

// cacheKey names what a measurement depends on: the model (sha256), which
// outputs and operators run, the thread count, the CPU, the TFLite library
// and the rewrite code.
func (b *Backbone) cacheKey(outputs []int) string {
	return fmt.Sprintf("sha256=%s outputs=%v prune=%t threads=%d cpu=%q tflite=%s rewrite=%d",
		b.sha, outputs, !b.opts.NoPrune, max(b.opts.Threads, 1), cpuName(), C.GoString(C.TfLiteVersion()), optimize.Revision)
}

// cpuName identifies the processor model: x86's "model name", ARM's
// implementer and part, plus the architecture and core count.
func cpuName() string {
	name := ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		var arm []string
		sc := bufio.NewScanner(f)
		for sc.Scan() && name == "" {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch k, v = strings.TrimSpace(k), strings.TrimSpace(v); k {
			case "model name":
				name = v
			case "CPU implementer", "CPU part":
				if len(arm) < 2 {
					arm = append(arm, v)
				}
			}
		}
		if name == "" && len(arm) > 0 {
			name = strings.Join(arm, "/")
		}
	}
	return fmt.Sprintf("%s %s×%d", name, runtime.GOARCH, runtime.NumCPU())
}

// loadCache reads the cache; a missing file is empty, a damaged one is
// reported and then replaced.
func loadCache(dir string) (cacheFile, error) {
	c := cacheFile{Entries: map[string]cacheEntry{}}
	data, err := os.ReadFile(filepath.Join(dir, CacheFile))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return cacheFile{Entries: map[string]cacheEntry{}}, fmt.Errorf("%s: %w", filepath.Join(dir, CacheFile), err)
	}
	if c.Entries == nil {
		c.Entries = map[string]cacheEntry{}
	}
	return c, nil
}

// maxCacheEntries bounds the cache: every model ever loaded adds an entry.
const maxCacheEntries = 32

// storeCache writes the cache atomically (temporary file and rename), so
// that a crash mid-write leaves the old file. The oldest entries beyond
// maxCacheEntries are dropped.
func storeCache(dir string, c cacheFile) error {
	for len(c.Entries) > maxCacheEntries {
		oldest := ""
		for k, e := range c.Entries {
			if oldest == "" || e.Measured.Before(c.Entries[oldest].Measured) {
				oldest = k
			}
		}
		delete(c.Entries, oldest)
	}
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, CacheFile), 0o644, append(data, '\n'))
}

// auto picks the variant: from the cache when this model, thread count
// and CPU were measured before, else by measuring (measure).
func (b *Backbone) auto(data []byte, outputs []int, cs []candidate) error {
	b.cacheKeyOf = b.cacheKey(outputs)
	if b.opts.StateDir != "" {
		cache, err := loadCache(b.opts.StateDir)
		if err != nil {
			b.log().Warn("backbone variant cache unreadable, measuring again", "err", err)
		}
		// Entries from before the race (no ms_per_frame) came from one
		// unchecked measurement: they are measured again.
		if e, ok := cache.Entries[b.cacheKeyOf]; ok && e.Ms > 0 {
			if c, ok := findCandidate(cs, func(c candidate) bool { return c.name == e.Variant }); ok {
				if err := b.apply(c); err == nil {
					b.live.cachedMs = e.Ms
					// Once per fit (Options' memo) and choice: a fit opens a
					// backbone per candidate family (twenty identical lines).
					level := slog.LevelInfo
					if v, ok := b.opts.Memo.get(b.cacheKeyOf); ok && v == c.name {
						level = slog.LevelDebug
					}
					b.opts.Memo.set(b.cacheKeyOf, c.name)
					b.log().Log(context.Background(), level, "backbone variant", "variant", c.name, "source", "cache", "measured", e.Measured.Format(time.RFC3339))
					return nil
				}
			}
		}
	}
	if os.Getenv(inProbe) != "" {
		b.log().Warn("backbone runs on the builtin kernels", "variant", VariantBuiltin, "reason", "a probe child does not start probes of its own")
		return b.apply(cs[0])
	}
	if len(b.opts.ProbeCommand) == 0 {
		b.log().Warn("backbone runs on the builtin kernels", "variant", VariantBuiltin, "reason", errNoProbe)
		return b.apply(cs[0])
	}
	if v, ok := b.opts.Memo.get(b.cacheKeyOf); ok {
		if c, ok := findCandidate(cs, func(c candidate) bool { return c.name == v }); ok {
			if err := b.apply(c); err == nil {
				b.log().Debug("backbone variant", "variant", c.name, "source", "this process")
				return nil
			}
		}
	}
	m, err := b.measure(data, cs)
	if err != nil {
		b.log().Warn("backbone runs on the builtin kernels", "variant", VariantBuiltin, "reason", err)
		return b.apply(cs[0])
	}
	best := m.best
	if err := b.apply(best); err != nil {
		b.log().Warn("backbone variant failed in-process, running on the builtin kernels", "variant", best.name, "err", err)
		m.best, m.cache = cs[0], false
		if err := b.apply(cs[0]); err != nil {
			return err
		}
	}
	b.log().Info("backbone variant", append([]any{"variant", m.best.name, "source", "measured", "speedup", fmt.Sprintf("%.2f", m.speedup)}, m.logs...)...)
	if m.cache {
		b.live.cachedMs = m.ms // a disturbed measurement is no yardstick
	}
	b.remember(m)
	b.opts.Memo.set(b.cacheKeyOf, m.best.name)
	return nil
}

// VariantMemo remembers, for the life of one process, which variant "auto"
// chose per model, taps and threads, so that opening the same backbone
// again (a recipe search opens one per candidate family) does not measure
// again, even when the measurement was too disturbed to cache on disk.
// Safe for concurrent use; the zero value is empty, a nil one remembers
// nothing.
type VariantMemo struct {
	mu sync.Mutex
	m  map[string]string
}

func (v *VariantMemo) get(key string) (string, bool) {
	if v == nil {
		return "", false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.m[key]
	return s, ok
}

func (v *VariantMemo) set(key, variant string) {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string]string{}
	}
	v.m[key] = variant
}

// measurement is what measure found.
type measurement struct {
	best    candidate
	ms      float64 // best's median ms per frame
	speedup float64
	results []probeResult
	logs    []any
	// cache says whether the measurement may be remembered: not when a
	// probe could not run at all, nor when the rounds disagree widely.
	cache bool
}

// measure probes every XNNPACK candidate in a child process of its own
// (a delegate crash must only rule the candidate out) for agreement with
// the original (cosine ≥ MinCosine per tap; agreement only, no timing),
// then races the original and the agreeing candidates in one child, frame
// by frame in turn, and keeps the fastest by median; the builtin kernels
// are the fallback, also when the race fails (not cached then). A race whose
// rounds disagree widely (another process loading the CPU) still decides
// this start, but is not cached.
func (b *Backbone) measure(data []byte, cs []candidate) (*measurement, error) {
	path := b.opts.Path
	if b.opts.Bytes != nil || path == "" {
		p, err := tempModel(data)
		if err != nil {
			return nil, err
		}
		defer os.Remove(p)
		path = p
	}
	m := &measurement{best: cs[0], speedup: 1, cache: true}
	var ok []candidate
	for _, c := range cs[1:] {
		r := b.probe(c, path)
		r.Variant = c.name
		m.results = append(m.results, r)
		switch {
		case r.Error != "":
			m.cache = m.cache && !r.transient
			b.log().Warn("backbone variant ruled out", "variant", c.name, "err", r.Error)
			continue
		case r.minCosine() < MinCosine:
			b.log().Warn("backbone variant ruled out: taps disagree with the original model", "variant", c.name,
				"cosine", fmt.Sprintf("%.4f", r.minCosine()), "min", MinCosine)
			continue
		}
		ok = append(ok, c)
	}
	if len(ok) == 0 {
		return m, nil
	}
	race := b.race(ok, path)
	if race.Error != "" || len(race.Race) == 0 {
		// The probes only checked agreement (timing each candidate there
		// too timed it twice at every first start): without the race
		// nothing says which is faster, so the builtin kernels serve this
		// start and the next measures again.
		b.log().Warn("backbone variant race failed; using the builtin kernels for this start, not cached", "err", race.Error)
		m.cache = false
		m.results = append(m.results, race)
		return m, nil
	}
	m.results = append(m.results, race)
	bestRatio := 1.0
	for _, c := range ok {
		r, found := race.Race[c.name]
		builtin := race.BuiltinMs
		if !found || r.Ms <= 0 || builtin <= 0 {
			continue
		}
		ratio := r.Ms / builtin
		m.logs = append(m.logs, c.name, fmt.Sprintf("%.2fms (builtin %.2fms)", r.Ms, builtin))
		if s := roundSpread(r.RoundMs, race.BuiltinRoundMs); s > maxRoundSpread {
			b.log().Warn("backbone timing unstable across rounds (another process loading the CPU?): the choice holds for this start only and is measured again at the next",
				"variant", c.name, "spread", fmt.Sprintf("%.2f", s), "max", maxRoundSpread)
			m.cache = false
		}
		if ratio < bestRatio {
			m.best, bestRatio, m.ms = c, ratio, r.Ms
		}
	}
	if m.best.name == VariantBuiltin {
		m.ms = race.BuiltinMs
	}
	m.speedup = 1 / bestRatio
	return m, nil
}

// roundSpread is max/min over rounds of a candidate's time relative to the
// builtin kernels' in the same round (1: every round agrees); rounds
// missing on either side are not compared.
func roundSpread(cand, builtin []float64) float64 {
	lo, hi := math.Inf(1), 0.0
	for i := range min(len(cand), len(builtin)) {
		if cand[i] <= 0 || builtin[i] <= 0 {
			continue
		}
		r := cand[i] / builtin[i]
		lo, hi = min(lo, r), max(hi, r)
	}
	if hi == 0 {
		return 1
	}
	return hi / lo
}

// remember stores a measurement in the cache, when it may be.
func (b *Backbone) remember(m *measurement) {
	if b.opts.StateDir == "" || !m.cache {
		return
	}
	cache, err := loadCache(b.opts.StateDir)
	if err != nil {
		cache = cacheFile{Entries: map[string]cacheEntry{}}
	}
	cache.Entries[b.cacheKeyOf] = cacheEntry{Variant: m.best.name, Measured: time.Now().UTC().Round(time.Second), Ms: m.ms, Results: m.results}
	if err := storeCache(b.opts.StateDir, cache); err != nil {
		b.log().Warn("backbone variant not cached", "dir", b.opts.StateDir, "err", err)
	}
}

// liveCheck watches the backbone's latency against the cached measurement
// it was chosen by: a median far below it (a measurement made while
// another process loaded the machine, or a machine that changed) starts a
// new measurement in the background, which replaces the cache entry for
// the next start.
type liveCheck struct {
	cachedMs float64
	ring     [liveWindow]float64
	n        int
	fired    bool
	// done is closed when a re-measurement this check started has ended.
	done chan struct{}
}

// liveWindow invokes make a median; liveWarmup are skipped first.
const (
	liveWindow = 31
	liveWarmup = 16
)

// observe records one invoke's latency and checks the window's median
// once per window. It does not allocate.
func (b *Backbone) observe(d time.Duration) {
	l := &b.live
	if l.cachedMs <= 0 || l.fired {
		return
	}
	l.n++
	if l.n <= liveWarmup {
		return
	}
	k := (l.n - liveWarmup - 1) % liveWindow
	l.ring[k] = float64(d.Microseconds()) / 1e3
	if k != liveWindow-1 {
		return
	}
	w := l.ring
	live := median(w[:])
	// Only a live latency far below the figure says the measurement was
	// disturbed (the issue of a cached builtin choice measured while the
	// machine was loaded); a slower one says the machine is busy now, and
	// a measurement now would be disturbed in turn.
	if live >= l.cachedMs/liveFactor {
		return
	}
	l.fired = true
	b.log().Warn("backbone latency far below the cached measurement: measuring the variants again in the background (the result applies at the next start)",
		"variant", b.variant, "live_ms", fmt.Sprintf("%.2f", live), "cached_ms", fmt.Sprintf("%.2f", l.cachedMs))
	if len(b.opts.ProbeCommand) == 0 || b.data == nil {
		return
	}
	l.done = make(chan struct{})
	data, cs := b.data, candidates(b.graph)
	go func() {
		defer close(l.done)
		m, err := b.measure(data, cs)
		if err != nil {
			b.log().Warn("backbone variants not measured again", "err", err)
			return
		}
		b.log().Info("backbone variant measured again", append([]any{"variant", m.best.name, "cached", m.cache}, m.logs...)...)
		b.remember(m)
	}()
}

// tempModel writes model bytes (Options.Bytes) to a file the probe child
// can open.
func tempModel(data []byte) (string, error) {
	f, err := os.CreateTemp("", "inspectd-probe-*.tflite")
	if err != nil {
		return "", fmt.Errorf("write the model for the probe: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write the model for the probe: %w", err)
	}
	return f.Name(), nil
}
