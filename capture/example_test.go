package capture_test

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log"

	"github.com/inspectd/inspectd/capture"
)

// A free-running pipeline: a source, its region of interest and rotation,
// at most 10 frames per second. The same loop serves a camera
// (capture.NewCamera) or a folder (capture.NewFolder).
func Example() {
	var src capture.Source
	src, err := capture.NewSynthetic(capture.SyntheticOptions{Width: 320, Height: 240, Seed: 1, DefectRate: 0.5})
	if err != nil {
		log.Fatal(err)
	}
	if src, err = capture.NewTransform(src, capture.TransformOptions{ROI: image.Rect(40, 20, 280, 220), Rotate: 90}); err != nil {
		log.Fatal(err)
	}
	if src, err = capture.NewThrottle(src, 10); err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	ctx := context.Background()
	var f capture.Frame // reused: no allocation per frame
	for i := 0; i < 3; i++ {
		err := src.Next(ctx, &f)
		switch {
		case errors.Is(err, capture.ErrEOF):
			return
		case capture.Temporary(err):
			continue // log it; the source recovers by itself
		case err != nil:
			log.Fatal(err)
		}
		fmt.Println(f.Seq, f.Image.Bounds().Size(), f.Label != "")
	}
	// Output:
	// 1 (200,240) true
	// 2 (200,240) false
	// 3 (200,240) true
}

// External trigger: an MQTT handler calls Trigger with the message's
// correlation id; the capture loop answers each id with a frame taken after
// the request, or with a *TriggerError naming the id.
func ExampleTriggered() {
	sy, _ := capture.NewSynthetic(capture.SyntheticOptions{Seed: 1})
	tr := capture.NewTriggered(sy, capture.TriggerOptions{Queue: 8})

	// In the MQTT message handler:
	if err := tr.Trigger("part-0042"); err != nil {
		fmt.Println("reject:", err) // queue full: answer the PLC at once
	}

	// In the capture loop:
	var f capture.Frame
	err := tr.Next(context.Background(), &f)
	var te *capture.TriggerError
	switch {
	case errors.As(err, &te):
		fmt.Println("failed", te.ID, te.Err)
	case err == nil:
		fmt.Println("frame for", f.Trigger, !f.Time.Before(f.TriggerTime))
	}
	// Output:
	// frame for part-0042 true
}
