package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
)

// ControlResult is what SetControls did with one control.
type ControlResult struct {
	// Asked is the name as given, or the key of an automatic mode that was
	// switched to manual on the way.
	Asked string
	// Control is the driver control the name resolved to (ID 0 when the
	// camera has none by that name).
	Control Control
	// Value is the value written: the one asked for, clamped into the
	// control's range.
	Value int32
	// Err says why the control was not set (nil when it was).
	Err error
}

// ErrNoSuchControl reports a control name the camera does not have.
var ErrNoSuchControl = errors.New("no such control on this camera")

// SetControls sets controls by name on an open device and reports each.
// Names are the friendly "exposure", "gain", "white_balance" and "focus",
// which switch the matching automatic mode to manual first unless that
// mode is itself among the controls given, or any control's key as
// `inspectd capture list` shows it (the driver's name in lower case with
// '_' for spaces and punctuation). Automatic modes are set before manual
// values, as cameras ignore manual values while their automatic mode is
// on. Values outside a control's range are clamped, a menu control takes
// only one of its items, and a button is pressed by any value but 0.
// Every problem is logged in one line and reported in its result; the
// other controls are still set. Two names of one control (any spelling
// whose key is the same) are both refused.
func SetControls(dev Device, controls map[string]int32, log *slog.Logger) []ControlResult {
	if len(controls) == 0 {
		return nil
	}
	if log == nil {
		log = slog.Default()
	}
	byKey := map[string]Control{}
	for _, ctl := range dev.Controls() {
		byKey[controlKey(ctl.Name)] = ctl
	}
	keys := make([]string, 0, len(controls))
	explicit := map[string]bool{}
	spelt := map[string][]string{} // the names given for each key
	for k := range controls {
		keys = append(keys, k)
		explicit[controlKey(k)] = true
		spelt[controlKey(k)] = append(spelt[controlKey(k)], k)
	}
	var out []ControlResult
	// Two names for one control ("exposure" and "Exposure") would leave the
	// camera at whichever came last; neither is set, and both are said.
	keys = slices.DeleteFunc(keys, func(k string) bool {
		names := spelt[controlKey(k)]
		if len(names) < 2 {
			return false
		}
		slices.Sort(names)
		if k == names[0] {
			log.Warn("camera: control given twice under different names; neither is set", "control", strings.Join(names, ", "))
		}
		out = append(out, ControlResult{Asked: k, Value: controls[k], Err: fmt.Errorf("control %q: names the same control as %s; neither is set", k, strings.Join(names, " and "))})
		return true
	})
	isAuto := func(k string) bool { return strings.Contains(controlKey(k), "auto") }
	slices.SortFunc(keys, func(a, b string) int {
		if isAuto(a) != isAuto(b) {
			if isAuto(a) {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		names, autos, manual := controlAlias(controlKey(k))
		ctl, ok := Control{}, false
		for _, n := range names {
			if ctl, ok = byKey[n]; ok {
				break
			}
		}
		if !ok {
			log.Warn("camera: no such control on this camera", "control", k)
			out = append(out, ControlResult{Asked: k, Value: controls[k], Err: fmt.Errorf("control %q: %w", k, ErrNoSuchControl)})
			continue
		}
		for _, a := range autos {
			if explicit[a] {
				break
			}
			if actl, ok := byKey[a]; ok {
				out = append(out, setControl(dev, actl, manual, a, log))
				break
			}
		}
		out = append(out, setControl(dev, ctl, controls[k], k, log))
	}
	return out
}

// setControl writes one control after checking v against its kind.
func setControl(dev Device, ctl Control, v int32, asked string, log *slog.Logger) ControlResult {
	r := ControlResult{Asked: asked, Control: ctl, Value: v}
	switch {
	case ctl.ReadOnly:
		r.Err = fmt.Errorf("control %q (%s) is read-only", asked, ctl.Name)
	case ctl.Kind == ControlButton:
		if v == 0 {
			return r // 0 leaves a button alone
		}
		r.Value = 1
	case ctl.Kind == ControlMenu && len(ctl.Menu) > 0:
		if !slices.ContainsFunc(ctl.Menu, func(m MenuItem) bool { return m.Value == v }) {
			r.Err = fmt.Errorf("control %q (%s): %d is not one of its menu items %s", asked, ctl.Name, v, menuString(ctl.Menu))
		}
	case ctl.Kind == ControlBitmask:
	case v < ctl.Min || v > ctl.Max:
		nv := min(max(v, ctl.Min), ctl.Max)
		log.Warn("camera: control value clamped", "control", asked, "value", v, "min", ctl.Min, "max", ctl.Max, "used", nv)
		r.Value = nv
	}
	if r.Err == nil {
		r.Err = dev.SetControl(ctl.ID, r.Value)
	}
	if r.Err != nil {
		log.Warn("camera: control not set", "control", asked, "driver_name", ctl.Name, "value", r.Value, "err", r.Err)
	}
	return r
}

// menuString lists menu items as "0 Off, 1 On".
func menuString(items []MenuItem) string {
	parts := make([]string, len(items))
	for i, m := range items {
		parts[i] = strconv.Itoa(int(m.Value)) + " " + m.Name
	}
	return strings.Join(parts, ", ")
}

// controlKey normalizes a control name: "Exposure Time, Absolute" becomes
// "exposure_time_absolute".
func controlKey(name string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
			continue
		}
		under = true
	}
	return b.String()
}

// controlAlias maps the friendly names to the driver names that implement
// them and to the automatic mode that must be off for a manual value to
// stick (with the value that means "manual").
func controlAlias(key string) (names, autos []string, manual int32) {
	switch key {
	case "exposure":
		return []string{"exposure_time_absolute", "exposure_absolute", "exposure"}, []string{"auto_exposure", "exposure_auto"}, 1
	case "gain":
		return []string{"gain", "analogue_gain", "analog_gain"}, []string{"gain_automatic", "autogain", "auto_gain"}, 0
	case "white_balance":
		return []string{"white_balance_temperature", "white_balance"}, []string{"white_balance_automatic", "white_balance_temperature_auto", "auto_white_balance"}, 0
	case "focus":
		return []string{"focus_absolute", "focus"}, []string{"focus_automatic_continuous", "focus_auto", "auto_focus"}, 0
	}
	return []string{key}, nil, 0
}
