package httpapi

import (
	"os"
	"strings"
	"testing"
)

// TestRegistrationGaugesCarryUnits: the latest registration is one gauge
// per quantity with its unit in the name (Prometheus naming), not one
// gauge mixing pixels, degrees and a confidence under a label; the README
// lists the series the daemon exports.
func TestRegistrationGaugesCarryUnits(t *testing.T) {
	h := New(Options{Logger: quiet()})
	m := h.Metrics()
	m.ObserveRegistration(3.5, -2, 1.25, 0.875)
	body := get(t, h, "/metrics").Body.String()
	for _, want := range []string{
		`inspectd_last_registration_shift_pixels{axis="x"} 3.5`,
		`inspectd_last_registration_shift_pixels{axis="y"} -2`,
		"inspectd_last_registration_angle_degrees 1.25",
		"inspectd_last_registration_confidence 0.875",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "inspectd_last_registration{") {
		t.Error("/metrics still has inspectd_last_registration{quantity}, which mixes units")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"inspectd_last_registration_shift_pixels", "inspectd_last_registration_angle_degrees",
		"inspectd_last_registration_confidence"} {
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README does not list %s", name)
		}
	}
}
