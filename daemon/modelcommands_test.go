package daemon

import "fmt"

// modelCommand is one of the remote commands that change the model in
// force, as the tests that have each refused send it: the command's name
// (the topic's last part), its request's fields after the id, and the
// start of the refusal reply it answers.
type modelCommand struct{ name, args, lead string }

// modelCommands returns the threshold command (setting the image
// threshold to image), the model rollback and the refit (of the normal
// images in folder good, any false-alarm rate taken), in that order, each
// with the lead of its refusal: "thresholds unchanged: ", "model unchanged
// (id): " with id the model in force, and refitLead, which says where the
// refit was refused: "not started: " when it was accepted (before its
// fit), "install: " at its install (after its fit). The words a refusal
// says after its lead are each test's own.
func modelCommands(image float64, id, good, refitLead string) []modelCommand {
	return []modelCommand{
		{"threshold", fmt.Sprintf(`"image":%g`, image), "thresholds unchanged: "},
		{"rollback", `"target":"model"`, "model unchanged (" + id + "): "},
		{"refit", `"folder":"` + good + `","max_false_alarm_rate":1`, refitLead},
	}
}
