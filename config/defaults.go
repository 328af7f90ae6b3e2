package config

import (
	_ "embed"
	"slices"
)

//go:embed defaults.yaml
var defaultYAML []byte

// DefaultYAML is the default configuration as an annotated YAML file:
// every key with its default value and a comment saying what it does and
// what it accepts. It parses to exactly Default(). `inspectd config
// defaults` prints it; it is the reference for writing a configuration.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }
