package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"512B", 512},
		{"512KB", 512_000},
		{"512kB", 512_000},
		{"256MiB", 256 << 20},
		{"1GiB", 1 << 30},
		{"1.5GiB", 3 << 29},
		{"2 MB", 2_000_000},
		{" 64KiB ", 64 << 10},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `size "" is not a number of bytes with an optional unit (like 512KB, 256MiB or 1GiB)`},
		{"-5MiB", `size "-5MiB" is negative`},
		{"256M", `size "256M" has unknown unit "M" (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)`},
		{"256mib", `size "256mib" has unknown unit "mib" (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)`},
		{"0.3KiB", `size "0.3KiB" is not a whole number of bytes`},
		{"16EiB", `size "16EiB" is too large`},
		{"1e9", `size "1e9" is not a number of bytes with an optional unit (like 512KB, 256MiB or 1GiB)`},
		{"lots", `size "lots" is not a number of bytes with an optional unit (like 512KB, 256MiB or 1GiB)`},
		{strings.Repeat("9", 50), `size "9999999999999999999999999999999999999999"... is too long`},
	} {
		_, err := ParseSize(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseSize(%q) error = %v; want %s", tc.in, err, tc.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   Size
		want string
	}{
		{0, "0B"},
		{512, "512B"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{512_000, "512KB"}, // also 500KiB: decimal wins the tie
		{256 << 20, "256MiB"},
		{1 << 30, "1GiB"},
		{3 << 29, "1536MiB"},
		{2_000_000, "2MB"},
		{1_048_576_000, "1000MiB"}, // shorter than 1048576KB
		{1000001, "1000001B"},
		{^Size(0), "18446744073709551615B"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Size(%d).String() = %q; want %q", uint64(tc.in), got, tc.want)
		}
		back, err := ParseSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in.String(), back, err, uint64(tc.in))
		}
	}
	// The usual spellings come back as written.
	for _, s := range []string{"256MiB", "1GiB", "512KB", "64KiB", "2GB", "100MB"} {
		v, err := ParseSize(s)
		if err != nil || v.String() != s {
			t.Errorf("ParseSize(%q).String() = %q, %v", s, v.String(), err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"500ms", 500 * time.Millisecond},
		{"2s", 2 * time.Second},
		{"1m30s", 90 * time.Second},
		{"1h", time.Hour},
		{"-1s", -time.Second},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got.Std() != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"5", `duration "5" has no unit (write it like 5s or 5ms)`},
		{"1.5", `duration "1.5" has no unit (write it like 1.5s or 1.5ms)`},
		{"2 s", `duration "2 s" is not like 500ms, 2s or 1m30s (units: ns, us, ms, s, m, h)`},
		{"2d", `duration "2d" is not like 500ms, 2s or 1m30s (units: ns, us, ms, s, m, h)`},
		{"", `duration "" is not like 500ms, 2s or 1m30s (units: ns, us, ms, s, m, h)`},
	} {
		_, err := ParseDuration(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseDuration(%q) error = %v; want %s", tc.in, err, tc.want)
		}
	}
}

func TestDurationString(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{500 * time.Millisecond, "500ms"},
		{2 * time.Second, "2s"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{time.Hour, "1h"},
		{time.Hour + 30*time.Minute, "1h30m"},
		{time.Hour + 5*time.Second, "1h0m5s"},
		{65535 * time.Second, "18h12m15s"},
		{-time.Minute, "-1m"},
	} {
		d := Duration(tc.in)
		if got := d.String(); got != tc.want {
			t.Errorf("Duration(%v).String() = %q; want %q", tc.in, got, tc.want)
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", d.String(), back, err, tc.in)
		}
	}
}

func TestMemoryBudgetText(t *testing.T) {
	var m MemoryBudget
	if err := m.UnmarshalText([]byte("auto")); err != nil || m != AutoMemoryBudget() || m.String() != "auto" {
		t.Errorf("auto: %+v, %v", m, err)
	}
	if err := m.UnmarshalText([]byte("256MiB")); err != nil || m != FixedMemoryBudget(256<<20) || m.String() != "256MiB" {
		t.Errorf("256MiB: %+v, %v", m, err)
	}
	err := m.UnmarshalText([]byte("Auto"))
	want := `expected auto or a size: size "Auto" is not a number of bytes with an optional unit (like 512KB, 256MiB or 1GiB)`
	if err == nil || err.Error() != want {
		t.Errorf("Auto: error %v; want %s", err, want)
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("[1]"), &n); err != nil {
		t.Fatal(err)
	}
	if err := m.UnmarshalYAML(n.Content[0]); err == nil || err.Error() != "expected auto or a size like 256MiB" {
		t.Errorf("list: error %v", err)
	}
}

func TestMemoryBudgetResolve(t *testing.T) {
	avail := func() (uint64, error) { return 8 << 30, nil }
	called := false
	never := func() (uint64, error) { called = true; return 0, nil }

	if got, err := FixedMemoryBudget(256<<20).Resolve(0.25, never); err != nil || got != 256<<20 || called {
		t.Errorf("fixed: %d, %v, available called %v", got, err, called)
	}
	if got, err := AutoMemoryBudget().Resolve(0.25, avail); err != nil || got != 2<<30 {
		t.Errorf("auto 0.25 of 8GiB: %d, %v; want 2GiB", got, err)
	}
	if _, err := AutoMemoryBudget().Resolve(0, avail); err == nil || err.Error() != "memory budget: fraction 0 is out of range (0, 1]" {
		t.Errorf("fraction 0: %v", err)
	}
	boom := errors.New("no /proc/meminfo")
	_, err := AutoMemoryBudget().Resolve(0.5, func() (uint64, error) { return 0, boom })
	if !errors.Is(err, boom) || err.Error() != "memory budget auto: no /proc/meminfo" {
		t.Errorf("available error: %v", err)
	}
}

// TestUnitsEncode checks that the types read and write their human form
// through YAML and through encoding.TextMarshaler users such as JSON.
func TestUnitsEncode(t *testing.T) {
	type doc struct {
		S Size         `yaml:"s" json:"s"`
		D Duration     `yaml:"d" json:"d"`
		M MemoryBudget `yaml:"m" json:"m"`
	}
	in := doc{S: 256 << 20, D: Duration(1500 * time.Millisecond), M: FixedMemoryBudget(1 << 30)}
	y, err := yaml.Marshal(in)
	if err != nil || string(y) != "s: 256MiB\nd: 1.5s\nm: 1GiB\n" {
		t.Errorf("yaml.Marshal = %q, %v", y, err)
	}
	var back doc
	if err := yaml.Unmarshal(y, &back); err != nil || back != in {
		t.Errorf("yaml.Unmarshal = %+v, %v", back, err)
	}
	j, err := json.Marshal(in)
	if err != nil || string(j) != `{"s":"256MiB","d":"1.5s","m":"1GiB"}` {
		t.Errorf("json.Marshal = %s, %v", j, err)
	}
	back = doc{}
	if err := json.Unmarshal(j, &back); err != nil || back != in {
		t.Errorf("json.Unmarshal = %+v, %v", back, err)
	}
	if err := yaml.Unmarshal([]byte("s: [1]\n"), &back); err == nil || !strings.Contains(err.Error(), "expected a size like 256MiB") {
		t.Errorf("size from a list: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"s":"1Q"}`), &back); err == nil || !strings.Contains(err.Error(), `unknown unit "Q"`) {
		t.Errorf("bad size in JSON: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"d":"5"}`), &back); err == nil || !strings.Contains(err.Error(), `has no unit`) {
		t.Errorf("bad duration in JSON: %v", err)
	}
}
