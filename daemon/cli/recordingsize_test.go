package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/daemon/internal/testfs"
)

// sparseFile makes a file of size bytes at path that takes no disk space.
func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// `inspectd bench --camera-replay` read a recording whole whatever its
// size: a video or a disk image named .mjpg was read into memory, gigabytes
// of it, before it was found to hold no frame. A recording over 1 GiB (all
// its files together) is now refused before any of it is read, naming the
// file, its size and the limit.
func TestBenchReplayRefusesARecordingOverItsLimit(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "line.mjpeg")
	sparseFile(t, one, maxRecordingBytes+1)
	folder := filepath.Join(dir, "rec")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	const part = 600 << 20
	for _, name := range []string{"a.mjpeg", "b.mjpeg"} {
		sparseFile(t, filepath.Join(folder, name), part)
	}
	limit := strconv.Itoa(maxRecordingBytes)
	cfg := evalConfig(t, dir)
	for path, want := range map[string]string{
		one: one + " is " + strconv.Itoa(maxRecordingBytes+1) + " bytes, more than the " + limit + " (1 GiB) a recording may hold",
		folder: filepath.Join(folder, "b.mjpeg") + " is " + strconv.Itoa(part) + " bytes: with the " + strconv.Itoa(part) +
			" of the recording's files before it, more than the " + limit + " (1 GiB) a recording may hold",
	} {
		var code int
		var stderr string
		testfs.Within(t, 20*time.Second, "bench --camera-replay "+path, func() {
			code, _, stderr = runCaptureCmd(t, "bench", "--no-mqtt", "--count", "5", "--config", cfg, "--camera-replay", path)
		})
		if code == 0 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "record fewer frames") {
			t.Errorf("bench --camera-replay %s: exit %d, stderr %q\nwant %q", path, code, stderr, want)
		}
	}

	// A file read with less left of the limit than it holds is refused
	// unread too (one that grew since the recording was sized).
	small := filepath.Join(dir, "small.mjpeg")
	if err := os.WriteFile(small, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readRecordingFile(small, 50); err == nil || !strings.Contains(err.Error(), small+" is 100 bytes: with the "+strconv.Itoa(maxRecordingBytes-50)) {
		t.Errorf("readRecordingFile(100 bytes, 50 left): %v", err)
	}
}

// A recording over the limit that is no recording by its kind (a 3 GiB
// line.mp4), or a folder of frames in two formats, was told to record
// fewer frames: the size was checked before the kind. Its kind is said
// first, before any of it is read.
func TestBenchReplaySaysTheKindBeforeTheSize(t *testing.T) {
	dir := t.TempDir()
	video := filepath.Join(dir, "line.mp4")
	sparseFile(t, video, 3<<30)
	mixed := filepath.Join(dir, "mixed")
	if err := os.Mkdir(mixed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mixed, "a.mjpeg"), make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	sparseFile(t, filepath.Join(mixed, "b.yuyv"), maxRecordingBytes)
	cfg := evalConfig(t, dir)
	for path, want := range map[string]string{
		video: video + ": not a recording: want .mjpeg, .mjpg, .jpg, .jpeg, .yuyv or .yuv",
		mixed: filepath.Join(mixed, "b.yuyv") + ": YUYV frames among MJPG ones: a camera sends one format",
	} {
		var code int
		var stderr string
		testfs.Within(t, 20*time.Second, "bench --camera-replay "+path, func() {
			code, _, stderr = runCaptureCmd(t, "bench", "--no-mqtt", "--count", "5", "--config", cfg, "--camera-replay", path)
		})
		if code == 0 || !strings.Contains(stderr, want) || strings.Contains(stderr, "record fewer frames") {
			t.Errorf("bench --camera-replay %s: exit %d, stderr %q\nwant %q, not the size", path, code, stderr, want)
		}
	}
}
