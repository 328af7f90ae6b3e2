package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DeviceInfo describes one V4L2 device node.
type DeviceInfo struct {
	Path string
	// Links are the stable names pointing at Path (/dev/v4l/by-id/...,
	// /dev/v4l/by-path/...): configure those, as /dev/videoN numbers change
	// when cameras are replugged.
	Links    []string
	Card     string
	Bus      string
	Formats  []FormatInfo
	Controls []ControlInfo
	// Err is set when the node could not be opened or is not a capture
	// device (UVC cameras also create metadata nodes).
	Err error
}

// FormatInfo is one pixel format with its sizes.
type FormatInfo struct {
	Format      FourCC
	Description string
	Sizes       []SizeInfo
}

// SizeInfo is one frame size with its frame rates.
type SizeInfo struct {
	Size FrameSize
	FPS  []float64
}

// ControlInfo is one control with its current value.
type ControlInfo struct {
	Control
	// Value is the current value (0 for write-only controls); ValueErr says
	// why it could not be read.
	Value    int32
	ValueErr error
	// Key is the name CameraOptions.Controls accepts for it.
	Key string
}

// ListOptions configure ListDevices.
type ListOptions struct {
	// Dir holds the video nodes and the v4l link folders. Default /dev.
	Dir string
	// Open opens a node; nil uses V4L2.
	Open Opener
}

// ListDevices describes every /dev/video* node. No nodes is not an error: it
// returns an empty list.
func ListDevices(opts ListOptions) ([]DeviceInfo, error) {
	if opts.Dir == "" {
		opts.Dir = "/dev"
	}
	if opts.Open == nil {
		opts.Open = defaultOpener()
	}
	paths, err := filepath.Glob(filepath.Join(opts.Dir, "video*"))
	if err != nil {
		return nil, fmt.Errorf("list video devices in %s: %w", opts.Dir, err)
	}
	sort.Slice(paths, func(i, j int) bool { return nodeNumber(paths[i]) < nodeNumber(paths[j]) })
	links := deviceLinks(opts.Dir)
	var out []DeviceInfo
	for _, p := range paths {
		key := p
		if rp, err := filepath.EvalSymlinks(p); err == nil {
			key = rp
		}
		info := DeviceInfo{Path: p, Links: links[key]}
		dev, err := opts.Open(p)
		if err != nil {
			info.Err = err
			out = append(out, info)
			continue
		}
		describe(dev, &info)
		_ = dev.Close() // listing only reads
		out = append(out, info)
	}
	return out, nil
}

func nodeNumber(p string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "video"))
	if err != nil {
		return 1 << 30
	}
	return n
}

// deviceLinks maps each node to the by-id and by-path links that point at it.
func deviceLinks(dir string) map[string][]string {
	out := map[string][]string{}
	for _, sub := range []string{"v4l/by-id", "v4l/by-path"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			continue // no cameras, or no udev
		}
		for _, e := range entries {
			l := filepath.Join(dir, sub, e.Name())
			t, err := filepath.EvalSymlinks(l)
			if err != nil {
				continue
			}
			out[t] = append(out[t], l)
		}
	}
	return out
}

func describe(dev Device, info *DeviceInfo) {
	info.Card, info.Bus = dev.Card(), dev.Bus()
	for _, f := range dev.Formats() {
		fi := FormatInfo{Format: f.Format, Description: f.Description}
		for _, s := range dev.FrameSizes(f.Format) {
			fi.Sizes = append(fi.Sizes, SizeInfo{Size: s, FPS: dev.FrameRates(f.Format, s.MaxWidth, s.MaxHeight)})
		}
		info.Formats = append(info.Formats, fi)
	}
	for _, c := range dev.Controls() {
		ci := ControlInfo{Control: c, Key: controlKey(c.Name)}
		if !c.WriteOnly { // buttons have no value to read
			ci.Value, ci.ValueErr = dev.GetControl(c.ID)
		}
		info.Controls = append(info.Controls, ci)
	}
}
