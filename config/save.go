package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/inspectd/inspectd/config/atomicfile"
)

// savedHeader starts every file Save writes: comments cannot be kept
// through the structs, so it points to where every key is explained.
const savedHeader = "# inspectd configuration, written by inspectd.\n" +
	"# Every key is explained by `inspectd config defaults`.\n"

// Marshal writes c as YAML (every key, two-space indent) that Parse reads
// back to an equal Config.
func Marshal(c *Config) ([]byte, error) {
	var root yaml.Node
	if err := root.Encode(c); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	flowScalarLists(&root)
	var buf bytes.Buffer
	buf.WriteString(savedHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return buf.Bytes(), nil
}

// flowScalarLists writes lists of scalars on one line ([MJPEG, YUYV, GREY]),
// as a person would.
func flowScalarLists(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode {
		flow := true
		for _, c := range n.Content {
			flow = flow && c.Kind == yaml.ScalarNode
		}
		if flow {
			n.Style |= yaml.FlowStyle
		}
	}
	for _, c := range n.Content {
		flowScalarLists(c)
	}
}

// Save validates c and writes it to path atomically: a temporary file in
// the same directory is written and fsynced, renamed over path, and the
// directory is fsynced, so that a crash or power cut leaves either the old
// file or the new one, never a torn one. This is how the daemon persists a
// configuration pushed over MQTT. An existing file keeps its permissions
// (a symlink is followed and stays a symlink, even one whose file does not
// exist yet: the file is created where it points); a new one gets 0600
// because the configuration may hold the MQTT password. The directory must
// exist. Temporary files of an earlier save that a crash left behind are
// removed once an hour old.
func Save(path string, c *Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("save config %s: refusing an invalid configuration:\n%w", path, err)
	}
	data, err := Marshal(c)
	if err != nil {
		return fmt.Errorf("save config %s: %w", path, err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("save config %s: %w", path, err)
	}
	return nil
}

// writeFileAtomic replaces path's contents with data; see Save.
func writeFileAtomic(path string, data []byte) error {
	return writeFileAtomicMode(path, data, 0)
}

// writeFileAtomicMode is writeFileAtomic with the permissions perm (0: the
// existing file's, else 0600).
func writeFileAtomicMode(path string, data []byte, perm fs.FileMode) error {
	target, err := resolveLinks(path)
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o600)
	if fi, err := os.Stat(target); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", target)
		}
		mode = fi.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if perm != 0 {
		mode = perm
	}
	atomicfile.RemoveStale(target)
	return atomicfile.WriteBytes(target, mode, data)
}

// maxLinks bounds the symlinks resolveLinks follows, as the kernel does
// (ELOOP).
const maxLinks = 40

// resolveLinks follows path through symlinks to the file they end at,
// which need not exist: a dangling link is followed to the file it names,
// so that the file is created there and the link stays a link.
// filepath.EvalSymlinks cannot do that (it fails on a dangling link).
func resolveLinks(path string) (string, error) {
	p := path
	for range maxLinks {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		dest, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(p), dest)
		}
		p = dest
	}
	return "", fmt.Errorf("%s: more than %d symbolic links (a loop?)", path, maxLinks)
}
