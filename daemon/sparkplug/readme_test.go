package sparkplug

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestREADMEMetricReference holds the README's metric tables to the
// catalog: every metric with its datatype and alias, nothing else.
func TestREADMEMetricReference(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([A-Za-z0-9]+) \\| ([0-9]+) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = m[2] + " " + m[3]
	}
	nd, dd := nodeDefs(), deviceDefs()
	want := map[string]string{}
	for i, d := range nd {
		want[d.name] = d.dt.String() + " " + strconv.Itoa(1+i)
	}
	for i, d := range dd {
		want[d.name] = d.dt.String() + " " + strconv.Itoa(100+i)
	}
	for name, w := range want {
		if got, ok := documented[name]; !ok {
			t.Errorf("README lacks metric %q (%s)", name, w)
		} else if got != w {
			t.Errorf("README says %q is %s, the catalog %s", name, got, w)
		}
	}
	for name := range documented {
		if _, ok := want[name]; !ok {
			t.Errorf("README documents %q, which the edge node does not publish", name)
		}
	}
}
