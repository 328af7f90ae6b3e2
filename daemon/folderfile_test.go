package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/daemon/httpapi"
	"github.com/inspectd/inspectd/daemon/mqttpub"
)

// Results of a folder source name the file each frame came from, so that
// a consumer tells a part from a file read again.
func TestResultsNameTheirFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "frames")
	writePNGs(t, dir, 2, 5, false)
	src, err := capture.NewFolder(capture.FolderOptions{Dir: dir, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	sink := &memSink{onResult: func(r *mqttpub.Result) { files = append(files, r.File) }}
	p, err := NewPipeline(PipelineOptions{Source: src, Detector: syntheticDetector(t), Sink: sink, Metrics: httpapi.NewMetrics(),
		Queue: 1, MaxInspections: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0] != "part000.png" || files[1] != "part001.png" {
		t.Errorf("results name %q, want part000.png and part001.png", files)
	}
}
