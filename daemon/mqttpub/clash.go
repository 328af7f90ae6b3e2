package mqttpub

import (
	"fmt"
	"time"
)

// clashDetector recognises the pattern two clients with one client id
// make: the broker accepts each and drops the other (MQTT 3.1.1 section
// 3.1.4: a new connection with an existing client id takes the session
// over), so both are disconnected within seconds of every CONNACK, forever,
// with nothing but EOF to say why. Several such short connections in a row
// start an episode, reported once; a connection that lasts ends it.
//
// A broker that restarts drops the connection with the same EOF, and one
// restarted again and again (an operator's edits, a service manager's
// restart loop) made short connections in a row as well: taken for a
// clash, with its warning and Health detail. What tells them apart is that
// in a clash the broker is up and accepts every attempt at once: an
// attempt that fails (the broker was away) starts the count again, and
// short connections within quiet of it are not counted, for paho's
// reconnect delay (1 s and more after a short connection) outlasts a
// quick restart, which then shows no failed attempt of its own. A clash
// goes on for ever, so one that begins right after a broker outage is
// reported once that window has passed.
type clashDetector struct {
	short  time.Duration // a connection shorter than this counts
	needed int           // this many in a row make an episode
	quiet  time.Duration // a connection lasting this long ends it; also the window after an outage

	run    int // short connections in a row
	drops  int // in the current episode
	active bool
	since  time.Time
	away   time.Time // the last failed connection attempt (the broker was away)
}

func newClashDetector() clashDetector {
	return clashDetector{short: 5 * time.Second, needed: 3, quiet: 30 * time.Second}
}

// ended records a connection that lasted connectedFor; tooLarge drops
// (the broker refused a message, and a packet limit was learned) do not
// count, and they start the count again: the short connections before a
// lesson were as likely lost over large messages that went out pipelined,
// with nothing to blame (under probeFloor, or before the limit was lowered
// to the one the broker keeps), and kept, they made a false client-id
// clash, with its warning and Health detail, out of a single unrelated
// drop after the lesson. It reports whether this drop starts an episode.
func (d *clashDetector) ended(connectedFor time.Duration, tooLarge bool, now time.Time) (started bool) {
	switch {
	case tooLarge:
		d.run = 0
		return false
	case connectedFor < d.short:
		if d.active {
			d.run++
			d.drops++
			return false
		}
		if !d.away.IsZero() && now.Sub(d.away) < d.quiet {
			d.run = 0 // the broker went away lately: restarts, not another client
			return false
		}
		d.run++
		if d.run >= d.needed {
			d.active, d.since, d.drops = true, now, d.run
			return true
		}
	default:
		d.run = 0
		if d.active && connectedFor >= d.quiet {
			d.active = false
		}
	}
	return false
}

// failed records a connection attempt that failed (the broker, or one of
// several, unreachable or refusing): the broker was away, which is no
// clash, and short connections for a while after it are not counted.
func (d *clashDetector) failed(now time.Time) {
	d.run, d.away = 0, now
}

// settled ends an active episode once the current connection has lasted
// d.quiet; it reports whether it did.
func (d *clashDetector) settled(connectedFor time.Duration) bool {
	if d.active && connectedFor >= d.quiet {
		d.active, d.run = false, 0
		return true
	}
	return false
}

// describe is the health detail of an active episode, "" otherwise.
func (d *clashDetector) describe(clientID string) string {
	if !d.active {
		return ""
	}
	return fmt.Sprintf("client id %q is probably used by another client: %d connections dropped within %s of being accepted since %s",
		clientID, d.drops, d.short, d.since.Format(time.RFC3339))
}
