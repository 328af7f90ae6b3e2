package daemon

import (
	"strings"
	"testing"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
)

// TestConfigRefusesASyntheticSizeTheSourceRefuses: a synthetic source of
// 10000x20 passed config.Load and `config check` (1..16384, every source's
// range), and run stopped at "synthetic source: size 10000x20: want
// 32..8192 on each side". The daemon's rules refuse it now, naming the key;
// a folder source's unused synthetic section is left alone.
func TestConfigRefusesASyntheticSizeTheSourceRefuses(t *testing.T) {
	c, err := config.Parse([]byte("capture:\n  synthetic: {width: 10000, height: 20}\n"), "syn.yaml", ConfigRules()...)
	if err == nil {
		t.Fatalf("a synthetic source of 10000x20 loaded: %+v", c.Capture.Synthetic)
	}
	for _, want := range []string{"capture.synthetic.width: 10000 is out of range 32..8192", "capture.synthetic.height: 20 is out of range 32..8192"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	if _, err := config.Parse([]byte("capture:\n  source: folder\n  folder: {path: /srv/frames}\n  synthetic: {width: 10000, height: 20}\n"), "f.yaml", ConfigRules()...); err != nil {
		t.Errorf("a folder source refused for its unused synthetic section: %v", err)
	}
}

// TestSyntheticSizeRuleIsTheSources: the rule's range is the one
// capture.NewSynthetic renders, at both ends.
func TestSyntheticSizeRuleIsTheSources(t *testing.T) {
	for _, side := range []int{capture.SyntheticMinSide - 1, capture.SyntheticMinSide, capture.SyntheticMaxSide, capture.SyntheticMaxSide + 1} {
		_, srcErr := capture.NewSynthetic(capture.SyntheticOptions{Width: side, Height: capture.SyntheticMinSide})
		c := config.Default()
		c.Capture.Source = config.SourceSynthetic
		c.Capture.Synthetic.Width, c.Capture.Synthetic.Height = side, capture.SyntheticMinSide
		if ruled := len(syntheticSizeRule(c)) > 0; ruled != (srcErr != nil) {
			t.Errorf("width %d: the rule refuses it %v, the source's error %v", side, ruled, srcErr)
		}
	}
}
