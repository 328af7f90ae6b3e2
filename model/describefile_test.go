package model

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/inspectd/inspectd/model/align"
	"github.com/inspectd/inspectd/model/backbone"
	"github.com/inspectd/inspectd/model/modeltest"
)

// `inspectd model info FILE` needed the backbone a model was fitted on to
// say anything of the file (run outside its install without
// INSPECTD_SHARE it only said the backbone was not found). DescribeFile
// describes a file from itself, as Load's detector does but for the
// backbone's path: files of before the scale refactor (plain, and with a
// context scale), one with registration, and an ensemble.
func TestDescribeFileMatchesLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("computation only, no concurrency of its own: the full run checks it, the race run skips it")
	}
	files := []string{filepath.Join("testdata", "legacy_plain.safetensors"), filepath.Join("testdata", "legacy_context.safetensors")}
	save := func(name string, opts Options, src ImageSource) {
		det, _, err := Fit(context.Background(), opts, src, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer det.Close()
		p := filepath.Join(t.TempDir(), name+".safetensors")
		if err := det.Save(p); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	save("rigid", alignOptions(t, align.Rigid), poses(24))
	ens := testOptions(t)
	ens.Bundled = []BundledPath{{backbone.MobileNetV1, modeltest.BackbonePath(t)}}
	ens.Recipe = "v1-fit-z+plain"
	save("ensemble", ens, textures(30))
	for _, f := range files {
		opts := testOptions(t)
		d, err := Load(f, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := d.Info()
		d.Close()
		if name := filepath.Base(f); (name == "rigid.safetensors" && want.Align != string(align.Rigid)) || (name == "ensemble.safetensors" && len(want.Members) != 2) ||
			(name == "legacy_context.safetensors" && want.ContextPool == 0) {
			t.Fatalf("%s: info %+v: not the kind of file the test wants", f, want)
		}
		// Without a backbone at all: none is opened.
		opts.Backbone = backbone.Options{}
		got, err := DescribeFile(f, opts)
		if err != nil {
			t.Errorf("%s: DescribeFile: %v", f, err)
			continue
		}
		if got.Backbone != backbone.MobileNetV1 {
			t.Errorf("%s: backbone %q, want the bundled backbone's name %q", f, got.Backbone, backbone.MobileNetV1)
		}
		for _, i := range append([]*Info{&got, &want}, members(&got, &want)...) {
			i.Backbone = ""
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: DescribeFile\n %+v\nLoad\n %+v", f, got, want)
		}
	}
	if _, err := DescribeFile(filepath.Join(t.TempDir(), "none.safetensors"), Options{}); err == nil {
		t.Error("DescribeFile of no file: no error")
	}
}

// members points at the ensemble members of infos.
func members(infos ...*Info) []*Info {
	var out []*Info
	for _, i := range infos {
		for k := range i.Members {
			out = append(out, &i.Members[k])
		}
	}
	return out
}
