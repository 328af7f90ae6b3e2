package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/daemon/mqttpub"
	"github.com/inspectd/inspectd/daemon/sparkplug"
)

// scrapeSeries reads every series of url's /metrics, labels included in
// the key as the text format writes them (nil when the endpoint does not
// answer).
func scrapeSeries(url string) map[string]float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	vals := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if f, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			vals[line[:i]] = f
		}
	}
	return vals
}

// TestSparkplugOfflineIsNotNotConnected: while the edge node waits for a
// primary host that never comes and the JSON connection is up, a result
// the edge node could not send is a publish failure of reason
// sparkplug_offline with mqtt.profile sparkplug (it reached no consumer),
// and no failure at all with profile both (the JSON topics took it).
// Neither counts as not_connected: the edge node's ErrOffline wraps
// mqttpub.ErrNotConnected, and a trial saw not_connected rise by 47 in
// 15 s beside inspectd_mqtt_connected 1.
func TestSparkplugOfflineIsNotNotConnected(t *testing.T) {
	t.Parallel()
	const (
		notConnected = `inspectd_publish_failures_total{kind="result",reason="not_connected"}`
		spOffline    = `inspectd_publish_failures_total{kind="result",reason="sparkplug_offline"}`
		dropped      = `inspectd_sparkplug_dropped_total{reason="offline"}`
	)
	for _, profile := range []string{"sparkplug", "both"} {
		t.Run(profile, func(t *testing.T) {
			r := startDaemon(t, func(r *runningDaemon) string {
				y := strings.Replace(r.baseYAML("cell1"), "mqtt: {", "mqtt: {profile: "+profile+", ", 1)
				y = strings.Replace(y, `http: {listen: ""}`, `http: {listen: "127.0.0.1:0"}`, 1)
				return y + "sparkplug: {primary_host_id: IamHost}\n"
			})
			url := r.httpURL()
			var m map[string]float64
			r.waitFor("results dropped by the edge node with the JSON connection up", func() bool {
				m = scrapeSeries(url)
				return m["inspectd_mqtt_connected"] == 1 && m[dropped] >= 5
			})
			if _, ok := m[spOffline]; !ok {
				t.Errorf("/metrics lacks %s", spOffline)
			}
			if v := m[notConnected]; v != 0 {
				t.Errorf("%s %v with inspectd_mqtt_connected 1; want 0", notConnected, v)
			}
			switch v := m[spOffline]; {
			case profile == "sparkplug" && v == 0:
				t.Errorf("%s 0 after %v results the edge node dropped; want them counted", spOffline, m[dropped])
			case profile == "both" && v != 0:
				t.Errorf("%s %v with the JSON topics delivering every result; want 0", spOffline, v)
			}
		})
	}
}

func TestResultNotSentReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{mqttpub.ErrNotConnected, "not_connected"},
		{fmt.Errorf("publish result: %w", mqttpub.ErrNotConnected), "not_connected"},
		{sparkplug.ErrOffline, "sparkplug_offline"},
		{fmt.Errorf("ddata: %w", sparkplug.ErrOffline), "sparkplug_offline"},
		{errors.Join(sparkplug.ErrOffline, errors.New("x")), "sparkplug_offline"},
	} {
		if got := resultNotSentReason(tc.err); got != tc.want {
			t.Errorf("resultNotSentReason(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}
