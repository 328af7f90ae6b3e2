package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes, written in the file as plain bytes or with a
// unit: 512KB (decimal, 1000) or 256MiB (binary, 1024). It marshals back to
// the shortest exact form, so the usual ways of writing a size come back as
// written.
type Size uint64

// sizeUnits are the accepted unit spellings. Single letters (K, M, G) are
// refused on purpose: they hide whether 1000 or 1024 is meant.
var sizeUnits = map[string]uint64{
	"": 1, "B": 1,
	"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15, "EB": 1e18,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50, "EiB": 1 << 60,
}

var bareNumberRE = regexp.MustCompile(`^[+-]?[0-9]*\.?[0-9]+$`)

var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) ?([A-Za-z]*)$`)

// ParseSize reads a size such as 256MiB, 1GiB, 512KB, 1.5GiB or 1048576.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if len(t) > 40 {
		return 0, fmt.Errorf("size %.40q... is too long", t)
	}
	m := sizeRE.FindStringSubmatch(t)
	if m == nil {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("size %q is negative", s)
		}
		return 0, fmt.Errorf("size %q is not a number of bytes with an optional unit (like 512KB, 256MiB or 1GiB)", s)
	}
	mult, ok := sizeUnits[m[2]]
	if !ok {
		return 0, fmt.Errorf("size %q has unknown unit %q (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)", s, m[2])
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return 0, fmt.Errorf("size %q is not a number", s)
	}
	r.Mul(r, new(big.Rat).SetUint64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	n := r.Num()
	if !n.IsUint64() {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Size(n.Uint64()), nil
}

// String is the shortest exact form: a binary or decimal unit when the
// size is a whole multiple of one (decimal wins ties, so 512KB stays 512KB),
// else bytes with a B.
func (s Size) String() string {
	n := uint64(s)
	if n == 0 {
		return "0B"
	}
	bin, binUnit := unitOf(n, 1024, []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"})
	dec, decUnit := unitOf(n, 1000, []string{"KB", "MB", "GB", "TB", "PB", "EB"})
	switch {
	case binUnit == "" && decUnit == "":
		return strconv.FormatUint(n, 10) + "B"
	case binUnit == "":
		return strconv.FormatUint(dec, 10) + decUnit
	case decUnit == "":
		return strconv.FormatUint(bin, 10) + binUnit
	case len(strconv.FormatUint(bin, 10)) < len(strconv.FormatUint(dec, 10)):
		return strconv.FormatUint(bin, 10) + binUnit
	default:
		return strconv.FormatUint(dec, 10) + decUnit
	}
}

// unitOf divides n by the largest power of base that divides it exactly and
// names that power; "" when base itself does not divide n.
func unitOf(n, base uint64, units []string) (uint64, string) {
	unit := ""
	for _, u := range units {
		if n%base != 0 {
			break
		}
		n /= base
		unit = u
	}
	if unit == "" {
		return 0, ""
	}
	return n, unit
}

// MarshalText writes String.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what ParseSize accepts.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalYAML writes String.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// UnmarshalYAML reads a scalar that ParseSize accepts.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("expected a size like 256MiB")
	}
	return s.UnmarshalText([]byte(n.Value))
}

// Duration is a time.Duration written like 500ms, 2s or 1m30s. A bare
// number is refused (except 0) because its unit would be a guess.
type Duration time.Duration

// ParseDuration reads a duration such as 500ms or 1m30s.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "0" {
		return 0, nil
	}
	if len(t) > 40 {
		return 0, fmt.Errorf("duration %.40q... is too long", t)
	}
	if bareNumberRE.MatchString(t) {
		return 0, fmt.Errorf("duration %q has no unit (write it like %ss or %sms)", s, t, t)
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("duration %q is not like 500ms, 2s or 1m30s (units: ns, us, ms, s, m, h)", s)
	}
	return Duration(d), nil
}

// Std is the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String is time.Duration's form without its trailing zero units:
// 1h rather than 1h0m0s.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText writes String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads what ParseDuration accepts.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes String.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a scalar that ParseDuration accepts.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("expected a duration like 500ms")
	}
	return d.UnmarshalText([]byte(n.Value))
}

// MemoryBudget is model.memory_budget: "auto" (a fraction of the memory
// available when the model is fitted or loaded) or a fixed Size.
type MemoryBudget struct {
	// Auto takes model.memory_fraction of the available memory; Bytes is
	// then unused and zero.
	Auto bool
	// Bytes is the fixed budget when Auto is false.
	Bytes Size
}

// AutoMemoryBudget is the "auto" budget.
func AutoMemoryBudget() MemoryBudget { return MemoryBudget{Auto: true} }

// FixedMemoryBudget is a budget of n bytes.
func FixedMemoryBudget(n Size) MemoryBudget { return MemoryBudget{Bytes: n} }

// Resolve is the budget in bytes. For auto it calls available (which reads
// the cgroup limit or /proc/meminfo; the model package owns that) and takes
// fraction of it; a fixed budget never calls it.
func (m MemoryBudget) Resolve(fraction float64, available func() (uint64, error)) (uint64, error) {
	if !m.Auto {
		return uint64(m.Bytes), nil
	}
	if !(fraction > 0 && fraction <= 1) {
		return 0, fmt.Errorf("memory budget: fraction %v is out of range (0, 1]", fraction)
	}
	avail, err := available()
	if err != nil {
		return 0, fmt.Errorf("memory budget auto: %w", err)
	}
	return uint64(math.Floor(float64(avail) * fraction)), nil
}

// String is "auto" or the size.
func (m MemoryBudget) String() string {
	if m.Auto {
		return "auto"
	}
	return m.Bytes.String()
}

// MarshalText writes String.
func (m MemoryBudget) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads "auto" or a size.
func (m *MemoryBudget) UnmarshalText(b []byte) error {
	if strings.TrimSpace(string(b)) == "auto" {
		*m = AutoMemoryBudget()
		return nil
	}
	s, err := ParseSize(string(b))
	if err != nil {
		return fmt.Errorf("expected auto or a size: %w", err)
	}
	*m = FixedMemoryBudget(s)
	return nil
}

// MarshalYAML writes String.
func (m MemoryBudget) MarshalYAML() (any, error) { return m.String(), nil }

// UnmarshalYAML reads a scalar "auto" or size.
func (m *MemoryBudget) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("expected auto or a size like 256MiB")
	}
	return m.UnmarshalText([]byte(n.Value))
}
