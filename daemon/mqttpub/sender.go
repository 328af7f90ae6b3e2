package mqttpub

import (
	"time"
)

// retryDiskEvery is how often the sender tries again to write alarms and
// results that the disk refused, and to read stored ones it could not read.
const retryDiskEvery = 5 * time.Second

// runSender is the one goroutine that hands messages to paho: it takes
// them from the outbox in order while connected (take decides what may go)
// and is woken by new messages, acknowledgements and connects. Publish
// never waits for it, and it never waits for the broker except inside
// paho's Publish, which WriteTimeout bounds.
func (p *Publisher) runSender() {
	defer close(p.senderDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRetry := time.Now()
	said := map[class]int{} // class → packet limit its set-aside was logged at
	for {
		p.sendReady(said)
		select {
		case <-p.box.wake:
		case <-p.stopSender:
			return
		case now := <-tick.C:
			p.box.sweep(now, false)
			if now.Sub(lastRetry) >= retryDiskEvery {
				lastRetry = now
				p.box.retryDisk()
				p.box.retryUnread()
			}
			p.checkClashSettled()
		}
	}
}

// sendReady hands over everything that may go now. A message set aside
// as larger than the broker takes is logged once per class and packet
// limit (said): when a limit is learned, every image queued at the old
// size is set aside at once, and a line each (27 in a trial) said one
// thing; the rest are counted in inspectd_mqtt_too_large_total.
func (p *Publisher) sendReady(said map[class]int) {
	for {
		select {
		case <-p.stopSender:
			return
		default:
		}
		if !p.client.IsConnectionOpen() {
			return
		}
		e, aside := p.box.take()
		for _, a := range aside {
			limit := p.box.packetLimit()
			if l, ok := said[a.class]; ok && l == limit {
				continue
			}
			said[a.class] = limit
			p.log.Warn("mqtt message larger than the broker accepts set aside (not sent); further ones of its class at this limit are counted in inspectd_mqtt_too_large_total, not logged",
				"topic", a.topic, "class", a.class, "bytes", a.size, "broker_limit", limit)
		}
		if e == nil {
			return
		}
		// paho stores a QoS 1/2 message through the outbox's Put before
		// it sends it, which gives the entry its packet id; the returned
		// token is not needed: acknowledgements arrive through Del.
		p.client.Publish(e.topic, e.sendQoS, e.retain, e.payload)
		p.box.handed(e)
	}
}
