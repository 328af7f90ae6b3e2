package daemon

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// reloadModelYAML is baseYAML with model.path set to path and the HTTP
// endpoint on listen.
func reloadModelYAML(r *runningDaemon, path, listen string) string {
	y := strings.Replace(r.baseYAML("cell1"), "model: {features: 16, min_features: 16}", "model: {features: 16, min_features: 16, path: "+path+"}", 1)
	return strings.Replace(y, `http: {listen: ""}`, `http: {listen: "`+listen+`"}`, 1)
}

// TestRefusedReloadRemovesTheModelItFitted: a SIGHUP reload naming a model
// file that is not on the synthetic box, refused after its fit (it also
// moves the HTTP endpoint to a port in use), left the model it fitted
// there, and the next start, reload or push naming the file loaded it as
// the operator's own, without the note that says it was fitted (a refused
// push removed it, a refused reload did not); the file the reload created
// is now removed, by the same rule as a push's. A file that was there
// before a refused reload stays.
func TestRefusedReloadRemovesTheModelItFitted(t *testing.T) {
	det := syntheticDetector(t)
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		return r.baseYAML("cell1")
	})
	d := r.daemon()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	refusals := 0
	reload := func(path string) {
		t.Helper()
		r.write(reloadModelYAML(r, path, taken.Addr().String()))
		r.hup()
		refusals++
		r.waitFor("the refused reload", func() bool { return testutil.ToFloat64(d.metrics.ReloadFailures) >= float64(refusals) })
		if !strings.Contains(r.logs.String(), "configuration not reloaded") || !strings.Contains(r.logs.String(), taken.Addr().String()) {
			t.Fatalf("reload of model.path %s with http.listen on a port in use not refused for the port:\n%s", path, r.logs.String())
		}
	}

	missing := filepath.Join(r.dir, "line3.safetensors")
	reload(missing)
	if !strings.Contains(r.logs.String(), "model fitted and saved") {
		t.Fatalf("the reload was refused before its fit, not after:\n%s", r.logs.String())
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused reload left the model it fitted at %s (%v)", missing, err)
	}
	if !strings.Contains(r.logs.String(), "configuration change refused: the model it fitted in place of the missing file is removed") {
		t.Errorf("the removal is not in the log:\n%s", r.logs.String())
	}

	// A file that was there stays, whatever the reload did.
	there := filepath.Join(r.dir, "copy.safetensors")
	data, err := os.ReadFile(filepath.Join(r.dir, "state", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(there, data, 0o600); err != nil {
		t.Fatal(err)
	}
	reload(there)
	if got, err := os.ReadFile(there); err != nil || string(got) != string(data) {
		t.Errorf("the refused reload of a model file that was there removed or changed it (%v)", err)
	}

	if got := d.Config().Model.Path; got != "" {
		t.Errorf("model.path %q in force after the refused reloads, want the state folder's", got)
	}
	if got := d.pipe.Load().Detector().Info().ID; got != det.Info().ID {
		t.Errorf("model %s in force after the refused reloads, want %s", got, det.Info().ID)
	}
}

// logLine is the first line of the log that holds msg ("" when none).
func logLine(logs, msg string) string {
	for line := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(line, msg) {
			return line
		}
	}
	return ""
}

// TestReloadFitLogSaysTheRemedy: the warning logged when a change fits a
// model because the file its model.path names is not on the synthetic box
// gave no remedy, where a push's note says how to put the intended file in
// force (a reload's fit is told in the log alone); it now carries the
// note's remedy under one key, remedy. The file put back and reloaded
// undoes the change and removes the model it fitted.
func TestReloadFitLogSaysTheRemedy(t *testing.T) {
	wordsOnly(t) // a reload's fit: TestRefusedReloadRemovesTheModelItFitted races it
	det := syntheticDetector(t)
	r := startDaemon(t, func(r *runningDaemon) string {
		r.withModel(det)
		return r.baseYAML("cell1")
	})
	d := r.daemon()
	missing := filepath.Join(r.dir, "line3.safetensors")
	r.write(reloadModelYAML(r, missing, ""))
	r.hup()
	r.waitFor("the reload", func() bool { return d.Config().Model.Path == missing })
	line := logLine(r.logs.String(), "a model was fitted on synthetic frames instead")
	want := `remedy="to run your file, copy it to ` + PreviousModelPath(missing) + ` and send rollback with target model`
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, want) {
		t.Errorf("the fit's warning %q lacks %s", line, want)
	}

	// The file put back and reloaded undoes the change, as a revert of a
	// push does: the model it fitted goes with it.
	r.write(r.baseYAML("cell1"))
	r.hup()
	r.waitFor("the reload back", func() bool { return strings.Contains(r.logs.String(), "configuration change undone") }, &r.logs)
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) || d.Config().Model.Path != "" {
		t.Errorf("the reload back to the state folder's model left the model fitted at %s (%v), or is not in force (%q)", missing, err, d.Config().Model.Path)
	}
}
