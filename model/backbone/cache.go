package backbone

/*
#include "tensorflow/lite/c/c_api.h"
*/
import "C"

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/inspectd/inspectd/config/atomicfile"
	"github.com/inspectd/inspectd/model/optimize"
)

// CacheFile is the file in Options.StateDir that remembers "auto"'s choice
// per model, thread count and CPU. Deleting it makes the next start
// measure again.
const CacheFile = "backbone-variants.json"

// probeFrames is how many frames each probe times per candidate.
const probeFrames = 10

// cacheFile is CacheFile's content.
type cacheFile struct {
	Entries map[string]cacheEntry `json:"entries"`
}

// cacheEntry is one measured choice.
type cacheEntry struct {
	Variant  string    `json:"variant"`
	Measured time.Time `json:"measured"`
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
// and CPU were measured before, else by probing every XNNPACK candidate in
// a child process and keeping the fastest whose taps agree with the
// original (cosine ≥ MinCosine per tap); the builtin kernels are the
// fallback.
func (b *Backbone) auto(data []byte, outputs []int, cs []candidate) error {
	key := b.cacheKey(outputs)
	var cache cacheFile
	if b.opts.StateDir != "" {
		var err error
		if cache, err = loadCache(b.opts.StateDir); err != nil {
			b.log().Warn("backbone variant cache unreadable, measuring again", "err", err)
		}
		if e, ok := cache.Entries[key]; ok {
			if c, ok := findCandidate(cs, func(c candidate) bool { return c.name == e.Variant }); ok {
				if err := b.apply(c); err == nil {
					b.log().Info("backbone variant", "variant", c.name, "source", "cache", "measured", e.Measured.Format(time.RFC3339))
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
	path := b.opts.Path
	if b.opts.Bytes != nil || path == "" {
		p, err := tempModel(data)
		if err != nil {
			b.log().Warn("backbone runs on the builtin kernels", "variant", VariantBuiltin, "reason", err)
			return b.apply(cs[0])
		}
		defer os.Remove(p)
		path = p
	}
	best, bestRatio := cs[0], 1.0
	var results []probeResult
	transient := false
	var ratios []any
	for _, c := range cs[1:] {
		r := b.probe(c, path, probeFrames)
		r.Variant = c.name
		results = append(results, r)
		switch {
		case r.Error != "":
			transient = transient || r.transient
			b.log().Warn("backbone variant ruled out", "variant", c.name, "err", r.Error)
			continue
		case r.minCosine() < MinCosine:
			b.log().Warn("backbone variant ruled out: taps disagree with the original model", "variant", c.name,
				"cosine", fmt.Sprintf("%.4f", r.minCosine()), "min", MinCosine)
			continue
		}
		ratio := r.Ms / max(r.BuiltinMs, 1e-9)
		ratios = append(ratios, c.name, fmt.Sprintf("%.2fms (builtin %.2fms)", r.Ms, r.BuiltinMs))
		if ratio < bestRatio {
			best, bestRatio = c, ratio
		}
	}
	if err := b.apply(best); err != nil {
		b.log().Warn("backbone variant failed in-process, running on the builtin kernels", "variant", best.name, "err", err)
		best, bestRatio = cs[0], 1
		if err := b.apply(best); err != nil {
			return err
		}
	}
	b.log().Info("backbone variant", append([]any{"variant", best.name, "source", "measured", "speedup", fmt.Sprintf("%.2f", 1/bestRatio)}, ratios...)...)
	if b.opts.StateDir != "" && !transient {
		cache.Entries[key] = cacheEntry{Variant: best.name, Measured: time.Now().UTC().Round(time.Second), Results: results}
		if err := storeCache(b.opts.StateDir, cache); err != nil {
			b.log().Warn("backbone variant not cached", "dir", b.opts.StateDir, "err", err)
		}
	}
	return nil
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
