package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model"
)

// fit's last line says what decided the choice: the margin over the fixed
// recipe, or the fixed recipe's own false alarms (a field report: "more
// than the margin above the fixed recipe" for a lead of 0.0084, where
// the fixed recipe had lost for flagging 20% of the good images).
func TestPrintSearchSaysWhy(t *testing.T) {
	cand := func(name string, score, fa float64) model.Candidate {
		return model.Candidate{Name: name, Figures: model.RecipeFigures{Score: score, FalseAlarms: fa}}
	}
	for _, c := range []struct {
		name string
		rep  model.SearchReport
		want string
	}{
		{"over the margin", model.SearchReport{Candidates: []model.Candidate{cand("fixed", 0.78, 0.05), cand("other", 0.80, 0.05)},
			Chosen: cand("other", 0.80, 0.05), Reference: "fixed", FalseAlarms: 0.1, Margin: 0.01},
			"chosen: other (*), more than the margin (0.01) above the fixed recipe fixed (=)"},
		{"fixed over the false-alarm limit", model.SearchReport{Candidates: []model.Candidate{cand("fixed", 0.7863, 0.2), cand("other", 0.7947, 0.2)},
			Chosen: cand("other", 0.7947, 0.2), Reference: "fixed", FalseAlarms: 0.1, Margin: 0.01},
			"chosen: other (*), the best ranked: the fixed recipe fixed (=) flagged 20.0% of the held-out good images, more than the 10% allowed, so no margin kept it"},
		{"fixed kept", model.SearchReport{Candidates: []model.Candidate{cand("fixed", 0.79, 0.05), cand("other", 0.795, 0.05)},
			Chosen: cand("fixed", 0.79, 0.05), Reference: "fixed", FalseAlarms: 0.1, Margin: 0.01},
			"chosen: fixed (*), the fixed recipe: no candidate beat it by more than the margin"},
	} {
		var b strings.Builder
		printSearch(&b, &c.rep)
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("%s: output lacks %q:\n%s", c.name, c.want, b.String())
		}
	}
}

// On a noisy line fit's table says the median filter was tried with
// every candidate (the "-med" rows); on a quiet one it says nothing of it.
func TestPrintSearchSaysTheMedianFilter(t *testing.T) {
	ch := model.Candidate{Name: "v1-squash-med-std-z-ctx2"}
	for _, noisy := range []bool{false, true} {
		var b strings.Builder
		printSearch(&b, &model.SearchReport{Candidates: []model.Candidate{ch}, Chosen: ch, Denoise: noisy})
		if said := strings.Contains(b.String(), "median filter (3×3, -med) tried with every candidate"); said != noisy {
			t.Errorf("noisy %v: says the median filter %v:\n%s", noisy, said, b.String())
		}
	}
}

// fit says how far the chosen recipe's alarm regions grow and why: the
// share the synthetic defects chose, or the default and why it stayed.
func TestPrintSearchSaysThePixelRatio(t *testing.T) {
	for _, c := range []struct {
		fig  model.RecipeFigures
		want string
	}{
		{model.RecipeFigures{PixelRatio: 0.9, RegionIoU: 0.3723, RegionImages: 48},
			"alarm regions: grown to 0.9 × the image threshold, where they matched the synthetic defects best (region IoU 0.3723 over 48 flagged synthetic defects)"},
		{model.RecipeFigures{PixelRatio: 0.75, RegionIoU: 0.416, RegionImages: 52},
			"alarm regions: grown to 0.75 × the image threshold (the default: region IoU 0.4160 over 52 flagged synthetic defects, no other share more than 0.02 above it)"},
		{model.RecipeFigures{PixelRatio: 0.75, RegionIoU: 0.5, RegionImages: 3},
			"alarm regions: grown to 0.75 × the image threshold (the default: 3 flagged synthetic defects, too few to choose another share on; region IoU 0.5000)"},
		{model.RecipeFigures{PixelRatio: 0.75},
			"alarm regions: grown to 0.75 × the image threshold (the default: no synthetic defect was flagged to measure them on)"},
	} {
		var b strings.Builder
		ch := model.Candidate{Name: "r", Figures: c.fig}
		printSearch(&b, &model.SearchReport{Candidates: []model.Candidate{ch}, Chosen: ch})
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("output lacks %q:\n%s", c.want, b.String())
		}
	}
}

// model info says how far the model's alarm regions grow, and what the
// search measured there; a model fitted before the measure says nothing
// of it.
func TestModelInfoSaysThePixelRatio(t *testing.T) {
	for _, c := range []struct {
		fig   *model.RecipeFigures
		pixel float64
		want  string
	}{
		{&model.RecipeFigures{PixelRatio: 0.9, RegionIoU: 0.468, RegionImages: 26}, 9,
			"alarm regions    grown to 0.9 × the image threshold: region IoU 0.4680 on 26 flagged synthetic defects\n"},
		// A threshold command's explicit pixel threshold: the share in
		// force, and what the search chose (a new user's trial: "grown to
		// 0.75" above "thresholds image 80, pixel 40").
		{&model.RecipeFigures{PixelRatio: 0.9, RegionIoU: 0.468, RegionImages: 26}, 5,
			"alarm regions    grown to 0.5 × the image threshold (set since the fit; the recipe search chose 0.9: region IoU 0.4680 on 26 flagged synthetic defects)\n"},
		{&model.RecipeFigures{}, 9, ""},
		{nil, 9, ""},
	} {
		var b strings.Builder
		writeModelInfo(&Env{Stdout: &b}, model.Info{Recipe: "r", RecipeChoice: model.RecipeAuto, RecipeFigures: c.fig, ImageThreshold: 10, PixelThreshold: c.pixel}, "")
		if got := b.String(); c.want != "" && !strings.Contains(got, c.want) || c.want == "" && strings.Contains(got, "alarm regions") {
			t.Errorf("figures %+v: want %q in:\n%s", c.fig, c.want, got)
		}
	}
}

// Help asked for is the output: `inspectd help | less`, `inspectd help
// fit`; an unknown name is a usage error.
func TestHelpOnStdout(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"help"}, 0, "usage: inspectd <command>"},
		{[]string{"help", "fit"}, 0, "Usage of inspectd fit"},
		{[]string{"help", "config"}, 0, "give a subcommand: check, defaults"},
		{[]string{"help", "config", "check"}, 0, "Usage of inspectd config check"},
		{[]string{"help", "nosuch"}, 2, ""},
	} {
		var so, se strings.Builder
		code := Main(context.Background(), c.args, strings.NewReader(""), &so, &se)
		if code != c.code || !strings.Contains(so.String(), c.out) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", c.args, code, so.String(), se.String())
		}
	}
}

// fit's search header counted the ensemble, built from the best candidate
// after the others, among the candidates: "3 candidates" for a search of
// two. It counts the candidates tried and names the ensemble's row apart.
func TestPrintSearchCountsTheCandidatesWithoutTheEnsemble(t *testing.T) {
	plain := model.Candidate{Name: "plain", Figures: model.RecipeFigures{Score: 0.7}}
	single := model.Candidate{Name: "v1-squash-raw", Figures: model.RecipeFigures{Score: 0.8}}
	members := []model.Recipe{{Backbone: "a"}, {Backbone: "b"}, {Backbone: "c"}}
	ens := model.Candidate{Recipe: model.Recipe{Members: members}, Name: "v1-squash-raw+v2-squash-raw+plain", Figures: model.RecipeFigures{Score: 0.8}}
	for _, c := range []struct {
		cands []model.Candidate
		want  string
	}{
		{[]model.Candidate{plain, single, ens}, "recipe search: 2 candidates and the ensemble of the best (the last row), each fitted on 30 images"},
		{[]model.Candidate{plain, single}, "recipe search: 2 candidates, each fitted on 30 images"},
	} {
		var b strings.Builder
		printSearch(&b, &model.SearchReport{Candidates: c.cands, Chosen: c.cands[len(c.cands)-1], FitImages: 30, Good: 10, Defects: 20})
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("%d rows: output lacks %q:\n%s", len(c.cands), c.want, b.String())
		}
	}
}
