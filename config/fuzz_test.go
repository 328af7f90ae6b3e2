package config

import (
	"bytes"
	"os"
	"reflect"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes: it must never panic, and what it
// accepts must be valid and survive Marshal → Parse unchanged.
func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	if b, err := os.ReadFile("../systemd/inspectd.example.yaml"); err == nil {
		f.Add(b)
	}
	if b, err := Marshal(nonDefault()); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"~",
		"- a\n- b\n",
		"mqtt: yes\n",
		"mqtt:\n  brokrs: []\n",
		"model:\n  threads: 2\n  threads: 3\n",
		"model:\n  threads: 2.5\n  memory_budget: 1.5GiB\n",
		"model: {memory_budget: 18446744073709551616, input: {std: [1, 2]}}\n",
		"capture: {camera: {controls: {gain: 3000000000}, timeout: 30}}\n",
		"a: &a {x: 1}\nb: &b {<<: [*a, *a]}\nmodel: {<<: *b}\n",
		"capture:\n  roi: &r {x: 1}\n  synthetic: {<<: *r}\n",
		"? [a]\n: 1\n",
		"log_level: info\n---\nlog_level: debug\n",
		"model:\n\tthreads: 2\n",
		"state_dir: /var/lib/inspectd\ncapture:\n  source: camera\n  camera:\n\tdevice: /dev/video2\n",
		"capture:\n  \t source: x\n",
		"mqtt: {brokers: [\"tcp://[::1\", \"ssl://b\", \"ws://b/x\"], topic_prefix: \"a//b\"}\n",
		"capture: {source: folder, folder: {watch: true, loop: true}}\n",
		"\xef\xbb\xbfdevice_id: x\n",
		"device_id: !!binary aGVsbG8=\n",
		"pipeline: {queue: !!int 4}\n",
		"model: {taps: [*undefined]}\n",
		"{{{{{{{{{{",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if c != nil {
				t.Fatal("config and error both returned")
			}
			ps := Problems(err)
			if len(ps) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			// A problem with a column points at the tab it blames.
			lines := bytes.Split(data, []byte("\n"))
			for _, p := range ps {
				if p.Column > 0 && (p.Line < 1 || p.Line > len(lines) || p.Column > len(lines[p.Line-1]) || lines[p.Line-1][p.Column-1] != '\t') {
					t.Fatalf("problem %v points at no tab", p)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
		b, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(b, "marshalled")
		if err != nil {
			t.Fatalf("Parse(Marshal(c)): %v\n%s", err, b)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n got  %+v\n want %+v", back, c)
		}
	})
}
