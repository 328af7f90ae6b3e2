package capture

import (
	"context"
	"errors"
	"fmt"
	"image"
	"sync"
	"testing"
	"time"
)

func TestTriggeredAnswersEachRequestWithAFreshFrame(t *testing.T) {
	sy, err := NewSynthetic(SyntheticOptions{Width: 32, Height: 32})
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTriggered(sy, TriggerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // an MQTT handler
		defer wg.Done()
		for i := 0; i < 5; i++ {
			if err := tr.Trigger(fmt.Sprintf("corr-%d", i)); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var f Frame
	for i := 0; i < 5; i++ {
		if err := tr.Next(ctx, &f); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("corr-%d", i); f.Trigger != want {
			t.Errorf("frame %d answers %q, want %q", i, f.Trigger, want)
		}
		if f.Time.Before(f.TriggerTime) {
			t.Errorf("frame %d taken %v before its request", i, f.TriggerTime.Sub(f.Time))
		}
	}
	wg.Wait()
	if c := tr.TriggerCounters(); c.Requests.Load() != 5 || c.Served.Load() != 5 {
		t.Errorf("requests %d served %d", c.Requests.Load(), c.Served.Load())
	}
	// Without a request Next waits.
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if err := tr.Next(short, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no request: %v", err)
	}
}

func TestTriggeredOverrunAndExpiry(t *testing.T) {
	sy, _ := NewSynthetic(SyntheticOptions{Width: 32, Height: 32})
	tr := NewTriggered(sy, TriggerOptions{Queue: 1, MaxAge: 5 * time.Millisecond})
	if err := tr.Trigger("a"); err != nil {
		t.Fatal(err)
	}
	err := tr.Trigger("b")
	var te *TriggerError
	if !errors.Is(err, ErrTriggerOverrun) || !errors.As(err, &te) || te.ID != "b" {
		t.Errorf("second trigger: %v, want an overrun for b", err)
	}
	time.Sleep(15 * time.Millisecond)
	var f Frame
	err = tr.Next(context.Background(), &f)
	if !errors.Is(err, ErrTriggerExpired) || !errors.As(err, &te) || te.ID != "a" || !Temporary(err) {
		t.Errorf("stale request: %v, want expiry of a", err)
	}
	c := tr.TriggerCounters()
	if c.Overruns.Load() != 1 || c.Expired.Load() != 1 {
		t.Errorf("overruns %d expired %d", c.Overruns.Load(), c.Expired.Load())
	}
}

// TestTriggeredCameraSkipsBufferedFrames: frames waiting in the driver when
// the trigger comes are older than the request and must not answer it.
func TestTriggeredCameraSkipsBufferedFrames(t *testing.T) {
	w := NewFakeCamera()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48})
	solid := func(v uint8) []byte {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for i := range img.Pix {
			img.Pix[i] = v
		}
		return toYUYV(img, 0)
	}
	var f Frame
	w.Push(solid(50))
	if err := c.Next(context.Background(), &f); err != nil { // streaming
		t.Fatal(err)
	}
	w.Push(solid(50), solid(50)) // captured before the trigger
	tr := NewTriggered(c, TriggerOptions{})
	go func() {
		time.Sleep(10 * time.Millisecond)
		w.Push(solid(200)) // the part under the camera
	}()
	if err := tr.NextTriggered(context.Background(), "part-17", &f); err != nil {
		t.Fatal(err)
	}
	if r := flat(f.Image).Pix[0]; r < 195 || f.Trigger != "part-17" {
		t.Errorf("trigger answered with red %d id %q, want the fresh frame (200)", r, f.Trigger)
	}
}

func TestTriggeredErrorCarriesID(t *testing.T) {
	w := NewFakeCamera()
	c := newTestCamera(t, w, CameraOptions{Formats: []FourCC{FormatYUYV}, Width: 64, Height: 48, FrameTimeout: 10 * time.Millisecond})
	tr := NewTriggered(c, TriggerOptions{})
	_ = tr.Trigger("x9")
	var f Frame
	err := tr.Next(context.Background(), &f)
	var te *TriggerError
	if !errors.As(err, &te) || te.ID != "x9" || !errors.Is(err, ErrTimeout) || !Temporary(err) {
		t.Errorf("camera timeout under a trigger: %v", err)
	}
	if tr.TriggerCounters().Failed.Load() != 1 {
		t.Error("failure not counted")
	}
}

func TestThrottle(t *testing.T) {
	sy, _ := NewSynthetic(SyntheticOptions{Width: 32, Height: 32})
	src, err := NewThrottle(sy, 100)
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	start := time.Now()
	for i := 0; i < 6; i++ {
		if err := src.Next(context.Background(), &f); err != nil {
			t.Fatal(err)
		}
	}
	// Six frames at 100/s span at least five intervals of 10ms.
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("6 frames in %v at 100/s, want >= 50ms", d)
	}
	if same, _ := NewThrottle(sy, 0); same != Source(sy) {
		t.Error("rate 0 should return the source")
	}
	if _, err := NewThrottle(sy, -1); err == nil {
		t.Error("negative rate: want an error")
	}
}
