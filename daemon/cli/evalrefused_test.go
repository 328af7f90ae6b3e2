package cli

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// eval's table showed a registered column's zero refused test images as
// "0" on a draw's row, "0.0" on the draws' mean and "-" on the mean over
// sets, where "-" says that the recipe registers nothing, and the mean
// over sets hid refusals (its registration was not carried). As README's
// tables give the count: "-" only without registration, a zero always
// "0", a mean per draw to one decimal where it is not whole, the sets'
// total in the mean over sets.
func TestEvalRefusedColumnOneForm(t *testing.T) {
	columns := []string{"v1p-squash-rigid-raw", "plain"}
	res := func(data string, refused int) []EvalResult {
		return []EvalResult{
			{Data: data, Recipe: columns[0], Align: "rigid", RegistrationRefused: refused, NoPixelFigures: "no masks"},
			{Data: data, Recipe: columns[1], Align: "off", NoPixelFigures: "no masks"},
		}
	}
	// cells returns each row's refused cell by its set and recipe ("a@train-draw1
	// plain", "mean plain").
	cells := func(rep *EvalReport) map[string]string {
		var b bytes.Buffer
		printEval(&b, rep)
		lines := strings.Split(b.String(), "\n")
		head := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "ms/image") })
		if head < 0 {
			t.Fatalf("no table:\n%s", b.String())
		}
		end := strings.Index(lines[head], "refused") + len("refused") // right-aligned: each cell ends here
		out := map[string]string{}
		for _, l := range lines[head+1:] {
			if strings.TrimSpace(l) == "" {
				break
			}
			for _, c := range columns {
				if i := strings.Index(l, "  "+c+"  "); i >= 0 {
					f := strings.Fields(l[:end])
					out[strings.TrimSpace(l[:i])+" "+c] = f[len(f)-1]
				}
			}
		}
		return out
	}
	check := func(what string, rep *EvalReport, want map[string]string) {
		t.Helper()
		got := cells(rep)
		for k, w := range want {
			if g, ok := got[k]; !ok || g != w {
				t.Errorf("%s: row %q refused %q, want %q (rows %v)", what, k, g, w, got)
			}
		}
	}

	// Draws of two sets, none refused.
	drawn := func(data string, refused ...int) EvalSet {
		s := EvalSet{Data: data, TrainDrawImages: 8}
		for i, n := range refused {
			s.Draws = append(s.Draws, EvalSet{Data: data + "@train-draw" + string(rune('1'+i)), Results: res(data+"@train-draw"+string(rune('1'+i)), n)})
		}
		s.Results = drawsMean(s.Draws, columns)
		return s
	}
	rep := &EvalReport{Sets: []EvalSet{drawn("/d/a", 0, 0), drawn("/d/b", 0, 0)}}
	rep.Mean = meanResults(rep.Sets, columns)
	check("draws, none refused", rep, map[string]string{
		"a@train-draw1 v1p-squash-rigid-raw": "0", "a@train-draw mean of 2 v1p-squash-rigid-raw": "0", "mean v1p-squash-rigid-raw": "0",
		"a@train-draw1 plain": "-", "a@train-draw mean of 2 plain": "-", "mean plain": "-",
	})
	rep = &EvalReport{Sets: []EvalSet{drawn("/d/a", 1, 2), drawn("/d/b", 0, 0)}}
	rep.Mean = meanResults(rep.Sets, columns)
	check("draws, some refused", rep, map[string]string{
		"a@train-draw2 v1p-squash-rigid-raw": "2", "a@train-draw mean of 2 v1p-squash-rigid-raw": "1.5", "b@train-draw mean of 2 v1p-squash-rigid-raw": "0",
		"mean v1p-squash-rigid-raw": "1.5", "mean plain": "-",
	})
	// Draws whose models differ in their registration (recipe auto
	// chose per draw): the mean counts the refusals of those that register.
	mixed := drawn("/d/a", 2, 0)
	mixed.Draws[1].Results[0].Align = "off"
	mixed.Results = drawsMean(mixed.Draws, columns)
	rep = &EvalReport{Sets: []EvalSet{mixed, drawn("/d/b", 0, 0)}}
	rep.Mean = meanResults(rep.Sets, columns)
	check("draws registered and not", rep, map[string]string{
		"a@train-draw2 v1p-squash-rigid-raw": "-", "a@train-draw mean of 2 v1p-squash-rigid-raw": "1", "mean v1p-squash-rigid-raw": "1",
	})
	// Sets without draws: each set's count, their total in the mean.
	rep = &EvalReport{Sets: []EvalSet{{Data: "/d/a", Results: res("/d/a", 0)}, {Data: "/d/b", Results: res("/d/b", 3)}}}
	rep.Mean = meanResults(rep.Sets, columns)
	check("sets", rep, map[string]string{"a v1p-squash-rigid-raw": "0", "b v1p-squash-rigid-raw": "3", "mean v1p-squash-rigid-raw": "3", "mean plain": "-"})
	if m := rep.Mean[0]; m.Align != "rigid" || m.RegistrationRefused != 3 {
		t.Errorf("mean over sets: align %q, registration_refused %d; want rigid and the sets' total, 3", m.Align, m.RegistrationRefused)
	}
}
