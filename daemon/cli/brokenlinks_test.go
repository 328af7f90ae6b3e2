package cli

import (
	"errors"
	"testing"

	"github.com/inspectd/inspectd/model/dataset"
)

// The refusals of a set's broken test/ and ground_truth links, one link
// and several, word by word: brokenTestLinks and brokenTruthLinks share
// brokenLinks, and say what each lost as before.
func TestBrokenLinksWords(t *testing.T) {
	one, two := errors.New("D/test/crack is a link to D/x, which does not exist"), errors.New("D/test/hole is a link to D/y, which does not exist")
	for _, c := range []struct {
		err  error
		want string
	}{
		{brokenTestLinks(&dataset.Set{Dir: "D"}), ""},
		{brokenTestLinks(&dataset.Set{Dir: "D", BrokenTest: []error{one}}),
			"data set D: " + one.Error() + ": its test images would be left out of the evaluation: restore what it leads to, or remove the link to evaluate without it"},
		{brokenTestLinks(&dataset.Set{Dir: "D", BrokenTest: []error{one, two}}),
			"data set D: 2 entries of test/ lead nowhere (" + one.Error() + "; " + two.Error() + "): their test images would be left out of the evaluation: restore what they lead to, or remove the links to evaluate without them"},
		{brokenTruthLinks(&dataset.Set{Dir: "D", BrokenTruth: []error{one}}),
			"data set D: " + one.Error() + ": its masks would be left out of the pixel figures: restore what it leads to, or remove the link to evaluate without them"},
		{brokenTruthLinks(&dataset.Set{Dir: "D", BrokenTruth: []error{one, two}}),
			"data set D: 2 entries of ground_truth lead nowhere (" + one.Error() + "; " + two.Error() + "): their masks would be left out of the pixel figures: restore what they lead to, or remove the links to evaluate without them"},
	} {
		got := ""
		if c.err != nil {
			got = c.err.Error()
		}
		if got != c.want {
			t.Errorf("refusal %q,\nwant %q", got, c.want)
		}
	}
	if err := brokenTestLinks(&dataset.Set{Dir: "D", BrokenTest: []error{one}}); !errors.Is(err, one) {
		t.Errorf("one broken link: %v does not wrap the link's error", err)
	}
}
